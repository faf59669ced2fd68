//! The running node: its cameras, each on a thread of its own (see [`crate::engine`]), the
//! MQTT sink they feed, the HTTP endpoints and the systemd watchdog, until SIGINT or SIGTERM.
//!
//! The node also keeps its config current. On SIGHUP, or when the file's text changes, it loads
//! and validates the file again, with its models. A config with mistakes changes nothing: the
//! mistakes go to the log and to the node's status topic, and the node goes on with what it
//! runs. A valid config is applied camera by camera:
//!
//! - a camera whose source, pipeline or analysis rate changed restarts its stream;
//! - a camera whose models, zones or algorithms changed (or whose model files changed) swaps
//!   its analysis at the next frame, keeping its stream, its tracks and the open incidents of
//!   every algorithm that did not change;
//! - cameras added start, cameras removed stop, and every other camera is left alone.
//!
//! `[node]`, `[mqtt]`, `[outbox]`, `[http]`, `[evidence]` and `[verdicts]` are read once at start: a change
//! there is reported as needing a restart and is not applied.
//!
//! A node has its data dir to itself: it runs holding the dir's [`DataDirLock`].

mod lock;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc as std_mpsc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;

use crate::clip;
use crate::config::{CameraConfig, Config, ConfigErrors, sha256_hex};
use crate::engine::{Analysis, Models, Outputs, Patrol, Watch, reload_models, run_camera};
use crate::http::edit::{self, EditRequest, FieldError};
use crate::http::operate::Operate;
use crate::http::{self, auth::Auth, web::Web};
use crate::ingest::Mode;
use crate::publish::{self, CHANNEL_CAPACITY, Outbound};
use crate::stats::NodeStats;
use crate::systemd::{self, Notifier};
use crate::verdict;
use crate::wire::{ConfigReport, Topics, rfc3339_millis};

pub use lock::{DataDirLock, LOCK_FILE, LockError};

/// How often the config file is read to see whether it changed.
const WATCH_EVERY: Duration = Duration::from_secs(2);
/// How often the config thread looks for a stop or a SIGHUP.
const POLL: Duration = Duration::from_millis(200);

/// Runs the node until SIGINT or SIGTERM (or until its MQTT sink fails), holding `data_dir`'s
/// lock until then. `link` is the MQTT settings with their files read (by the caller, which
/// tells a config mistake there from a failure here).
pub fn run_node(
    config: Config,
    models: Models,
    link: publish::link::Settings,
    data_dir: DataDirLock,
) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    // Before any camera starts: a data dir that cannot hold the outbox stops the node here. A
    // corrupt outbox does not: it is set aside, which the lock makes safe.
    let outbox = publish::Outbox::open_recovering(&config.node.data_dir, config.outbox.max_bytes)
        .map_err(|e| format!("node.data_dir: cannot keep the outbox: {e}"))?;
    if config.mqtt.embedded_broker {
        publish::start_embedded_broker(&config.mqtt).map_err(|e| e.to_string())?;
    }
    let users = match &config.http.users_file {
        Some(path) if config.http.enabled => {
            Some(http::auth::load_users(path).map_err(|e| format!("http.users_file: {e}"))?)
        }
        _ => None,
    };
    let http = match config.http.enabled {
        true => Some(runtime.block_on(http::bind(&config.http))?),
        false => None,
    };
    let stop = Arc::new(AtomicBool::new(false));
    let hangup = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    let stats =
        Arc::new(NodeStats::new(&config.node.id, config.cameras.iter().map(|c| c.id.as_str())));
    if outbox.recovered_from().is_some() {
        stats.count_outbox_recovery();
    }
    let verdicts = Arc::new(verdict::Store::open(
        &config.node.data_dir,
        config.verdicts.suppress_days,
        stats.clone(),
    ));
    let topics = Topics::new(&config.mqtt.topic_prefix, &config.node.id);
    verdict::listen(verdicts.clone(), &link, topics, stop.clone())?;
    let config = Arc::new(config);
    // With HTTP on, the web page watches every camera's analysed frames.
    let web = http.as_ref().map(|_| Arc::new(Web::new(stats.clone())));
    let (editor, edits) = std_mpsc::channel();
    let operate = Arc::new(Operate {
        auth: Arc::new(Auth::new(
            users,
            Duration::from_secs_f64(config.http.session_hours * 3600.0),
        )),
        verdicts: Some(verdicts.clone()),
        editor: Some(editor),
        config_path: Some(config.path.clone()),
    });
    let cameras =
        Cameras::start(config.clone(), models, tx, stats.clone(), web.clone(), verdicts.clone());
    let supervisor = {
        let (stop, hangup) = (stop.clone(), hangup.clone());
        std::thread::Builder::new()
            .name("config".into())
            .spawn(move || cameras.run(&stop, &hangup, &edits))
            .map_err(|e| format!("cannot start the config thread: {e}"))?
    };
    if let (Some(listener), Some(web)) = (http, web) {
        runtime.spawn(http::serve(listener, stats.clone(), web, operate));
    }
    let notifier = Arc::new(Notifier::from_env());
    runtime.spawn(systemd::feed_watchdog(notifier.clone(), stats.clone(), stop.clone()));
    runtime.spawn(handle_signals(stop.clone(), hangup, notifier.clone()));
    notifier.ready(&format!("analysing {} cameras", config.cameras.len()));
    let published =
        runtime.block_on(publish::mqtt_sink(&config, link, outbox, stats, rx, stop.clone()));
    // A sink that failed must not leave the cameras running with nobody to publish for them.
    stop.store(true, Ordering::Relaxed);
    let _ = supervisor.join();
    drop(data_dir);
    published.map_err(|e| e.to_string())
}

