//! Publishing: incident messages and status leave the node, over MQTT or into a replay folder.
//!
//! Topics (all QoS 1):
//! - `{prefix}/{node}/{camera}/incident/{algorithm}`: incident JSON (`cityeye.incident.v1`);
//! - `{prefix}/{node}/{camera}/evidence/{incident_id}`: the snapshot JPEG, sent before the
//!   incident that refers to it;
//! - `{prefix}/{node}/status`: the node's status, retained; the broker publishes `offline` as the
//!   node's last will when the link drops;
//! - `{prefix}/{node}/{camera}/status`: each camera's status, retained.
//!
//! The channel into this stage is bounded and its policy is *block*: incidents are never
//! dropped; a stalled broker slows analysis (whose own input then drops frames) instead.

use std::fs;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

use rumqttc::{AsyncClient, Event, EventLoop, LastWill, MqttOptions, Outgoing, Packet, QoS};
use serde::Serialize;
use tokio::sync::mpsc;

use crate::config::{Config, MqttConfig};
use crate::incident::{Incident, evidence_jpeg, rfc3339_millis};
use crate::ingest::CameraState;

/// Largest message either way: evidence snapshots of 4K frames stay well under this.
const MAX_PACKET_BYTES: usize = 16 * 1024 * 1024;
/// Outbound messages a camera may have waiting before it blocks.
pub const CHANNEL_CAPACITY: usize = 64;

/// What the analysis side hands to a sink.
#[derive(Debug)]
pub enum Outbound {
    Incident(Box<Incident>),
    CameraStatus { camera: String, state: CameraState, at: SystemTime },
}

/// The node's topic names.
#[derive(Debug, Clone)]
pub struct Topics {
    base: String,
}

impl Topics {
    pub fn new(prefix: &str, node: &str) -> Self {
        Topics { base: format!("{prefix}/{node}") }
    }

    pub fn incident(&self, camera: &str, algorithm: &str) -> String {
        format!("{}/{camera}/incident/{algorithm}", self.base)
    }

    pub fn evidence(&self, camera: &str, incident_id: &str) -> String {
        format!("{}/{camera}/evidence/{incident_id}", self.base)
    }

    pub fn node_status(&self) -> String {
        format!("{}/status", self.base)
    }

    pub fn camera_status(&self, camera: &str) -> String {
        format!("{}/{camera}/status", self.base)
    }
}

/// `cityeye.status.v1`: the node's or a camera's state, as retained on the status topics.
#[derive(Debug, Serialize)]
struct StatusPayload<'a> {
    schema: &'static str,
    node: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    camera: Option<&'a str>,
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_in_s: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    width: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    height: Option<usize>,
    at: String,
}

fn node_status(node: &str, online: bool) -> Vec<u8> {
    let payload = StatusPayload {
        schema: "cityeye.status.v1",
        node,
        camera: None,
        state: if online { "online" } else { "offline" },
        reason: None,
        retry_in_s: None,
        width: None,
        height: None,
        at: rfc3339_millis(SystemTime::now()),
    };
    serde_json::to_vec(&payload).expect("status serializes")
}

fn camera_status(node: &str, camera: &str, state: &CameraState, at: SystemTime) -> Vec<u8> {
    let mut payload = StatusPayload {
        schema: "cityeye.status.v1",
        node,
        camera: Some(camera),
        state: "connecting",
        reason: None,
        retry_in_s: None,
        width: None,
        height: None,
        at: rfc3339_millis(at),
    };
    match state {
        CameraState::Connecting => {}
        CameraState::Online { width, height } => {
            payload.state = "online";
            (payload.width, payload.height) = (Some(*width), Some(*height));
        }
        CameraState::Offline { reason, retry_in_s } => {
            payload.state = "offline";
            (payload.reason, payload.retry_in_s) = (Some(reason.as_str()), Some(*retry_in_s));
        }
    }
    serde_json::to_vec(&payload).expect("status serializes")
}

