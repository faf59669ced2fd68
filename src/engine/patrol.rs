//! Patrol (`[[patrols]]`, 轮询巡检): more cameras than the box analyses at once, visited in
//! turn. Each patrolled camera keeps its thread and its analysis (tracks, dwell timers, open
//! incidents) between visits; only its stream is closed. A camera waits for its turn in a
//! queue, opens its stream for `visit_s` seconds of frames while it holds one of the patrol's
//! `slots`, then closes it and queues again at the back: round-robin.
//!
//! A camera whose stream fails to open during its turn is reported offline and gives its slot
//! back at once; it is tried again at its next turn. Between visits it is `standby`, with when
//! its next visit is expected.

use std::collections::VecDeque;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard};
use std::time::{Duration, Instant, SystemTime};

use crate::config::{CameraConfig, PatrolConfig};
use crate::frame::Frame;
use crate::ingest::{Encoded, IngestError, Visits};
use crate::stats::CameraStats;
use crate::wire::CameraState;

/// How often a camera waiting for its turn looks at its stop flag.
const WAIT_POLL: Duration = Duration::from_millis(100);

/// One patrol's turns, shared by the threads of its cameras.
pub struct Patrol {
    pub id: String,
    slots: usize,
    visit_s: f64,
    turns: Mutex<Turns>,
    changed: Condvar,
}

struct Turns {
    /// The cameras waiting for a turn, the next first.
    queue: VecDeque<String>,
    /// Slots held.
    open: usize,
    /// Mean wall-clock length of a visit (opening the stream included), for the estimates.
    visit_s: f64,
}

impl Patrol {
    pub fn new(config: &PatrolConfig) -> Arc<Self> {
        Arc::new(Patrol {
            id: config.id.clone(),
            slots: config.slots,
            visit_s: config.visit_s,
            turns: Mutex::new(Turns { queue: VecDeque::new(), open: 0, visit_s: config.visit_s }),
            changed: Condvar::new(),
        })
    }

    fn turns(&self) -> MutexGuard<'_, Turns> {
        self.turns.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs camera `camera`'s visits until `stop`: waits for its turn (`standby`), analyses
    /// `visit_s` seconds of its frames, gives the slot back, and so on. Counts each visit and
    /// the real revisit period in `stats`.
    pub fn run(
        &self,
        camera: &CameraConfig,
        stop: &AtomicBool,
        stats: &Arc<CameraStats>,
        state: &mut dyn FnMut(CameraState),
        frame: &mut dyn FnMut(Frame),
        mut encoded: Option<&mut dyn FnMut(Encoded)>,
    ) -> Result<(), IngestError> {
        let _seat = Seat::take(self, &camera.id);
        let mut visits = Visits::default();
        while !stop.load(Ordering::Relaxed) {
            state(CameraState::Standby { next_visit_at: self.next_visit_at(&camera.id) });
            let Some(turn) = self.wait_turn(&camera.id, stop, stats) else { break };
            let revisit_s = stats.start_visit();
            let mut first_frame_ms = None;
            let mut on_frame = |f: Frame| {
                first_frame_ms.get_or_insert(turn.began.elapsed().as_millis() as u64);
                frame(f);
            };
            let visited =
                visits.visit(camera, self.visit_s, stop, stats, state, &mut on_frame, &mut encoded);
            drop(turn);
            match visited {
                Ok(frames) => tracing::info!(
                    camera = %camera.id,
                    patrol = %self.id,
                    frames,
                    first_frame_ms,
                    revisit_s,
                    "visit done"
                ),
                Err(error) => {
                    let retry_in = self.next_visit_at(&camera.id).duration_since(SystemTime::now());
                    let retry_in_s = retry_in.map_or(0, |d| d.as_secs());
                    state(CameraState::Offline { reason: error.to_string(), retry_in_s });
                }
            }
        }
        Ok(())
    }

