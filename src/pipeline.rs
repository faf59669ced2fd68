//! The pipeline, top to bottom: **ingest → infer → track → rules → incidents → publish**.
//!
//! Each camera runs on a thread of its own: GStreamer decodes into the camera's appsink (one
//! frame, newest wins). The thread hands each sampled frame to the camera's detection stage,
//! where worker threads run its detectors (each model loaded once, shared by the cameras using
//! it, with a pool of sessions so several frames run side by side), and takes the frames back
//! in stream order through its tracker, the second-stage classifiers its cascade algorithms
//! name, its rules and its incident stage. Messages go to the sink through a bounded channel
//! that blocks when full. The sink is MQTT for a running node, or a folder for a replay, and
//! both receive exactly the same messages.

use std::cell::RefCell;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;

use crate::annotate::{self, Annotator};
use crate::clip;
use crate::config::{
    AlgorithmConfig, CameraConfig, ClassList, Config, ConfigErrors, ModelConfig, Source,
    ZoneConfig, sha256_hex,
};
use crate::drone::Drone;
use crate::frame::Frame;
use crate::geometry::{BBox, Detection, Polygon};
use crate::incident::{Evidence, Incident, IncidentState, Incidents, ModelRef, evidence_jpeg};
use crate::infer::classify::CropScratch;
use crate::infer::{Classifier, Detector, ModelKind, Scratch};
use crate::ingest::{self, CameraState, Mode};
use crate::motion::MotionGate;
use crate::publish::{self, CHANNEL_CAPACITY, Outbound, Topics};
use crate::rules::{Label, Rules, Verdicts, catalog};
use crate::stats::CameraStats;
use crate::track::{Track, TrackState, TrackUpdate, Tracker, TrackerConfig};

/// The loaded models by name, each shared by the cameras that use it.
#[derive(Default, Clone)]
pub struct Models {
    pub detectors: HashMap<String, Arc<Detector>>,
    pub classifiers: HashMap<String, Arc<Classifier>>,
    /// SHA-256 of each model's files (weights and class list) as loaded.
    files: HashMap<String, String>,
}

impl Models {
    /// Moves model `name` over from `other`.
    fn take(&mut self, other: &Models, name: &str) {
        if let Some(d) = other.detectors.get(name) {
            self.detectors.insert(name.to_string(), d.clone());
        }
        if let Some(c) = other.classifiers.get(name) {
            self.classifiers.insert(name.to_string(), c.clone());
        }
        if let Some(f) = other.files.get(name) {
            self.files.insert(name.to_string(), f.clone());
        }
    }
}

/// What a model's files hold: the SHA-256 of its weights (`weights`, when already known) and of
/// its class-list file; None when a file cannot be read.
fn model_files(model: &ModelConfig, weights: Option<&str>) -> Option<String> {
    let weights = match weights {
        Some(known) => known.to_string(),
        None => sha256_hex(&std::fs::read(&model.path).ok()?),
    };
    let classes = match &model.classes {
        ClassList::File(path) => sha256_hex(&std::fs::read(path).ok()?),
        ClassList::Inline(_) => String::new(),
    };
    Some(format!("{weights} {classes}"))
}

/// Loads every configured model once; a model that does not fit its config is a config error.
pub fn load_models(config: &Config) -> Result<Models, ConfigErrors> {
    reload_models(config, None).map(|(models, _)| models)
}

/// Loads the models of `config`, reusing those of `previous` (a running config and its models)
/// whose settings and files have not changed; also returns the names of the models loaded anew.
pub fn reload_models(
    config: &Config,
    previous: Option<(&Config, &Models)>,
) -> Result<(Models, BTreeSet<String>), ConfigErrors> {
    let mut models = Models::default();
    let mut loaded_anew = BTreeSet::new();
    let mut errors = Vec::new();
    for (i, model) in config.models.iter().enumerate() {
        if let Some((old_config, old_models)) = previous
            && old_config.model(&model.name) == Some(model)
            && old_models
                .files
                .get(&model.name)
                .is_some_and(|f| model_files(model, None).as_ref() == Some(f))
        {
            models.take(old_models, &model.name);
            continue;
        }
        loaded_anew.insert(model.name.clone());
        let loaded = match model.format {
            ModelKind::Classifier => Classifier::load(model).map(|c| {
                let weights = c.summary.sha256.clone();
                models.classifiers.insert(model.name.clone(), Arc::new(c));
                weights
            }),
            ModelKind::Detector(_) => Detector::load(model).map(|d| {
                let weights = d.summary.sha256.clone();
                models.detectors.insert(model.name.clone(), Arc::new(d));
                weights
            }),
        };
        match loaded {
            // The weights as loaded, not as read again: the file may have changed since.
            Ok(weights) => {
                if let Some(files) = model_files(model, Some(&weights)) {
                    models.files.insert(model.name.clone(), files);
                }
            }
            Err(e) => errors.push(config.error(format!("models[{i}].{}", e.key), e.message)),
        }
    }
    if errors.is_empty() { Ok((models, loaded_anew)) } else { Err(ConfigErrors(errors)) }
}