/// SIGINT and SIGTERM stop the node; SIGHUP asks for a config reload.
async fn handle_signals(stop: Arc<AtomicBool>, hangup: Arc<AtomicBool>, notifier: Arc<Notifier>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int), Ok(mut hup)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
        signal(SignalKind::hangup()),
    ) else {
        tracing::error!("cannot listen for signals; stop the node with SIGKILL");
        return;
    };
    loop {
        tokio::select! {
            _ = term.recv() => break,
            _ = int.recv() => break,
            _ = hup.recv() => {
                tracing::info!("SIGHUP: reloading the config");
                hangup.store(true, Ordering::Relaxed);
            }
        }
    }
    tracing::info!("stopping");
    notifier.stopping();
    stop.store(true, Ordering::Relaxed);
}

/// A camera's thread and how to reach it.
struct CameraThread {
    config: CameraConfig,
    /// The models its analysis uses, by name.
    models: Vec<String>,
    stop: Arc<AtomicBool>,
    reconfigure: std_mpsc::Sender<Analysis>,
    thread: JoinHandle<()>,
}

/// What a reload does to one camera.
enum Change {
    Start,
    Restart,
    Reconfigure,
}

/// A checked config, ready to run: every camera's new analysis built.
struct Prepared {
    next: Config,
    models: Models,
    restart_needed: Vec<String>,
    changes: Vec<(CameraConfig, Change, Analysis)>,
}

/// The running cameras and the config they run.
struct Cameras {
    config: Arc<Config>,
    models: Models,
    /// The turns of each patrol, by patrol id.
    patrols: BTreeMap<String, Arc<Patrol>>,
    running: BTreeMap<String, CameraThread>,
    tx: mpsc::Sender<Outbound>,
    stats: Arc<NodeStats>,
    web: Option<Arc<Web>>,
    verdicts: Arc<verdict::Store>,
    report: ConfigReport,
    /// SHA-256 of the file's text when last read, applied or not: a refused file is reported
    /// once, not at every look.
    last_seen: String,
}

impl Cameras {
    /// Starts every camera of `config`.
    fn start(
        config: Arc<Config>,
        models: Models,
        tx: mpsc::Sender<Outbound>,
        stats: Arc<NodeStats>,
        web: Option<Arc<Web>>,
        verdicts: Arc<verdict::Store>,
    ) -> Self {
        let report = ConfigReport {
            sha256: config.sha256.clone(),
            applied_at: rfc3339_millis(SystemTime::now()),
            models: models.reports(&config),
            ..ConfigReport::default()
        };
        let last_seen = config.sha256.clone();
        let running = BTreeMap::new();
        let patrols = patrols_of(&config);
        let mut cameras = Cameras {
            config,
            models,
            patrols,
            running,
            tx,
            stats,
            web,
            verdicts,
            report,
            last_seen,
        };
        // Before any camera: the sink is not draining yet, and this thread must not wait on a
        // channel the cameras may have filled.
        cameras.publish_report();
        for camera in cameras.config.cameras.clone() {
            match Analysis::new(&cameras.config, &camera, &cameras.models) {
                Ok(analysis) => cameras.spawn(camera, analysis),
                Err(e) => tracing::error!(camera = %camera.id, "camera not started: {e}"),
            }
        }
        cameras
    }

