//! Plate numbers of tracked vehicles, read beside the camera's analysis, never in its way.
//!
//! Reading one plate: the vehicle's crop from the full-resolution frame (a plate camera's
//! whole frame, `plates = "frame"`) → PP-OCR's text detector finds the text on it
//! ([`locate`]: DB post-processing, minimum-area rectangles) → each text region is cut out
//! upright → the recognizer reads it ([`text`]: CTC with its dictionary) → only readings that
//! fit plate syntax count, normalised (`皖A·CJ218` → `皖ACJ218`). A track's readings are voted
//! on ([`vote`]): one noisy frame does not win over three good ones.
//!
//! Cost: a read takes about 0.3 s of one core (a text detector run and one recognizer run per
//! text region tried; BENCHMARKS.md), so it runs on the node's plate worker
//! ([`PlateService`]), fed through a bounded queue that drops requests when full. A camera asks
//! for each vehicle at most once per `plates.every_s` ([`PlateQueue`]) and takes the answers on a
//! later frame: a slow read delays only the message that carries the plate, and an incident's
//! `start` never waits for it.

pub mod locate;
pub mod text;
pub mod vote;

use std::collections::HashMap;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};

use crate::config::PlatesConfig;
use crate::frame::Frame;
use crate::geometry::BBox;
use crate::infer::ocr::{TextDetector, TextRecognizer};
use crate::infer::{InferError, LoadError};
use crate::track::{Plate, PlatePicture, Track};
use vote::Votes;

/// The classes that carry plates.
pub const VEHICLES: [&str; 4] = ["car", "truck", "bus", "motorcycle"];

/// Text regions tried per vehicle, likeliest first: a plate is rarely the third text on a car,
/// and each try costs a recognizer run.
const MAX_REGIONS: usize = 3;

/// A plate's text region is wider than tall by this much at least (a plate is 440 x 140 mm;
/// seen at a slant it looks narrower) and at most.
const PLATE_ASPECT: std::ops::RangeInclusive<f32> = 1.5..=8.0;

/// Requests waiting for the worker, over all cameras: a burst beyond this is dropped (and asked
/// again `every_s` later), so the queue never holds frames for long.
const QUEUE: usize = 16;

/// The vehicle crop grows by this fraction of its box on each side: a detector's box often
/// cuts through the bumper the plate sits on.
const CROP_MARGIN: f32 = 0.05;

/// One plate reading from one image.
#[derive(Debug, Clone, PartialEq)]
pub struct Reading {
    pub text: String,
    pub confidence: f32,
    /// Where the plate is: the bounds of its text region, normalized to the frame.
    pub region: BBox,
    /// Its pixels.
    pub picture: PlatePicture,
}

/// PP-OCR's text detector and recognizer, loaded.
pub struct PlateReader {
    detector: TextDetector,
    recognizer: TextRecognizer,
    characters: text::Characters,
    min_confidence: f32,
}

