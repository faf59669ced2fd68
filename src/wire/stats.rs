//! `cityeye.stats.v1` (`schemas/stats.v1.json`): the node's counters, published on
//! `{prefix}/{node}/stats` every `mqtt.stats_interval_s`.

use std::collections::BTreeMap;

use serde::Serialize;

/// What the outbox holds and what it had to drop, for the stats topic.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize)]
pub struct OutboxStats {
    /// Messages waiting for the broker's acknowledgement.
    pub depth: usize,
    /// Payload bytes of those on disk, and the cap.
    pub bytes: u64,
    pub max_bytes: u64,
    /// Evidence dropped since the node started: to keep under the cap, or too large for the
    /// broker even re-encoded smaller.
    pub evidence_dropped: u64,
    pub evidence_dropped_bytes: u64,
    /// Writes to disk that failed (full, read-only) since the node started.
    pub store_errors: u64,
}

/// The interval's latency percentiles in the stats report.
#[derive(Debug, Serialize)]
pub struct LatencyReport {
    pub count: usize,
    pub p50: f64,
    pub p99: f64,
    pub max: f64,
}

#[derive(Serialize)]
pub struct StatsPayload<'a> {
    pub schema: &'static str,
    pub node: &'a str,
    pub at: String,
    pub uptime_s: u64,
    /// When the node last heard from the broker (an acknowledgement, a keep-alive answer, a
    /// connection accepted): the link worked then. Absent before the first connection.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_seen_at: Option<String>,
    /// The seconds the rates cover.
    pub interval_s: f64,
    pub cameras: BTreeMap<String, CameraReport>,
    /// New incidents by algorithm since the node started, all cameras together.
    pub incidents: BTreeMap<String, u64>,
    /// Operators' verdicts applied since the node started, by verdict (`confirmed`,
    /// `false_positive`).
    pub verdicts: BTreeMap<String, u64>,
    /// Suppressions in force (each from a `false_positive` verdict).
    pub suppressions: u64,
    pub outbox: OutboxStats,
    /// Frame-to-broker latency of the incident messages acknowledged in the interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<LatencyReport>,
}

#[derive(Serialize)]
pub struct CameraReport {
    pub state: &'static str,
    pub fps_in: f64,
    pub fps_analysed: f64,
    /// Mean time per analysed frame in the camera's models over the interval.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub inference_ms: Option<f64>,
    /// Frames decoded.
    pub frames_in: u64,
    /// Delta frames dropped before the decoder: never decoded.
    pub frames_skipped: u64,
    /// `keyframes` while the camera decodes key frames only, else `all`.
    pub decoding: &'static str,
    pub frames_analysed: u64,
    /// Frames sampled for analysis but replaced by a newer one before analysis got to them.
    pub frames_dropped: u64,
    /// Analysed frames on which the motion gate spared the detectors.
    pub frames_gated: u64,
    /// A patrolled camera's visits since the start.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub visits: Option<u64>,
    /// A patrolled camera's real revisit period: from the start of its visit before the last
    /// to the start of its last, in seconds.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub revisit_s: Option<f64>,
    pub incidents: BTreeMap<String, u64>,
    /// New incidents a suppression kept from starting since the node started.
    pub incidents_suppressed: u64,
}
