//! Stats: the node's running counters, for the hub's dashboards and an installer's first look.
//!
//! Each stage adds to its camera's [`CameraStats`] as it works (plain atomics, no locks on the
//! frame path); the publish stage turns them into a `cityeye.stats.v1` payload on
//! `{prefix}/{node}/stats` every `mqtt.stats_interval_s`, with rates over the last interval and
//! totals since the node started. [`crate::http`] reads the same counters for `/metrics` and
//! `/healthz`.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant, SystemTime};

use crate::wire::{
    CameraReport, CameraState, LatencyReport, OutboxStats, StatsPayload, rfc3339_millis,
};

/// Upper bounds of the inference-time histogram's buckets, milliseconds.
const INFERENCE_BUCKETS_MS: [f64; 8] = [5.0, 10.0, 20.0, 40.0, 80.0, 160.0, 320.0, 1000.0];
/// Upper bounds of the publish latency histogram's buckets, milliseconds.
const LATENCY_BUCKETS_MS: [f64; 9] = [10.0, 25.0, 50.0, 100.0, 150.0, 250.0, 500.0, 1000.0, 5000.0];
/// Latencies kept between two stats reports for their percentiles; beyond, the rest only count
/// in the histogram.
const LATENCY_SAMPLES: usize = 65_536;

/// A histogram as it stands, for `/metrics`.
#[derive(Debug, Clone, PartialEq)]
pub struct Histogram {
    /// Each bucket's upper bound in seconds and the observations in it alone (not cumulative);
    /// the last bucket, above every bound, is `f64::INFINITY`'s.
    pub buckets: Vec<(f64, u64)>,
    pub sum_s: f64,
}

impl Histogram {
    /// From per-bucket counts under `bounds_ms`, the last count above them all.
    fn new(bounds_ms: &[f64], counts: impl Iterator<Item = u64>, sum_s: f64) -> Self {
        let bounds = bounds_ms.iter().map(|ms| ms / 1e3).chain([f64::INFINITY]);
        Histogram { buckets: bounds.zip(counts).collect(), sum_s }
    }

    /// Observations in all buckets.
    pub fn count(&self) -> u64 {
        self.buckets.iter().map(|(_, n)| n).sum()
    }
}

/// Frame-to-broker latencies of incident messages.
#[derive(Debug, Default)]
struct Latency {
    /// Since the start, per `LATENCY_BUCKETS_MS` bucket.
    buckets: [u64; LATENCY_BUCKETS_MS.len() + 1],
    sum_s: f64,
    /// Since the last report, milliseconds.
    recent: Vec<f64>,
}

impl Latency {
    fn add(&mut self, took: Duration) {
        let ms = took.as_secs_f64() * 1e3;
        let bucket = LATENCY_BUCKETS_MS.iter().position(|b| ms <= *b);
        self.buckets[bucket.unwrap_or(LATENCY_BUCKETS_MS.len())] += 1;
        self.sum_s += took.as_secs_f64();
        if self.recent.len() < LATENCY_SAMPLES {
            self.recent.push(ms);
        }
    }

    /// Percentiles of the latencies since the last call, which starts a new interval.
    fn report(&mut self) -> Option<LatencyReport> {
        let mut recent = std::mem::take(&mut self.recent);
        recent.sort_by(f64::total_cmp);
        let at = |q: f64| round1(recent[((recent.len() - 1) as f64 * q).round() as usize]);
        (!recent.is_empty()).then(|| LatencyReport {
            count: recent.len(),
            p50: at(0.5),
            p99: at(0.99),
            max: at(1.0),
        })
    }
}