    /// Watches for reloads and takes the page's edits until `stop`, then stops every camera.
    fn run(
        mut self,
        stop: &AtomicBool,
        hangup: &AtomicBool,
        edits: &std_mpsc::Receiver<EditRequest>,
    ) {
        let mut looked = Instant::now();
        while !stop.load(Ordering::Relaxed) {
            std::thread::sleep(POLL);
            for request in edits.try_iter() {
                let result = self.edit(&request);
                let _ = request.reply.send(result);
            }
            let asked = hangup.swap(false, Ordering::Relaxed);
            if asked || looked.elapsed() >= WATCH_EVERY {
                looked = Instant::now();
                self.reload_if(asked);
                self.verdicts.refresh();
            }
        }
        // All at once: each camera's last messages must reach the sink within its grace period.
        let running = std::mem::take(&mut self.running);
        for camera in running.values() {
            camera.stop.store(true, Ordering::Relaxed);
        }
        for camera in running.into_values() {
            let _ = camera.thread.join();
        }
    }

    /// Reloads the config when `asked` (SIGHUP) or when the file's text changed.
    fn reload_if(&mut self, asked: bool) {
        let text = std::fs::read(&self.config.path);
        let seen = text.as_deref().map(sha256_hex).unwrap_or_default();
        if !asked && seen == self.last_seen {
            return;
        }
        self.last_seen = seen;
        match self.reload() {
            Ok(()) => {}
            Err(errors) => {
                for e in &errors.0 {
                    tracing::error!("config reload refused, running the previous config: {e}");
                }
                self.report.errors = errors.0.iter().map(ToString::to_string).collect();
                self.publish_report();
            }
        }
    }

    /// Loads, validates and applies the config file; nothing changes unless all of it is valid.
    fn reload(&mut self) -> Result<(), ConfigErrors> {
        let next = Config::load(&self.config.path)?;
        let prepared = self.prepare(next)?;
        self.switch(prepared);
        Ok(())
    }

    /// The page's edit: made to the file's text, checked whole exactly as a reload checks it,
    /// then (only if all of it is valid) the old file kept as `FILE.bak`, the new one written
    /// and run. The new config's SHA-256, or every mistake with its key.
    fn edit(&mut self, request: &EditRequest) -> Result<String, Vec<FieldError>> {
        let path = self.config.path.clone();
        let whole = |message: String| vec![FieldError::new("", message)];
        let text = std::fs::read_to_string(&path)
            .map_err(|e| whole(format!("cannot read {}: {e}", path.display())))?;
        let edited = edit::apply(&text, &request.camera, &request.changes)?;
        let keyed = |errors: ConfigErrors| -> Vec<FieldError> {
            errors.0.iter().map(|e| FieldError::new(e.key.clone(), e.message.clone())).collect()
        };
        let next = Config::parse(&edited, &path).map_err(keyed)?;
        let prepared = self.prepare(next).map_err(keyed)?;
        let backup = path.with_extension("toml.bak");
        std::fs::copy(&path, &backup)
            .map_err(|e| whole(format!("cannot keep the backup {}: {e}", backup.display())))?;
        write_replacing(&path, &edited)
            .map_err(|e| whole(format!("cannot write {}: {e}", path.display())))?;
        tracing::info!(by = %request.by, camera = %request.camera, backup = %backup.display(), "config edited on the page");
        // The watcher must not take the written file for someone else's change.
        self.last_seen = sha256_hex(edited.as_bytes());
        self.switch(prepared);
        Ok(self.config.sha256.clone())
    }

    /// Checks `next` with its models and builds every changed camera's analysis; nothing
    /// running changes.
    fn prepare(&self, mut next: Config) -> Result<Prepared, ConfigErrors> {
        let (models, loaded_anew) = reload_models(&next, Some((&self.config, &self.models)))?;
        let restart_needed = keep_start_only_sections(&self.config, &mut next);
        // Every analysis is built before anything changes, so a failure leaves all as it was.
        let mut changes = Vec::new();
        // A changed patrol starts its turns afresh: every camera in it, before or now, restarts.
        let patrols_changed = self.config.patrols != next.patrols;
        let patrolled = |config: &Config, id: &str| config.patrol_of(id).is_some();
        for camera in &next.cameras {
            let repatrolled = patrols_changed
                && (patrolled(&self.config, &camera.id) || patrolled(&next, &camera.id));
            let change = match self.running.get(&camera.id) {
                None => Change::Start,
                Some(running) if stream_changed(&running.config, camera) || repatrolled => {
                    Change::Restart
                }
                Some(running)
                    if running.config != *camera
                        || running.models.iter().any(|m| loaded_anew.contains(m)) =>
                {
                    Change::Reconfigure
                }
                Some(_) => continue,
            };
            let analysis = Analysis::new(&next, camera, &models)
                .map_err(|e| ConfigErrors(vec![next.error(format!("cameras.{}", camera.id), e)]))?;
            changes.push((camera.clone(), change, analysis));
        }
        Ok(Prepared { next, models, restart_needed, changes })
    }