/// A classifier and the classes whose tracks it looks at.
struct SecondStage {
    classifier: Arc<Classifier>,
    classes: Vec<Arc<str>>,
}

/// What a camera's algorithms look at, drawn on pictures of it: its named zones and the lines
/// of its line-crossing algorithms.
#[derive(Debug, Clone, Default)]
pub struct Overlay {
    pub zones: Vec<(String, Polygon)>,
    pub lines: Vec<[[f32; 2]; 2]>,
}

impl Overlay {
    fn of(camera: &CameraConfig, entries: &[&'static catalog::Entry]) -> Self {
        let lines = camera
            .algorithms
            .iter()
            .zip(entries)
            .filter_map(|(a, entry)| a.params.or(&entry.params).line)
            .collect();
        let zones = camera.zones.iter().map(|z| (z.name.clone(), z.polygon.clone())).collect();
        Overlay { zones, lines }
    }

    /// A snapshot of `frame` with this overlay in yellow and `boxes` in green.
    pub fn evidence(&self, frame: Arc<Frame>, boxes: Vec<BBox>) -> Evidence {
        Evidence {
            frame,
            zones: self.zones.iter().map(|(_, polygon)| polygon.clone()).collect(),
            lines: self.lines.clone(),
            subjects: Vec::new(),
            others: boxes,
        }
    }
}

/// One analysed frame as its watchers see it (the web page, `replay --annotate`).
pub struct Analysed<'a> {
    pub frame: &'a Arc<Frame>,
    /// The camera's tracks after this frame, confirmed and briefly lost.
    pub tracks: &'a [Track],
    /// The incident messages this frame produced.
    pub incidents: &'a [Incident],
    pub overlay: &'a Overlay,
}

/// What makes one configured algorithm the same after a config reload: its settings, its
/// zone and the confidence floor its models set.
#[derive(Debug, PartialEq)]
struct AlgorithmIdentity {
    config: AlgorithmConfig,
    zone: Option<ZoneConfig>,
    confidence: f32,
}

