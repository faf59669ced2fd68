//! The pipeline, top to bottom: **ingest → infer → track → rules → incidents → publish**.
//!
//! Each camera runs on a thread of its own: GStreamer decodes into the camera's appsink (one
//! frame, newest wins), the thread analyses each sampled frame through its detectors (each
//! model loaded once and shared by the cameras using it), its tracker, the second-stage
//! classifiers its cascade algorithms name, its rules and its incident stage, and hands messages
//! to the sink through a bounded channel that blocks when full. The sink is MQTT for a running
//! node, or a folder for a replay, and both receive exactly the same messages.

use std::cell::RefCell;
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Instant, SystemTime};

use tokio::sync::mpsc;

use crate::clip;
use crate::config::{CameraConfig, Config, ConfigErrors, Source};
use crate::drone::Drone;
use crate::http;
use crate::incident::{Evidence, Incident, IncidentState, Incidents, ModelRef, evidence_jpeg};
use crate::infer::classify::CropScratch;
use crate::infer::{Classifier, Detector, ModelKind, Scratch};
use crate::ingest::{self, CameraState, Frame, Mode};
use crate::publish::{self, CHANNEL_CAPACITY, Outbound, Topics};
use crate::rules::{Label, Rules, Verdicts, catalog};
use crate::stats::{CameraStats, NodeStats};
use crate::systemd::{self, Notifier};
use crate::track::{TrackState, TrackUpdate, Tracker, TrackerConfig};

/// The loaded models by name, each shared by the cameras that use it.
#[derive(Default, Clone)]
pub struct Models {
    pub detectors: HashMap<String, Arc<Detector>>,
    pub classifiers: HashMap<String, Arc<Classifier>>,
}

/// Loads every configured model once; a model that does not fit its config is a config error.
pub fn load_models(config: &Config) -> Result<Models, ConfigErrors> {
    let mut models = Models::default();
    let mut errors = Vec::new();
    for (i, model) in config.models.iter().enumerate() {
        let loaded = match model.format {
            ModelKind::Classifier => Classifier::load(model).map(|c| {
                models.classifiers.insert(model.name.clone(), Arc::new(c));
            }),
            ModelKind::Detector(_) => Detector::load(model).map(|d| {
                models.detectors.insert(model.name.clone(), Arc::new(d));
            }),
        };
        if let Err(e) = loaded {
            errors.push(config.error(format!("models[{i}].{}", e.key), e.message));
        }
    }
    if errors.is_empty() { Ok(models) } else { Err(ConfigErrors(errors)) }
}

/// A classifier and the classes whose tracks it looks at.
struct SecondStage {
    classifier: Arc<Classifier>,
    classes: Vec<Arc<str>>,
}

/// One camera's analysis: everything between a decoded frame and its incident messages.
pub struct Analysis {
    detectors: Vec<Arc<Detector>>,
    scratch: Scratch,
    tracker: Tracker,
    second_stage: Vec<SecondStage>,
    crop_scratch: CropScratch,
    verdicts: Verdicts,
    rules: Rules,
    incidents: Incidents,
    /// A drone camera's telemetry and geo-fences.
    drone: Option<Drone>,
}

