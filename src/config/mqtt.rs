//! `[mqtt]`: the broker the node publishes to, and how it signs in.

use std::path::PathBuf;

use serde::{Deserialize, Deserializer};
use url::Url;

/// What `mqtt.max_packet_bytes` may be: room for an incident's JSON at least, MQTT's own limit
/// (a 256 MiB remaining length) at most.
pub const MAX_PACKET_BYTES_RANGE: std::ops::RangeInclusive<u64> = (4 << 10)..=(256 << 20);

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
    /// The largest MQTT packet the broker takes (`"256 KiB"`), for brokers that do not announce
    /// it: 3.1.1 ones, which drop bigger messages silently, and MQTT 5 ones that refuse them
    /// without saying so at connect time (mosquitto's `message_size_limit`). An MQTT 5 broker's
    /// own Maximum Packet Size applies too; the smaller wins.
    #[serde(deserialize_with = "super::node::optional_byte_size")]
    pub max_packet_bytes: Option<u64>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MqttVersion {
    V5,
    V311,
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
            max_packet_bytes: None,
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

fn broker_url<'de, D: Deserializer<'de>>(d: D) -> Result<BrokerUrl, D::Error> {
    let text = String::deserialize(d)?;
    parse_broker_url(&text).map_err(serde::de::Error::custom)
}

pub fn parse_broker_url(text: &str) -> Result<BrokerUrl, String> {
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

#[cfg(test)]
mod tests {
    use super::*;

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
}
