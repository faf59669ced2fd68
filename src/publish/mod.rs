//! Publishing: incident messages and status leave the node, over MQTT or into a replay folder.
//!
//! Topics (all QoS 1):
//! - `{prefix}/{node}/{camera}/incident/{algorithm}`: incident JSON (`cityeye.incident.v1`);
//! - `{prefix}/{node}/{camera}/evidence/{incident_id}`: the snapshot JPEG, sent before the
//!   incident that refers to it (or, with `evidence.inline`, inside it instead);
//! - `{prefix}/{node}/{camera}/evidence/{incident_id}/clip`: the clip MP4 with
//!   `evidence.publish_clips`, sent before the incident message that refers to it;
//! - `{prefix}/{node}/status`: the node's status, retained; the broker publishes `offline` as the
//!   node's last will when the link drops;
//! - `{prefix}/{node}/{camera}/status`: each camera's status, retained;
//! - `{prefix}/{node}/stats`: the node's counters (`cityeye.stats.v1`, see [`crate::stats`])
//!   every `mqtt.stats_interval_s`, retained.
//!
//! Delivery is at least once, in order: every message waits in the [`Outbox`] until the broker
//! acknowledges it (QoS 1 PUBACK), incidents and evidence committed to disk under
//! `node.data_dir` first, and whatever was unacknowledged when the link dropped is sent again
//! after the reconnect (or the restart). The outbox is bounded by `outbox.max_bytes` on disk,
//! dropping old evidence before any incident; only when it cannot write to disk and its memory
//! is full too does the channel into this stage (bounded, policy *block*) make the cameras wait,
//! their own newest-wins input then dropping frames instead of messages. A node stopped while
//! the broker is away gives up after a few seconds, its incidents still on disk for the next run.
//!
//! No message goes out bigger than the broker takes: the smaller of its Maximum Packet Size
//! (MQTT 5 CONNACK) and `mqtt.max_packet_bytes`; see [`fit`].

use std::collections::BTreeMap;
use std::fs;
use std::io::Write;
use std::net::{SocketAddr, TcpListener, ToSocketAddrs};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime};

use tokio::sync::mpsc;

mod fit;
pub mod link;
mod outbox;

use link::LinkEvent;
use outbox::WINDOW;
pub use outbox::{Outbox, OutboxError, Publication, free_bytes, probe_writable};

use crate::config::{Config, MqttConfig};
use crate::incident::{Incident, evidence_jpeg, plate_jpeg};
use crate::stats::NodeStats;
use crate::wire::{CameraState, ConfigReport, IncidentPayload, Topics, camera_status, node_status};

/// Largest message either way, unless the broker or `mqtt.max_packet_bytes` says less: evidence
/// snapshots of 4K frames stay well under this.
const MAX_PACKET_BYTES: usize = 16 * 1024 * 1024;
/// Messages on their way from the cameras to the sink; a camera sending to a full channel waits.
pub const CHANNEL_CAPACITY: usize = 64;

/// Why publishing stopped or could not start: the sink's link to the broker, the embedded
/// broker, or a replay's results folder.
#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    /// The task driving the MQTT connection is gone: nothing can be published any more.
    #[error("the MQTT connection task ended")]
    LinkEnded,
    /// `mqtt.url`'s host has no address for the embedded broker to listen on.
    #[error("mqtt.url: cannot resolve {host}")]
    BrokerAddress { host: String },
    /// The embedded broker's port is taken, or not this process's to take.
    #[error("mqtt.url: the embedded broker cannot listen on {address}: {source}")]
    BrokerListen { address: SocketAddr, source: std::io::Error },
    #[error("cannot start the embedded broker: {0}")]
    BrokerThread(#[source] std::io::Error),
    /// The embedded broker's thread runs but nothing answers on its port.
    #[error("the embedded broker did not start listening on {0}")]
    BrokerNotListening(SocketAddr),
    /// A replay's results folder or file cannot be created.
    #[error("cannot create {}: {source}", path.display())]
    Create { path: PathBuf, source: std::io::Error },
    /// A replay's incidents or evidence cannot be written (a full disk).
    #[error("cannot write {}: {source}", path.display())]
    Write { path: PathBuf, source: std::io::Error },
    /// An incident's evidence snapshot cannot be drawn or encoded; the text is
    /// [`evidence_jpeg`]'s.
    #[error("{0}")]
    Evidence(String),
}

