//! Stats: the node's running counters, for the hub's dashboards and an installer's first look.
//!
//! Each stage adds to its camera's [`CameraStats`] as it works (plain atomics, no locks on the
//! frame path); the publish stage turns them into a `cityeye.stats.v1` payload on
//! `{prefix}/{node}/stats` every `mqtt.stats_interval_s`, with rates over the last interval and
//! totals since the node started.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use serde::Serialize;

use crate::incident::rfc3339_millis;
use crate::ingest::CameraState;
use crate::publish::OutboxStats;

/// One camera's counters since the node started.
#[derive(Debug, Default)]
pub struct CameraStats {
    /// Frames decoded from the stream.
    pub frames_in: AtomicU64,
    /// Frames the sampler kept for analysis (at `analysis_fps`).
    pub frames_sampled: AtomicU64,
    pub frames_analysed: AtomicU64,
    /// Time spent running the camera's models, in microseconds.
    pub inference_us: AtomicU64,
    state: Mutex<StateName>,
    /// When the camera's loop last showed it was not stuck (see [`crate::systemd`]).
    heartbeat: Heartbeat,
    /// New incidents (starts) by algorithm.
    incidents: Mutex<BTreeMap<String, u64>>,
}

impl CameraStats {
    pub fn set_state(&self, state: &CameraState) {
        *lock(&self.state) = StateName(match state {
            CameraState::Connecting => "connecting",
            CameraState::Online { .. } => "online",
            CameraState::Offline { .. } => "offline",
        });
    }

    /// The camera's loop is not stuck: it pulled a frame, waited for one, or is backing off.
    pub fn mark_alive(&self) {
        *lock(&self.heartbeat.0) = Instant::now();
    }

    /// How long since the camera's loop last marked itself alive.
    pub fn quiet_for(&self) -> Duration {
        lock(&self.heartbeat.0).elapsed()
    }

    pub fn count_incident(&self, algorithm: &str) {
        *lock(&self.incidents).entry(algorithm.to_string()).or_default() += 1;
    }

    pub fn add_inference(&self, took: Duration) {
        self.inference_us.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
    }

    pub fn incidents(&self) -> u64 {
        lock(&self.incidents).values().sum()
    }

    fn totals(&self) -> Totals {
        Totals {
            frames_in: self.frames_in.load(Ordering::Relaxed),
            frames_sampled: self.frames_sampled.load(Ordering::Relaxed),
            frames_analysed: self.frames_analysed.load(Ordering::Relaxed),
            inference_us: self.inference_us.load(Ordering::Relaxed),
        }
    }
}

/// A camera's connection state as the stats name it; a camera starts out connecting.
#[derive(Debug, Clone, Copy)]
struct StateName(&'static str);

impl Default for StateName {
    fn default() -> Self {
        StateName("connecting")
    }
}

#[derive(Debug)]
struct Heartbeat(Mutex<Instant>);

impl Default for Heartbeat {
    fn default() -> Self {
        Heartbeat(Mutex::new(Instant::now()))
    }
}

/// A poisoned lock only means a camera thread panicked mid-update; the counts stay usable.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

#[derive(Debug, Clone, Copy, Default)]
struct Totals {
    frames_in: u64,
    frames_sampled: u64,
    frames_analysed: u64,
    inference_us: u64,
}

/// The node's cameras' stats, and the rates between one report and the next.
pub struct NodeStats {
    node: String,
    started: Instant,
    cameras: BTreeMap<String, Arc<CameraStats>>,
    last: Option<(Instant, BTreeMap<String, Totals>)>,
}

impl NodeStats {
    pub fn new<'a>(node: &str, cameras: impl IntoIterator<Item = &'a str>) -> Self {
        NodeStats {
            node: node.to_string(),
            started: Instant::now(),
            cameras: cameras.into_iter().map(|id| (id.to_string(), Arc::default())).collect(),
            last: None,
        }
    }

    /// The counters camera `id` adds to.
    pub fn camera(&self, id: &str) -> Arc<CameraStats> {
        self.cameras.get(id).cloned().unwrap_or_default()
    }

    /// Every camera's counters, by id.
    pub fn cameras(&self) -> Vec<(String, Arc<CameraStats>)> {
        self.cameras.iter().map(|(id, c)| (id.clone(), c.clone())).collect()
    }

    /// The `cityeye.stats.v1` payload now; rates cover the time since the previous report.
    pub fn report(&mut self, outbox: OutboxStats) -> Vec<u8> {
        let now = Instant::now();
        let totals: BTreeMap<String, Totals> =
            self.cameras.iter().map(|(id, c)| (id.clone(), c.totals())).collect();
        let (since, previous) = match &self.last {
            Some((at, previous)) => (*at, previous.clone()),
            None => (self.started, BTreeMap::new()),
        };
        let seconds = now.duration_since(since).as_secs_f64().max(1e-3);
        let mut node_incidents = BTreeMap::<String, u64>::new();
        let cameras = self
            .cameras
            .iter()
            .map(|(id, camera)| {
                let total = totals[id];
                let before = previous.get(id).copied().unwrap_or_default();
                let incidents = lock(&camera.incidents).clone();
                for (algorithm, n) in &incidents {
                    *node_incidents.entry(algorithm.clone()).or_default() += n;
                }
                let analysed = total.frames_analysed - before.frames_analysed;
                let report = CameraReport {
                    state: lock(&camera.state).0,
                    fps_in: rate(total.frames_in - before.frames_in, seconds),
                    fps_analysed: rate(analysed, seconds),
                    inference_ms: (analysed > 0).then(|| {
                        round1(
                            (total.inference_us - before.inference_us) as f64
                                / 1e3
                                / analysed as f64,
                        )
                    }),
                    frames_in: total.frames_in,
                    frames_analysed: total.frames_analysed,
                    frames_dropped: total.frames_sampled.saturating_sub(total.frames_analysed),
                    incidents,
                };
                (id.clone(), report)
            })
            .collect();
        self.last = Some((now, totals));
        let payload = StatsPayload {
            schema: "cityeye.stats.v1",
            node: &self.node,
            at: rfc3339_millis(SystemTime::now()),
            uptime_s: now.duration_since(self.started).as_secs(),
            interval_s: round1(seconds),
            cameras,
            incidents: node_incidents,
            outbox,
        };
        serde_json::to_vec(&payload).expect("stats serialize")
    }
}

