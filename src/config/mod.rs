//! The node's configuration: one TOML file, parsed and validated before anything starts.
//!
//! Every type the file names lives here, one file per section: [`node`] (with the outbox,
//! HTTP, analysis and evidence sections), [`mqtt`], [`model`], [`camera`], [`algorithm`] with
//! its [`params`] and [`schedule`], the algorithm [`catalog`], [`drone`] telemetry, the
//! [`pipeline`] templates and the [`patrol`]s. This module imports nothing from the stages: they import it.
//!
//! Loading happens in three passes. The first deserializes the file; serde reports the first
//! mistake it meets (an unknown key, a wrong type, a polygon with two points) with the exact key
//! path, e.g. `cameras[1].zones[0].polygon`, and the line. The second (`validate.rs`)
//! checks what only the whole file can tell (duplicate ids, a camera naming an unknown model or
//! zone, files that do not exist) and reports *every* problem it finds, so an installer fixes
//! them in one go. The third resolves each camera's algorithms against the catalog, once
//! ([`Algorithm`]): the stages read the merged settings and never merge again.
//! Relative paths are resolved against the config file's folder.

pub mod algorithm;
pub mod camera;
pub mod catalog;
pub mod drone;
mod error;
pub mod model;
pub mod mqtt;
pub mod node;
pub mod params;
pub mod patrol;
pub mod pipeline;
pub mod plates;
pub mod schedule;
mod validate;

use std::path::{Path, PathBuf};

use serde::Deserialize;

pub use algorithm::{Algorithm, AlgorithmConfig};
pub use camera::{CameraConfig, Decode, KEYFRAME_FPS, PlateScope, Source, Transport, ZoneConfig};
pub use catalog::{Category, Entry};
pub use drone::{CameraKind, TelemetryConfig, TelemetrySource};
pub use error::{ConfigError, ConfigErrors};
pub use model::{
    ChannelOrder, ClassList, Device, Fallback, MODEL_FORMATS, ModelConfig, ModelFormat, ModelKind,
    OpenvinoDevice, PixelScale, Precision, Preprocessing, Resize,
};
pub use mqtt::{BrokerUrl, MqttConfig, MqttVersion, parse_broker_url};
pub use node::{
    AnalysisConfig, EvidenceConfig, HttpConfig, NodeConfig, OutboxConfig, VerdictsConfig,
};
pub use params::{Anchor, CrossDirection, Params, PrimitiveKind, Severity};
pub use patrol::{PATROL_FPS, PatrolConfig};
pub use pipeline::{encoded_description, pipeline_description, record_description};
pub use plates::{
    PLATE_MODEL_PLACES, PlatesConfig, is_province, pattern_problem, plate_in_latin, plate_matches,
    plate_number,
};
pub use schedule::Schedule;

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
    pub verdicts: VerdictsConfig,
    /// Plate reading: on when the table is there.
    pub plates: Option<PlatesConfig>,
    #[serde(default)]
    pub models: Vec<ModelConfig>,
    #[serde(default)]
    pub cameras: Vec<CameraConfig>,
    #[serde(default)]
    pub patrols: Vec<PatrolConfig>,
    /// The file this was loaded from, for error messages.
    #[serde(skip)]
    pub path: PathBuf,
    /// SHA-256 of the file's text: which version of the config a node runs.
    #[serde(skip)]
    pub sha256: String,
}

/// The largest config file read: a site of hundreds of cameras takes a few hundred KiB, and
/// `--config /dev/zero` must not grow the node until it dies.
pub const MAX_CONFIG_BYTES: u64 = 4 << 20;

/// The file's bytes, or `None` when it holds more than `limit` (without reading past that).
fn read_limited(path: &Path, limit: u64) -> std::io::Result<Option<Vec<u8>>> {
    use std::io::Read;
    let mut bytes = Vec::new();
    std::fs::File::open(path)?.take(limit + 1).read_to_end(&mut bytes)?;
    Ok((bytes.len() as u64 <= limit).then_some(bytes))
}