/// What the analysis side hands to a sink.
#[derive(Debug)]
pub enum Outbound {
    Incident(Box<Incident>),
    /// `telemetry`: a drone camera's telemetry (`ok`, `missing`, `stale`, `incomplete`), shown
    /// while it is online.
    CameraStatus {
        camera: String,
        state: CameraState,
        telemetry: Option<&'static str>,
        at: SystemTime,
    },
    /// The config the node runs, after start and after each reload: goes out with the node's
    /// status.
    Config(ConfigReport),
}

/// Publishes everything from `rx` to the broker of `settings` until `stop` is set and the input
/// has closed, then says the node is offline and disconnects. While the broker is away,
/// messages wait in the outbox and go out, in order, once it is back. Reports `stats` every
/// `mqtt.stats_interval_s`.
pub async fn mqtt_sink(
    config: &Config,
    settings: link::Settings,
    mut outbox: Outbox,
    stats: Arc<NodeStats>,
    mut rx: mpsc::Receiver<Outbound>,
    stop: Arc<AtomicBool>,
) -> Result<(), PublishError> {
    let node = config.node.id.clone();
    let topics = Topics::new(&config.mqtt.topic_prefix, &node);
    let broker = format!("{}:{}", config.mqtt.url.host, config.mqtt.url.port);
    let (client, mut link, driver) = link::open(&settings, &node, &topics, WINDOW);
    let inline = config.evidence.inline;
    // What the config allows; each connection's broker may say less.
    let configured = config.mqtt.max_packet_bytes.map_or(MAX_PACKET_BYTES, |n| {
        usize::try_from(n).unwrap_or(MAX_PACKET_BYTES).min(MAX_PACKET_BYTES)
    });
    let mut packet_limit = configured;
    // Learnt from refusals: a broker that announces no limit (mosquitto's message_size_limit)
    // but refuses a message as too large takes less than that message (an upper bound that
    // halves with each refusal). Without this, the same message went again at every reconnect:
    // 55 reconnects a minute, the queue stuck behind it.
    let mut refused_above: Option<usize> = None;
    // When the current (or last) connection was opened: the `at` of the node's `online`.
    let mut online_since: Option<SystemTime> = None;
    let mut connected = false;
    let mut ever_connected = false;
    let mut config_report: Option<ConfigReport> = None;
    // On every node status of this run: said loudly, until the next restart.
    let recovered = outbox.recovered_from().map(|p| p.display().to_string());
    let recovered = recovered.as_deref();
    // Each camera's latest retained status, by topic: a broker restarted without persistence
    // has forgotten them, so every reconnect sends them again.
    let mut camera_statuses: BTreeMap<String, Vec<u8>> = BTreeMap::new();
    let mut input_open = true;
    let mut stopping: Option<Instant> = None;
    let mut tick = tokio::time::interval(Duration::from_millis(100));
    let every = Duration::from_secs(config.mqtt.stats_interval_s);
    let mut report = tokio::time::interval_at(tokio::time::Instant::now() + every, every);
    loop {
        if connected {
            outbox.send(packet_limit, |p| client.try_publish(p));
        }
        if stop.load(Ordering::Relaxed) {
            let since = *stopping.get_or_insert_with(Instant::now);
            if !input_open && outbox.is_empty() {
                break;
            }
            if since.elapsed() > SHUTDOWN_GRACE {
                tracing::warn!(
                    broker,
                    undelivered = outbox.len(),
                    "stopping with messages undelivered; incidents stay in the outbox for the next run"
                );
                break;
            }
        }
        tokio::select! {
            message = rx.recv(), if input_open && outbox.has_room() => match message {
                Some(message) => {
                    // Kept for the node status sent on every reconnect and at the stop.
                    if let Outbound::Config(report) = &message {
                        config_report = Some(report.clone());
                    }
                    let is_camera_status = matches!(message, Outbound::CameraStatus { .. });
                    // Before the first connection, a stand-in: the connection's own replaces it.
                    let since = online_since.unwrap_or_else(SystemTime::now);
                    let publications = outgoing(&node, &topics, inline, since, recovered, message).await;
                    if is_camera_status {
                        for p in &publications {
                            camera_statuses.insert(p.topic.clone(), p.payload.clone());
                        }
                    }
                    outbox.push(publications)
                }
                None => input_open = false,
            },
            event = link.recv() => match event {
                Some(LinkEvent::Up { since, max_packet }) => {
                    packet_limit = max_packet
                        .map_or(configured, |m| configured.min(usize::try_from(m).unwrap_or(configured)))
                        .min(refused_above.unwrap_or(usize::MAX));
                    let max_packet_bytes = (packet_limit < MAX_PACKET_BYTES).then_some(packet_limit);
                    tracing::info!(broker, queued = outbox.len(), max_packet_bytes, "connected to the MQTT broker");
                    connected = true;
                    online_since = Some(since);
                    stats.set_mqtt_connected(true);
                    stats.broker_seen();
                    // Retained and first in line: the hub learns the node is back before the
                    // backlog, then (after an outage) where each camera stands. On the first
                    // connection the cameras' statuses are still queued.
                    if ever_connected {
                        for (topic, payload) in camera_statuses.iter().rev() {
                            outbox.push_front(Publication::status(topic.clone(), payload.clone()));
                        }
                    }
                    ever_connected = true;
                    // Replaces a node status still queued (the config's, sent before the
                    // connection): the broker retains one `online` per connection, timed when it
                    // was opened. Until the models are loaded there is no config to report, and
                    // the config's own message, when it comes, is this connection's `online`.
                    if let Some(report) = &config_report {
                        let status = node_status(&node, true, since, Some(report), recovered);
                        outbox.push_front(Publication::status(topics.node_status(), status));
                    }
                }
                Some(LinkEvent::Heard) => stats.broker_seen(),
                Some(LinkEvent::Sent(pkid)) => outbox.sent(pkid),
                Some(LinkEvent::Acknowledged(pkid)) => {
                    stats.broker_seen();
                    let seen_at = outbox.acknowledged(pkid);
                    if let Some(took) = seen_at.and_then(|t| t.elapsed().ok()) {
                        stats.add_publish_latency(took);
                    }
                }
                Some(LinkEvent::Down { error, retry_in, too_large }) => {
                    if too_large && let Some(largest) = outbox.largest_in_flight() {
                        // Halved, not one byte less: the next snapshot in line is likely as
                        // large, and each refusal costs a reconnect (one refusal, then none,
                        // for 110 KB snapshots under mosquitto's 60 KB message_size_limit;
                        // one byte less took four, and counting).
                        let limit = (largest / 2).max(MIN_PACKET_BYTES);
                        refused_above = Some(refused_above.map_or(limit, |l| l.min(limit)));
                        tracing::warn!(
                            broker,
                            refused_bytes = largest,
                            "the broker refused a message as too large: from now on messages are \
                             made to fit under {limit} bytes"
                        );
                    }
                    let resent = outbox.resend_unacknowledged();
                    let retry_in = retry_in.as_secs_f64();
                    tracing::warn!(broker, resent, "MQTT connection failed: {error}; retrying in {retry_in:.1} s");
                    connected = false;
                    stats.set_mqtt_connected(false);
                }
                None => return Err(PublishError::LinkEnded),
            },
            _ = report.tick() => {
                stats.set_outbox(outbox.stats());
                let payload = stats.report();
                outbox.push(vec![Publication::status(topics.stats(), payload)]);
            }
            _ = tick.tick() => {
                outbox.forget_delivered();
                stats.set_outbox(outbox.stats());
            }
        }
    }
    drop(rx);
    outbox.forget_delivered();
    if connected {
        let status =
            node_status(&node, false, SystemTime::now(), config_report.as_ref(), recovered);
        client.try_publish(&Publication::status(topics.node_status(), status));
        client.try_disconnect();
        let _ = tokio::time::timeout(Duration::from_secs(2), driver).await;
    }
    Ok(())
}

