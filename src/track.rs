//! Multi-object tracking: turns each frame's detections into objects that keep one id.
//!
//! Rules reason about objects, not detections: "a car has stood in the bus lane for 60 s" needs
//! the same id on that car in every analysed frame, so dwell, line crossings and counts can be
//! timed per object. This is a ByteTrack-style tracker, one per camera: a constant-velocity
//! Kalman filter predicts where each track should be, detections are associated with the
//! predictions by IoU, and low-confidence detections only keep existing tracks alive through
//! partial occlusion, never start one. Everything is in the normalized image coordinates of
//! [`crate::geometry`], and time is stream time in seconds so the lost-track timeout does not
//! depend on the analysed frame rate.

use std::array::from_fn;
use std::sync::Arc;

use crate::frame::Frame;
use crate::geometry::{BBox, Detection};

/// Tuning knobs; Default gives ByteTrack's published defaults adapted to seconds.
#[derive(Debug, Clone)]
pub struct TrackerConfig {
    /// Detections at or above this take part in the first association pass.
    pub high_score: f32,
    /// Detections in `[low_score, high_score)` are used only in the second pass, to recover
    /// occluded tracks; anything below is ignored.
    pub low_score: f32,
    /// An unmatched high detection at or above this starts a new (tentative) track.
    pub new_track_score: f32,
    /// Minimum IoU between a track's predicted box and a detection in the first pass.
    pub match_iou: f32,
    /// Minimum IoU in the second (low-score) pass.
    pub low_match_iou: f32,
    /// Consecutive matched frames for a tentative track to become confirmed. A track born on
    /// the tracker's very first frame is confirmed at once, as in ByteTrack.
    pub confirm_hits: u32,
    /// A confirmed track unmatched for longer than this (stream time), and for more than
    /// [`LOST_FRAMES`] frames, is removed for good.
    pub lost_ttl_s: f64,
}

