//! `cityeye.incident.v1` (`schemas/incident.v1.json`): the message the central platform
//! receives for each incident's start, updates and end. A contract: field names do not change.

use serde::{Deserialize, Serialize};

use crate::geometry::LatLon;

pub const SCHEMA: &str = "cityeye.incident.v1";

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct IncidentPayload {
    pub schema: String,
    pub id: String,
    pub node: String,
    pub camera: String,
    pub algorithm: String,
    pub category: String,
    pub name_zh: String,
    pub name_en: String,
    pub severity: String,
    pub state: IncidentState,
    /// On an `end` that is not the condition ceasing: `false_positive` when an operator's
    /// verdict ended it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub zone: Option<String>,
    pub detected_at: String,
    pub stream_time_s: f64,
    pub objects: Vec<ObjectPayload>,
    #[serde(flatten)]
    pub facts: FactsPayload,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<EvidenceRef>,
    /// The camera's (first) model; `models` lists them all when there are several.
    pub model: ModelRef,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<ModelRef>,
    /// Drone cameras: where on the ground.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub geo: Option<GeoPayload>,
}

/// What the algorithm's primitive measured, where it applies.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FactsPayload {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub count: Option<usize>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ratio: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub line: Option<[[f32; 2]; 2]>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub direction: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub heading_deg: Option<f32>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub score: Option<f32>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum IncidentState {
    Start,
    Update,
    End,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ObjectPayload {
    pub track_id: u64,
    pub class: String,
    pub confidence: f32,
    /// `[x, y, w, h]`, normalized, top-left origin.
    pub bbox: [f32; 4],
    pub dwell_s: f64,
    /// A vehicle's plate, once read with confidence; absent when it could not be read (never a
    /// guess).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub plate: Option<PlatePayload>,
}

/// A vehicle's plate number, voted over the readings of its track.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlatePayload {
    /// Normalised: no separator, e.g. `皖ACJ218`.
    pub text: String,
    /// The mean confidence of the readings that gave it, 0..1.
    pub confidence: f32,
    /// How many readings gave it.
    pub reads: u32,
    /// Where the picture of the plate was published (`{prefix}/{node}/{camera}/evidence/{id}/
    /// plate/{track_id}`), on the first message that names this plate for this object.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub evidence: Option<EvidenceRef>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvidenceRef {
    pub topic: String,
    pub width: usize,
    pub height: usize,
    /// The incident's video clip, on the first message after it was written.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub clip: Option<ClipRef>,
    /// With `evidence.inline`, on the `start`: the snapshot JPEG itself, base64 (standard
    /// alphabet, padded); nothing is then published on `topic`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub jpeg_base64: Option<String>,
}

/// Where an incident's clip is on the node, and what it holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClipRef {
    pub path: String,
    pub duration_s: f64,
    pub size_bytes: u64,
    /// Seconds into the clip of the frame the incident started on.
    pub incident_at_s: f64,
    /// Where the MP4 was published, when clips are.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub topic: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRef {
    pub name: String,
    pub sha256: String,
}

/// The `geo` block of a drone camera's incident message.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GeoPayload {
    /// `ok`, `missing` (no sample yet), `stale` (none within `max_age_s` of the frame) or
    /// `incomplete` (the sample lacks a value a position needs).
    pub telemetry: String,
    /// `klv` or `mqtt`.
    pub source: String,
    /// Frame time minus the sample's time, seconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub age_s: Option<f64>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub platform: Option<PlatformPayload>,
    /// The ground altitude the projection used (the KLV frame centre's, or the config's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ground_altitude_m: Option<f64>,
    /// Where the image centre is by the drone's own reckoning (KLV), when it says.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub frame_centre: Option<LatLon>,
    /// Each of the incident's objects that has a ground position.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub objects: Vec<GroundPayload>,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlatformPayload {
    pub lat: f64,
    pub lon: f64,
    pub altitude_m: f64,
    pub heading_deg: f64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GroundPayload {
    pub track_id: u64,
    pub lat: f64,
    pub lon: f64,
    /// 1-sigma horizontal uncertainty, metres.
    pub uncertainty_m: f64,
}