fn rate(count: u64, seconds: f64) -> f64 {
    round1(count as f64 / seconds)
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

#[derive(Serialize)]
struct StatsPayload<'a> {
    schema: &'static str,
    node: &'a str,
    at: String,
    uptime_s: u64,
    /// The seconds the rates cover.
    interval_s: f64,
    cameras: BTreeMap<String, CameraReport>,
    /// New incidents by algorithm since the node started, all cameras together.
    incidents: BTreeMap<String, u64>,
    outbox: OutboxStats,
}

#[derive(Serialize)]
struct CameraReport {
    state: &'static str,
    fps_in: f64,
    fps_analysed: f64,
    /// Mean time per analysed frame in the camera's models over the interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    inference_ms: Option<f64>,
    frames_in: u64,
    frames_analysed: u64,
    /// Frames sampled for analysis but replaced by a newer one before analysis got to them.
    frames_dropped: u64,
    incidents: BTreeMap<String, u64>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_report_has_rates_over_the_interval_and_totals_since_the_start() {
        let mut stats = NodeStats::new("edge-1", ["kerb", "gate"]);
        let kerb = stats.camera("kerb");
        kerb.set_state(&CameraState::Online { width: 768, height: 576 });
        kerb.frames_in.store(100, Ordering::Relaxed);
        kerb.frames_sampled.store(50, Ordering::Relaxed);
        kerb.frames_analysed.store(45, Ordering::Relaxed);
        kerb.add_inference(Duration::from_millis(45 * 12));
        kerb.count_incident("illegal_parking");
        stats.camera("gate").count_incident("illegal_parking");
        stats.camera("gate").count_incident("crowd_gathering");
        let outbox = OutboxStats { depth: 3, evidence_dropped: 1, ..OutboxStats::default() };
        let report: serde_json::Value = serde_json::from_slice(&stats.report(outbox)).unwrap();
        let camera = &report["cameras"]["kerb"];
        assert_eq!(camera["state"], "online");
        assert_eq!(camera["frames_dropped"], 5);
        assert_eq!(camera["inference_ms"], 12.0);
        assert!(camera["fps_in"].as_f64().unwrap() > 0.0);
        assert_eq!(report["cameras"]["gate"]["state"], "connecting");
        assert!(report["cameras"]["gate"].get("inference_ms").is_none(), "nothing analysed");
        assert_eq!(report["incidents"]["illegal_parking"], 2);
        assert_eq!(report["outbox"]["evidence_dropped"], 1);
        // Nothing new since: no frames in the next interval, totals unchanged.
        let report: serde_json::Value =
            serde_json::from_slice(&stats.report(OutboxStats::default())).unwrap();
        assert_eq!(report["cameras"]["kerb"]["fps_in"], 0.0);
        assert_eq!(report["cameras"]["kerb"]["frames_in"], 100);
    }
}