impl Analysis {
    /// The camera's analysis with the node's loaded models. Fails only on a config that was
    /// not validated.
    pub fn new(config: &Config, camera: &CameraConfig, models: &Models) -> Result<Self, String> {
        let detectors: Vec<Arc<Detector>> = camera
            .models
            .iter()
            .map(|m| models.detectors.get(m).cloned().ok_or(format!("model {m} is not loaded")))
            .collect::<Result<_, String>>()?;
        let topics = Topics::new(&config.mqtt.topic_prefix, &config.node.id);
        let model_refs = detectors
            .iter()
            .map(|d| ModelRef { name: d.name.clone(), sha256: d.summary.sha256.clone() })
            .collect();
        // Detections under a model's own threshold never reach the rules anyway.
        let confidence = detectors.iter().map(|d| d.confidence()).fold(1.0, f32::min);
        let entries = catalog::for_camera(camera)?;
        let specs = catalog::specs(camera, &entries, confidence)?;
        let mut rules = Rules::new(specs);
        let drone = Drone::for_camera(config, camera)?;
        if drone.is_some() {
            rules.camera_moves();
        }
        let second_stage = rules
            .classified_classes()
            .into_iter()
            .map(|(name, classes)| {
                let classifier = models.classifiers.get(&name).cloned();
                classifier
                    .map(|classifier| SecondStage { classifier, classes })
                    .ok_or(format!("classifier {name} is not loaded"))
            })
            .collect::<Result<_, String>>()?;
        Ok(Analysis {
            rules,
            incidents: Incidents::new(&config.node.id, camera, &entries, topics, model_refs),
            tracker: Tracker::new(TrackerConfig::default()),
            scratch: Scratch::default(),
            second_stage,
            crop_scratch: CropScratch::default(),
            verdicts: Verdicts::new(),
            detectors,
            drone,
        })
    }

    /// A drone camera's telemetry state (`ok`, `missing`, `stale`, `incomplete`) after its
    /// latest frame; `None` for a fixed camera.
    pub fn telemetry(&self) -> Option<&'static str> {
        self.drone.as_ref().map(Drone::telemetry)
    }

    /// Runs one frame through infer → track → rules → incidents.
    pub fn frame(&mut self, frame: Frame) -> Result<Vec<Incident>, String> {
        let mut detections = Vec::new();
        for detector in &self.detectors {
            detections.extend(detector.detect(&frame, &mut self.scratch)?);
        }
        let t = frame.stream_time_s;
        let fix = self.drone.as_mut().map(|drone| drone.locate(&frame, &mut self.rules));
        let tracks = self.tracker.update(&detections, t);
        classify(&self.second_stage, &mut self.crop_scratch, &mut self.verdicts, &frame, &tracks)?;
        let events = self.rules.update(&tracks, &self.verdicts, t, frame.captured_at);
        let incidents = match events.is_empty() {
            true => Vec::new(),
            false => self.incidents.messages(events, &Arc::new(frame), tracks.tracks),
        };
        Ok(match (&mut self.drone, fix) {
            (Some(drone), Some(fix)) => drone.tag(incidents, &fix, t),
            _ => incidents,
        })
    }
}

/// Runs each second-stage classifier on the crops of the tracks it looks at, seen in this
/// frame: the verdicts cascade algorithms read.
fn classify(
    stages: &[SecondStage],
    scratch: &mut CropScratch,
    verdicts: &mut Verdicts,
    frame: &Frame,
    tracks: &TrackUpdate<'_>,
) -> Result<(), String> {
    verdicts.clear();
    for stage in stages {
        let verdicts = verdicts.entry(stage.classifier.name.clone()).or_default();
        let seen = tracks.tracks.iter().filter(|t| t.state == TrackState::Confirmed);
        for track in seen.filter(|t| stage.classes.contains(&t.class)) {
            let (label, score) = stage.classifier.classify(frame, track.bbox, scratch)?;
            verdicts.insert(track.id, Label { label, score });
        }
    }
    Ok(())
}