impl Default for TrackerConfig {
    fn default() -> Self {
        TrackerConfig {
            high_score: 0.5,
            low_score: 0.1,
            new_track_score: 0.6,
            match_iou: 0.2,
            low_match_iou: 0.5,
            confirm_hits: 3,
            lost_ttl_s: 3.0,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TrackState {
    /// Seen in fewer than `confirm_hits` consecutive frames; never reported.
    Tentative,
    /// Matched in the latest frame.
    Confirmed,
    /// Confirmed before, unmatched in the latest frame, still within `lost_ttl_s`.
    Lost,
}

#[derive(Debug, Clone)]
pub struct Track {
    /// Unique per [`Tracker`], starting at 1, never reused.
    pub id: u64,
    /// The class with the highest summed confidence over the matched detections, so a van the
    /// detector calls car and truck alternately keeps one label.
    pub class: Arc<str>,
    /// Confidence of the last matched detection.
    pub confidence: f32,
    /// The last observed (matched detection) box, not the Kalman prediction.
    pub bbox: BBox,
    pub state: TrackState,
    pub first_seen_s: f64,
    /// Stream time of the last matched detection.
    pub last_seen_s: f64,
    /// A vehicle's plate, once read (see `crate::plates`).
    pub plate: Option<Plate>,
}

/// A vehicle's plate number as its track's readings voted it.
#[derive(Debug, Clone, PartialEq)]
pub struct Plate {
    pub text: Arc<str>,
    /// The mean confidence of the readings that gave this text.
    pub confidence: f32,
    /// How many readings gave it.
    pub reads: u32,
    /// The plate as its surest reading of this text saw it.
    pub picture: Option<PlatePicture>,
}

/// A plate's pixels, cut from the frame it was read on: the incident's close-up of it.
#[derive(Debug, Clone)]
pub struct PlatePicture(pub Arc<Frame>);

/// The same picture, not equal pixels: comparing a picture is comparing where it came from.
impl PartialEq for PlatePicture {
    fn eq(&self, other: &Self) -> bool {
        Arc::ptr_eq(&self.0, &other.0)
    }
}

/// What one update produced.
#[derive(Debug)]
pub struct TrackUpdate<'a> {
    /// Confirmed tracks (matched this frame) and lost ones (still within `lost_ttl_s`); never
    /// tentative ones.
    pub tracks: &'a [Track],
    /// Ids of confirmed tracks removed for good during this update. Tentative tracks that die
    /// are not reported: nobody ever saw them.
    pub removed: Vec<u64>,
}

/// Frames a confirmed track may go unmatched however far apart they come: at a key frame every
/// 2 s, `lost_ttl_s` alone would drop a parked car the second time the detector missed it.
const LOST_FRAMES: f64 = 2.0;

/// The overlap a detection needs with a track's last box to continue it after a gap longer
/// than `lost_ttl_s` (and of the same class).
pub const RESUME_IOU: f32 = 0.5;

/// Tracks the objects of one camera.
pub struct Tracker {
    config: TrackerConfig,
    tracks: Vec<Entry>,
    next_id: u64,
    started: bool,
    /// Stream time of the previous update: the gap to it scales `lost_ttl_s`.
    last_t: Option<f64>,
    scratch: Scratch,
    /// The reported tracks, rebuilt each update; kept to reuse its allocation.
    reported: Vec<Track>,
}

impl Tracker {
    pub fn new(config: TrackerConfig) -> Self {
        Tracker {
            config,
            tracks: Vec::new(),
            next_id: 1,
            started: false,
            last_t: None,
            scratch: Scratch::default(),
            reported: Vec::new(),
        }
    }

    /// Gives track `id` its plate, from the next update on; a track that ended is ignored.
    pub fn set_plate(&mut self, id: u64, plate: Plate) {
        if let Some(entry) = self.tracks.iter_mut().find(|e| e.track.id == id) {
            entry.track.plate = Some(plate);
        }
    }

    /// One analysed frame at stream time `t` (seconds, non-decreasing).
    pub fn update(&mut self, detections: &[Detection], t: f64) -> TrackUpdate<'_> {
        let first_frame = !self.started;
        self.started = true;

        for entry in &mut self.tracks {
            entry.predict();
        }

        let cfg = &self.config;
        let gap_s = self.last_t.map_or(0.0, |last| t - last);
        self.last_t = Some(t);
        let lost_ttl_s = cfg.lost_ttl_s.max(LOST_FRAMES * gap_s);
        // After a long gap (a reconnect, a patrol's next visit) only the same object where it
        // clearly was before continues its track (and its dwell).
        let resumed = gap_s > cfg.lost_ttl_s;
        let match_iou = if resumed { cfg.match_iou.max(RESUME_IOU) } else { cfg.match_iou };
        let scratch = &mut self.scratch;
        scratch.reset(self.tracks.len(), detections.len());
        for (i, det) in detections.iter().enumerate() {
            if !usable(&det.bbox) {
                continue;
            }
            if det.confidence >= cfg.high_score {
                scratch.high.push(i);
            } else if det.confidence >= cfg.low_score {
                scratch.low.push(i);
            }
        }
        scratch.associate(&self.tracks, detections, Pass::High, match_iou, resumed);
        let low_match_iou = cfg.low_match_iou.max(match_iou);
        scratch.associate(&self.tracks, detections, Pass::Low, low_match_iou, resumed);

        let mut removed = Vec::new();
        let mut assigned = scratch.assigned.iter();
        self.tracks.retain_mut(|entry| {
            // retain_mut visits every entry once, in order, so this pairs entries with their slots.
            match assigned.next().copied().flatten() {
                Some(d) => {
                    entry.observe(&detections[d], t, cfg.confirm_hits);
                    true
                }
                None => entry.miss(t, lost_ttl_s, &mut removed),
            }
        });

        // ByteTrack confirms the first frame's tracks at once: there is no history to doubt them
        // against, and waiting would hide every object already in view at start-up.
        let state = if first_frame || cfg.confirm_hits <= 1 {
            TrackState::Confirmed
        } else {
            TrackState::Tentative
        };
        for &d in &scratch.high {
            let det = &detections[d];
            if scratch.det_used[d] || det.confidence < cfg.new_track_score {
                continue;
            }
            self.tracks.push(Entry::new(self.next_id, det, t, state));
            self.next_id += 1;
        }

        self.reported.clear();
        self.reported.extend(
            self.tracks
                .iter()
                .filter(|e| e.track.state != TrackState::Tentative)
                .map(|e| e.track.clone()),
        );
        TrackUpdate { tracks: &self.reported, removed }
    }
}

/// Boxes the Kalman filter can take: a zero or non-finite size would make the aspect undefined.
fn usable(b: &BBox) -> bool {
    [b.x, b.y, b.w, b.h].iter().all(|v| v.is_finite()) && b.w > 0.0 && b.h > 0.0
}

/// A track plus what the tracker needs to maintain it.
struct Entry {
    track: Track,
    kf: Kalman,
    /// Where the filter expects the object this frame; association compares against this.
    predicted: BBox,
    /// Consecutive matched frames; a miss kills a tentative track, so they stay consecutive.
    hits: u32,
    /// Summed confidence per class, for the stable label.
    votes: Vec<(Arc<str>, f64)>,
}

impl Entry {
    fn new(id: u64, det: &Detection, t: f64, state: TrackState) -> Self {
        Entry {
            track: Track {
                id,
                class: det.class.clone(),
                confidence: det.confidence,
                bbox: det.bbox,
                state,
                first_seen_s: t,
                last_seen_s: t,
                plate: None,
            },
            kf: Kalman::new(measurement(&det.bbox)),
            predicted: det.bbox,
            hits: 1,
            votes: vec![(det.class.clone(), f64::from(det.confidence))],
        }
    }

