//! The node's configuration: one TOML file, parsed and validated before anything starts.
//!
//! Loading happens in two passes. The first deserializes the file; serde reports the first
//! mistake it meets (an unknown key, a wrong type, a polygon with two points) with the exact key
//! path, e.g. `cameras[1].zones[0].polygon`, and the line. The second checks what only the whole
//! file can tell (duplicate ids, a camera naming an unknown model or zone, files that do not
//! exist) and reports *every* problem it finds, so an installer fixes them in one go.
//! Relative paths are resolved against the config file's folder.

use std::collections::{BTreeMap, HashSet};
use std::fmt;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Deserializer};
use url::Url;

use crate::drone::config::{CameraKind, TelemetryConfig};
use crate::drone::geo::GeoPolygon;
use crate::geometry::{Point, Polygon};
use crate::infer::ModelKind;
use crate::rules::catalog;
use crate::rules::params::PARAMETERS;
use crate::rules::schedule::Schedule;
use crate::rules::{Params, PrimitiveKind, Severity};

/// One mistake in a config file: which file, which key, and what is wrong.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigError {
    pub file: PathBuf,
    pub key: String,
    pub line: Option<usize>,
    pub message: String,
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some(line) = self.line {
            write!(f, ":{line}")?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

/// All the mistakes found in one config file.
#[derive(Debug, Clone, PartialEq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub node: NodeConfig,
    #[serde(default)]
    pub mqtt: MqttConfig,
    #[serde(default)]
    pub outbox: OutboxConfig,
    #[serde(default)]
    pub evidence: EvidenceConfig,
    #[serde(default)]
    pub http: HttpConfig,
    #[serde(default)]
    pub analysis: AnalysisConfig,
    #[serde(default)]
    pub models: Vec<ModelConfig>,
    #[serde(default)]
    pub cameras: Vec<CameraConfig>,
    /// The file this was loaded from, for error messages.
    #[serde(skip)]
    pub path: PathBuf,
    /// SHA-256 of the file's text: which version of the config a node runs.
    #[serde(skip)]
    pub sha256: String,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub id: String,
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct MqttConfig {
    #[serde(deserialize_with = "broker_url")]
    pub url: BrokerUrl,
    pub topic_prefix: String,
    /// Start an MQTT broker inside this process, listening on `url`'s host and port.
    pub embedded_broker: bool,
    pub username: Option<String>,
    /// A file holding the password, so the config itself never carries it.
    pub password_file: Option<PathBuf>,
    pub client_id: Option<String>,
    pub keep_alive_s: u64,
    /// `"5"` (the default) or `"3.1.1"` for brokers that do not speak MQTT 5.
    #[serde(deserialize_with = "mqtt_version")]
    pub version: MqttVersion,
    /// With `mqtts://`: the CA that signed the broker's certificate (PEM); the system's roots
    /// when absent.
    pub ca_file: Option<PathBuf>,
    /// With `mqtts://`: a client certificate and its key (PEM), for brokers that ask for one.
    pub cert_file: Option<PathBuf>,
    pub key_file: Option<PathBuf>,
    /// How often the node publishes `{prefix}/{node}/stats`.
    pub stats_interval_s: u64,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MqttVersion {
    V5,
    V311,
}

/// The durable outbox of undelivered incidents under `node.data_dir`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct OutboxConfig {
    /// Bytes on disk at most (`1073741824` or `"1 GiB"`); when full, the evidence of the oldest
    /// undelivered incidents goes first, never an incident itself.
    #[serde(deserialize_with = "byte_size")]
    pub max_bytes: u64,
}

impl Default for OutboxConfig {
    fn default() -> Self {
        OutboxConfig { max_bytes: 1 << 30 }
    }
}

/// The node's HTTP endpoints: `/metrics`, `/healthz`.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub enabled: bool,
    /// Address and port; loopback by default, since the endpoints have no authentication.
    #[serde(deserialize_with = "socket_address")]
    pub listen: std::net::SocketAddr,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig { enabled: true, listen: ([127, 0, 0, 1], 8630).into() }
    }
}

fn socket_address<'de, D: Deserializer<'de>>(d: D) -> Result<std::net::SocketAddr, D::Error> {
    let text = String::deserialize(d)?;
    text.parse().map_err(|_| {
        serde::de::Error::custom(format!(
            "`{text}` is not an address and port such as \"127.0.0.1:8630\" or \"[::]:8630\""
        ))
    })
}

/// How cameras' frames are analysed.
#[derive(Debug, Clone, Default, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct AnalysisConfig {
    /// Skip the detector on frames that show no change inside the camera's zones since it last
    /// ran (at least every 5 s it runs anyway); for fixed cameras. See `src/motion.rs`.
    pub motion_gate: bool,
}