/// One camera's analysis: everything between a decoded frame and its incident messages.
pub struct Analysis {
    identities: Vec<AlgorithmIdentity>,
    overlay: Overlay,
    detectors: Detectors,
    tracker: Tracker,
    second_stage: Vec<SecondStage>,
    crop_scratch: CropScratch,
    verdicts: Verdicts,
    rules: Rules,
    incidents: Incidents,
    /// With `analysis.motion_gate`: whether a frame needs the detectors.
    motion: Option<MotionGate>,
    /// The detections of the last frame the detectors ran on, reused while nothing moves.
    detections: Vec<Detection>,
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
        let identities: Vec<AlgorithmIdentity> = camera
            .algorithms
            .iter()
            .map(|a| AlgorithmIdentity {
                config: a.clone(),
                zone: camera.zones.iter().find(|z| a.zone.as_ref() == Some(&z.name)).cloned(),
                confidence,
            })
            .collect();
        // Motion counts in the algorithms' zones; an algorithm without one watches everything.
        // A drone's camera moves: everything changes all the time, so it never gates.
        let zones: Option<Vec<&Polygon>> =
            identities.iter().map(|a| a.zone.as_ref().map(|z| &z.polygon)).collect();
        let motion = (config.analysis.motion_gate && drone.is_none())
            .then(|| MotionGate::new(zones.as_deref().unwrap_or_default()));
        Ok(Analysis {
            motion,
            detections: Vec::new(),
            identities,
            overlay: Overlay::of(camera, &entries),
            rules,
            incidents: Incidents::new(&config.node.id, camera, &entries, topics, model_refs),
            tracker: Tracker::new(TrackerConfig::default()),
            second_stage,
            crop_scratch: CropScratch::default(),
            verdicts: Verdicts::new(),
            detectors: detectors.into(),
            drone,
        })
    }

    /// A drone camera's telemetry state (`ok`, `missing`, `stale`, `incomplete`) after its
    /// latest frame; `None` for a fixed camera.
    pub fn telemetry(&self) -> Option<&'static str> {
        self.drone.as_ref().map(Drone::telemetry)
    }

    /// How many of the camera's frames can be in detection at once: as many as its models
    /// have sessions.
    pub fn parallelism(&self) -> usize {
        self.detectors.iter().map(|d| d.sessions()).max().unwrap_or(1)
    }

    /// The names of the models this analysis runs.
    pub fn models(&self) -> Vec<String> {
        let detectors = self.detectors.iter().map(|d| d.name.clone());
        detectors.chain(self.second_stage.iter().map(|s| s.classifier.name.clone())).collect()
    }

    /// Switches to `next`, the analysis of the camera's reloaded config, without losing what
    /// is under way: the tracks carry over, and so do the open incidents, cooldowns and timers
    /// of every algorithm whose settings did not change. The open incidents of algorithms that
    /// changed or went end now: their messages are returned.
    pub fn reconfigure(&mut self, next: Analysis, frame: &Arc<Frame>) -> Vec<Incident> {
        let old = std::mem::replace(self, next);
        let mut unmatched: Vec<Option<&AlgorithmIdentity>> =
            old.identities.iter().map(Some).collect();
        let kept: Vec<Option<usize>> = self
            .identities
            .iter()
            .map(|identity| {
                let i = unmatched.iter().position(|old| *old == Some(identity))?;
                unmatched[i] = None;
                Some(i)
            })
            .collect();
        self.tracker = old.tracker;
        if let (Some(drone), Some(old)) = (&mut self.drone, old.drone) {
            drone.take_over(old);
        }
        let ends = self.rules.take_over(old.rules, &kept);
        self.incidents.take_over(old.incidents, &kept, ends, frame)
    }

    /// The detectors to run on `frame`, in stream order: none when the motion gate finds
    /// nothing moved since they last ran.
    fn gate(&mut self, frame: &Frame) -> Option<Detectors> {
        let run = self.motion.as_mut().is_none_or(|gate| gate.must_detect(frame));
        run.then(|| self.detectors.clone())
    }

    /// Runs a frame's detections (`None`: the motion gate spared it, and the previous ones
    /// stand) through track → rules → incidents, in stream order; `watch`, when given, sees
    /// the frame with its tracks and incidents.
    fn finish(
        &mut self,
        frame: Arc<Frame>,
        detections: Option<Vec<Detection>>,
        watch: Option<&mut Watch<'_>>,
    ) -> Result<Vec<Incident>, String> {
        if let Some(detections) = detections {
            self.detections = detections;
        }
        let t = frame.stream_time_s;
        let fix = self.drone.as_mut().map(|drone| drone.locate(&frame, &mut self.rules));
        let tracks = self.tracker.update(&self.detections, t);
        classify(&self.second_stage, &mut self.crop_scratch, &mut self.verdicts, &frame, &tracks)?;
        let events = self.rules.update(&tracks, &self.verdicts, t, frame.captured_at);
        let incidents = self.incidents.messages(events, &frame, tracks.tracks);
        let incidents = match (&mut self.drone, fix) {
            (Some(drone), Some(fix)) => drone.tag(incidents, &fix, t),
            _ => incidents,
        };
        if let Some(watch) = watch {
            let overlay = &self.overlay;
            watch(&Analysed {
                frame: &frame,
                tracks: tracks.tracks,
                incidents: &incidents,
                overlay,
            });
        }
        Ok(incidents)
    }
}

/// A camera's detector models, shared with the threads that run them.
type Detectors = Arc<[Arc<Detector>]>;