/// One camera's counters since the node started.
#[derive(Debug, Default)]
pub struct CameraStats {
    /// Frames decoded from the stream.
    pub frames_in: AtomicU64,
    pub frames_analysed: AtomicU64,
    /// Delta frames dropped before the decoder (`decode = "keyframes"` or `auto`): never
    /// decoded.
    pub frames_skipped: AtomicU64,
    /// Whether the camera decodes key frames only now.
    pub keyframes_only: AtomicBool,
    /// Frames sampled for analysis (at `analysis_fps`) but replaced by a newer one first.
    pub frames_dropped: AtomicU64,
    /// Analysed frames the motion gate spared the detectors (`analysis.motion_gate`).
    pub frames_gated: AtomicU64,
    /// Time spent running the camera's models, in microseconds.
    pub inference_us: AtomicU64,
    /// Analysed frames by time taken: at most `INFERENCE_BUCKETS_MS[i]`, the last one more.
    inference_buckets: [AtomicU64; INFERENCE_BUCKETS_MS.len() + 1],
    state: Mutex<StateName>,
    /// When the camera's loop last showed it was not stuck (see [`crate::systemd`]).
    heartbeat: Heartbeat,
    /// New incidents (starts) by algorithm.
    incidents: Mutex<BTreeMap<String, u64>>,
    /// Incidents a suppression kept from starting (an operator's earlier `false_positive`).
    pub incidents_suppressed: AtomicU64,
    /// A patrolled camera's visits.
    visits: Mutex<Visits>,
}

/// A patrolled camera's visits so far.
#[derive(Debug, Default, Clone, Copy)]
struct Visits {
    count: u64,
    last_start: Option<Instant>,
    /// From the start of the visit before the last to the start of the last.
    revisit_s: Option<f64>,
}