/// What each incident carries besides its JSON: the annotated snapshot and a video clip.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct EvidenceConfig {
    /// Keep a clip of the camera's own encoded stream around each incident.
    pub clips: bool,
    /// Seconds of video before the incident's frame, and after it.
    pub clip_pre_s: f64,
    pub clip_post_s: f64,
    /// Also send each clip over MQTT, on `{prefix}/{node}/{camera}/evidence/{id}/clip`.
    pub publish_clips: bool,
    /// Clips older than this are deleted.
    pub retain_days: f64,
    /// Bytes of clips on disk at most (`"10 GiB"`); the oldest go first.
    #[serde(deserialize_with = "byte_size")]
    pub max_bytes: u64,
}

impl Default for EvidenceConfig {
    fn default() -> Self {
        EvidenceConfig {
            clips: true,
            clip_pre_s: 5.0,
            clip_post_s: 10.0,
            publish_clips: false,
            retain_days: 30.0,
            max_bytes: 10 << 30,
        }
    }
}

impl Default for MqttConfig {
    fn default() -> Self {
        MqttConfig {
            url: BrokerUrl { tls: false, host: "127.0.0.1".into(), port: 1883 },
            topic_prefix: "cityeye".into(),
            embedded_broker: false,
            username: None,
            password_file: None,
            client_id: None,
            keep_alive_s: 30,
            version: MqttVersion::V5,
            ca_file: None,
            cert_file: None,
            key_file: None,
            stats_interval_s: 30,
        }
    }
}

/// Where the MQTT broker is: `mqtt://host:port` or `mqtts://host:port`.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerUrl {
    pub tls: bool,
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub name: String,
    pub path: PathBuf,
    /// `yolox`, `yolov5`, `yolov8`/`yolo11` for detectors; `classifier` for the second stage of
    /// cascade algorithms.
    #[serde(deserialize_with = "model_format")]
    pub format: ModelKind,
    pub classes: ClassList,
    /// Renames the model's classes to canonical names, e.g. `{ "garbage_pile" = "garbage" }`:
    /// algorithms look for canonical names (COCO's where COCO has the class).
    #[serde(default)]
    pub class_map: BTreeMap<String, String>,
    /// `[width, height]`; taken from the model when absent and the model's input is fixed.
    pub input_size: Option<[usize; 2]>,
    #[serde(default = "default_confidence")]
    pub confidence: f32,
    #[serde(default = "default_nms_iou")]
    pub nms_iou: f32,
    /// Boxes of different classes overlapping more than this are one object with two labels:
    /// the lower-scoring one is dropped. 1 keeps them all (pure class-wise NMS).
    #[serde(default = "default_cross_class_iou")]
    pub cross_class_iou: f32,
    /// ONNX Runtime intra-op threads. One leaves the other core to GStreamer's decoders, which
    /// measured more frames/s on a 2-core box than two inference threads.
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// Sessions of the model run side by side, so cameras sharing it (and one camera's next
    /// frame) need not wait for each other; one per `threads` cores when absent.
    pub sessions: Option<usize>,
    /// Expected SHA-256 of the model file; a mismatch (wrong or corrupt file) is a config error.
    pub sha256: Option<String>,
}

/// A model's class names: a file with one name per line, or an inline array.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged, expecting = "a class file path or a list of class names")]
pub enum ClassList {
    Inline(Vec<String>),
    File(PathBuf),
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct CameraConfig {
    pub id: String,
    #[serde(deserialize_with = "camera_source")]
    pub url: Source,
    /// A built-in template (`rtsp`, `file`, `test`) or the path of a template file.
    pub pipeline: Option<String>,
    #[serde(default = "default_analysis_fps")]
    pub analysis_fps: f64,
    /// The detector models whose detections are tracked together: `model = "coco"` or
    /// `models = ["coco", "city"]`.
    #[serde(alias = "model", deserialize_with = "one_or_many")]
    pub models: Vec<String>,
    #[serde(default)]
    pub zones: Vec<ZoneConfig>,
    #[serde(default)]
    pub algorithms: Vec<AlgorithmConfig>,
    /// `fixed` (the default) or `drone`: see [`crate::drone`].
    #[serde(default)]
    pub kind: CameraKind,
    pub telemetry: Option<TelemetryConfig>,
    /// A drone's incident seen again within this many metres and its algorithm's `cooldown_s`
    /// updates the open incident instead of starting another.
    pub dedup_radius_m: Option<f64>,
}

impl ModelConfig {
    /// How many sessions of the model to run: `sessions`, or as many as the cores hold at
    /// `threads` each.
    pub fn session_count(&self) -> usize {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        self.sessions.unwrap_or((cores / self.threads.max(1)).max(1))
    }
}

impl CameraConfig {
    /// The polygon of the zone called `name`.
    pub fn zone(&self, name: &str) -> Option<&Polygon> {
        self.zones.iter().find(|z| z.name == name).map(|z| &z.polygon)
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ZoneConfig {
    pub name: String,
    /// Empty for a geo-fence.
    #[serde(default, deserialize_with = "polygon")]
    pub polygon: Polygon,
    /// A drone camera's zone: `[[lat, lon], …]` on the ground.
    #[serde(default, deserialize_with = "crate::drone::config::geo_polygon")]
    pub geo_polygon: Option<GeoPolygon>,
}

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
}

const COMMON_SETTINGS: [&str; 9] = [
    "type",
    "zone",
    "classes",
    "min_confidence",
    "min_box_area",
    "schedule",
    "cooldown_s",
    "severity",
    "update_s",
];

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
            params,
        })
    }
}