/// Why the plate models cannot be used: the `plates` key to blame and the reason.
#[derive(Debug, thiserror::Error)]
#[error("{1}")]
pub struct PlateLoadError(pub &'static str, #[source] pub LoadError);

impl PlateReader {
    pub fn load(config: &PlatesConfig) -> Result<PlateReader, PlateLoadError> {
        let detector = TextDetector::load(&config.detector, config.threads)
            .map_err(|e| PlateLoadError("detector", e))?;
        if !config.dictionary.is_file() {
            let source = std::io::Error::from(std::io::ErrorKind::NotFound);
            let error = LoadError::Unreadable { path: config.dictionary.clone(), source };
            return Err(PlateLoadError("dictionary", error));
        }
        let recognizer =
            TextRecognizer::load(&config.recognizer, &config.dictionary, config.threads)
                .map_err(|e| PlateLoadError("recognizer", e))?;
        let characters = text::Characters::new(&recognizer.dictionary);
        Ok(PlateReader { detector, recognizer, characters, min_confidence: config.min_confidence })
    }

    /// The plate in `area` (normalized) of `frame`: a vehicle's box, or the whole frame for a
    /// plate camera; `None` when nothing there reads as a plate.
    pub fn read_area(&self, frame: &Frame, area: BBox) -> Result<Option<Reading>, InferError> {
        let crop = Crop::of(frame, area).ok_or(InferError::EmptyBox)?;
        let map = self.detector.text_map(&crop.bgr, crop.width, crop.height)?;
        let regions = locate::text_boxes(&map)
            .into_iter()
            .filter(|b| PLATE_ASPECT.contains(&(b.length / b.thickness.max(1.0))));
        let mut best: Option<Reading> = None;
        for region in regions.take(MAX_REGIONS) {
            let (cut, w, h) = locate::cut_upright(&crop.bgr, crop.width, crop.height, &region);
            let steps = self.recognizer.read_line(&cut, w, h)?;
            let Some(read) = self.characters.plate(&steps) else { continue };
            if read.confidence >= self.min_confidence
                && best.as_ref().is_none_or(|b| read.confidence > b.confidence)
            {
                let bounds = region.bounds();
                let (region, picture) = (crop.to_frame(frame, bounds), crop.picture(frame, bounds));
                let (text, confidence) = (read.text, read.confidence);
                best = Some(Reading { text, confidence, region, picture });
            }
        }
        Ok(best)
    }
}

/// Pixels of a frame, copied out as packed BGR.
struct Crop {
    bgr: Vec<u8>,
    width: usize,
    height: usize,
    /// Its top-left corner in the frame, in pixels.
    left: usize,
    top: usize,
}

impl Crop {
    /// The pixels of `area` grown by [`CROP_MARGIN`]; `None` for an area without pixels.
    fn of(frame: &Frame, area: BBox) -> Option<Crop> {
        let grown = BBox {
            x: area.x - area.w * CROP_MARGIN,
            y: area.y - area.h * CROP_MARGIN,
            w: area.w * (1.0 + 2.0 * CROP_MARGIN),
            h: area.h * (1.0 + 2.0 * CROP_MARGIN),
        }
        .clamped();
        let (fw, fh) = (frame.width as f32, frame.height as f32);
        let left = (grown.x * fw).floor() as usize;
        let top = (grown.y * fh).floor() as usize;
        let right = ((grown.x + grown.w) * fw).ceil().min(fw) as usize;
        let bottom = ((grown.y + grown.h) * fh).ceil().min(fh) as usize;
        if right <= left + 1 || bottom <= top + 1 {
            return None;
        }
        let all = frame.bgr();
        let row = frame.width * 3;
        let mut bgr = Vec::with_capacity((right - left) * (bottom - top) * 3);
        for y in top..bottom {
            bgr.extend_from_slice(&all[y * row + left * 3..y * row + right * 3]);
        }
        Some(Crop { bgr, width: right - left, height: bottom - top, left, top })
    }

    /// The pixels of `[x0, y0, x1, y1]` (this crop's pixels) as a frame of their own.
    fn picture(&self, frame: &Frame, [x0, y0, x1, y1]: [f32; 4]) -> PlatePicture {
        let clamp = |v: f32, max: usize| (v.max(0.0) as usize).min(max);
        let (left, top) = (clamp(x0.floor(), self.width - 1), clamp(y0.floor(), self.height - 1));
        let right = clamp(x1.ceil(), self.width).max(left + 1);
        let bottom = clamp(y1.ceil(), self.height).max(top + 1);
        let row = self.width * 3;
        let bgr: Vec<u8> = (top..bottom)
            .flat_map(|y| &self.bgr[y * row + left * 3..y * row + right * 3])
            .copied()
            .collect();
        PlatePicture(Arc::new(Frame {
            width: right - left,
            height: bottom - top,
            data: bgr.into(),
            stream_time_s: frame.stream_time_s,
            captured_at: frame.captured_at,
            metadata: Vec::new(),
        }))
    }

    /// `[x0, y0, x1, y1]` in this crop's pixels as a box normalized to `frame`.
    fn to_frame(&self, frame: &Frame, [x0, y0, x1, y1]: [f32; 4]) -> BBox {
        let (fw, fh) = (frame.width as f32, frame.height as f32);
        let (left, top) = (self.left as f32, self.top as f32);
        BBox { x: (left + x0) / fw, y: (top + y0) / fh, w: (x1 - x0) / fw, h: (y1 - y0) / fh }
            .clamped()
    }
}

/// What a camera asks to be read: a vehicle's track, or (a plate camera) the whole frame.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Target {
    Track(u64),
    Frame,
}

/// What the worker answers: the target and its reading, if any.
type Answer = (Target, Option<Reading>);

/// One area to read, and where to send what was read.
struct Request {
    frame: Arc<Frame>,
    area: BBox,
    target: Target,
    reply: SyncSender<Answer>,
}

/// The node's plate worker: one thread that reads the areas the cameras ask for, in turn. It
/// stops when the last [`PlateService`] (and every camera's queue) is dropped.
#[derive(Clone)]
pub struct PlateService {
    // Declared before `_worker`, so the worker's queue is closed before it is waited for.
    requests: SyncSender<Request>,
    every_s: f64,
    reader: Arc<PlateReader>,
    // Held for its drop only: the last service waits for the thread.
    _worker: Arc<Worker>,
}

/// The worker's thread, waited for when the last service goes: a read cut off by the process
/// exiting would fail inside ONNX Runtime, which is torn down first.
struct Worker(Option<std::thread::JoinHandle<()>>);

impl Drop for Worker {
    fn drop(&mut self) {
        if let Some(thread) = self.0.take() {
            let _ = thread.join();
        }
    }
}

impl PlateService {
    pub fn start(reader: PlateReader, config: &PlatesConfig) -> std::io::Result<PlateService> {
        let (requests, incoming) = sync_channel::<Request>(QUEUE);
        let reader = Arc::new(reader);
        let worker = reader.clone();
        let thread = std::thread::Builder::new().name("plates".into()).spawn(move || {
            for request in incoming {
                let read = match worker.read_area(&request.frame, request.area) {
                    Ok(reading) => reading,
                    Err(e) => {
                        tracing::warn!(target = ?request.target, "plate not read: {e}");
                        None
                    }
                };
                // The camera may have gone (a reload): nobody is waiting then.
                let _ = request.reply.try_send((request.target, read));
            }
        })?;
        let worker = Arc::new(Worker(Some(thread)));
        Ok(PlateService { requests, every_s: config.every_s, reader, _worker: worker })
    }