/// The least a limit learnt from refusals goes down to: what `mqtt.max_packet_bytes` may be at
/// least, room for an incident's JSON.
const MIN_PACKET_BYTES: usize = *crate::config::mqtt::MAX_PACKET_BYTES_RANGE.start() as usize;

/// How long a stopping node keeps trying to deliver what it has.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

/// The publications for one outbound message: an incident's evidence JPEG (encoded here, off
/// the camera's thread) goes before the incident that refers to it, or with `inline` inside it.
/// `online_since` times the node's `online` status.
async fn outgoing(
    node: &str,
    topics: &Topics,
    inline: bool,
    online_since: SystemTime,
    outbox_recovered_from: Option<&str>,
    message: Outbound,
) -> Vec<Publication> {
    match message {
        Outbound::Incident(incident) => {
            let mut incident = *incident;
            let mut publications = Vec::with_capacity(2);
            publications.extend(plate_publications(&mut incident, inline).await);
            if let (Some(evidence), Some(reference)) =
                (incident.evidence, incident.payload.evidence.as_mut())
            {
                match tokio::task::spawn_blocking(move || evidence_jpeg(&evidence)).await {
                    Ok(Ok(jpeg)) if inline => {
                        use base64::Engine;
                        let text = base64::engine::general_purpose::STANDARD.encode(jpeg);
                        reference.jpeg_base64 = Some(text);
                    }
                    Ok(Ok(jpeg)) => {
                        publications.push(Publication::evidence(reference.topic.clone(), jpeg))
                    }
                    Ok(Err(e)) => {
                        tracing::error!(id = %incident.payload.id, "evidence not sent: {e}")
                    }
                    Err(e) => tracing::error!(id = %incident.payload.id, "evidence not sent: {e}"),
                }
            }
            let p = &incident.payload;
            publications.extend(clip_publication(p));
            let body = serde_json::to_vec(p).expect("payload serializes");
            let topic = topics.incident(&p.camera, &p.algorithm);
            publications.push(Publication::incident(topic, body).seen_at(incident.seen_at));
            publications
        }
        Outbound::CameraStatus { camera, state, telemetry, at } => vec![Publication::status(
            topics.camera_status(&camera),
            camera_status(node, &camera, &state, telemetry, at),
        )],
        Outbound::Config(report) => {
            let status =
                node_status(node, true, online_since, Some(&report), outbox_recovered_from);
            vec![Publication::status(topics.node_status(), status)]
        }
    }
}