/// Where a camera's video comes from, parsed from its `url`.
#[derive(Debug, Clone, PartialEq)]
pub enum Source {
    /// An RTSP stream; credentials are kept apart so they never reach a log.
    Rtsp { url: Url, user: Option<String>, password: Option<String> },
    /// A local video file (`file:///abs/path` or `file://relative/to/config`).
    File { path: PathBuf },
    /// GStreamer's test pattern (`test://smpte?width=640&height=480&fps=10`).
    Test { pattern: String, width: u32, height: u32, fps: u32 },
    /// MPEG-TS over UDP or SRT (`udp://`, `srt://`), or RTMP (`rtmp://`): drone links.
    Stream { url: Url },
}

impl Source {
    /// The built-in pipeline template this kind of source uses unless the camera names one.
    pub fn default_pipeline(&self) -> &'static str {
        match self {
            Source::Rtsp { .. } => "rtsp",
            Source::File { .. } => "file",
            Source::Test { .. } => "test",
            Source::Stream { url } => match url.scheme() {
                "udp" => "udp-ts",
                "srt" => "srt-ts",
                _ => "rtmp",
            },
        }
    }

    /// The URL as it may be shown anywhere: the password replaced by `***`.
    pub fn masked(&self) -> String {
        match self {
            Source::Rtsp { url, user, password } => {
                let mut shown = url.clone();
                if let Some(user) = user {
                    let _ = shown.set_username(user);
                }
                if password.is_some() {
                    let _ = shown.set_password(Some("***"));
                }
                shown.to_string()
            }
            Source::File { path } => format!("file://{}", path.display()),
            Source::Test { pattern, width, height, fps } => {
                format!("test://{pattern}?width={width}&height={height}&fps={fps}")
            }
            Source::Stream { url } => self.redact(url.as_str()),
        }
    }

    /// `text` with this source's password, if any, replaced by `***` (for messages that quote
    /// a URL back, such as GStreamer's errors).
    pub fn redact(&self, text: &str) -> String {
        match self {
            Source::Rtsp { password: Some(p), .. } if !p.is_empty() => {
                text.replace(p.as_str(), "***")
            }
            // An SRT link's secret is its passphrase.
            Source::Stream { url } => match url.query_pairs().find(|(k, _)| k == "passphrase") {
                Some((_, p)) if !p.is_empty() => text.replace(p.as_ref(), "***"),
                _ => text.to_string(),
            },
            _ => text.to_string(),
        }
    }

    pub fn is_live(&self) -> bool {
        !matches!(self, Source::File { .. })
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/cityeye")
}
fn default_confidence() -> f32 {
    0.35
}
fn default_nms_iou() -> f32 {
    0.45
}
fn default_cross_class_iou() -> f32 {
    0.8
}
fn default_threads() -> usize {
    1
}
fn default_analysis_fps() -> f64 {
    5.0
}

fn one_or_many<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<String>, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged, expecting = "a model name or a list of model names")]
    enum OneOrMany {
        One(String),
        Many(Vec<String>),
    }
    Ok(match OneOrMany::deserialize(d)? {
        OneOrMany::One(name) => vec![name],
        OneOrMany::Many(names) => names,
    })
}

fn broker_url<'de, D: Deserializer<'de>>(d: D) -> Result<BrokerUrl, D::Error> {
    let text = String::deserialize(d)?;
    parse_broker_url(&text).map_err(serde::de::Error::custom)
}

pub(crate) fn parse_broker_url(text: &str) -> Result<BrokerUrl, String> {
    // The text is not echoed: it may hold a password.
    let url = Url::parse(text)
        .map_err(|e| format!("not a valid broker URL ({e}); expected mqtt://host:port"))?;
    let tls = match url.scheme() {
        "mqtt" | "tcp" => false,
        "mqtts" | "ssl" => true,
        other => return Err(format!("scheme `{other}` is not supported; use mqtt:// or mqtts://")),
    };
    let host = url.host_str().filter(|h| !h.is_empty()).ok_or("the URL has no host")?;
    if !url.username().is_empty() || url.password().is_some() {
        return Err(
            "credentials do not belong in the URL; use mqtt.username and mqtt.password_file".into(),
        );
    }
    let port = url.port().unwrap_or(if tls { 8883 } else { 1883 });
    Ok(BrokerUrl { tls, host: host.trim_matches(['[', ']']).to_string(), port })
}

fn mqtt_version<'de, D: Deserializer<'de>>(d: D) -> Result<MqttVersion, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged, expecting = "\"5\" or \"3.1.1\"")]
    enum Version {
        Number(u32),
        Text(String),
    }
    match Version::deserialize(d)? {
        Version::Number(5) => Ok(MqttVersion::V5),
        Version::Text(t) if t == "5" || t == "5.0" => Ok(MqttVersion::V5),
        Version::Text(t) if t == "3.1.1" => Ok(MqttVersion::V311),
        Version::Number(n) => Err(format!("unknown MQTT version {n}; use \"5\" or \"3.1.1\"")),
        Version::Text(t) => Err(format!("unknown MQTT version `{t}`; use \"5\" or \"3.1.1\"")),
    }
    .map_err(serde::de::Error::custom)
}

