//! One camera's analysis: everything between a decoded frame and its incident messages, in
//! stream order: track → second-stage classifiers → rules → incidents (→ a drone's ground
//! positions). Detection itself runs in [`super::detection`], off this thread.

use std::sync::Arc;

use super::Models;
use super::view::{Analysed, Overlay, Watch};
use crate::config::{AlgorithmConfig, CameraConfig, Config, ZoneConfig};
use crate::drone::Drone;
use crate::frame::Frame;
use crate::geometry::{Detection, Polygon};
use crate::incident::{Incident, Incidents};
use crate::infer::classify::CropScratch;
use crate::infer::{Classifier, Detector, InferError, Scratch};
use crate::motion::MotionGate;
use crate::rules::{self, FALSE_POSITIVE, Label, Rules, Suppressed, Verdicts};
use crate::track::{TrackState, TrackUpdate, Tracker, TrackerConfig};
use crate::wire::{ModelRef, Topics};

/// A classifier and the classes whose tracks it looks at.
struct SecondStage {
    classifier: Arc<Classifier>,
    classes: Vec<Arc<str>>,
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
    /// Each algorithm's catalog id, as incidents and suppressions name it.
    algorithm_ids: Vec<String>,
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
        let specs = rules::specs(camera, confidence)?;
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
            algorithm_ids: camera.resolved.iter().map(|a| a.entry.id.clone()).collect(),
            motion,
            detections: Vec::new(),
            identities,
            overlay: Overlay::of(camera),
            rules,
            incidents: Incidents::new(&config.node.id, camera, topics, model_refs),
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

    /// Sets the camera's suppressed places, each with the algorithm (catalog id) it holds
    /// back.
    pub fn suppress(&mut self, places: &[(String, Suppressed)]) {
        for (rule, id) in self.algorithm_ids.iter().enumerate() {
            let mine = places.iter().filter(|(algorithm, _)| algorithm == id);
            self.rules.suppress(rule, mine.map(|(_, place)| place.clone()).collect());
        }
    }

    /// Ends the open incidents `ids` now, as false positives: their `end` messages.
    pub fn end_false_positives(&mut self, ids: &[String], frame: &Arc<Frame>) -> Vec<Incident> {
        let t = frame.stream_time_s;
        let events: Vec<_> = ids
            .iter()
            .filter_map(|id| self.incidents.slot_of(id))
            .filter_map(|(rule, key)| self.rules.end_now(rule, key, t, FALSE_POSITIVE))
            .collect();
        self.incidents.messages(events, frame, &[])
    }

    /// How many new incidents suppressions held back since the last call.
    pub fn take_suppressed(&mut self) -> u64 {
        self.rules.take_held_back()
    }

    /// The detectors to run on `frame`, in stream order: none when the motion gate finds
    /// nothing moved since they last ran.
    pub(super) fn gate(&mut self, frame: &Frame) -> Option<Detectors> {
        let run = self.motion.as_mut().is_none_or(|gate| gate.must_detect(frame));
        run.then(|| self.detectors.clone())
    }

    /// Runs a frame's detections (`None`: the motion gate spared it, and the previous ones
    /// stand) through track → rules → incidents, in stream order; `watch`, when given, sees
    /// the frame with its tracks and incidents.
    pub(super) fn finish(
        &mut self,
        frame: Arc<Frame>,
        detections: Option<Vec<Detection>>,
        watch: Option<&mut Watch<'_>>,
    ) -> Result<Vec<Incident>, InferError> {
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
pub(super) type Detectors = Arc<[Arc<Detector>]>;

/// Every detector's detections in one frame.
pub(super) fn detect(
    detectors: &[Arc<Detector>],
    frame: &Frame,
    scratch: &mut Scratch,
) -> Result<Vec<Detection>, InferError> {
    let mut detections = Vec::new();
    for detector in detectors {
        detections.extend(detector.detect(frame, scratch)?);
    }
    Ok(detections)
}

/// Runs each second-stage classifier on the crops of the tracks it looks at, seen in this
/// frame: the verdicts cascade algorithms read.
fn classify(
    stages: &[SecondStage],
    scratch: &mut CropScratch,
    verdicts: &mut Verdicts,
    frame: &Frame,
    tracks: &TrackUpdate<'_>,
) -> Result<(), InferError> {
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