    /// Blocks until `camera` is first in the queue and a slot is free, then takes the slot;
    /// `None` once `stop` is set.
    fn wait_turn(&self, camera: &str, stop: &AtomicBool, stats: &CameraStats) -> Option<Turn<'_>> {
        let mut turns = self.turns();
        loop {
            if stop.load(Ordering::Relaxed) {
                return None;
            }
            stats.mark_alive();
            if turns.open < self.slots && turns.queue.front().is_some_and(|c| c == camera) {
                turns.queue.pop_front();
                turns.open += 1;
                // The next in the queue may have a slot too.
                self.changed.notify_all();
                return Some(Turn {
                    patrol: self,
                    camera: camera.to_string(),
                    began: Instant::now(),
                });
            }
            turns =
                self.changed.wait_timeout(turns, WAIT_POLL).unwrap_or_else(|e| e.into_inner()).0;
        }
    }

    /// When `camera`'s next visit is expected: after the visits of the cameras ahead of it in
    /// the queue and of those holding slots, `slots` at a time.
    fn next_visit_at(&self, camera: &str) -> SystemTime {
        let turns = self.turns();
        let ahead = turns.queue.iter().position(|c| c == camera).unwrap_or(turns.queue.len());
        let rounds = (ahead + turns.open) / self.slots;
        SystemTime::now() + Duration::from_secs_f64(rounds as f64 * turns.visit_s)
    }
}

/// A slot held: given back, and the camera queued again at the back, when dropped.
struct Turn<'a> {
    patrol: &'a Patrol,
    camera: String,
    began: Instant,
}

impl Drop for Turn<'_> {
    fn drop(&mut self) {
        let mut turns = self.patrol.turns();
        turns.open -= 1;
        turns.queue.push_back(std::mem::take(&mut self.camera));
        // A slow mean: one visit that could not open does not halve the estimates.
        turns.visit_s = 0.8 * turns.visit_s + 0.2 * self.began.elapsed().as_secs_f64();
        self.patrol.changed.notify_all();
    }
}

/// A camera's place in its patrol for as long as its thread runs: it leaves the queue when its
/// thread ends, so a camera that stopped never holds up the others.
struct Seat<'a> {
    patrol: &'a Patrol,
    camera: &'a str,
}

impl<'a> Seat<'a> {
    fn take(patrol: &'a Patrol, camera: &'a str) -> Self {
        patrol.turns().queue.push_back(camera.to_string());
        Seat { patrol, camera }
    }
}

impl Drop for Seat<'_> {
    fn drop(&mut self) {
        self.patrol.turns().queue.retain(|c| c != self.camera);
        self.patrol.changed.notify_all();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn patrol(slots: usize) -> Arc<Patrol> {
        let config =
            PatrolConfig { id: "p".into(), cameras: vec!["*".into()], slots, visit_s: 10.0 };
        Patrol::new(&config)
    }

    #[test]
    fn turns_go_round_robin_at_most_slots_at_a_time() {
        let patrol = patrol(2);
        let (stop, stats) = (AtomicBool::new(false), CameraStats::default());
        let seats: Vec<Seat> = ["a", "b", "c"].iter().map(|c| Seat::take(&patrol, c)).collect();
        let a = patrol.wait_turn("a", &stop, &stats).unwrap();
        let b = patrol.wait_turn("b", &stop, &stats).unwrap();
        assert_eq!(patrol.turns().open, 2);
        // c is next but both slots are held: a visit later.
        let next = patrol.next_visit_at("c").duration_since(SystemTime::now()).unwrap();
        assert!((9.0..=10.0).contains(&next.as_secs_f64()), "{next:?}");
        drop(a);
        assert_eq!(patrol.turns().queue, ["c", "a"]);
        let c = patrol.wait_turn("c", &stop, &stats).unwrap();
        drop((b, c));
        assert_eq!(patrol.turns().queue, ["a", "b", "c"]);
        drop(seats);
        assert!(patrol.turns().queue.is_empty());
    }

    #[test]
    fn a_camera_waits_while_it_is_not_first_and_stops_waiting_when_told() {
        let patrol = patrol(1);
        let stats = CameraStats::default();
        let _seats: Vec<Seat> = ["a", "b"].iter().map(|c| Seat::take(&patrol, c)).collect();
        let stop = AtomicBool::new(true);
        assert!(patrol.wait_turn("b", &stop, &stats).is_none());
    }
}