    fn predict(&mut self) {
        // As in ByteTrack: an unseen object's size is held, so a lost box does not keep growing
        // or shrinking until it can no longer match anything.
        if self.track.state == TrackState::Lost {
            self.kf.mean[7] = 0.0;
        }
        self.kf.predict();
        self.predicted = self.kf.bbox();
    }

    fn observe(&mut self, det: &Detection, t: f64, confirm_hits: u32) {
        self.kf.update(measurement(&det.bbox));
        self.track.bbox = det.bbox;
        self.track.confidence = det.confidence;
        self.track.last_seen_s = t;
        self.hits = self.hits.saturating_add(1);
        self.vote(det);
        self.track.state = match self.track.state {
            TrackState::Tentative if self.hits < confirm_hits => TrackState::Tentative,
            _ => TrackState::Confirmed,
        };
    }

    /// Handles a frame without a match; returns whether the entry is kept.
    fn miss(&mut self, t: f64, lost_ttl_s: f64, removed: &mut Vec<u64>) -> bool {
        match self.track.state {
            TrackState::Tentative => false,
            TrackState::Confirmed | TrackState::Lost => {
                self.track.state = TrackState::Lost;
                let keep = t - self.track.last_seen_s <= lost_ttl_s;
                if !keep {
                    removed.push(self.track.id);
                }
                keep
            }
        }
    }

    fn vote(&mut self, det: &Detection) {
        let conf = f64::from(det.confidence);
        let i = match self.votes.iter().position(|(c, _)| *c == det.class) {
            Some(i) => {
                self.votes[i].1 += conf;
                i
            }
            None => {
                self.votes.push((det.class.clone(), conf));
                self.votes.len() - 1
            }
        };
        let leader = self.votes.iter().find(|(c, _)| *c == self.track.class).map_or(0.0, |v| v.1);
        // Strictly greater: on a tie the current label stays, so it does not flicker.
        if self.votes[i].1 > leader {
            self.track.class = self.votes[i].0.clone();
        }
    }
}

#[derive(Clone, Copy)]
enum Pass {
    /// High detections against every track.
    High,
    /// Low detections against confirmed tracks still unmatched: only a track seen last frame is
    /// trusted enough to explain a weak detection (ByteTrack's "remaining tracked" tracks).
    Low,
}

/// Per-update working buffers, kept in the tracker so a steady stream allocates nothing.
#[derive(Default)]
struct Scratch {
    high: Vec<usize>,
    low: Vec<usize>,
    /// Candidate matches as (IoU, track index, detection index).
    pairs: Vec<(f32, usize, usize)>,
    /// Per track: the detection matched this frame.
    assigned: Vec<Option<usize>>,
    /// Per detection: already matched.
    det_used: Vec<bool>,
}

impl Scratch {
    fn reset(&mut self, tracks: usize, detections: usize) {
        self.high.clear();
        self.low.clear();
        self.assigned.clear();
        self.assigned.resize(tracks, None);
        self.det_used.clear();
        self.det_used.resize(detections, false);
    }