    /// The reader itself, for a one-off read that may wait (`cityeye preview`).
    pub fn reader(&self) -> &PlateReader {
        &self.reader
    }

    /// A camera's queue to this worker.
    pub fn queue(&self) -> PlateQueue {
        let (reply, replies) = sync_channel(QUEUE);
        PlateQueue {
            service: self.clone(),
            reply,
            replies,
            asked: HashMap::new(),
            votes: HashMap::new(),
            in_step: false,
        }
    }
}

/// The answers a camera takes on a frame.
#[derive(Debug, Default)]
pub struct Answers {
    /// Each track whose plate (the vote's winner, or how sure it is) changed, with its plate.
    pub plates: Vec<(u64, Plate)>,
    /// A plate camera's newest whole-frame plate, when a read found one.
    pub frame: Option<Reading>,
}

/// One camera's side of plate reading: what it asked, and each track's votes.
pub struct PlateQueue {
    service: PlateService,
    reply: SyncSender<Answer>,
    replies: Receiver<Answer>,
    /// When each target was last asked for (stream time), and whether the answer is still out.
    asked: HashMap<Target, (f64, bool)>,
    votes: HashMap<u64, Votes>,
    /// See [`PlateQueue::in_step`].
    in_step: bool,
}

impl PlateQueue {
    /// Asks for the plates of `vehicles` in `frame` that were not asked for within `every_s`
    /// and have no answer pending. Never waits: a full worker queue drops the request.
    pub fn ask_vehicles<'a>(
        &mut self,
        frame: &Arc<Frame>,
        vehicles: impl Iterator<Item = &'a Track>,
    ) {
        for track in vehicles {
            if !self.ask(frame, Target::Track(track.id), track.bbox) {
                break;
            }
        }
    }

    /// Asks for the plates in the whole of `frame` (a plate camera), at most once per
    /// `every_s`.
    pub fn ask_frame(&mut self, frame: &Arc<Frame>) {
        self.ask(frame, Target::Frame, BBox { x: 0.0, y: 0.0, w: 1.0, h: 1.0 });
    }

    /// Sends one request when due; `false` when the worker takes no more now.
    fn ask(&mut self, frame: &Arc<Frame>, target: Target, area: BBox) -> bool {
        let t = frame.stream_time_s;
        let every_s = self.service.every_s;
        let due =
            self.asked.get(&target).is_none_or(|&(at, pending)| !pending && t - at >= every_s);
        if !due {
            return true;
        }
        let reply = self.reply.clone();
        match self.service.requests.try_send(Request { frame: frame.clone(), area, target, reply })
        {
            Ok(()) => {
                self.asked.insert(target, (t, true));
                true
            }
            Err(TrySendError::Full(_)) => false,
            Err(TrySendError::Disconnected(_)) => {
                tracing::error!("the plate worker has stopped");
                false
            }
        }
    }

    /// For a replay: every answer is waited for and taken on the frame after its question, so
    /// a replay reads the same plates however fast the machine runs it. Live, the stream does
    /// not wait.
    pub fn in_step(&mut self) {
        self.in_step = true;
    }

    /// The answers that came since the last call (in step: all that are due), the vehicles'
    /// voted into their tracks.
    pub fn take_answers(&mut self) -> Answers {
        let mut answers = Answers::default();
        while let Some((target, reading)) = self.next_answer() {
            if let Some((_, pending)) = self.asked.get_mut(&target) {
                *pending = false;
            }
            match target {
                Target::Frame => answers.frame = reading.or(answers.frame),
                Target::Track(track) => {
                    if let Some(plate) = reading.and_then(|r| self.vote(track, &r)) {
                        answers.plates.retain(|(t, _)| *t != track);
                        answers.plates.push((track, plate));
                    }
                }
            }
        }
        answers
    }

    fn next_answer(&self) -> Option<Answer> {
        let pending = self.asked.values().any(|&(_, pending)| pending);
        if self.in_step && pending {
            // A worker that stopped answers nothing: the replay goes on without it.
            self.replies.recv_timeout(std::time::Duration::from_secs(60)).ok()
        } else {
            self.replies.try_recv().ok()
        }
    }

    /// Counts `reading` for `track`: the track's plate when the vote's outcome changed.
    pub fn vote(&mut self, track: u64, reading: &Reading) -> Option<Plate> {
        let votes = self.votes.entry(track).or_default();
        let before = votes.winner();
        votes.add(reading);
        votes.winner().filter(|after| Some(after) != before.as_ref())
    }

    /// Forgets tracks that ended.
    pub fn forget(&mut self, removed: &[u64]) {
        for track in removed {
            self.asked.remove(&Target::Track(*track));
            self.votes.remove(track);
        }
    }
}