/// The pictures of the plates `incident` names for the first time, each on its object's
/// `plate.evidence.topic`, or with `inline` inside the message.
async fn plate_publications(incident: &mut Incident, inline: bool) -> Vec<Publication> {
    let pictures = std::mem::take(&mut incident.plate_pictures);
    let encoded = tokio::task::spawn_blocking(move || {
        pictures.into_iter().map(|(i, picture)| (i, plate_jpeg(&picture))).collect::<Vec<_>>()
    })
    .await
    .unwrap_or_default();
    let mut publications = Vec::new();
    for (i, jpeg) in encoded {
        let plate = incident.payload.objects[i].plate.as_mut();
        let Some(reference) = plate.and_then(|p| p.evidence.as_mut()) else { continue };
        match jpeg {
            Ok(jpeg) if inline => {
                use base64::Engine;
                reference.jpeg_base64 =
                    Some(base64::engine::general_purpose::STANDARD.encode(jpeg));
            }
            Ok(jpeg) => publications.push(Publication::evidence(reference.topic.clone(), jpeg)),
            Err(e) => tracing::error!(id = %incident.payload.id, "plate picture not sent: {e}"),
        }
    }
    publications
}

/// The MP4 of a message that refers to a clip to publish, read from where the clip was written.
fn clip_publication(payload: &IncidentPayload) -> Option<Publication> {
    let clip = payload.evidence.as_ref()?.clip.as_ref()?;
    let topic = clip.topic.clone()?;
    match fs::read(&clip.path) {
        Ok(mp4) => Some(Publication::evidence(topic, mp4)),
        Err(e) => {
            tracing::error!(id = %payload.id, "clip not sent: cannot read {}: {e}", clip.path);
            None
        }
    }
}