/// The SHA-256 of `bytes`, in lowercase hex.
pub fn sha256_hex(bytes: &[u8]) -> String {
    use sha2::{Digest, Sha256};
    Sha256::digest(bytes).iter().map(|b| format!("{b:02x}")).collect()
}

impl Config {
    /// Reads, parses and validates a config file. Every error names the file and the key.
    pub fn load(path: &Path) -> Result<Config, ConfigErrors> {
        let whole = |message: String| {
            let file = path.to_path_buf();
            ConfigErrors(vec![ConfigError { file, key: String::new(), line: None, message }])
        };
        let text = read_limited(path, MAX_CONFIG_BYTES)
            .map_err(|e| whole(format!("cannot read the config file: {e}")))?
            .ok_or_else(|| {
                whole(format!(
                    "the file is larger than {} MiB: not a config (a site's is a few KiB)",
                    MAX_CONFIG_BYTES >> 20
                ))
            })?;
        let text = String::from_utf8(text)
            .map_err(|_| whole("cannot read the config file: it is not UTF-8 text".into()))?;
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
        if !errors.is_empty() {
            return Err(ConfigErrors(errors));
        }
        config.resolve_algorithms();
        Ok(config)
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

    /// The patrol that visits camera `id`, if any (validation allows one at most).
    pub fn patrol_of(&self, id: &str) -> Option<&PatrolConfig> {
        self.patrols
            .iter()
            .find(|p| p.cameras.iter().any(|pattern| PatrolConfig::names(pattern, id)))
    }

    /// Merges every camera's algorithms over their catalog entries, once: what the stages run.
    /// Only for a validated config, whose every algorithm names a catalog entry.
    fn resolve_algorithms(&mut self) {
        let plates = self.plates.as_ref();
        for camera in &mut self.cameras {
            camera.resolved = camera
                .algorithms
                .iter()
                .filter_map(|a| a.resolve(plates, &camera.plate_allow))
                .collect();
        }
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
        if let Some(users) = &mut self.http.users_file {
            resolve(users);
        }
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
        if let Some(plates) = &mut self.plates {
            for p in [&mut plates.detector, &mut plates.recognizer, &mut plates.dictionary] {
                resolve(p);
            }
        }
        for model in &mut self.models {
            resolve(&mut model.path);
            model.engine_cache = self.node.data_dir.join("tensorrt").join(&model.name);
            if let ClassList::File(p) = &mut model.classes {
                resolve(p);
            }
        }
        for camera in &mut self.cameras {
            for source in std::iter::once(&mut camera.url).chain(camera.record_url.as_mut()) {
                if let Source::File { path } = source {
                    resolve(path);
                }
            }
            if let Some(p) = camera.pipeline.as_mut().filter(|p| !pipeline::is_builtin_template(p))
            {
                *p = base.join(&*p).to_string_lossy().into_owned();
            }
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
    // Some mistakes (a number too large for any type) are found before serde sees a key: name
    // the key written on that line, under its table.
    if key.is_empty()
        && let Some(written) = line.and_then(|line| key_on_line(text, line))
    {
        key = written;
    }
    ConfigError { file: path.to_path_buf(), key, line, message }
}

/// The dotted key set on 1-based line `line` of `text` (`mqtt.keep_alive_s`), as the file
/// writes it: its table's header, then the key before `=`.
fn key_on_line(text: &str, line: usize) -> Option<String> {
    let lines: Vec<&str> = text.lines().take(line).collect();
    let (name, _) = lines.last()?.split_once('=')?;
    let name = name.trim();
    let bare = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.');
    if name.is_empty() || !name.chars().all(bare) {
        return None;
    }
    let table = lines.iter().rev().skip(1).map(|l| l.trim()).find(|l| l.starts_with('['));
    let table = table.map(|t| t.trim_matches(['[', ']']).trim());
    Some(table.map_or(name.to_string(), |t| format!("{t}.{name}")))
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