/// Every detector's detections in one frame.
fn detect(
    detectors: &[Arc<Detector>],
    frame: &Frame,
    scratch: &mut Scratch,
) -> Result<Vec<Detection>, String> {
    let mut detections = Vec::new();
    for detector in detectors {
        detections.extend(detector.detect(frame, scratch)?);
    }
    Ok(detections)
}

/// A frame on its way to detection; `seq` counts the camera's frames.
struct Job {
    seq: u64,
    frame: Arc<Frame>,
    detectors: Detectors,
}

/// A frame back from detection, or spared by the motion gate (`detections: None`).
struct Detected {
    seq: u64,
    frame: Arc<Frame>,
    detections: Option<Result<Vec<Detection>, String>>,
    took: Duration,
}

/// How many frames, per worker, may wait in stream order behind a frame still in detection:
/// frames the motion gate spares take no worker, and this bounds the memory they hold.
const HELD_PER_WORKER: usize = 8;

/// The camera's detection stage: up to `depth` frames in detection at once, on worker threads
/// (each model runs as many side by side as it has sessions), handed back in stream order,
/// since tracking needs them in order.
struct DetectionStage {
    jobs: Option<std_mpsc::SyncSender<Job>>,
    results: std_mpsc::Receiver<Detected>,
    depth: usize,
    submitted: u64,
    next: u64,
    in_detection: usize,
    /// Frames ready ahead of an earlier one: gated frames, and results that came back early.
    early: BTreeMap<u64, Detected>,
}

impl DetectionStage {
    /// Starts `depth` workers in `scope`.
    fn start<'scope>(scope: &'scope std::thread::Scope<'scope, '_>, depth: usize) -> Self {
        let (jobs, queue) = std_mpsc::sync_channel::<Job>(depth);
        let (done, results) = std_mpsc::channel();
        let queue = Arc::new(Mutex::new(queue));
        for _ in 0..depth {
            let (queue, done) = (queue.clone(), done.clone());
            scope.spawn(move || {
                let mut scratch = Scratch::default();
                loop {
                    // A statement of its own: the lock is held while waiting for a job, and
                    // let go before detecting (a `while let` would hold it through the body).
                    let job = queue.lock().unwrap_or_else(|e| e.into_inner()).recv();
                    let Ok(job) = job else { return };
                    let started = Instant::now();
                    let detections = Some(detect(&job.detectors, &job.frame, &mut scratch));
                    let took = started.elapsed();
                    let (seq, frame) = (job.seq, job.frame);
                    if done.send(Detected { seq, frame, detections, took }).is_err() {
                        return;
                    }
                }
            });
        }
        DetectionStage {
            jobs: Some(jobs),
            results,
            depth,
            submitted: 0,
            next: 0,
            in_detection: 0,
            early: BTreeMap::new(),
        }
    }

    /// Sends `frame` to detection, or with no detectors (the motion gate spared it) only
    /// queues it for its turn.
    fn submit(&mut self, frame: Arc<Frame>, detectors: Option<Detectors>) {
        let seq = self.submitted;
        self.submitted += 1;
        let Some(detectors) = detectors else {
            let spared = Detected { seq, frame, detections: None, took: Duration::ZERO };
            self.early.insert(seq, spared);
            return;
        };
        self.in_detection += 1;
        if let Some(jobs) = &self.jobs {
            // The workers only stop when the stage is finished.
            let _ = jobs.send(Job { seq, frame, detectors });
        }
    }

    /// The next frame in stream order: waiting for it while `depth` frames are in detection,
    /// too many wait behind them, or (with `all`) any is held; else only if it is ready.
    fn next(&mut self, all: bool) -> Option<Detected> {
        loop {
            if let Some(done) = self.early.remove(&self.next) {
                self.next += 1;
                return Some(done);
            }
            let held = (self.submitted - self.next) as usize;
            let wait = self.in_detection >= self.depth
                || held >= self.depth * HELD_PER_WORKER
                || (all && held > 0);
            let done = match wait {
                true => self.results.recv().ok()?,
                false => self.results.try_recv().ok()?,
            };
            self.in_detection -= 1;
            self.early.insert(done.seq, done);
        }
    }

    /// Lets the workers go once every frame is back.
    fn finish(&mut self) {
        self.jobs = None;
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

/// A watcher of every analysed frame.
pub type Watch<'a> = dyn FnMut(&Analysed<'_>) + 'a;