fn byte_size<'de, D: Deserializer<'de>>(d: D) -> Result<u64, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged, expecting = "a number of bytes or a size such as \"512 MiB\"")]
    enum Size {
        Bytes(u64),
        Text(String),
    }
    match Size::deserialize(d)? {
        Size::Bytes(n) => Ok(n),
        Size::Text(t) => parse_byte_size(&t).map_err(serde::de::Error::custom),
    }
}

/// `"512 MiB"`, `"1GB"`, `"4096"`: binary (KiB, MiB, GiB, TiB) or decimal (kB, MB, GB, TB).
fn parse_byte_size(text: &str) -> Result<u64, String> {
    let text = text.trim();
    let split = text.find(|c: char| !(c.is_ascii_digit() || c == '.')).unwrap_or(text.len());
    let (number, unit) = text.split_at(split);
    let number: f64 =
        number.parse().map_err(|_| format!("`{text}` is not a size such as \"512 MiB\""))?;
    let scale: u64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1,
        "kb" => 1_000,
        "mb" => 1_000_000,
        "gb" => 1_000_000_000,
        "tb" => 1_000_000_000_000,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        "tib" => 1 << 40,
        other => {
            return Err(format!("unknown size unit `{other}`; use B, KiB, MiB, GiB or kB, MB, GB"));
        }
    };
    Ok((number * scale as f64) as u64)
}

fn model_format<'de, D: Deserializer<'de>>(d: D) -> Result<ModelKind, D::Error> {
    let text = String::deserialize(d)?;
    ModelKind::parse(&text).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "unknown model format `{text}`; expected yolox, yolov5, yolov8, yolo11 or classifier"
        ))
    })
}

fn polygon<'de, D: Deserializer<'de>>(d: D) -> Result<Polygon, D::Error> {
    let points = Vec::<[f32; 2]>::deserialize(d)?;
    if points.len() < 3 {
        return Err(serde::de::Error::custom(format!(
            "a polygon needs at least 3 points, this one has {}",
            points.len()
        )));
    }
    if let Some((i, p)) =
        points.iter().enumerate().find(|(_, p)| p.iter().any(|c| !(0.0..=1.0).contains(c)))
    {
        return Err(serde::de::Error::custom(format!(
            "point {i} [{}, {}] is outside the image: coordinates are fractions of width and height, from 0 to 1",
            p[0], p[1]
        )));
    }
    Ok(Polygon::new(points.into_iter().map(|[x, y]| Point { x, y }).collect()))
}

fn camera_source<'de, D: Deserializer<'de>>(d: D) -> Result<Source, D::Error> {
    let text = String::deserialize(d)?;
    parse_source(&text).map_err(serde::de::Error::custom)
}

fn parse_source(text: &str) -> Result<Source, String> {
    // file:// is taken apart by hand: a URL parser would read a relative path's first folder
    // as a host name.
    if let Some(path) = text.strip_prefix("file://") {
        if path.is_empty() {
            return Err("a file:// URL needs a path".into());
        }
        return Ok(Source::File { path: PathBuf::from(path) });
    }
    let url = Url::parse(text).map_err(|e| {
        format!("not a valid camera URL ({e}); expected rtsp://, rtsps://, file:// or test://")
    })?;
    match url.scheme() {
        "rtsp" | "rtsps" => rtsp_source(url),
        "test" => test_source(&url),
        "udp" | "srt" | "rtmp" if url.host_str().is_some_and(|h| !h.is_empty()) => {
            Ok(Source::Stream { url })
        }
        "udp" | "srt" | "rtmp" => Err(format!("a {}:// URL needs a host", url.scheme())),
        other => Err(format!(
            "scheme `{other}` is not supported; use rtsp://, rtsps://, file://, test://, \
             udp://, srt:// or rtmp://"
        )),
    }
}

fn rtsp_source(mut url: Url) -> Result<Source, String> {
    if url.host_str().is_none_or(str::is_empty) {
        return Err("an RTSP URL needs a host".into());
    }
    let decode = |s: &str| {
        url::form_urlencoded::parse(format!("x={s}").as_bytes())
            .next()
            .map(|(_, v)| v.into_owned())
            .unwrap_or_default()
    };
    let user = Some(url.username()).filter(|u| !u.is_empty()).map(decode);
    let password = url.password().map(decode);
    let _ = url.set_username("");
    let _ = url.set_password(None);
    Ok(Source::Rtsp { url, user, password })
}

fn test_source(url: &Url) -> Result<Source, String> {
    let pattern = url.host_str().unwrap_or("smpte").to_string();
    let (mut width, mut height, mut fps) = (640, 480, 10);
    for (key, value) in url.query_pairs() {
        let slot = match key.as_ref() {
            "width" => &mut width,
            "height" => &mut height,
            "fps" => &mut fps,
            other => {
                return Err(format!("unknown test:// parameter `{other}`; use width, height, fps"));
            }
        };
        *slot =
            value.parse().ok().filter(|v| *v > 0).ok_or_else(|| {
                format!("test:// parameter `{key}` must be a positive whole number")
            })?;
    }
    Ok(Source::Test { pattern, width, height, fps })
}