    /// Greedy matching by descending IoU. ByteTrack solves this optimally with the Hungarian
    /// algorithm, but greedy on IoU is what many edge trackers use: O(n·m log(n·m)) and, with
    /// boxes that overlap only their own object, nearly always the same answer.
    fn associate(
        &mut self,
        tracks: &[Entry],
        detections: &[Detection],
        pass: Pass,
        min_iou: f32,
        resumed: bool,
    ) {
        let candidates = match pass {
            Pass::High => &self.high,
            Pass::Low => &self.low,
        };
        self.pairs.clear();
        for &d in candidates {
            for (t, entry) in tracks.iter().enumerate() {
                let eligible = match pass {
                    Pass::High => true,
                    Pass::Low => entry.track.state == TrackState::Confirmed,
                };
                if !eligible
                    || self.assigned[t].is_some()
                    || (resumed && entry.track.class != detections[d].class)
                {
                    continue;
                }
                // After a gap, where it was last seen: a prediction that far ahead means nothing.
                let from = if resumed { entry.track.bbox } else { entry.predicted };
                let iou = from.iou(&detections[d].bbox);
                // Some overlap is required even if min_iou is configured to 0.
                if iou > 0.0 && iou >= min_iou {
                    self.pairs.push((iou, t, d));
                }
            }
        }
        // Ties broken by index so the result never depends on the sort's internals.
        self.pairs
            .sort_unstable_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)).then(a.2.cmp(&b.2)));
        for &(_, t, d) in &self.pairs {
            if self.assigned[t].is_none() && !self.det_used[d] {
                self.assigned[t] = Some(d);
                self.det_used[d] = true;
            }
        }
    }
}

/// Noise weights relative to the box height, as in ByteTrack/DeepSORT: a box twice as tall (a
/// nearer object) is allowed twice the jitter and twice the speed change.
const STD_WEIGHT_POSITION: f64 = 1.0 / 20.0;
const STD_WEIGHT_VELOCITY: f64 = 1.0 / 160.0;

type Mat<const R: usize, const C: usize> = [[f64; C]; R];

/// Constant-velocity Kalman filter on `[cx, cy, a, h, vcx, vcy, va, vh]` (centre, aspect w/h,
/// height, and their per-frame velocities), measuring `[cx, cy, a, h]`. The aspect is in
/// normalized units, which is consistent for a camera however non-square its frames are.
struct Kalman {
    mean: [f64; 8],
    cov: Mat<8, 8>,
}

impl Kalman {
    fn new(z: [f64; 4]) -> Self {
        let h = noise_scale(z[3]);
        let p = 2.0 * STD_WEIGHT_POSITION * h;
        let v = 10.0 * STD_WEIGHT_VELOCITY * h;
        let mut mean = [0.0; 8];
        mean[..4].copy_from_slice(&z);
        Kalman { mean, cov: diag_squared([p, p, 1e-2, p, v, v, 1e-5, v]) }
    }