/// Runs one camera until `stop` (live) or the end of the file (replay), sending its incidents
/// and status changes to `tx` and counting what it does in `stats`; with `clips`, its
/// incidents get clips of its encoded stream.
pub fn run_camera(
    analysis: &mut Analysis,
    camera: &CameraConfig,
    mode: Mode,
    stop: &AtomicBool,
    stats: &Arc<CameraStats>,
    tx: &mpsc::Sender<Outbound>,
    clips: Option<clip::Settings>,
) -> Result<(), String> {
    let mut inference_errors = 0u64;
    let send = |message: Outbound| {
        // The sink only goes away when the node is shutting down.
        let _ = tx.blocking_send(message);
    };
    // A drone camera's telemetry state, as its online status shows it.
    let telemetry = std::cell::Cell::new(None);
    // Ingest calls the state, frame and encoded-stream callbacks one at a time.
    let clips = clips.map(|settings| RefCell::new(clip::Recorder::start(settings, tx.clone())));
    let mut on_state = |state: CameraState| {
        log_state(&camera.id, &state);
        stats.set_state(&state);
        if let (Some(clips), CameraState::Offline { .. }) = (&clips, &state) {
            clips.borrow_mut().flush();
        }
        if mode == Mode::Live {
            send(Outbound::CameraStatus {
                camera: camera.id.clone(),
                state,
                telemetry: telemetry.get(),
                at: SystemTime::now(),
            });
        }
    };
    let mut on_frame = |frame: Frame| {
        let started = Instant::now();
        let (width, height) = (frame.width, frame.height);
        let analysed = analysis.frame(frame);
        let now = analysis.telemetry();
        if now != telemetry.get() && mode == Mode::Live {
            let state = CameraState::Online { width, height };
            let at = SystemTime::now();
            send(Outbound::CameraStatus { camera: camera.id.clone(), state, telemetry: now, at });
        }
        telemetry.set(now);
        stats.add_inference(started.elapsed());
        stats.frames_analysed.fetch_add(1, Ordering::Relaxed);
        match analysed {
            Ok(incidents) => {
                for incident in incidents {
                    if incident.payload.state == IncidentState::Start {
                        stats.count_incident(&incident.payload.algorithm);
                    }
                    tracing::info!(
                        camera = %camera.id,
                        id = %incident.payload.id,
                        algorithm = %incident.payload.algorithm,
                        state = ?incident.payload.state,
                        stream_time_s = incident.payload.stream_time_s,
                        "incident"
                    );
                    match &clips {
                        Some(clips) => clips.borrow_mut().route(incident),
                        None => send(Outbound::Incident(Box::new(incident))),
                    }
                }
            }
            Err(e) => {
                inference_errors += 1;
                // The first error and then one in a thousand: a broken model must not flood the log.
                if inference_errors % 1000 == 1 {
                    tracing::error!(camera = %camera.id, errors = inference_errors, "{e}");
                }
            }
        }
    };
    let mut on_encoded = |buffer: ingest::Encoded| {
        if let Some(clips) = &clips {
            clips.borrow_mut().push(buffer);
        }
    };
    let encoded: Option<&mut dyn FnMut(ingest::Encoded)> =
        clips.is_some().then_some(&mut on_encoded);
    let ran = ingest::run(camera, mode, stop, stats, &mut on_state, &mut on_frame, encoded);
    if let Some(clips) = clips {
        clips.into_inner().flush();
    }
    ran
}

fn log_state(camera: &str, state: &CameraState) {
    match state {
        CameraState::Connecting => tracing::info!(camera, "connecting"),
        CameraState::Online { width, height } => tracing::info!(camera, width, height, "online"),
        CameraState::Offline { reason, retry_in_s } => {
            tracing::warn!(camera, "stream lost: {reason}; reconnecting in {retry_in_s} s")
        }
    }
}