/// The SHA-256 of `bytes`, in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

impl Config {
    /// Reads, parses and validates a config file. Every error names the file and the key.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            ConfigErrors(vec![ConfigError {
                file: path.to_path_buf(),
                key: String::new(),
                line: None,
                message: format!("cannot read the config file: {e}"),
            }])
        })?;
        Config::parse(&text, path)
    }

    /// Parses and validates config text as if read from `path` (used for relative paths and
    /// messages).
    pub fn parse(text: &str, path: &Path) -> Result<Config, ConfigErrors> {
        let mut config: Config = serde_path_to_error::deserialize(toml::Deserializer::new(text))
            .map_err(|e| ConfigErrors(vec![parse_error(e, text, path)]))?;
        config.path = path.to_path_buf();
        config.sha256 = sha256_hex(text.as_bytes());
        config.resolve_paths();
        let errors = config.validate();
        if errors.is_empty() { Ok(config) } else { Err(ConfigErrors(errors)) }
    }

    /// An error about `key` in this config.
    pub fn error(&self, key: impl Into<String>, message: impl Into<String>) -> ConfigError {
        ConfigError {
            file: self.path.clone(),
            key: key.into(),
            line: None,
            message: message.into(),
        }
    }

    pub fn model(&self, name: &str) -> Option<&ModelConfig> {
        self.models.iter().find(|m| m.name == name)
    }

    fn base_dir(&self) -> PathBuf {
        self.path.parent().map(Path::to_path_buf).unwrap_or_default()
    }

    fn resolve_paths(&mut self) {
        let base = self.base_dir();
        let resolve = |p: &mut PathBuf| {
            if p.is_relative() {
                *p = base.join(&*p);
            }
        };
        resolve(&mut self.node.data_dir);
        for p in [
            &mut self.mqtt.password_file,
            &mut self.mqtt.ca_file,
            &mut self.mqtt.cert_file,
            &mut self.mqtt.key_file,
        ]
        .into_iter()
        .flatten()
        {
            resolve(p);
        }
        for model in &mut self.models {
            resolve(&mut model.path);
            if let ClassList::File(p) = &mut model.classes {
                resolve(p);
            }
        }
        for camera in &mut self.cameras {
            if let Source::File { path } = &mut camera.url {
                resolve(path);
            }
            if let Some(p) =
                camera.pipeline.as_mut().filter(|p| !crate::ingest::is_builtin_template(p))
            {
                *p = base.join(&*p).to_string_lossy().into_owned();
            }
        }
    }

    fn validate(&self) -> Vec<ConfigError> {
        let mut errors = Vec::new();
        let mut check = |ok: bool, key: String, message: String| {
            if !ok {
                errors.push(self.error(key, message));
            }
        };
        check(is_topic_safe(&self.node.id), "node.id".into(), topic_safe_message(&self.node.id));
        check(
            is_topic_safe(&self.mqtt.topic_prefix),
            "mqtt.topic_prefix".into(),
            topic_safe_message(&self.mqtt.topic_prefix),
        );
        let mqtt_files = [
            ("password_file", &self.mqtt.password_file),
            ("ca_file", &self.mqtt.ca_file),
            ("cert_file", &self.mqtt.cert_file),
            ("key_file", &self.mqtt.key_file),
        ];
        for (name, file) in mqtt_files {
            if let Some(p) = file {
                check(
                    p.is_file(),
                    format!("mqtt.{name}"),
                    format!("file not found: {}", p.display()),
                );
            }
        }
        for (name, file) in &mqtt_files[1..] {
            check(
                file.is_none() || self.mqtt.url.tls,
                format!("mqtt.{name}"),
                "is only used with TLS: make mqtt.url mqtts://".into(),
            );
        }
        check(
            !(self.mqtt.embedded_broker && self.mqtt.url.tls),
            "mqtt.embedded_broker".into(),
            "the embedded broker does not speak TLS: use an mqtt:// url with it".into(),
        );
        check(
            self.mqtt.cert_file.is_some() == self.mqtt.key_file.is_some(),
            "mqtt.cert_file".into(),
            "a client certificate needs mqtt.key_file too, and a key its cert_file".into(),
        );
        check(
            self.mqtt.stats_interval_s >= 1,
            "mqtt.stats_interval_s".into(),
            "must be at least 1 second".into(),
        );
        check(
            self.outbox.max_bytes >= 64 << 10,
            "outbox.max_bytes".into(),
            "must be at least 64 KiB".into(),
        );
        for (name, value) in
            [("clip_pre_s", self.evidence.clip_pre_s), ("clip_post_s", self.evidence.clip_post_s)]
        {
            check(
                (0.0..=120.0).contains(&value),
                format!("evidence.{name}"),
                "must be between 0 and 120 seconds".into(),
            );
        }
        check(
            self.evidence.retain_days > 0.0,
            "evidence.retain_days".into(),
            "must be above 0".into(),
        );
        check(
            (5..=65_535).contains(&self.mqtt.keep_alive_s),
            "mqtt.keep_alive_s".into(),
            "must be between 5 and 65535 seconds".into(),
        );
        check(
            self.mqtt.password_file.is_none() || self.mqtt.username.is_some(),
            "mqtt.password_file".into(),
            "a password needs mqtt.username too".into(),
        );
        for (key, dup) in duplicates(self.models.iter().map(|m| m.name.as_str()), "models", "name")
        {
            check(false, key, format!("duplicate model name `{dup}`"));
        }
        for (i, model) in self.models.iter().enumerate() {
            errors.extend(self.validate_model(i, model));
        }
        for (key, dup) in duplicates(self.cameras.iter().map(|c| c.id.as_str()), "cameras", "id") {
            errors.push(self.error(key, format!("duplicate camera id `{dup}`")));
        }
        for (i, camera) in self.cameras.iter().enumerate() {
            errors.extend(self.validate_camera(i, camera));
        }
        errors
    }

    fn validate_model(&self, i: usize, model: &ModelConfig) -> Vec<ConfigError> {
        let key = |k: &str| format!("models[{i}].{k}");
        let mut errors = Vec::new();
        if !model.path.is_file() {
            errors.push(
                self.error(key("path"), format!("model file not found: {}", model.path.display())),
            );
        }
        match model.class_names() {
            Ok(names) if names.is_empty() => {
                errors.push(self.error(key("classes"), "the class list is empty"))
            }
            Ok(names) => {
                for from in model.class_map.keys().filter(|c| !names.contains(c)) {
                    errors.push(
                        self.error(
                            key("class_map"),
                            format!("`{from}` is not a class of this model"),
                        ),
                    );
                }
            }
            Err(e) => errors.push(self.error(key("classes"), e)),
        }
        if !(model.confidence > 0.0 && model.confidence <= 1.0) {
            errors.push(self.error(key("confidence"), "must be above 0 and at most 1"));
        }
        for (name, value) in
            [("nms_iou", model.nms_iou), ("cross_class_iou", model.cross_class_iou)]
        {
            if !(value > 0.0 && value <= 1.0) {
                errors.push(self.error(key(name), "must be above 0 and at most 1"));
            }
        }
        if model.threads == 0 {
            errors.push(self.error(key("threads"), "must be at least 1"));
        }
        if model.sessions.is_some_and(|n| !(1..=16).contains(&n)) {
            errors.push(self.error(key("sessions"), "must be 1 to 16"));
        }
        if let Some([w, h]) = model.input_size
            && (w == 0 || h == 0 || w % 32 != 0 || h % 32 != 0)
        {
            errors.push(
                self.error(key("input_size"), "width and height must be positive multiples of 32"),
            );
        }
        errors
    }

    fn validate_camera(&self, i: usize, camera: &CameraConfig) -> Vec<ConfigError> {
        let key = |k: &str| format!("cameras[{i}].{k}");
        let mut errors = Vec::new();
        if !is_topic_safe(&camera.id) {
            errors.push(self.error(key("id"), topic_safe_message(&camera.id)));
        }
        if let Source::File { path } = &camera.url
            && !path.is_file()
        {
            errors
                .push(self.error(key("url"), format!("video file not found: {}", path.display())));
        }
        if let Err(e) = crate::ingest::pipeline_description(camera, true) {
            errors.push(self.error(key("pipeline"), e));
        }
        if !(camera.analysis_fps > 0.0 && camera.analysis_fps <= 60.0) {
            errors.push(self.error(key("analysis_fps"), "must be above 0 and at most 60"));
        }
        if camera.models.is_empty() {
            errors.push(self.error(key("models"), "needs at least one model"));
        }
        let known: Vec<&str> = self.models.iter().map(|m| m.name.as_str()).collect();
        for name in &camera.models {
            match self.model(name) {
                None => errors.push(self.error(
                    key("models"),
                    format!("unknown model `{name}`; models defined: {}", list_or_none(&known)),
                )),
                Some(m) if m.format == ModelKind::Classifier => errors.push(self.error(
                    key("models"),
                    format!(
                        "`{name}` is a classifier: a camera's models are detectors; cascade \
                         algorithms name their classifier"
                    ),
                )),
                Some(_) => {}
            }
        }
        let zones = format!("cameras[{i}].zones");
        for (zkey, dup) in duplicates(camera.zones.iter().map(|z| z.name.as_str()), &zones, "name")
        {
            errors.push(self.error(zkey, format!("duplicate zone name `{dup}`")));
        }
        for (j, algorithm) in camera.algorithms.iter().enumerate() {
            errors.extend(self.validate_algorithm(i, camera, j, algorithm));
        }
        errors.extend(crate::drone::config::validate_camera(self, i, camera));
        errors
    }

    fn validate_algorithm(
        &self,
        i: usize,
        camera: &CameraConfig,
        j: usize,
        algorithm: &AlgorithmConfig,
    ) -> Vec<ConfigError> {
        let key = |k: &str| format!("cameras[{i}].algorithms[{j}].{k}");
        let mut errors = Vec::new();
        let Some(entry) = catalog::find(&algorithm.kind) else {
            return vec![self.error(
                key("type"),
                format!("unknown algorithm `{}`; `cityeye algorithms` lists them", algorithm.kind),
            )];
        };
        if let Some(zone) = &algorithm.zone
            && !camera.zones.iter().any(|z| &z.name == zone)
        {
            let known: Vec<&str> = camera.zones.iter().map(|z| z.name.as_str()).collect();
            errors.push(self.error(
                key("zone"),
                format!("unknown zone `{zone}`; zones of this camera: {}", list_or_none(&known)),
            ));
        }
        if algorithm.classes.as_ref().is_some_and(Vec::is_empty) {
            errors.push(self.error(key("classes"), "needs at least one class"));
        }
        let provided = self.provided_classes(camera);
        let missing: Vec<String> =
            entry.needed_classes(algorithm).into_iter().filter(|c| !provided.contains(c)).collect();
        if !missing.is_empty() && !provided.is_empty() {
            errors.push(self.error(
                key("classes"),
                format!(
                    "{} needs {}, which none of this camera's models ({}) provide; map a model's \
                     class onto it with class_map, or set classes",
                    entry.id,
                    missing.join(", "),
                    camera.models.join(", ")
                ),
            ));
        }
        if let Err(e) = Schedule::parse(algorithm.schedule.as_deref().unwrap_or_default()) {
            errors.push(self.error(key("schedule"), e));
        }
        for (name, value) in
            [("cooldown_s", algorithm.cooldown_s), ("update_s", algorithm.update_s)]
        {
            if value.is_some_and(|v| !(v.is_finite() && v >= 0.0)) {
                errors.push(self.error(key(name), "must be zero or more seconds"));
            }
        }
        for (name, value) in
            [("min_confidence", algorithm.min_confidence), ("min_box_area", algorithm.min_box_area)]
        {
            if value.is_some_and(|v| !(0.0..=1.0).contains(&v)) {
                errors.push(self.error(key(name), "must be between 0 and 1"));
            }
        }
        for (name, problem) in algorithm.params.or(&entry.params).problems(entry.primitive) {
            errors.push(self.error(key(name), problem));
        }
        if entry.primitive == PrimitiveKind::Cascade {
            errors.extend(self.validate_classifier(&key, &algorithm.params.or(&entry.params)));
        }
        if entry.primitive == PrimitiveKind::LineCross && algorithm.zone.is_some() {
            errors.push(
                self.error(key("zone"), "line_cross algorithms watch their line, not a zone"),
            );
        }
        errors
    }

    /// A cascade algorithm's `classifier` must be a classifier model having its `labels`.
    fn validate_classifier(
        &self,
        key: &dyn Fn(&str) -> String,
        params: &Params,
    ) -> Vec<ConfigError> {
        let Some(name) = &params.classifier else { return Vec::new() };
        let Some(model) = self.models.iter().find(|m| &m.name == name) else {
            let known: Vec<&str> = self
                .models
                .iter()
                .filter(|m| m.format == ModelKind::Classifier)
                .map(|m| m.name.as_str())
                .collect();
            return vec![self.error(
                key("classifier"),
                format!(
                    "no classifier model `{name}`; classifiers defined: {} (a [[models]] entry \
                     with format = \"classifier\")",
                    list_or_none(&known)
                ),
            )];
        };
        if model.format != ModelKind::Classifier {
            return vec![
                self.error(key("classifier"), format!("model `{name}` is not a classifier")),
            ];
        }
        let labels = model.canonical_class_names().unwrap_or_default();
        params
            .labels
            .iter()
            .flatten()
            .filter(|l| !labels.is_empty() && !labels.contains(l))
            .map(|l| {
                self.error(key("labels"), format!("`{l}` is not a label of classifier `{name}`"))
            })
            .collect()
    }

    /// The canonical classes a camera's models detect (after their class maps); empty when a
    /// model's class list cannot be read (reported on its own).
    fn provided_classes(&self, camera: &CameraConfig) -> Vec<String> {
        let mut provided = Vec::new();
        for model in camera.models.iter().filter_map(|m| self.model(m)) {
            match model.canonical_class_names() {
                Ok(names) => provided.extend(names),
                Err(_) => return Vec::new(),
            }
        }
        provided
    }
}