/// Where one camera's run sends what it produces.
pub struct Outputs<'a> {
    /// Incident and status messages, to the sink.
    pub tx: &'a mpsc::Sender<Outbound>,
    /// What the camera does, counted.
    pub stats: &'a Arc<CameraStats>,
    /// With settings, incidents get clips of the camera's encoded stream.
    pub clips: Option<clip::Settings>,
    pub watch: Option<&'a mut Watch<'a>>,
}

/// Runs one camera until `stop` (live) or the end of the file (replay), sending its incidents
/// and status changes to the sink and counting what it does. An analysis arriving on
/// `reconfigured` (a reloaded config) takes over at the next frame.
pub fn run_camera(
    analysis: &mut Analysis,
    camera: &CameraConfig,
    mode: Mode,
    stop: &AtomicBool,
    outputs: Outputs<'_>,
    reconfigured: Option<&std_mpsc::Receiver<Analysis>>,
) -> Result<(), String> {
    let Outputs { tx, stats, clips, mut watch } = outputs;
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
    let mut inference_errors = 0u64;
    // In stream order: a reloaded config's analysis takes over, then the frame is tracked,
    // ruled and its incidents published.
    let mut finish = |analysis: &mut Analysis, done: Detected| {
        let frame = done.frame;
        let mut incidents = match reconfigured.and_then(|next| next.try_iter().last()) {
            Some(next) => {
                tracing::info!(camera = %camera.id, "analysis reconfigured");
                analysis.reconfigure(next, &frame)
            }
            None => Vec::new(),
        };
        let started = Instant::now();
        let (width, height) = (frame.width, frame.height);
        let gated = done.detections.is_none();
        let analysed = done
            .detections
            .transpose()
            .and_then(|detections| analysis.finish(frame, detections, watch.as_deref_mut()));
        let now = analysis.telemetry();
        if now != telemetry.get() && mode == Mode::Live {
            let state = CameraState::Online { width, height };
            let at = SystemTime::now();
            send(Outbound::CameraStatus { camera: camera.id.clone(), state, telemetry: now, at });
        }
        telemetry.set(now);
        stats.add_inference(done.took + started.elapsed());
        stats.frames_analysed.fetch_add(1, Ordering::Relaxed);
        if gated {
            stats.frames_gated.fetch_add(1, Ordering::Relaxed);
        }
        match analysed {
            Ok(more) => incidents.extend(more),
            Err(e) => {
                inference_errors += 1;
                // The first error and then one in a thousand: a broken model must not flood the log.
                if inference_errors % 1000 == 1 {
                    tracing::error!(camera = %camera.id, errors = inference_errors, "{e}");
                }
            }
        }
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
    };
    let mut on_encoded = |buffer: ingest::Encoded| {
        if let Some(clips) = &clips {
            clips.borrow_mut().push(buffer);
        }
    };
    // A replay wants throughput: consecutive frames in detection side by side. A live camera
    // wants each frame's incidents out at once, so it waits for every frame (its frames are
    // seconds' fifths apart; the cameras together keep the sessions busy).
    let depth = match mode {
        Mode::Replay { .. } => analysis.parallelism(),
        Mode::Live => 1,
    };
    let ran = std::thread::scope(|scope| {
        let mut stage = DetectionStage::start(scope, depth);
        let mut on_frame = |frame: Frame| {
            let frame = Arc::new(frame);
            let detectors = analysis.gate(&frame);
            stage.submit(frame, detectors);
            while let Some(done) = stage.next(false) {
                finish(analysis, done);
            }
        };
        let encoded: Option<&mut dyn FnMut(ingest::Encoded)> =
            clips.is_some().then_some(&mut on_encoded);
        let ran = ingest::run(camera, mode, stop, stats, &mut on_state, &mut on_frame, encoded);
        while let Some(done) = stage.next(true) {
            finish(analysis, done);
        }
        stage.finish();
        ran
    });
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
    let evidence = Overlay::of(&camera, &entries).evidence(Arc::new(frame), others);
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
    /// Analysed frames on which the motion gate spared the detectors.
    pub frames_gated: u64,
    pub seconds: f64,
    pub incidents: usize,
    /// Frames in the annotated video, when one was asked for.
    pub frames_annotated: Option<u64>,
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

/// What to replay, and where its results go.
pub struct ReplayRequest<'a> {
    /// The camera whose models, zones and algorithms analyse the video.
    pub camera: &'a str,
    pub input: &'a Path,
    /// Where `incidents.jsonl` and `evidence/` go.
    pub out_dir: &'a Path,
    /// Wall-clock time of the video's first frame.
    pub start: SystemTime,
    /// Where the annotated video goes (`replay --annotate`), if anywhere.
    pub annotate: Option<&'a Path>,
}

