//! One camera's analysis: everything between a decoded frame and its incident messages, in
//! stream order: track → second-stage classifiers → rules → incidents (→ a drone's ground
//! positions). Detection itself runs in [`super::detection`], off this thread.

use std::collections::HashSet;
use std::sync::Arc;

use super::Models;
use super::view::{Analysed, Overlay, Watch};
use crate::config::{AlgorithmConfig, CameraConfig, Config, PlateScope, ZoneConfig};
use crate::drone::Drone;
use crate::frame::Frame;
use crate::geometry::{Detection, Polygon};
use crate::incident::{Incident, Incidents};
use crate::infer::classify::CropScratch;
use crate::infer::{Classifier, Detector, InferError, Scratch};
use crate::motion::MotionGate;
use crate::plates::{PlateQueue, Reading, VEHICLES};
use crate::rules::{self, FALSE_POSITIVE, Label, Rules, Suppressed, Verdicts};
use crate::track::{Plate, Track, TrackState, TrackUpdate, Tracker, TrackerConfig};
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
    /// With `[plates]`: the camera's queue to the plate worker, and which vehicles it reads.
    plates: Option<PlateReading>,
}

/// Which of a camera's vehicles get their plate read: those its open incidents name, and all
/// of them (`plates = true` on the camera) or those of an algorithm that asks for them. A plate
/// camera (`plates = "frame"`) reads its whole frame instead.
struct PlateReading {
    queue: PlateQueue,
    scope: PlateScope,
    /// The classes of the algorithms with `plates = true`.
    classes: Vec<Arc<str>>,
    /// A plate camera's latest plate, and when it was read: an object of class `plate` until
    /// no read has found it for three reads' time.
    held: Option<(Reading, f64)>,
    /// Whether `held` still has to be voted into its track: it came with this frame, or its
    /// track is not confirmed yet.
    fresh: bool,
    /// Plates voted after the tracker ran, set on their tracks with the next frame.
    voted: Vec<(u64, Plate)>,
    every_s: f64,
}

impl PlateReading {
    fn new(camera: &CameraConfig, config: &Config, models: &Models) -> Option<PlateReading> {
        let asking = camera.resolved.iter().filter(|a| a.plates);
        let classes = asking.flat_map(|a| a.classes.iter().map(|c| Arc::from(c.as_str())));
        Some(PlateReading {
            queue: models.plates.as_ref()?.queue(),
            scope: camera.plates,
            classes: classes.collect(),
            held: None,
            fresh: false,
            voted: Vec::new(),
            every_s: config.plates.as_ref()?.every_s,
        })
    }

    /// The plates to set on their tracks now: those read since the last frame, and a plate
    /// camera's votes of the last frame. Keeps a plate camera's latest reading.
    fn take_plates(&mut self, t: f64) -> Vec<(u64, Plate)> {
        let answers = self.queue.take_answers();
        let mut plates = std::mem::take(&mut self.voted);
        plates.extend(answers.plates);
        if let Some(reading) = answers.frame {
            self.fresh = true;
            self.held = Some((reading, t));
        }
        // A plate is not read on every frame (glare, compression, a busy worker): a reading
        // outlives a few failed reads only.
        if self.held.as_ref().is_some_and(|(_, at)| t - at > 3.0 * self.every_s) {
            self.held = None;
        }
        plates
    }

    /// The detections the tracker sees: the detectors' and, on a plate camera, its plate.
    fn with_plate(&self, detections: &[Detection]) -> Option<Vec<Detection>> {
        let (reading, _) = self.held.as_ref()?;
        let mut all = detections.to_vec();
        all.push(Detection {
            bbox: reading.region,
            class: Arc::from(PlateScope::PLATE_CLASS),
            confidence: reading.confidence,
        });
        Some(all)
    }

    /// Asks for the plates to read in this frame (the queue keeps each to once per
    /// `plates.every_s`), and votes a plate camera's fresh reading into the track it became.
    fn ask(&mut self, frame: &Arc<Frame>, tracks: &TrackUpdate<'_>, named: &HashSet<u64>) {
        self.queue.forget(&tracks.removed);
        if self.scope == PlateScope::Frame {
            self.queue.ask_frame(frame);
            if self.fresh {
                self.fresh = !self.vote_held(tracks.tracks);
            }
            return;
        }
        let every_vehicle = self.scope == PlateScope::Vehicles;
        let wanted = tracks.tracks.iter().filter(|t| {
            t.state != TrackState::Lost
                && VEHICLES.contains(&&*t.class)
                && (every_vehicle || self.classes.contains(&t.class) || named.contains(&t.id))
        });
        self.queue.ask_vehicles(frame, wanted);
    }

    /// Counts the held reading for the `plate` track that overlaps it most; `false` when
    /// there is no such track (yet).
    fn vote_held(&mut self, tracks: &[Track]) -> bool {
        let Some((reading, _)) = &self.held else { return true };
        let plate_tracks = tracks.iter().filter(|t| &*t.class == PlateScope::PLATE_CLASS);
        let best = plate_tracks
            .map(|t| (t.id, t.bbox.iou(&reading.region)))
            .filter(|&(_, iou)| iou > 0.0)
            .max_by(|a, b| a.1.total_cmp(&b.1));
        let Some((track, _)) = best else { return false };
        if let Some(plate) = self.queue.vote(track, reading) {
            self.voted.push((track, plate));
        }
        true
    }
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
            plates: PlateReading::new(camera, config, models),
        })
    }

    /// For a replay: plates are read in step with the frames, see [`PlateQueue::in_step`].
    pub fn read_plates_in_step(&mut self) {
        if let Some(plates) = &mut self.plates {
            plates.queue.in_step();
        }
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
        // Plates read since the last frame: on their tracks before the rules see them.
        let plates_read = self.plates.as_mut().map(|p| p.take_plates(t)).unwrap_or_default();
        for (track, plate) in &plates_read {
            self.tracker.set_plate(*track, plate.clone());
        }
        // Before this frame's events: an incident that starts now carries its plate already.
        let mut events = self.rules.plates_read(&plates_read, t);
        let with_plate = self.plates.as_ref().and_then(|p| p.with_plate(&self.detections));
        let tracks = self.tracker.update(with_plate.as_deref().unwrap_or(&self.detections), t);
        classify(&self.second_stage, &mut self.crop_scratch, &mut self.verdicts, &frame, &tracks)?;
        events.extend(self.rules.update(&tracks, &self.verdicts, t, frame.captured_at));
        if let Some(plates) = &mut self.plates {
            plates.ask(&frame, &tracks, &self.rules.incident_tracks());
        }
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