impl ModelConfig {
    /// The class names after `class_map`, in the model's class order.
    pub fn canonical_class_names(&self) -> Result<Vec<String>, String> {
        Ok(self
            .class_names()?
            .into_iter()
            .map(|c| self.class_map.get(&c).cloned().unwrap_or(c))
            .collect())
    }

    /// The class names, from the inline list or the class file (one per line, blank lines and
    /// `#` comments ignored).
    pub fn class_names(&self) -> Result<Vec<String>, String> {
        match &self.classes {
            ClassList::Inline(names) => Ok(names.clone()),
            ClassList::File(path) => std::fs::read_to_string(path)
                .map(|text| {
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .map(String::from)
                        .collect()
                })
                .map_err(|e| format!("cannot read class file {}: {e}", path.display())),
        }
    }
}

/// Turns serde's first error into a located config error, worded for an installer.
fn parse_error(
    e: serde_path_to_error::Error<toml::de::Error>,
    text: &str,
    path: &Path,
) -> ConfigError {
    let mut key = e.path().to_string();
    if key == "." {
        key.clear();
    }
    let inner = e.inner();
    let message = plain_types(&inner.message().trim().replace('\n', " "));
    // Values inside an algorithm table are read in a second pass whose errors end with
    // " in `key`": put the key where the installer looks for it.
    let (message, inner_key) = match message.rsplit_once(" in `") {
        Some((text, rest)) if rest.ends_with('`') => {
            (text.to_string(), Some(rest.trim_end_matches('`').to_string()))
        }
        _ => (message, None),
    };
    if let Some(inner) = inner_key {
        key = if key.is_empty() { inner } else { format!("{key}.{inner}") };
    }
    // serde_path_to_error names an unknown key itself at the end of the path; toml does not.
    if let Some(field) = message.strip_prefix("unknown field `").and_then(|m| m.split('`').next())
        && !key.ends_with(field)
    {
        key = if key.is_empty() { field.to_string() } else { format!("{key}.{field}") };
    }
    let line =
        inner.span().map(|span| text[..span.start.min(text.len())].matches('\n').count() + 1);
    ConfigError { file: path.to_path_buf(), key, line, message }
}

