//! The published contracts: every payload the node puts on MQTT, and the topics they go to.
//! Each file mirrors a schema in `schemas/`; field names do not change. Like [`crate::config`],
//! this module imports nothing from the stages: they build these payloads.

pub mod incident;
pub mod stats;
pub mod status;
pub mod topics;
pub mod verdict;

use std::time::SystemTime;

use chrono::{DateTime, SecondsFormat, Utc};

pub use incident::{
    ClipRef, EvidenceRef, FactsPayload, GeoPayload, GroundPayload, IncidentPayload, IncidentState,
    ModelRef, ObjectPayload, PlatePayload, PlatformPayload, SCHEMA,
};
pub use stats::{CameraReport, LatencyReport, OutboxStats, StatsPayload};
pub use status::{CameraState, ConfigReport, ModelReport, camera_status, node_status};
pub use topics::Topics;
pub use verdict::{Verdict, VerdictPayload};

/// A time as the payloads write it: UTC, RFC 3339, milliseconds.
pub fn rfc3339_millis(at: SystemTime) -> String {
    DateTime::<Utc>::from(at).to_rfc3339_opts(SecondsFormat::Millis, true)
}

/// `v` to `decimals` places: payloads carry what is measured, not binary noise.
pub fn round(v: f64, decimals: i32) -> f64 {
    let scale = 10f64.powi(decimals);
    (v * scale).round() / scale
}