/// Runs the node: every camera on its own thread, publishing to MQTT, until SIGINT or SIGTERM.
pub fn run_node(config: Config, models: Models) -> Result<(), String> {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(1)
        .enable_all()
        .build()
        .map_err(|e| format!("cannot start the async runtime: {e}"))?;
    // Before any camera starts: a data dir that cannot hold the outbox stops the node here.
    let outbox = publish::Outbox::open(&config.node.data_dir, config.outbox.max_bytes)
        .map_err(|e| format!("node.data_dir: cannot keep the outbox: {e}"))?;
    // Likewise the MQTT password, CA, certificate and key files.
    let link = publish::link::Settings::load(&config.mqtt, &config.node.id)?;
    if config.mqtt.embedded_broker {
        publish::start_embedded_broker(&config.mqtt)?;
    }
    let http = match config.http.enabled {
        true => Some(runtime.block_on(http::bind(&config.http))?),
        false => None,
    };
    let config = Arc::new(config);
    let stop = Arc::new(AtomicBool::new(false));
    let (tx, rx) = mpsc::channel(CHANNEL_CAPACITY);
    let stats =
        Arc::new(NodeStats::new(&config.node.id, config.cameras.iter().map(|c| c.id.as_str())));
    let mut cameras = Vec::new();
    for camera in &config.cameras {
        let (config, camera, stop, tx) = (config.clone(), camera.clone(), stop.clone(), tx.clone());
        let camera_stats = stats.camera(&camera.id);
        let models = models.clone();
        let thread = std::thread::Builder::new()
            .name(format!("camera-{}", camera.id))
            .spawn(move || {
                let clips = clip::Settings::live(&config, &camera.id);
                let outcome = Analysis::new(&config, &camera, &models).and_then(|mut analysis| {
                    run_camera(&mut analysis, &camera, Mode::Live, &stop, &camera_stats, &tx, clips)
                });
                if let Err(e) = outcome {
                    tracing::error!(camera = %camera.id, "camera stopped: {e}");
                }
            })
            .map_err(|e| format!("cannot start a camera thread: {e}"))?;
        cameras.push(thread);
    }
    drop(tx);
    if let Some(listener) = http {
        runtime.spawn(http::serve(listener, stats.clone()));
    }
    let notifier = Arc::new(Notifier::from_env());
    runtime.spawn(systemd::feed_watchdog(notifier.clone(), stats.clone(), stop.clone()));
    runtime.spawn(stop_on_signal(stop.clone(), notifier.clone()));
    notifier.ready(&format!("analysing {} cameras", config.cameras.len()));
    let published =
        runtime.block_on(publish::mqtt_sink(&config, link, outbox, stats, rx, stop.clone()));
    // A sink that failed must not leave the cameras running with nobody to publish for them.
    stop.store(true, Ordering::Relaxed);
    for thread in cameras {
        let _ = thread.join();
    }
    published
}

async fn stop_on_signal(stop: Arc<AtomicBool>, notifier: Arc<Notifier>) {
    use tokio::signal::unix::{SignalKind, signal};
    let (Ok(mut term), Ok(mut int)) =
        (signal(SignalKind::terminate()), signal(SignalKind::interrupt()))
    else {
        tracing::error!("cannot listen for signals; stop the node with SIGKILL");
        return;
    };
    tokio::select! {
        _ = term.recv() => {},
        _ = int.recv() => {},
    }
    tracing::info!("stopping");
    notifier.stopping();
    stop.store(true, Ordering::Relaxed);
}

/// A picture of what a camera's analysis works with: one frame from the camera (or from
/// `input`, a video file standing in for it) with every zone and line of its algorithms drawn in
/// yellow and its models' detections in green, as JPEG. For installers checking their zones.
pub fn preview(
    config: &Config,
    models: &Models,
    camera_id: &str,
    input: Option<&Path>,
) -> Result<Vec<u8>, ReplayError> {
    let camera = find_camera(config, camera_id)?;
    let camera = match input {
        Some(path) => CameraConfig {
            url: Source::File { path: path.to_path_buf() },
            pipeline: None,
            ..camera.clone()
        },
        None => camera.clone(),
    };
    let frame = ingest::first_frame(&camera)
        .map_err(|e| ReplayError::Failed(format!("no frame from {}: {e}", camera.url.masked())))?;
    let mut scratch = Scratch::default();
    let mut others = Vec::new();
    for name in &camera.models {
        let detector = models
            .detectors
            .get(name)
            .ok_or_else(|| ReplayError::Usage(format!("model {name} is not loaded")))?;
        let detections = detector.detect(&frame, &mut scratch).map_err(ReplayError::Failed)?;
        others.extend(detections.iter().map(|d| d.bbox));
    }
    let entries = catalog::for_camera(&camera).map_err(ReplayError::Usage)?;
    let lines = camera
        .algorithms
        .iter()
        .zip(&entries)
        .filter_map(|(a, entry)| a.params.or(&entry.params).line)
        .collect();
    let evidence = Evidence {
        frame: Arc::new(frame),
        zones: camera.zones.iter().map(|z| z.polygon.clone()).collect(),
        lines,
        subjects: Vec::new(),
        others,
    };
    evidence_jpeg(&evidence).map_err(ReplayError::Failed)
}