/// serde speaks of Rust types; an installer reads "a number".
fn plain_types(message: &str) -> String {
    [
        ("expected f64", "expected a number"),
        ("expected f32", "expected a number"),
        ("expected u64", "expected a whole number"),
        ("expected u32", "expected a whole number"),
        ("expected u16", "expected a whole number"),
        ("expected usize", "expected a whole number"),
        ("expected a boolean", "expected true or false"),
    ]
    .iter()
    .fold(message.to_string(), |m, (rust, plain)| m.replace(rust, plain))
}

/// `(key path, name)` for each name that repeats an earlier one.
fn duplicates<'a>(
    names: impl Iterator<Item = &'a str>,
    list: &str,
    field: &str,
) -> Vec<(String, &'a str)> {
    let mut seen = HashSet::new();
    names
        .enumerate()
        .filter(|(_, name)| !seen.insert(*name))
        .map(|(i, name)| (format!("{list}[{i}].{field}"), name))
        .collect()
}

/// Ids become MQTT topic levels and file names, so they keep to a plain alphabet.
fn is_topic_safe(id: &str) -> bool {
    !id.is_empty() && id.chars().all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
}

fn topic_safe_message(id: &str) -> String {
    format!("`{id}` cannot be an MQTT topic level: use ASCII letters, digits, `-`, `_` or `.`")
}

