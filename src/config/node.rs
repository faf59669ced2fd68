//! `[node]`, `[outbox]`, `[http]`, `[analysis]`, `[evidence]` and `[verdicts]`: the node's own
//! settings, read once at start (a reload reports their changes as needing a restart).

use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct NodeConfig {
    pub id: String,
    #[serde(default = "default_data_dir")]
    pub data_dir: PathBuf,
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

/// The node's HTTP endpoints: `/metrics`, `/healthz` and the web page.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    pub enabled: bool,
    /// Address and port. Loopback unless `users_file` is set: without sign-in, the page would
    /// show the cameras (and edit the config) for anyone on the network.
    #[serde(deserialize_with = "socket_address")]
    pub listen: std::net::SocketAddr,
    /// The page's users (`cityeye user add`): with it, the page asks for a sign-in.
    pub users_file: Option<PathBuf>,
    /// How long a sign-in lasts.
    pub session_hours: f64,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            enabled: true,
            listen: ([127, 0, 0, 1], 8630).into(),
            users_file: None,
            session_hours: 12.0,
        }
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
    /// The `start` message carries its snapshot itself (`evidence.jpeg_base64`) instead of
    /// sending it first on the evidence topic: the two cannot be split between the consumers
    /// of a load-balanced (shared) subscription.
    pub inline: bool,
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
            inline: false,
        }
    }
}

/// What operators' verdicts do (see `src/verdict.rs`).
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct VerdictsConfig {
    /// Days a `false_positive` verdict keeps the same algorithm and object class at the same
    /// place from raising incidents on that camera.
    pub suppress_days: f64,
}

impl Default for VerdictsConfig {
    fn default() -> Self {
        VerdictsConfig { suppress_days: 30.0 }
    }
}

fn default_data_dir() -> PathBuf {
    PathBuf::from("/var/lib/cityeye")
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

/// [`byte_size`] for a key that may be left out.
pub(super) fn optional_byte_size<'de, D: Deserializer<'de>>(d: D) -> Result<Option<u64>, D::Error> {
    byte_size(d).map(Some)
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("4096").unwrap(), 4096);
        assert_eq!(parse_byte_size("512 MiB").unwrap(), 512 << 20);
        assert_eq!(parse_byte_size("1.5GB").unwrap(), 1_500_000_000);
        assert!(parse_byte_size("ten MB").unwrap_err().contains("not a size"));
        assert!(parse_byte_size("3 parsecs").unwrap_err().contains("unknown size unit"));
    }
}