fn find_camera<'c>(config: &'c Config, camera_id: &str) -> Result<&'c CameraConfig, ReplayError> {
    config.cameras.iter().find(|c| c.id == camera_id).ok_or_else(|| {
        let known: Vec<&str> = config.cameras.iter().map(|c| c.id.as_str()).collect();
        ReplayError::Usage(format!(
            "{}: no camera `{camera_id}`; cameras: {}",
            config.path.display(),
            known.join(", ")
        ))
    })
}

/// What a replay did.
#[derive(Debug)]
pub struct ReplaySummary {
    pub frames_decoded: u64,
    pub frames_analysed: u64,
    pub seconds: f64,
    pub incidents: usize,
}

impl ReplaySummary {
    pub fn analysed_fps(&self) -> f64 {
        self.frames_analysed as f64 / self.seconds.max(1e-9)
    }
}

/// Why a replay or a preview did not finish.
#[derive(Debug)]
pub enum ReplayError {
    /// The request itself is wrong: an unknown camera, a missing file.
    Usage(String),
    /// The video or the output folder failed along the way.
    Failed(String),
}

/// Runs a camera's whole analysis over a video file as fast as the machine allows, writing
/// `out_dir/incidents.jsonl`, `out_dir/evidence/<id>.jpg` and, for video MP4 holds as it is,
/// `out_dir/evidence/<id>.mp4`.
pub fn replay(
    config: &Config,
    models: &Models,
    camera_id: &str,
    input: &Path,
    out_dir: &Path,
    start: SystemTime,
) -> Result<ReplaySummary, ReplayError> {
    let camera = find_camera(config, camera_id)?;
    if !input.is_file() {
        return Err(ReplayError::Usage(format!("{}: video file not found", input.display())));
    }
    let camera = CameraConfig {
        url: Source::File { path: input.to_path_buf() },
        pipeline: None,
        ..camera.clone()
    };
    let mut analysis = Analysis::new(config, &camera, models).map_err(ReplayError::Usage)?;
    let (tx, mut rx) = mpsc::channel(CHANNEL_CAPACITY);
    let out = out_dir.to_path_buf();
    let writer = std::thread::spawn(move || publish::replay_sink(&out, &mut rx));
    let started = Instant::now();
    let stop = AtomicBool::new(false);
    let clips = clip::Settings::replay(config, &camera.id, &out_dir.join("evidence"));
    let stats = Arc::new(CameraStats::default());
    let ran = run_camera(&mut analysis, &camera, Mode::Replay { start }, &stop, &stats, &tx, clips);
    drop(tx);
    let written =
        writer.join().map_err(|_| ReplayError::Failed("the replay writer failed".into()))?;
    let seconds = started.elapsed().as_secs_f64();
    ran.map_err(|e| ReplayError::Failed(format!("replay of {} failed: {e}", input.display())))?;
    let incidents = written.map_err(ReplayError::Failed)?;
    Ok(ReplaySummary {
        frames_decoded: stats.frames_in.load(Ordering::Relaxed),
        frames_analysed: stats.frames_analysed.load(Ordering::Relaxed),
        seconds,
        incidents,
    })
}