impl CameraStats {
    pub fn set_state(&self, state: &CameraState) {
        *lock(&self.state) = StateName(match state {
            CameraState::Connecting => "connecting",
            CameraState::Online { .. } => "online",
            CameraState::Offline { .. } => "offline",
            CameraState::Standby { .. } => "standby",
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

    /// `connecting`, `online` or `offline`.
    pub fn state(&self) -> &'static str {
        lock(&self.state).0
    }

    /// A patrolled camera's visit begins: returns the time since the previous one began (the
    /// real revisit period), from the second visit on.
    pub fn start_visit(&self) -> Option<f64> {
        let mut visits = lock(&self.visits);
        let now = Instant::now();
        visits.count += 1;
        visits.revisit_s = visits.last_start.map(|last| now.duration_since(last).as_secs_f64());
        visits.last_start = Some(now);
        visits.revisit_s
    }

    pub fn count_incident(&self, algorithm: &str) {
        *lock(&self.incidents).entry(algorithm.to_string()).or_default() += 1;
    }

    /// New incidents (starts) so far, of every algorithm.
    pub fn incidents_started(&self) -> u64 {
        lock(&self.incidents).values().sum()
    }

    /// New incidents (starts) so far, by algorithm.
    pub fn incidents_by_algorithm(&self) -> BTreeMap<String, u64> {
        lock(&self.incidents).clone()
    }

    pub fn add_inference(&self, took: Duration) {
        self.inference_us.fetch_add(took.as_micros() as u64, Ordering::Relaxed);
        let ms = took.as_secs_f64() * 1e3;
        let bucket = INFERENCE_BUCKETS_MS.iter().position(|b| ms <= *b);
        self.inference_buckets[bucket.unwrap_or(INFERENCE_BUCKETS_MS.len())]
            .fetch_add(1, Ordering::Relaxed);
    }

    /// Analysed frames by the time taken in the camera's models, tracker and rules.
    pub fn inference_histogram(&self) -> Histogram {
        let counts = self.inference_buckets.iter().map(|b| b.load(Ordering::Relaxed));
        let sum_s = self.inference_us.load(Ordering::Relaxed) as f64 / 1e6;
        Histogram::new(&INFERENCE_BUCKETS_MS, counts, sum_s)
    }

    fn totals(&self) -> Totals {
        Totals {
            frames_in: self.frames_in.load(Ordering::Relaxed),
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
    frames_analysed: u64,
    inference_us: u64,
}

/// The node's stats: its cameras' counters, what the publish stage reports of the outbox and
/// the broker, and the totals of the last report (for rates).
pub struct NodeStats {
    node: String,
    started: Instant,
    /// Changes only when a reloaded config adds or removes cameras.
    cameras: RwLock<BTreeMap<String, Arc<CameraStats>>>,
    outbox: Mutex<OutboxStats>,
    latency: Mutex<Latency>,
    mqtt_connected: AtomicBool,
    /// Corrupt outboxes set aside at the start (see `publish::Outbox::open_recovering`).
    outbox_recovered: AtomicU64,
    /// Operators' verdicts since the start, by verdict.
    verdicts: Mutex<BTreeMap<String, u64>>,
    /// Suppressions in force.
    suppressions: AtomicU64,
    /// When the broker last answered: reported as `last_seen_at`.
    broker_seen_at: Mutex<Option<SystemTime>>,
    last: Mutex<Option<(Instant, BTreeMap<String, Totals>)>>,
}

impl NodeStats {
    pub fn new<'a>(node: &str, cameras: impl IntoIterator<Item = &'a str>) -> Self {
        NodeStats {
            node: node.to_string(),
            started: Instant::now(),
            cameras: RwLock::new(
                cameras.into_iter().map(|id| (id.to_string(), Arc::default())).collect(),
            ),
            outbox: Mutex::default(),
            latency: Mutex::default(),
            mqtt_connected: AtomicBool::new(false),
            outbox_recovered: AtomicU64::new(0),
            verdicts: Mutex::default(),
            suppressions: AtomicU64::new(0),
            broker_seen_at: Mutex::default(),
            last: Mutex::new(None),
        }
    }

    pub fn node(&self) -> &str {
        &self.node
    }

    /// Since the node started.
    pub fn uptime(&self) -> Duration {
        self.started.elapsed()
    }

    pub fn set_outbox(&self, outbox: OutboxStats) {
        *lock(&self.outbox) = outbox;
    }

    /// What the publish stage last reported of the outbox.
    pub fn outbox(&self) -> OutboxStats {
        *lock(&self.outbox)
    }

    /// The broker acknowledged an incident message `took` after its frame arrived.
    pub fn add_publish_latency(&self, took: Duration) {
        lock(&self.latency).add(took);
    }

    /// Frame-to-broker latencies of incident messages since the node started.
    pub fn publish_latency(&self) -> Histogram {
        let latency = lock(&self.latency);
        Histogram::new(&LATENCY_BUCKETS_MS, latency.buckets.iter().copied(), latency.sum_s)
    }

    /// A corrupt outbox was set aside and a fresh one started.
    pub fn count_outbox_recovery(&self) {
        self.outbox_recovered.fetch_add(1, Ordering::Relaxed);
    }

    pub fn outbox_recoveries(&self) -> u64 {
        self.outbox_recovered.load(Ordering::Relaxed)
    }

    /// An operator's verdict (`confirmed`, `false_positive`) was applied.
    pub fn count_verdict(&self, verdict: &str) {
        *lock(&self.verdicts).entry(verdict.to_string()).or_default() += 1;
    }

    /// Verdicts applied since the start, by verdict.
    pub fn verdicts(&self) -> BTreeMap<String, u64> {
        lock(&self.verdicts).clone()
    }

    pub fn set_suppressions(&self, in_force: usize) {
        self.suppressions.store(in_force as u64, Ordering::Relaxed);
    }

    /// Suppressions in force.
    pub fn suppressions(&self) -> u64 {
        self.suppressions.load(Ordering::Relaxed)
    }

    pub fn set_mqtt_connected(&self, connected: bool) {
        self.mqtt_connected.store(connected, Ordering::Relaxed);
    }

    pub fn mqtt_connected(&self) -> bool {
        self.mqtt_connected.load(Ordering::Relaxed)
    }

    /// The broker answered just now.
    pub fn broker_seen(&self) {
        *lock(&self.broker_seen_at) = Some(SystemTime::now());
    }

    /// The counters camera `id` adds to.
    pub fn camera(&self, id: &str) -> Arc<CameraStats> {
        self.cameras.read().unwrap_or_else(|e| e.into_inner()).get(id).cloned().unwrap_or_default()
    }

    /// After a config reload: counters for new cameras, none for removed ones; the others
    /// keep counting.
    pub fn set_cameras<'a>(&self, ids: impl IntoIterator<Item = &'a str>) {
        let mut cameras = self.cameras.write().unwrap_or_else(|e| e.into_inner());
        let mut next = BTreeMap::new();
        for id in ids {
            next.insert(id.to_string(), cameras.remove(id).unwrap_or_default());
        }
        *cameras = next;
    }

    /// The cameras and their counters now, by id.
    pub fn cameras(&self) -> BTreeMap<String, Arc<CameraStats>> {
        self.cameras.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// The `cityeye.stats.v1` payload now; rates cover the time since the previous report.
    pub fn report(&self) -> Vec<u8> {
        let now = Instant::now();
        let all = self.cameras();
        let totals: BTreeMap<String, Totals> =
            all.iter().map(|(id, c)| (id.clone(), c.totals())).collect();
        let mut last = lock(&self.last);
        let (since, previous) = match last.take() {
            Some((at, previous)) => (at, previous),
            None => (self.started, BTreeMap::new()),
        };
        let seconds = now.duration_since(since).as_secs_f64().max(1e-3);
        let mut node_incidents = BTreeMap::<String, u64>::new();
        let cameras = all
            .iter()
            .map(|(id, camera)| {
                let total = totals[id];
                let before = previous.get(id).copied().unwrap_or_default();
                let incidents = lock(&camera.incidents).clone();
                let visits = *lock(&camera.visits);
                for (algorithm, n) in &incidents {
                    *node_incidents.entry(algorithm.clone()).or_default() += n;
                }
                let analysed = total.frames_analysed - before.frames_analysed;
                let report = CameraReport {
                    state: camera.state(),
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
                    frames_skipped: camera.frames_skipped.load(Ordering::Relaxed),
                    decoding: match camera.keyframes_only.load(Ordering::Relaxed) {
                        true => "keyframes",
                        false => "all",
                    },
                    frames_dropped: camera.frames_dropped.load(Ordering::Relaxed),
                    frames_gated: camera.frames_gated.load(Ordering::Relaxed),
                    visits: (visits.count > 0).then_some(visits.count),
                    revisit_s: visits.revisit_s.map(round1),
                    incidents,
                    incidents_suppressed: camera.incidents_suppressed.load(Ordering::Relaxed),
                };
                (id.clone(), report)
            })
            .collect();
        *last = Some((now, totals));
        let payload = StatsPayload {
            schema: "cityeye.stats.v1",
            node: &self.node,
            at: rfc3339_millis(SystemTime::now()),
            uptime_s: now.duration_since(self.started).as_secs(),
            last_seen_at: lock(&self.broker_seen_at).map(rfc3339_millis),
            interval_s: round1(seconds),
            cameras,
            incidents: node_incidents,
            verdicts: self.verdicts(),
            suppressions: self.suppressions(),
            outbox: *lock(&self.outbox),
            latency_ms: lock(&self.latency).report(),
        };
        serde_json::to_vec(&payload).expect("stats serialize")
    }
}

impl NodeStats {
    /// The first camera whose loop has not marked itself alive for longer than `limit`, and
    /// for how long.
    pub fn stuck_camera(&self, limit: Duration) -> Option<(String, Duration)> {
        self.cameras().into_iter().find_map(|(id, camera)| {
            let quiet = camera.quiet_for();
            (quiet > limit).then_some((id, quiet))
        })
    }

    /// Each camera's id and state (`connecting`, `online` or `offline`), by id.
    pub fn camera_states(&self) -> BTreeMap<String, &'static str> {
        self.cameras().into_iter().map(|(id, c)| (id, c.state())).collect()
    }
}

fn rate(count: u64, seconds: f64) -> f64 {
    round1(count as f64 / seconds)
}

fn round1(v: f64) -> f64 {
    (v * 10.0).round() / 10.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn publish_latency_is_reported_as_percentiles_and_a_histogram() {
        let stats = NodeStats::new("edge-1", ["kerb"]);
        for ms in 1..=100 {
            stats.add_publish_latency(Duration::from_millis(ms));
        }
        let report: serde_json::Value = serde_json::from_slice(&stats.report()).unwrap();
        let latency = &report["latency_ms"];
        assert_eq!(latency["count"], 100);
        assert_eq!((latency["p50"].as_f64(), latency["p99"].as_f64()), (Some(51.0), Some(99.0)));
        assert_eq!(latency["max"], 100.0);
        let again: serde_json::Value = serde_json::from_slice(&stats.report()).unwrap();
        assert!(again.get("latency_ms").is_none(), "a new interval starts empty");
        // The histogram keeps everything since the start.
        let histogram = stats.publish_latency();
        assert_eq!(histogram.count(), 100);
        assert_eq!(&histogram.buckets[..4], [(0.01, 10), (0.025, 15), (0.05, 25), (0.1, 50)]);
        assert_eq!(histogram.buckets.last(), Some(&(f64::INFINITY, 0)));
        assert!((histogram.sum_s - 5.05).abs() < 1e-9, "{histogram:?}");
    }

    #[test]
    fn a_report_has_rates_over_the_interval_and_totals_since_the_start() {
        let stats = NodeStats::new("edge-1", ["kerb", "gate"]);
        let kerb = stats.camera("kerb");
        kerb.set_state(&CameraState::Online { width: 768, height: 576 });
        kerb.frames_in.store(100, Ordering::Relaxed);
        kerb.frames_analysed.store(45, Ordering::Relaxed);
        kerb.frames_dropped.store(5, Ordering::Relaxed);
        kerb.add_inference(Duration::from_millis(45 * 12));
        kerb.count_incident("illegal_parking");
        stats.camera("gate").count_incident("illegal_parking");
        stats.camera("gate").count_incident("crowd_gathering");
        stats.set_outbox(OutboxStats { depth: 3, evidence_dropped: 1, ..OutboxStats::default() });
        let report: serde_json::Value = serde_json::from_slice(&stats.report()).unwrap();
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
        let report: serde_json::Value = serde_json::from_slice(&stats.report()).unwrap();
        assert_eq!(report["cameras"]["kerb"]["fps_in"], 0.0);
        assert_eq!(report["cameras"]["kerb"]["frames_in"], 100);
    }

    #[test]
    fn inference_times_fall_in_buckets_by_upper_bound() {
        let kerb = CameraStats::default();
        for ms in [4, 5, 12, 2000] {
            kerb.add_inference(Duration::from_millis(ms));
        }
        let histogram = kerb.inference_histogram();
        let counts: Vec<u64> = histogram.buckets.iter().map(|(_, n)| *n).collect();
        assert_eq!(counts, [2, 0, 1, 0, 0, 0, 0, 0, 1], "at most the bound, the last one above");
        let bounds: Vec<f64> = histogram.buckets.iter().map(|(b, _)| *b).collect();
        assert_eq!(bounds, [0.005, 0.01, 0.02, 0.04, 0.08, 0.16, 0.32, 1.0, f64::INFINITY]);
        assert_eq!((histogram.count(), histogram.sum_s), (4, 2.021));
    }

    #[test]
    fn a_camera_that_stopped_marking_itself_alive_is_stuck() {
        let stats = NodeStats::new("edge-1", ["a", "b"]);
        std::thread::sleep(Duration::from_millis(30));
        stats.camera("a").mark_alive();
        let (camera, _) = stats.stuck_camera(Duration::from_millis(20)).expect("b is stuck");
        assert_eq!(camera, "b");
        assert!(stats.stuck_camera(Duration::from_secs(5)).is_none());
    }
}