    /// One frame ahead: position += velocity, and the uncertainty grows.
    fn predict(&mut self) {
        let h = noise_scale(self.mean[3]);
        let p = STD_WEIGHT_POSITION * h;
        let v = STD_WEIGHT_VELOCITY * h;
        let q = diag_squared([p, p, 1e-2, p, v, v, 1e-5, v]);
        // F is the identity plus "add the velocity to the position".
        let f: Mat<8, 8> = from_fn(|i| from_fn(|j| f64::from(u8::from(i == j || j == i + 4))));
        self.mean = mat_vec(&f, &self.mean);
        let fpft = mat_mul(&mat_mul(&f, &self.cov), &transpose(&f));
        self.cov = from_fn(|i| from_fn(|j| fpft[i][j] + q[i][j]));
    }

    /// Folds in a measured `[cx, cy, a, h]`.
    fn update(&mut self, z: [f64; 4]) {
        let p = STD_WEIGHT_POSITION * noise_scale(self.mean[3]);
        let r = [p, p, 1e-1, p];
        // H picks the first four state components, so P·Hᵀ is P's first four columns and
        // S = H·P·Hᵀ + R is its top-left block plus the measurement noise.
        let pht: Mat<8, 4> = from_fn(|i| from_fn(|j| self.cov[i][j]));
        let s: Mat<4, 4> =
            from_fn(|i| from_fn(|j| pht[i][j] + if i == j { r[i] * r[i] } else { 0.0 }));
        let Some(s_inv) = invert4(&s) else {
            // Only reachable with non-finite numbers; starting over beats propagating NaN.
            *self = Kalman::new(z);
            return;
        };
        let gain = mat_mul(&pht, &s_inv);
        let innovation: [f64; 4] = from_fn(|i| z[i] - self.mean[i]);
        let step = mat_vec(&gain, &innovation);
        self.mean = from_fn(|i| self.mean[i] + step[i]);
        // P -= K·S·Kᵀ, and K·S = P·Hᵀ.
        let reduction = mat_mul(&pht, &transpose(&gain));
        self.cov = from_fn(|i| from_fn(|j| self.cov[i][j] - reduction[i][j]));
    }

    fn bbox(&self) -> BBox {
        let [cx, cy, a, h, ..] = self.mean;
        let w = a * h;
        BBox { x: (cx - w / 2.0) as f32, y: (cy - h / 2.0) as f32, w: w as f32, h: h as f32 }
    }
}

fn measurement(b: &BBox) -> [f64; 4] {
    let c = b.centre();
    [f64::from(c.x), f64::from(c.y), f64::from(b.w / b.h), f64::from(b.h)]
}

/// The height that scales the noise, floored so a prediction collapsing to zero height cannot
/// zero the noise and leave S singular.
fn noise_scale(h: f64) -> f64 {
    h.max(1e-3)
}

fn diag_squared<const N: usize>(std: [f64; N]) -> Mat<N, N> {
    from_fn(|i| from_fn(|j| if i == j { std[i] * std[i] } else { 0.0 }))
}

fn mat_mul<const N: usize, const K: usize, const M: usize>(
    a: &Mat<N, K>,
    b: &Mat<K, M>,
) -> Mat<N, M> {
    from_fn(|i| from_fn(|j| (0..K).map(|k| a[i][k] * b[k][j]).sum()))
}

fn mat_vec<const N: usize, const M: usize>(a: &Mat<N, M>, v: &[f64; M]) -> [f64; N] {
    from_fn(|i| a[i].iter().zip(v).map(|(x, y)| x * y).sum())
}

fn transpose<const N: usize, const M: usize>(a: &Mat<N, M>) -> Mat<M, N> {
    from_fn(|i| from_fn(|j| a[j][i]))
}