/// Publishes everything from `rx` to the configured broker until the channel closes, then says
/// the node is offline and disconnects once the queue has gone out.
pub async fn mqtt_sink(config: &Config, mut rx: mpsc::Receiver<Outbound>) -> Result<(), String> {
    let node = config.node.id.clone();
    let topics = Topics::new(&config.mqtt.topic_prefix, &node);
    let options = mqtt_options(&config.mqtt, &node, &topics)?;
    let (client, eventloop) = AsyncClient::new(options, CHANNEL_CAPACITY);
    let online = (client.clone(), topics.node_status(), node_status(&node, true));
    let connection =
        tokio::spawn(drive_connection(eventloop, online, config.mqtt.url.host.clone()));

    while let Some(message) = rx.recv().await {
        let result = match message {
            Outbound::Incident(incident) => publish_incident(&client, &topics, *incident).await,
            Outbound::CameraStatus { camera, state, at } => {
                let body = camera_status(&node, &camera, &state, at);
                client.publish(topics.camera_status(&camera), QoS::AtLeastOnce, true, body).await
            }
        };
        result.map_err(|e| format!("MQTT client stopped: {e}"))?;
    }
    let _ = client
        .publish(topics.node_status(), QoS::AtLeastOnce, true, node_status(&node, false))
        .await;
    let _ = client.disconnect().await;
    // Let the queued messages leave; a broker that is down gets a few seconds, not forever.
    let _ = tokio::time::timeout(Duration::from_secs(5), connection).await;
    Ok(())
}

async fn publish_incident(
    client: &AsyncClient,
    topics: &Topics,
    incident: Incident,
) -> Result<(), rumqttc::ClientError> {
    if let (Some(evidence), Some(reference)) = (incident.evidence, &incident.payload.evidence) {
        match tokio::task::spawn_blocking(move || evidence_jpeg(&evidence)).await {
            Ok(Ok(jpeg)) => client.publish(&reference.topic, QoS::AtLeastOnce, false, jpeg).await?,
            Ok(Err(e)) => tracing::error!(id = %incident.payload.id, "evidence not sent: {e}"),
            Err(e) => tracing::error!(id = %incident.payload.id, "evidence not sent: {e}"),
        }
    }
    let p = &incident.payload;
    let body = serde_json::to_vec(p).expect("payload serializes");
    client.publish(topics.incident(&p.camera, &p.algorithm), QoS::AtLeastOnce, false, body).await
}

fn mqtt_options(mqtt: &MqttConfig, node: &str, topics: &Topics) -> Result<MqttOptions, String> {
    if mqtt.url.tls {
        return Err("mqtts:// is not supported by this build yet; use mqtt://".into());
    }
    let client_id = mqtt.client_id.clone().unwrap_or_else(|| format!("cityeye-{node}"));
    let mut options = MqttOptions::new(client_id, mqtt.url.host.clone(), mqtt.url.port);
    options
        .set_keep_alive(Duration::from_secs(mqtt.keep_alive_s.max(5)))
        .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES)
        .set_last_will(LastWill::new(
            topics.node_status(),
            node_status(node, false),
            QoS::AtLeastOnce,
            true,
        ));
    if let Some(user) = &mqtt.username {
        let password = match &mqtt.password_file {
            Some(path) => fs::read_to_string(path)
                .map_err(|e| format!("cannot read mqtt.password_file {}: {e}", path.display()))?
                .trim_end_matches(['\r', '\n'])
                .to_string(),
            None => String::new(),
        };
        options.set_credentials(user, password);
    }
    Ok(options)
}

/// Polls the connection: announces the node online on every (re)connect, and keeps retrying
/// with backoff while the broker is away. Ends when the client disconnects.
async fn drive_connection(
    mut eventloop: EventLoop,
    online: (AsyncClient, String, Vec<u8>),
    host: String,
) {
    let mut backoff = Duration::from_secs(1);
    let mut connected = false;
    loop {
        match eventloop.poll().await {
            Ok(Event::Incoming(Packet::ConnAck(_))) => {
                tracing::info!(broker = %host, "connected to the MQTT broker");
                connected = true;
                backoff = Duration::from_secs(1);
                let (client, topic, body) = online.clone();
                // Not awaited here: the request queue is drained by this very loop.
                tokio::spawn(
                    async move { client.publish(topic, QoS::AtLeastOnce, true, body).await },
                );
            }
            Ok(Event::Outgoing(Outgoing::Disconnect)) => return,
            Ok(_) => {}
            Err(e) => {
                if connected {
                    tracing::warn!(broker = %host, "lost the MQTT broker: {e}");
                } else {
                    tracing::warn!(broker = %host, "MQTT broker unreachable: {e}; retrying in {} s", backoff.as_secs());
                }
                connected = false;
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(Duration::from_secs(30));
            }
        }
    }
}

