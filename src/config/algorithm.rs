//! `[[cameras.algorithms]]`: a catalog algorithm switched on for a camera, as the file says
//! it ([`AlgorithmConfig`]) and as it runs, merged over its catalog entry ([`Algorithm`]).

use serde::{Deserialize, Deserializer};

use super::catalog::{self, Entry};
use super::params::{PARAMETERS, Params, PrimitiveKind, Severity};
use super::plates::PlatesConfig;

/// One algorithm enabled on a camera: a catalog entry (`type`), where it looks, its common
/// settings, and any primitive parameters that override the catalog's.
#[derive(Debug, Clone, PartialEq)]
pub struct AlgorithmConfig {
    /// The catalog id, e.g. `illegal_parking` (`cityeye algorithms` lists them).
    pub kind: String,
    /// The zone it watches; the whole frame when absent.
    pub zone: Option<String>,
    /// Replaces the catalog's classes.
    pub classes: Option<Vec<String>>,
    /// Detections below this are ignored by the rule; the model's `confidence` when absent.
    pub min_confidence: Option<f32>,
    /// Boxes smaller than this fraction of the frame are ignored.
    pub min_box_area: Option<f32>,
    /// Weekly windows when it is on duty, e.g. `["Mon-Fri 07:00-22:00"]`; always when absent.
    pub schedule: Option<Vec<String>>,
    pub cooldown_s: Option<f64>,
    pub severity: Option<Severity>,
    pub update_s: Option<f64>,
    /// Read the plate of every vehicle it looks at, not only of its incidents' (with `[plates]`).
    pub plates: bool,
    /// Plates exempt from this algorithm, beside the camera's and the node's `allow`.
    pub plate_allow: Vec<String>,
    pub params: Params,
}

/// The settings every algorithm takes; the remaining keys are primitive parameters.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct CommonSettings {
    #[serde(rename = "type")]
    kind: String,
    zone: Option<String>,
    classes: Option<Vec<String>>,
    min_confidence: Option<f32>,
    min_box_area: Option<f32>,
    schedule: Option<Vec<String>>,
    cooldown_s: Option<f64>,
    severity: Option<Severity>,
    update_s: Option<f64>,
    #[serde(default)]
    plates: bool,
    #[serde(default)]
    plate_allow: Vec<String>,
}

const COMMON_SETTINGS: [&str; 11] = [
    "type",
    "zone",
    "classes",
    "min_confidence",
    "min_box_area",
    "schedule",
    "cooldown_s",
    "severity",
    "update_s",
    "plates",
    "plate_allow",
];

/// An algorithm as a camera runs it: the camera's settings over its catalog entry's. This is
/// the one place the two meet; the config does it once per algorithm when the file loads
/// ([`CameraConfig::resolved`](super::CameraConfig::resolved)).
#[derive(Debug, Clone, PartialEq)]
pub struct Algorithm {
    pub entry: &'static Entry,
    /// The zone it watches; the whole frame when absent.
    pub zone: Option<String>,
    pub classes: Vec<String>,
    /// Detections below this are ignored by the rule; the camera's models' own confidence when
    /// absent.
    pub min_confidence: Option<f32>,
    pub min_box_area: f32,
    /// Weekly windows when it is on duty; always when empty.
    pub schedule: Vec<String>,
    pub cooldown_s: f64,
    pub severity: Severity,
    pub update_s: f64,
    pub plates: bool,
    /// Every plate exempt from it: its own, its camera's and the node's `allow` (for
    /// `plate_watch`, its own only).
    pub plate_allow: Vec<String>,
    pub params: Params,
}

impl AlgorithmConfig {
    /// The algorithm with the catalog's values wherever the camera sets none, and the node's
    /// plate lists (`plates`) and its camera's (`camera_allow`) merged in; `None` when `type`
    /// names no catalog entry (a config mistake, reported by validation).
    pub fn resolve(
        &self,
        plates: Option<&PlatesConfig>,
        camera_allow: &[String],
    ) -> Option<Algorithm> {
        let entry = catalog::find(&self.kind)?;
        let node_allow = plates.map(|p| &p.allow[..]).unwrap_or_default();
        let node_watch = plates.map(|p| &p.watch[..]).unwrap_or_default();
        let mut params = self.params.or(&entry.params);
        // The node's and camera's exemptions (service vehicles) do not blind a watch list; a
        // watch algorithm's own `plate_allow` are the exceptions to its patterns.
        let plate_allow = if entry.primitive == PrimitiveKind::PlateWatch {
            let mut watch = params.watch.take().unwrap_or_default();
            watch.extend(node_watch.iter().cloned());
            params.watch = Some(watch);
            self.plate_allow.clone()
        } else {
            let lists = [&self.plate_allow[..], camera_allow, node_allow];
            lists.concat()
        };
        Some(Algorithm {
            entry,
            zone: self.zone.clone(),
            classes: self.classes.clone().unwrap_or_else(|| entry.classes.clone()),
            min_confidence: self.min_confidence,
            min_box_area: self.min_box_area.unwrap_or(0.0),
            schedule: self.schedule.clone().unwrap_or_default(),
            cooldown_s: self.cooldown_s.unwrap_or(entry.cooldown_s),
            severity: self.severity.unwrap_or(entry.severity),
            update_s: self.update_s.unwrap_or(entry.update_s),
            plates: self.plates,
            plate_allow,
            params,
        })
    }
}

impl Algorithm {
    /// The classes a camera's models must provide for it: what it looks for and what it
    /// pairs with.
    pub fn needed_classes(&self) -> Vec<String> {
        let partners = self.params.partner_classes.iter().flatten().cloned();
        self.classes.iter().cloned().chain(partners).collect()
    }

    /// The classifier whose verdicts it reads: cascade algorithms only.
    pub fn classifier(&self) -> Option<&str> {
        self.params.classifier.as_deref().filter(|_| self.entry.primitive == PrimitiveKind::Cascade)
    }
}

impl<'de> Deserialize<'de> for AlgorithmConfig {
    /// The table splits in two: common settings and primitive parameters, each read with
    /// unknown keys refused (serde cannot refuse them across a flattened struct).
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let mut table = toml::Table::deserialize(d)?;
        let common: toml::Table = COMMON_SETTINGS
            .iter()
            .filter_map(|k| table.remove(*k).map(|v| (k.to_string(), v)))
            .collect();
        let c: CommonSettings = common.try_into().map_err(serde::de::Error::custom)?;
        // Name what this algorithm accepts, not every primitive's parameters.
        let accepted = catalog::find(&c.kind).map_or(&PARAMETERS[..], |e| e.primitive.parameters());
        if let Some(unknown) = table.keys().find(|k| !PARAMETERS.contains(&k.as_str())) {
            return Err(serde::de::Error::custom(format!(
                "unknown field `{unknown}`; this algorithm takes {} and {}",
                COMMON_SETTINGS.join(", "),
                accepted.join(", ")
            )));
        }
        let params: Params = table.try_into().map_err(serde::de::Error::custom)?;
        Ok(AlgorithmConfig {
            kind: c.kind,
            zone: c.zone,
            classes: c.classes,
            min_confidence: c.min_confidence,
            min_box_area: c.min_box_area,
            schedule: c.schedule,
            cooldown_s: c.cooldown_s,
            severity: c.severity,
            update_s: c.update_s,
            plates: c.plates,
            plate_allow: c.plate_allow,
            params,
        })
    }
}
