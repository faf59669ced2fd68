//! A drone camera's settings: where its telemetry comes from, how far to trust it, and its
//! geo-fence zones. Parsed as part of a camera's table in the node's config and checked with
//! the rest of it (`validate.rs`), every mistake naming its key.

use std::collections::BTreeMap;

use serde::{Deserialize, Deserializer};

use super::camera::outline_problem;
use super::mqtt::{BrokerUrl, parse_broker_url};
use crate::geometry::{GeoPolygon, LatLon};

/// What a camera is mounted on.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum CameraKind {
    /// A camera that stays put: zones are image polygons.
    #[default]
    Fixed,
    /// A camera that flies: incidents are placed on the ground from its telemetry, and zones
    /// are geo-fences.
    Drone,
}

/// Where a drone's telemetry comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum TelemetrySource {
    /// MISB ST 0601 KLV in the stream itself (the template's element named `klv`).
    Klv,
    /// JSON on an MQTT topic, its fields found by JSON pointers.
    Mqtt,
}

/// `[cameras.telemetry]`.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TelemetryConfig {
    pub source: TelemetrySource,
    /// A sample further than this from a frame's time does not place it.
    #[serde(default = "default_max_age_s")]
    pub max_age_s: f64,
    /// The ground's altitude in the datum of the telemetry's altitude: above sea level for
    /// KLV (the take-off point's), 0 when the altitude counts from the take-off point. A KLV
    /// frame-centre elevation replaces it.
    #[serde(default)]
    pub ground_altitude_m: f64,
    /// The image's fields of view when the telemetry does not carry them; the vertical one is
    /// derived from the horizontal one and the frame's shape when absent.
    pub hfov_deg: Option<f64>,
    pub vfov_deg: Option<f64>,
    /// How far the telemetry is trusted (1 sigma), for each position's uncertainty.
    #[serde(default = "default_angle_sigma_deg")]
    pub angle_sigma_deg: f64,
    #[serde(default = "default_altitude_sigma_m")]
    pub altitude_sigma_m: f64,
    #[serde(default = "default_position_sigma_m")]
    pub position_sigma_m: f64,
    /// MQTT: the broker (plain `mqtt://host:port`; the node's `mqtt.url` when absent), the
    /// topic, and where each value is in its JSON.
    #[serde(default, deserialize_with = "optional_broker_url")]
    pub broker: Option<BrokerUrl>,
    pub topic: Option<String>,
    #[serde(default)]
    pub fields: BTreeMap<String, String>,
}

/// The values an MQTT telemetry message can give, by the name `fields` maps.
pub const FIELDS: [&str; 12] = [
    "latitude",
    "longitude",
    "altitude",
    "heading",
    "pitch",
    "roll",
    "gimbal_pitch",
    "gimbal_yaw",
    "gimbal_roll",
    "hfov",
    "vfov",
    "timestamp_ms",
];
/// Those a position cannot do without.
pub(super) const REQUIRED_FIELDS: [&str; 5] =
    ["latitude", "longitude", "altitude", "heading", "gimbal_pitch"];

impl TelemetryConfig {
    /// One line for `cityeye check`: the source and the settings in force.
    pub fn describe(&self, node_broker: &BrokerUrl) -> String {
        let source = match self.source {
            TelemetrySource::Klv => "KLV (MISB ST 0601) in the stream".to_string(),
            TelemetrySource::Mqtt => {
                let b = self.broker.as_ref().unwrap_or(node_broker);
                let fields: Vec<String> =
                    self.fields.iter().map(|(k, v)| format!("{k} = {v}")).collect();
                format!(
                    "MQTT {} on mqtt://{}:{} ({})",
                    self.topic.as_deref().unwrap_or_default(),
                    b.host,
                    b.port,
                    fields.join(", ")
                )
            }
        };
        format!(
            "{source}; max_age_s {}, ground_altitude_m {}; 1 sigma: angle {}°, altitude {} m, \
             position {} m",
            self.max_age_s,
            self.ground_altitude_m,
            self.angle_sigma_deg,
            self.altitude_sigma_m,
            self.position_sigma_m
        )
    }
}

fn default_max_age_s() -> f64 {
    1.0
}
fn default_angle_sigma_deg() -> f64 {
    1.0
}
fn default_altitude_sigma_m() -> f64 {
    2.0
}
fn default_position_sigma_m() -> f64 {
    3.0
}

fn optional_broker_url<'de, D: Deserializer<'de>>(d: D) -> Result<Option<BrokerUrl>, D::Error> {
    let text = String::deserialize(d)?;
    let url = parse_broker_url(&text).map_err(serde::de::Error::custom)?;
    if url.tls {
        return Err(serde::de::Error::custom(
            "telemetry over TLS is not supported yet: use an mqtt:// broker",
        ));
    }
    Ok(Some(url))
}

/// `geo_polygon = [[lat, lon], …]`: at least three WGS84 points.
pub fn geo_polygon<'de, D: Deserializer<'de>>(d: D) -> Result<Option<GeoPolygon>, D::Error> {
    let points = Vec::<[f64; 2]>::deserialize(d)?;
    if let Some((i, [lat, lon])) = points
        .iter()
        .enumerate()
        .find(|(_, [lat, lon])| !((-90.0..=90.0).contains(lat) && (-180.0..=180.0).contains(lon)))
    {
        return Err(serde::de::Error::custom(format!(
            "point {i} [{lat}, {lon}] is not a position: points are [latitude, longitude] in \
             degrees, latitude -90 to 90, longitude -180 to 180"
        )));
    }
    if let Some(problem) = outline_problem("geo_polygon", &points) {
        return Err(serde::de::Error::custom(problem));
    }
    Ok(Some(GeoPolygon(points.into_iter().map(|[lat, lon]| LatLon { lat, lon }).collect())))
}
