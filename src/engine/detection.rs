//! The camera's detection stage: frames go to worker threads that run its detectors, and come
//! back in stream order.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, mpsc as std_mpsc};
use std::time::{Duration, Instant};

use super::analysis::{Detectors, detect};
use crate::frame::Frame;
use crate::geometry::Detection;
use crate::infer::{InferError, Scratch};

/// A frame on its way to detection; `seq` counts the camera's frames.
struct Job {
    seq: u64,
    frame: Arc<Frame>,
    detectors: Detectors,
}

/// A frame back from detection, or spared by the motion gate (`detections: None`).
pub(super) struct Detected {
    seq: u64,
    pub frame: Arc<Frame>,
    pub detections: Option<Result<Vec<Detection>, InferError>>,
    pub took: Duration,
}

/// How many frames, per worker, may wait in stream order behind a frame still in detection:
/// frames the motion gate spares take no worker, and this bounds the memory they hold.
const HELD_PER_WORKER: usize = 8;

/// The camera's detection stage: up to `depth` frames in detection at once, on worker threads
/// (each model runs as many side by side as it has sessions), handed back in stream order,
/// since tracking needs them in order.
pub(super) struct DetectionStage {
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
    pub(super) fn start<'scope>(
        scope: &'scope std::thread::Scope<'scope, '_>,
        depth: usize,
    ) -> Self {
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
    pub(super) fn submit(&mut self, frame: Arc<Frame>, detectors: Option<Detectors>) {
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
    pub(super) fn next(&mut self, all: bool) -> Option<Detected> {
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
    pub(super) fn finish(&mut self) {
        self.jobs = None;
    }
}