    /// Runs a prepared config.
    fn switch(&mut self, prepared: Prepared) {
        let Prepared { next, models, restart_needed, changes } = prepared;
        let kept: BTreeSet<&str> = next.cameras.iter().map(|c| c.id.as_str()).collect();
        let removed: Vec<String> =
            self.running.keys().filter(|id| !kept.contains(id.as_str())).cloned().collect();
        if self.config.patrols != next.patrols {
            self.patrols = patrols_of(&next);
        }
        self.config = Arc::new(next);
        self.models = models;
        self.stats.set_cameras(self.config.cameras.iter().map(|c| c.id.as_str()));
        for id in removed {
            tracing::info!(camera = %id, "camera removed from the config: stopping it");
            self.halt(&id);
        }
        for (camera, change, analysis) in changes {
            self.apply(camera, change, analysis);
        }
        if !restart_needed.is_empty() {
            tracing::warn!(
                "config sections changed that apply only after a restart: {}",
                restart_needed.join(", ")
            );
        }
        tracing::info!(sha256 = %self.config.sha256, "config reloaded");
        self.report = ConfigReport {
            sha256: self.config.sha256.clone(),
            applied_at: rfc3339_millis(SystemTime::now()),
            restart_needed,
            errors: Vec::new(),
            models: self.models.reports(&self.config),
        };
        self.publish_report();
    }

    fn apply(&mut self, camera: CameraConfig, change: Change, analysis: Analysis) {
        let id = camera.id.clone();
        match change {
            Change::Start => {
                tracing::info!(camera = %id, "camera added to the config: starting it");
                self.spawn(camera, analysis);
            }
            Change::Restart => {
                tracing::info!(camera = %id, "camera's stream settings changed: restarting it");
                self.halt(&id);
                self.spawn(camera, analysis);
            }
            Change::Reconfigure => {
                let running = self.running.get_mut(&id).expect("a reconfigured camera runs");
                running.models = analysis.models();
                running.config = camera.clone();
                // A thread that already ended (its analysis failed) is started again.
                if let Err(std_mpsc::SendError(analysis)) = running.reconfigure.send(analysis) {
                    self.halt(&id);
                    self.spawn(camera, analysis);
                }
            }
        }
    }

    /// Stops camera `id` and waits for its thread.
    fn halt(&mut self, id: &str) {
        if let Some(camera) = self.running.remove(id) {
            camera.stop.store(true, Ordering::Relaxed);
            let _ = camera.thread.join();
        }
    }