/// Starts an MQTT broker inside this process on `mqtt.url`'s host and port, so a single box
/// (or the demo) needs nothing else. Returns once it is accepting connections.
pub fn start_embedded_broker(mqtt: &MqttConfig) -> Result<(), String> {
    let address: SocketAddr = (mqtt.url.host.as_str(), mqtt.url.port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| format!("mqtt.url: cannot resolve {}", mqtt.url.host))?;
    // rumqttd binds on a thread of its own and cannot tell us it failed: check first.
    TcpListener::bind(address)
        .map_err(|e| format!("mqtt.url: the embedded broker cannot listen on {address}: {e}"))?;
    let connections = rumqttd::ConnectionSettings {
        connection_timeout_ms: 60_000,
        max_payload_size: MAX_PACKET_BYTES,
        max_inflight_count: 100,
        auth: None,
        external_auth: None,
        dynamic_filters: true,
    };
    let server = rumqttd::ServerSettings {
        name: "cityeye".into(),
        listen: address,
        tls: None,
        next_connection_delay_ms: 1,
        connections,
    };
    let config = rumqttd::Config {
        id: 0,
        router: rumqttd::RouterConfig {
            max_connections: 1000,
            max_outgoing_packet_count: 200,
            max_segment_size: 100 * 1024 * 1024,
            max_segment_count: 10,
            ..Default::default()
        },
        v4: Some([("cityeye".to_string(), server)].into()),
        ..Default::default()
    };
    std::thread::Builder::new()
        .name("mqtt-broker".into())
        .spawn(move || {
            if let Err(e) = rumqttd::Broker::new(config).start() {
                tracing::error!("the embedded MQTT broker stopped: {e}");
            }
        })
        .map_err(|e| format!("cannot start the embedded broker: {e}"))?;
    for _ in 0..100 {
        if std::net::TcpStream::connect(address).is_ok() {
            tracing::info!(%address, "embedded MQTT broker listening");
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(format!("the embedded broker did not start listening on {address}"))
}

/// Writes incidents as a replay's results: `incidents.jsonl` (one payload a line, exactly as
/// MQTT would carry it) and `evidence/<id>.jpg`. Camera status is not part of a replay.
pub fn replay_sink(out_dir: &Path, rx: &mut mpsc::Receiver<Outbound>) -> Result<usize, String> {
    let evidence_dir = out_dir.join("evidence");
    fs::create_dir_all(&evidence_dir)
        .map_err(|e| format!("cannot create {}: {e}", evidence_dir.display()))?;
    let path = out_dir.join("incidents.jsonl");
    let mut lines =
        fs::File::create(&path).map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    let mut count = 0;
    while let Some(message) = rx.blocking_recv() {
        let Outbound::Incident(incident) = message else { continue };
        if let Some(evidence) = &incident.evidence {
            let file: PathBuf = evidence_dir.join(format!("{}.jpg", incident.payload.id));
            fs::write(&file, evidence_jpeg(evidence)?)
                .map_err(|e| format!("cannot write {}: {e}", file.display()))?;
        }
        let mut line = serde_json::to_vec(&incident.payload).expect("payload serializes");
        line.push(b'\n');
        lines.write_all(&line).map_err(|e| format!("cannot write {}: {e}", path.display()))?;
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_follow_the_contract() {
        let t = Topics::new("cityeye", "edge-0001");
        assert_eq!(
            t.incident("gate-east", "illegal_parking"),
            "cityeye/edge-0001/gate-east/incident/illegal_parking"
        );
        assert_eq!(t.evidence("gate-east", "X"), "cityeye/edge-0001/gate-east/evidence/X");
        assert_eq!(t.node_status(), "cityeye/edge-0001/status");
        assert_eq!(t.camera_status("gate-east"), "cityeye/edge-0001/gate-east/status");
    }

    #[test]
    fn camera_status_says_why_it_is_offline() {
        let state = CameraState::Offline { reason: "refused".into(), retry_in_s: 4 };
        let body: serde_json::Value =
            serde_json::from_slice(&camera_status("n", "c", &state, SystemTime::UNIX_EPOCH))
                .unwrap();
        assert_eq!(body["state"], "offline");
        assert_eq!(body["reason"], "refused");
        assert_eq!(body["retry_in_s"], 4);
        assert_eq!(body["camera"], "c");
    }
}