/// Runs a camera's whole analysis over a video file as fast as the machine allows, writing
/// `out_dir/incidents.jsonl`, `out_dir/evidence/<id>.jpg` and, for video MP4 holds as it is,
/// `out_dir/evidence/<id>.mp4`; with `annotate`, also the annotated video. `stats` counts what
/// it does as it goes, for whoever watches (the progress bar).
pub fn replay(
    config: &Config,
    models: &Models,
    request: &ReplayRequest<'_>,
    stats: &Arc<CameraStats>,
) -> Result<ReplaySummary, ReplayError> {
    let ReplayRequest { camera: camera_id, input, out_dir, start, annotate } = *request;
    let camera = find_camera(config, camera_id)?;
    if !input.is_file() {
        return Err(ReplayError::Usage(format!("{}: video file not found", input.display())));
    }
    if let Some(path) = annotate {
        annotate::check_path(path).map_err(ReplayError::Usage)?;
    }
    let camera = CameraConfig {
        url: Source::File { path: input.to_path_buf() },
        pipeline: None,
        ..camera.clone()
    };
    let mut analysis = Analysis::new(config, &camera, models).map_err(ReplayError::Usage)?;
    let mut annotator = annotate
        .map(|path| Annotator::create(path, camera.analysis_fps))
        .transpose()
        .map_err(ReplayError::Failed)?;
    let (tx, mut rx) = mpsc::channel(CHANNEL_CAPACITY);
    let out = out_dir.to_path_buf();
    let writer = std::thread::spawn(move || publish::replay_sink(&out, &mut rx));
    let started = Instant::now();
    let stop = AtomicBool::new(false);
    let clips = clip::Settings::replay(config, &camera.id, &out_dir.join("evidence"));
    let annotating = annotator.is_some();
    let annotation_failed = AtomicBool::new(false);
    let mut annotate_frame = |analysed: &Analysed<'_>| {
        // An encoder that failed (a full disk) ends the replay.
        if let Some(annotator) = annotator.as_mut()
            && !annotator.frame(analysed)
        {
            annotation_failed.store(true, Ordering::Relaxed);
            stop.store(true, Ordering::Relaxed);
        }
    };
    let watch: Option<&mut Watch<'_>> = annotating.then_some(&mut annotate_frame);
    let outputs = Outputs { tx: &tx, stats, clips, watch };
    let ran = run_camera(&mut analysis, &camera, Mode::Replay { start }, &stop, outputs, None);
    drop(tx);
    let frames_annotated = annotator.map(Annotator::finish).transpose();
    let written =
        writer.join().map_err(|_| ReplayError::Failed("the replay writer failed".into()))?;
    let seconds = started.elapsed().as_secs_f64();
    let ran =
        ran.map_err(|e| ReplayError::Failed(format!("replay of {} failed: {e}", input.display())));
    // The first failure says why: the encoder's when it stopped the replay, else the replay's
    // (the encoder of a video that never decoded fails too, for want of frames).
    match (annotation_failed.load(Ordering::Relaxed), ran) {
        (false, Err(e)) => return Err(e),
        (true, Err(e)) => {
            frames_annotated.map_err(ReplayError::Failed)?;
            return Err(e);
        }
        (_, Ok(())) => {}
    }
    let frames_annotated = frames_annotated.map_err(ReplayError::Failed)?;
    let incidents = written.map_err(ReplayError::Failed)?;
    Ok(ReplaySummary {
        frames_decoded: stats.frames_in.load(Ordering::Relaxed),
        frames_analysed: stats.frames_analysed.load(Ordering::Relaxed),
        frames_gated: stats.frames_gated.load(Ordering::Relaxed),
        seconds,
        incidents,
        frames_annotated,
    })
}