    /// Starts a thread analysing `camera`.
    fn spawn(&mut self, camera: CameraConfig, mut analysis: Analysis) {
        let stop = Arc::new(AtomicBool::new(false));
        let (reconfigure, reconfigured) = std_mpsc::channel();
        let models = analysis.models();
        let (config, tx, stats) = (self.config.clone(), self.tx.clone(), self.stats.clone());
        let (id, thread_stop, thread_camera) = (camera.id.clone(), stop.clone(), camera.clone());
        let (web, verdicts) = (self.web.clone(), self.verdicts.clone());
        let patrol = config.patrol_of(&camera.id).and_then(|p| self.patrols.get(&p.id)).cloned();
        let spawned =
            std::thread::Builder::new().name(format!("camera-{}", camera.id)).spawn(move || {
                let camera = thread_camera;
                let camera_stats = stats.camera(&camera.id);
                // A patrolled camera's detect stream is closed most of the time: clips of it
                // would be cut off. Its record stream stays open.
                let clips = match (&patrol, &camera.record_url) {
                    (Some(_), None) => None,
                    _ => clip::Settings::live(&config, &camera.id),
                };
                let mut watch = web.map(|web| web.watcher(&camera.id));
                let watch = watch.as_mut().map(|w| w as &mut Watch<'_>);
                let patrol = patrol.as_deref();
                let verdicts = Some(&*verdicts);
                let outputs =
                    Outputs { tx: &tx, stats: &camera_stats, clips, watch, patrol, verdicts };
                let mode = Mode::Live;
                let stop = &thread_stop;
                if let Err(e) =
                    run_camera(&mut analysis, &camera, mode, stop, outputs, Some(&reconfigured))
                {
                    tracing::error!(camera = %camera.id, "camera stopped: {e}");
                }
            });
        match spawned {
            Ok(thread) => {
                self.running
                    .insert(id, CameraThread { config: camera, models, stop, reconfigure, thread });
            }
            Err(e) => tracing::error!(camera = %id, "cannot start the camera's thread: {e}"),
        }
    }

    fn publish_report(&self) {
        // The sink only goes away when the node is shutting down.
        let _ = self.tx.blocking_send(Outbound::Config(self.report.clone()));
    }
}

/// The turns of each of `config`'s patrols, by patrol id.
fn patrols_of(config: &Config) -> BTreeMap<String, Arc<Patrol>> {
    config.patrols.iter().map(|p| (p.id.clone(), Patrol::new(p))).collect()
}

/// Replaces `path`'s content through a temporary file beside it, renamed over it (a crash
/// leaves the old file or the new one), with the old file's permissions.
fn write_replacing(path: &std::path::Path, text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let temporary = path.with_extension("toml.tmp");
    let permissions = std::fs::metadata(path)?.permissions();
    let mut file = std::fs::File::create(&temporary)?;
    file.write_all(text.as_bytes())?;
    file.sync_all()?;
    std::fs::set_permissions(&temporary, permissions)?;
    std::fs::rename(&temporary, path)
}

/// Whether a camera's stream must be opened again for `new`: anything changed but its models,
/// zones and algorithms, which the running stream's analysis takes over.
fn stream_changed(old: &CameraConfig, new: &CameraConfig) -> bool {
    let stream = |c: &CameraConfig| CameraConfig {
        models: Vec::new(),
        zones: Vec::new(),
        algorithms: Vec::new(),
        resolved: Vec::new(),
        ..c.clone()
    };
    stream(old) != stream(new)
}

/// Keeps `running`'s sections that are read only at start in `next`, and names those that
/// changed.
fn keep_start_only_sections(running: &Config, next: &mut Config) -> Vec<String> {
    let mut changed = Vec::new();
    let mut keep = |name: &str, differs: bool| {
        if differs {
            changed.push(name.to_string());
        }
    };
    keep("node", running.node != next.node);
    keep("mqtt", running.mqtt != next.mqtt);
    keep("outbox", running.outbox != next.outbox);
    keep("http", running.http != next.http);
    keep("evidence", running.evidence != next.evidence);
    keep("verdicts", running.verdicts != next.verdicts);
    next.node = running.node.clone();
    next.mqtt = running.mqtt.clone();
    next.outbox = running.outbox.clone();
    next.http = running.http.clone();
    next.evidence = running.evidence.clone();
    next.verdicts = running.verdicts.clone();
    changed
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    const BASE: &str = r#"
[node]
id = "n1"

[mqtt]
url = "mqtt://127.0.0.1:1883"

[[models]]
name = "coco"
path = "Cargo.toml"
format = "yolox"
classes = ["person", "car"]

[[cameras]]
id = "gate"
url = "rtsp://127.0.0.1:8554/gate"
model = "coco"
zones = [{ name = "kerb", polygon = [[0.5, 0.0], [1.0, 0.0], [1.0, 0.5]] }]
"#;

    fn parse(text: &str) -> Config {
        // Model files must exist: any file of the crate does, as nothing loads it here.
        let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("cityeye.toml");
        Config::parse(text, &path).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn zones_and_algorithms_keep_the_stream_and_anything_else_restarts_it() {
        let old = &parse(BASE).cameras[0];
        let zone = parse(&BASE.replace("[1.0, 0.5]]", "[1.0, 0.6]]"));
        assert!(!stream_changed(old, &zone.cameras[0]));
        let url = parse(&BASE.replace("/gate\"", "/gate2\""));
        assert!(stream_changed(old, &url.cameras[0]));
        let fps = parse(&BASE.replace("model = ", "analysis_fps = 2\nmodel = "));
        assert!(stream_changed(old, &fps.cameras[0]));
    }

    #[test]
    fn start_only_sections_are_kept_and_named() {
        let running = parse(BASE);
        let mut next = parse(&BASE.replace("1883", "1884").replace("\"n1\"", "\"n2\""));
        let changed = keep_start_only_sections(&running, &mut next);
        assert_eq!(changed, ["node", "mqtt"]);
        assert_eq!(next.mqtt.url.port, 1883);
        assert_eq!(next.node.id, "n1");
    }
}