fn list_or_none(names: &[&str]) -> String {
    if names.is_empty() { "none".into() } else { names.join(", ") }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rtsp_credentials_are_separated_and_masked() {
        let s = parse_source("rtsp://admin:p%40ss@192.0.2.10:554/stream1").unwrap();
        let Source::Rtsp { url, user, password } = &s else { panic!("not rtsp: {s:?}") };
        assert_eq!(url.as_str(), "rtsp://192.0.2.10:554/stream1");
        assert_eq!(user.as_deref(), Some("admin"));
        assert_eq!(password.as_deref(), Some("p@ss"));
        assert_eq!(s.masked(), "rtsp://admin:***@192.0.2.10:554/stream1");
        assert!(!s.masked().contains("p@ss") && !s.masked().contains("p%40ss"));
    }

    #[test]
    fn test_and_file_sources_parse() {
        assert_eq!(
            parse_source("test://ball?width=320&height=240&fps=5").unwrap(),
            Source::Test { pattern: "ball".into(), width: 320, height: 240, fps: 5 }
        );
        assert_eq!(
            parse_source("file://videos/a.mp4").unwrap(),
            Source::File { path: PathBuf::from("videos/a.mp4") }
        );
        assert!(parse_source("http://x/y").unwrap_err().contains("scheme `http`"));
        assert!(parse_source("test://smpte?fps=0").unwrap_err().contains("positive"));
    }

    #[test]
    fn broker_urls() {
        assert_eq!(
            parse_broker_url("mqtt://127.0.0.1:1884").unwrap(),
            BrokerUrl { tls: false, host: "127.0.0.1".into(), port: 1884 }
        );
        assert_eq!(parse_broker_url("mqtts://hub.example").unwrap().port, 8883);
        assert!(parse_broker_url("mqtt://u:p@h").unwrap_err().contains("password_file"));
        assert!(parse_broker_url("http://h").unwrap_err().contains("scheme"));
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("4096").unwrap(), 4096);
        assert_eq!(parse_byte_size("512 MiB").unwrap(), 512 << 20);
        assert_eq!(parse_byte_size("1.5GB").unwrap(), 1_500_000_000);
        assert!(parse_byte_size("ten MB").unwrap_err().contains("not a size"));
        assert!(parse_byte_size("3 parsecs").unwrap_err().contains("unknown size unit"));
    }
}