/// Starts an MQTT broker inside this process on `mqtt.url`'s host and port, so a single box
/// (or the demo) needs nothing else. Returns once it is accepting connections.
pub fn start_embedded_broker(mqtt: &MqttConfig) -> Result<(), PublishError> {
    let address: SocketAddr = (mqtt.url.host.as_str(), mqtt.url.port)
        .to_socket_addrs()
        .ok()
        .and_then(|mut a| a.next())
        .ok_or_else(|| PublishError::BrokerAddress { host: mqtt.url.host.clone() })?;
    // rumqttd binds on a thread of its own and cannot tell us it failed: check first.
    TcpListener::bind(address).map_err(|source| PublishError::BrokerListen { address, source })?;
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
        .map_err(PublishError::BrokerThread)?;
    for _ in 0..100 {
        if std::net::TcpStream::connect(address).is_ok() {
            // rumqttd serves one protocol per port; 3.1.1 keeps every subscriber welcome.
            tracing::info!(%address, "embedded MQTT broker listening (MQTT 3.1.1, so the node uses 3.1.1 with it)");
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Err(PublishError::BrokerNotListening(address))
}

/// Writes incidents as a replay's results: `incidents.jsonl` (one payload a line, exactly as
/// MQTT would carry it), `evidence/<id>.jpg` and each plate's picture,
/// `evidence/<id>-plate-<track_id>.jpg`. Camera status is not part of a replay.
pub fn replay_sink(
    out_dir: &Path,
    rx: &mut mpsc::Receiver<Outbound>,
) -> Result<usize, PublishError> {
    let evidence_dir = out_dir.join("evidence");
    fs::create_dir_all(&evidence_dir)
        .map_err(|source| PublishError::Create { path: evidence_dir.clone(), source })?;
    let path = out_dir.join("incidents.jsonl");
    let mut lines = fs::File::create(&path)
        .map_err(|source| PublishError::Create { path: path.clone(), source })?;
    let mut count = 0;
    while let Some(message) = rx.blocking_recv() {
        let Outbound::Incident(incident) = message else { continue };
        if let Some(evidence) = &incident.evidence {
            let file: PathBuf = evidence_dir.join(format!("{}.jpg", incident.payload.id));
            let jpeg = evidence_jpeg(evidence).map_err(PublishError::Evidence)?;
            fs::write(&file, jpeg).map_err(|source| PublishError::Write { path: file, source })?;
        }
        for (i, picture) in &incident.plate_pictures {
            let track = incident.payload.objects[*i].track_id;
            let name = format!("{}-plate-{track}.jpg", incident.payload.id);
            let file: PathBuf = evidence_dir.join(name);
            let jpeg = plate_jpeg(picture).map_err(PublishError::Evidence)?;
            fs::write(&file, jpeg).map_err(|source| PublishError::Write { path: file, source })?;
        }
        let mut line = serde_json::to_vec(&incident.payload).expect("payload serializes");
        line.push(b'\n');
        lines
            .write_all(&line)
            .map_err(|source| PublishError::Write { path: path.clone(), source })?;
        count += 1;
    }
    Ok(count)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Each text is the one these errors had as strings, built the way the old code built it.

    #[test]
    fn publish_errors_read_as_before() {
        assert_eq!(PublishError::LinkEnded.to_string(), "the MQTT connection task ended");
        assert_eq!(
            PublishError::BrokerAddress { host: "hub.invalid".into() }.to_string(),
            "mqtt.url: cannot resolve hub.invalid"
        );
        let address: SocketAddr = ([127, 0, 0, 1], 1883).into();
        assert_eq!(
            PublishError::BrokerNotListening(address).to_string(),
            "the embedded broker did not start listening on 127.0.0.1:1883"
        );
        let full = std::io::Error::from(std::io::ErrorKind::StorageFull);
        let text = format!("cannot write out/incidents.jsonl: {full}");
        let write = PublishError::Write { path: "out/incidents.jsonl".into(), source: full };
        assert_eq!(write.to_string(), text);
    }

    #[test]
    fn an_embedded_broker_on_a_taken_port_says_so() {
        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let address = taken.local_addr().unwrap();
        let config: Config = toml::from_str(&format!(
            "[node]\nid = \"n\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:{}\"",
            address.port()
        ))
        .unwrap();
        let why = TcpListener::bind(address).err().unwrap();
        let error = start_embedded_broker(&config.mqtt).err().unwrap();
        assert!(matches!(error, PublishError::BrokerListen { .. }), "{error:?}");
        assert_eq!(
            error.to_string(),
            format!("mqtt.url: the embedded broker cannot listen on {address}: {why}")
        );
    }

    #[test]
    fn a_replay_folder_that_cannot_be_made_says_which() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("not-a-dir");
        fs::write(&file, "x").unwrap();
        let why = fs::create_dir_all(file.join("evidence")).err().unwrap();
        let (_tx, mut rx) = mpsc::channel(1);
        let error = replay_sink(&file, &mut rx).err().unwrap();
        assert_eq!(
            error.to_string(),
            format!("cannot create {}: {why}", file.join("evidence").display())
        );
    }
}