/// Gauss-Jordan inversion with partial pivoting; `None` if the matrix is singular.
fn invert4(m: &Mat<4, 4>) -> Option<Mat<4, 4>> {
    let mut a = *m;
    let mut inv = diag_squared([1.0; 4]);
    for col in 0..4 {
        let pivot = (col..4).max_by(|&i, &j| a[i][col].abs().total_cmp(&a[j][col].abs()))?;
        if !a[pivot][col].is_normal() {
            return None;
        }
        a.swap(col, pivot);
        inv.swap(col, pivot);
        let scale = a[col][col];
        for j in 0..4 {
            a[col][j] /= scale;
            inv[col][j] /= scale;
        }
        for row in (0..4).filter(|&row| row != col) {
            let factor = a[row][col];
            for j in 0..4 {
                a[row][j] -= factor * a[col][j];
                inv[row][j] -= factor * inv[col][j];
            }
        }
    }
    Some(inv)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Analysed frames are 0.1 s apart in these tests.
    const DT: f64 = 0.1;

    fn time(frame: u32) -> f64 {
        f64::from(frame) * DT
    }

    fn det(x: f32, y: f32, class: &str, confidence: f32) -> Detection {
        Detection { bbox: BBox { x, y, w: 0.1, h: 0.1 }, class: class.into(), confidence }
    }

    fn car(x: f32, y: f32) -> Detection {
        det(x, y, "car", 0.9)
    }

    /// Ids, states and boxes reported by one update, detached from the tracker's borrow.
    fn step(tracker: &mut Tracker, dets: &[Detection], t: f64) -> (Vec<Track>, Vec<u64>) {
        let update = tracker.update(dets, t);
        (update.tracks.to_vec(), update.removed)
    }

    #[test]
    fn constant_velocity_object_keeps_one_id() {
        let mut tracker = Tracker::new(TrackerConfig::default());
        let mut id = None;
        for f in 0..30 {
            let x = 0.05 + 0.02 * f as f32;
            let (tracks, removed) = step(&mut tracker, &[car(x, 0.3 + 0.005 * f as f32)], time(f));
            assert_eq!(tracks.len(), 1, "frame {f}");
            assert!(removed.is_empty());
            assert_eq!(tracks[0].state, TrackState::Confirmed);
            assert_eq!(*id.get_or_insert(tracks[0].id), tracks[0].id, "frame {f}");
        }
        assert_eq!(id, Some(1));
    }

    #[test]
    fn crossing_objects_keep_their_ids() {
        let mut tracker = Tracker::new(TrackerConfig::default());
        let mut ids: Option<(u64, u64)> = None;
        let mut max_overlap = 0.0f32;
        for f in 0..36 {
            // A moves right along y = 0.40, B left along y = 0.45; they pass around frame 17.
            let a = car(0.1 + 0.02 * f as f32, 0.40);
            let b = car(0.8 - 0.02 * f as f32, 0.45);
            max_overlap = max_overlap.max(a.bbox.iou(&b.bbox));
            let (tracks, _) = step(&mut tracker, &[a, b], time(f));
            assert_eq!(tracks.len(), 2, "frame {f}");
            let id_at = |y: f32| tracks.iter().find(|t| t.bbox.y == y).unwrap().id;
            let now = (id_at(0.40), id_at(0.45));
            assert_eq!(*ids.get_or_insert(now), now, "frame {f}");
        }
        assert!(max_overlap > 0.25, "the boxes must really overlap at the crossing");
    }

    #[test]
    fn briefly_missing_object_returns_with_same_id() {
        let mut tracker = Tracker::new(TrackerConfig::default());
        let at = |f: u32| car(0.2 + 0.005 * f as f32, 0.5);
        let mut id = 0;
        for f in 0..10 {
            let (tracks, _) = step(&mut tracker, &[at(f)], time(f));
            id = tracks[0].id;
        }
        // Gone for 1.5 s, well under the 3 s ttl.
        for f in 10..25 {
            let (tracks, removed) = step(&mut tracker, &[], time(f));
            assert!(removed.is_empty());
            assert_eq!(tracks.len(), 1);
            assert_eq!(tracks[0].id, id);
            assert_eq!(tracks[0].state, TrackState::Lost);
            assert_eq!(tracks[0].last_seen_s, time(9));
        }
        let (tracks, _) = step(&mut tracker, &[at(25)], time(25));
        assert_eq!(tracks.len(), 1);
        assert_eq!(tracks[0].id, id);
        assert_eq!(tracks[0].state, TrackState::Confirmed);
        assert_eq!(tracks[0].first_seen_s, 0.0);
    }

    #[test]
    fn a_parked_car_seen_again_after_a_long_gap_continues_its_track_and_only_it() {
        let mut tracker = Tracker::new(TrackerConfig::default());
        // A key frame every 2 s, missed once by the detector: still the same car.
        let (tracks, _) = step(&mut tracker, &[car(0.4, 0.4)], 0.0);
        let id = tracks[0].id;
        assert_eq!(step(&mut tracker, &[], 2.0).0[0].state, TrackState::Lost);
        assert_eq!(step(&mut tracker, &[car(0.41, 0.4)], 4.0).0[0].id, id);
        // The next visit of a patrol, 5 minutes on: the car, a little shifted (IoU >= 0.5),
        // continues; a person in the same place and a car that overlaps less do not.
        let later = 304.0;
        let (tracks, _) = step(&mut tracker, &[car(0.42, 0.4)], later);
        assert_eq!((tracks[0].id, tracks[0].first_seen_s), (id, 0.0));
        let mut other = Tracker::new(TrackerConfig::default());
        step(&mut other, &[car(0.4, 0.4)], 0.0);
        let (tracks, _) = step(&mut other, &[det(0.4, 0.4, "person", 0.9)], later);
        assert!(tracks.iter().all(|t| t.class.as_ref() == "car" && t.state == TrackState::Lost));
        let mut moved = Tracker::new(TrackerConfig::default());
        step(&mut moved, &[car(0.4, 0.4)], 0.0);
        // Shifted by 0.04 of a 0.1 box: IoU 0.43, which a 0.2 s gap would have matched.
        let (tracks, _) = step(&mut moved, &[car(0.44, 0.4)], later);
        assert!(tracks.iter().all(|t| t.state == TrackState::Lost), "{tracks:?}");
    }

    #[test]
    fn long_gone_object_is_removed_once_and_not_resurrected() {
        let mut tracker = Tracker::new(TrackerConfig::default());
        let mut id = 0;
        for f in 0..=10 {
            id = step(&mut tracker, &[car(0.4, 0.4)], time(f)).0[0].id;
        }
        let mut removals = Vec::new();
        for f in 11..60 {
            let (tracks, removed) = step(&mut tracker, &[], time(f));
            if f <= 40 {
                // t - last_seen <= 3 s: still lost, still reported.
                assert_eq!(tracks.len(), 1, "frame {f}");
                assert_eq!(tracks[0].state, TrackState::Lost);
            } else {
                assert!(tracks.is_empty(), "frame {f}");
            }
            removals.extend(removed);
        }
        assert_eq!(removals, vec![id]);

        // A new object in the same place is tentative for two frames, then gets a fresh id.
        for f in 60..62 {
            let (tracks, removed) = step(&mut tracker, &[car(0.4, 0.4)], time(f));
            assert!(tracks.is_empty() && removed.is_empty());
        }
        let (tracks, _) = step(&mut tracker, &[car(0.4, 0.4)], time(62));
        assert_eq!(tracks.len(), 1);
        assert_ne!(tracks[0].id, id);
    }

    #[test]
    fn spurious_detection_is_never_reported_and_new_objects_wait_for_confirmation() {
        let mut tracker = Tracker::new(TrackerConfig::default());
        let a = car(0.1, 0.1);
        let a_id = step(&mut tracker, std::slice::from_ref(&a), time(0)).0[0].id;
        // A confident one-frame blip elsewhere, then nothing there.
        for f in 1..10 {
            let dets = if f == 1 { vec![a.clone(), car(0.6, 0.6)] } else { vec![a.clone()] };
            let (tracks, removed) = step(&mut tracker, &dets, time(f));
            assert_eq!(tracks.iter().map(|t| t.id).collect::<Vec<_>>(), vec![a_id], "frame {f}");
            assert!(removed.is_empty(), "tentative deaths are not reported");
        }
        let b = car(0.5, 0.5);
        for f in 10..12 {
            let (tracks, _) = step(&mut tracker, &[a.clone(), b.clone()], time(f));
            assert_eq!(tracks.len(), 1, "frame {f}: B is still tentative");
        }
        let (tracks, _) = step(&mut tracker, &[a.clone(), b.clone()], time(12));
        assert_eq!(tracks.len(), 2);
        let b_track = tracks.iter().find(|t| t.id != a_id).unwrap();
        assert_eq!(b_track.bbox, b.bbox);
        assert_eq!(b_track.state, TrackState::Confirmed);
        assert_eq!(b_track.first_seen_s, time(10));
    }

    #[test]
    fn low_score_detections_keep_tracks_alive_but_never_start_one() {
        let mut tracker = Tracker::new(TrackerConfig::default());
        let id = step(&mut tracker, &[car(0.3, 0.3)], time(0)).0[0].id;
        // Occluded: 6 s of weak detections, twice the ttl, plus a weak one elsewhere.
        for f in 1..60 {
            let dets = [det(0.3, 0.3, "car", 0.3), det(0.7, 0.7, "car", 0.3)];
            let (tracks, removed) = step(&mut tracker, &dets, time(f));
            assert!(removed.is_empty());
            assert_eq!(tracks.len(), 1, "frame {f}");
            assert_eq!(tracks[0].id, id);
            assert_eq!(tracks[0].state, TrackState::Confirmed);
            assert_eq!(tracks[0].last_seen_s, time(f));
            assert_eq!(tracks[0].confidence, 0.3);
        }

        // Not even on the tracker's first frame.
        let mut fresh = Tracker::new(TrackerConfig::default());
        for f in 0..10 {
            let (tracks, _) = step(&mut fresh, &[det(0.3, 0.3, "car", 0.45)], time(f));
            assert!(tracks.is_empty(), "frame {f}");
        }
    }

    #[test]
    fn velocity_prediction_bridges_an_occlusion() {
        let mut tracker = Tracker::new(TrackerConfig::default());
        let at = |f: u32| car(0.05 + 0.03 * f as f32, 0.5);
        let id = (0..15).map(|f| step(&mut tracker, &[at(f)], time(f)).0[0].id).last().unwrap();
        for f in 15..19 {
            step(&mut tracker, &[], time(f));
        }
        // The object has moved a box width and more since it was last seen: only the filter's
        // velocity can put the lost track where it reappears.
        assert_eq!(at(19).bbox.iou(&at(14).bbox), 0.0);
        let (tracks, _) = step(&mut tracker, &[at(19)], time(19));
        assert_eq!(tracks.len(), 1);
        assert_eq!(tracks[0].id, id);
        assert_eq!(tracks[0].state, TrackState::Confirmed);
    }

    #[test]
    fn alternating_class_keeps_the_stronger_label() {
        let mut tracker = Tracker::new(TrackerConfig::default());
        let mut id = None;
        for f in 0..20 {
            let d =
                if f % 2 == 0 { det(0.5, 0.5, "car", 0.6) } else { det(0.5, 0.5, "truck", 0.5) };
            let (tracks, _) = step(&mut tracker, &[d], time(f));
            assert_eq!(tracks.len(), 1, "frame {f}");
            assert_eq!(&*tracks[0].class, "car", "frame {f}");
            assert_eq!(*id.get_or_insert(tracks[0].id), tracks[0].id);
        }
    }

    #[test]
    fn stationary_object_reports_its_last_observed_box() {
        let mut tracker = Tracker::new(TrackerConfig::default());
        let mut id = None;
        for f in 0..300 {
            // Detector jitter of a few thousandths, which the filter would smooth away.
            let jitter = 0.003 * (f as f32 * 1.7).sin();
            let d = car(0.6 + jitter, 0.2 - jitter);
            let (tracks, _) = step(&mut tracker, std::slice::from_ref(&d), time(f));
            assert_eq!(tracks.len(), 1, "frame {f}");
            assert_eq!(tracks[0].bbox, d.bbox, "frame {f}");
            assert_eq!(*id.get_or_insert(tracks[0].id), tracks[0].id, "frame {f}");
        }
    }
}
