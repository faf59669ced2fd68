//! The MQTT link: one client speaking MQTT 5 or 3.1.1 (`mqtt.version`), over TCP or TLS, and
//! the task that drives its connection and tells the sink only what the outbox needs to know.
//!
//! rumqttc has a client and an event loop per protocol version; [`Client`] and `Connection` hide
//! which one runs, so that one driver, started by [`open`], reconnects both alike.
//!
//! **Sessions.** Every connection starts a new session: *clean session* in 3.1.1, *clean start*
//! with no session expiry in 5. QoS 1 delivery across reconnects is the outbox's job: it keeps
//! each publication until its PUBACK and, after a reconnect, sends whatever was unacknowledged
//! again, first and in order (an incident keeps its id, so the hub drops duplicates). A session
//! kept by the broker would only add a second copy: rumqttc would replay its own unacknowledged
//! packets too, under packet ids the outbox never saw go out. The node subscribes to nothing, so
//! there is no subscription to keep either.
//!
//! **TLS** (`mqtts://`) goes through rustls with the ring provider. The CA (`mqtt.ca_file`, else
//! the system's roots), the client certificate and its key are read once, by [`Settings::load`]
//! before any camera starts, so a missing or non-PEM file stops the node naming its key.
//!
//! **Reconnects** wait 1 s doubling to 30 s, each ±20 % so that nodes cut off together (a broker
//! restart) do not all come back in the same instant. Before each one the last will, the retained
//! `offline` status, is renewed so that its time is that of the new connection: the same `at`
//! as the `online` that connection brings ([`LinkEvent::Up`]'s `since`).
//!
//! **MQTT 5 properties** help a hub that reads the node through a load-balanced (shared)
//! subscription: every message says its content type (`application/json`, `image/jpeg`,
//! `video/mp4`; JSON is flagged UTF-8), and an incident's messages and its evidence carry the
//! incident id as correlation data and as the user property `incident_id`.

use std::collections::hash_map::RandomState;
use std::fmt::Debug;
use std::hash::BuildHasher;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant, SystemTime};

use rumqttc::v5::mqttbytes::v5::{
    ConnectReturnCode as Code5, DisconnectReasonCode, PubAckReason, PublishProperties,
};
use rumqttc::v5::mqttbytes::{QoS as QoS5, v5 as packets5};
use rumqttc::{ConnectReturnCode as Code311, Outgoing, QoS, TlsConfiguration, TlsError, Transport};
use rustls::CertificateError;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;

use super::MAX_PACKET_BYTES;
use super::outbox::Publication;
use crate::config::{MqttConfig, MqttVersion};
use crate::wire::{Topics, node_status};

/// What the connection task tells the sink.
#[derive(Debug)]
pub enum LinkEvent {
    /// Connected. `since`: when this connection was opened, the time of its `online` status and
    /// of its last will. `max_packet`: the broker's Maximum Packet Size (MQTT 5 CONNACK), when
    /// it says.
    Up {
        since: SystemTime,
        max_packet: Option<u32>,
    },
    /// The broker answered a keep-alive ping: the link works.
    Heard,
    Sent(u16),
    Acknowledged(u16),
    Down {
        error: String,
        retry_in: Duration,
        /// The broker refused a message as too large (0x95) without having announced its limit.
        too_large: bool,
    },
}

/// Why the broker settings cannot be used: a file that `[mqtt]` names (password, CA,
/// certificate, key) is unreadable or unfit. Each names its config key; `cityeye check` reports
/// them as config errors and `run` stops before any camera starts.
#[derive(Debug, thiserror::Error)]
pub enum SettingsError {
    /// `key` is the file's key under `[mqtt]`: `password_file`, `ca_file`, `cert_file`,
    /// `key_file`.
    #[error("mqtt.{key}: cannot read {}: {source}", path.display())]
    Unreadable { key: &'static str, path: PathBuf, source: std::io::Error },
    #[error("mqtt.{key}: {} is not PEM: {source}", path.display())]
    NotPem { key: &'static str, path: PathBuf, source: pem::Error },
    #[error("mqtt.{key}: no PEM certificate in {}", path.display())]
    NoCertificate { key: &'static str, path: PathBuf },
    /// The CA file's certificates are all unusable as roots.
    #[error("mqtt.ca_file: no usable CA certificate in {}", .0.display())]
    NoUsableCa(PathBuf),
    /// No CA file, and the system's store gave none (with why, when it said).
    #[error(
        "mqtt.ca_file: not set, and this system has no CA certificates to use instead{}",
        .0.iter().map(|e| format!("; {e}")).collect::<String>()
    )]
    NoSystemCa(Vec<rustls_native_certs::Error>),
    /// rustls refuses the configuration itself.
    #[error("TLS: {0}")]
    Tls(#[source] rustls::Error),
    #[error("mqtt.key_file: no PEM private key in {} ({source})", path.display())]
    NoPrivateKey { path: PathBuf, source: pem::Error },
    /// The key is not the certificate's.
    #[error("mqtt.key_file: does not go with mqtt.cert_file: {0}")]
    KeyMismatch(#[source] rustls::Error),
}

/// How to reach the broker, with every file it names already read and checked.
pub struct Settings {
    version: MqttVersion,
    client_id: String,
    host: String,
    port: u16,
    keep_alive: Duration,
    credentials: Option<(String, String)>,
    tls: Option<Tls>,
}

struct Tls {
    config: Arc<rustls::ClientConfig>,
    /// Where the trusted CAs come from, for people: a file or the system's store.
    ca: String,
}

impl Settings {
    /// Reads the password, CA, certificate and key files; every error names its config key.
    /// The embedded broker speaks 3.1.1 only, so the node uses 3.1.1 with it whatever
    /// `mqtt.version` says.
    pub fn load(mqtt: &MqttConfig, node: &str) -> Result<Settings, SettingsError> {
        let credentials = match &mqtt.username {
            Some(user) => {
                let password = match &mqtt.password_file {
                    Some(path) => std::fs::read_to_string(path)
                        .map_err(|source| SettingsError::Unreadable {
                            key: "password_file",
                            path: path.clone(),
                            source,
                        })?
                        .trim_end_matches(['\r', '\n'])
                        .to_string(),
                    None => String::new(),
                };
                Some((user.clone(), password))
            }
            None => None,
        };
        let tls = if mqtt.url.tls { Some(tls(mqtt)?) } else { None };
        Ok(Settings {
            version: if mqtt.embedded_broker { MqttVersion::V311 } else { mqtt.version },
            client_id: mqtt.client_id.clone().unwrap_or_else(|| format!("cityeye-{node}")),
            host: mqtt.url.host.clone(),
            port: mqtt.url.port,
            keep_alive: Duration::from_secs(mqtt.keep_alive_s),
            credentials,
            tls,
        })
    }

    /// `mqtts://hub:8883, MQTT 5, CA /etc/cityeye/ca.pem, user edge-0001`
    pub fn describe(&self) -> String {
        let scheme = if self.tls.is_some() { "mqtts" } else { "mqtt" };
        let version = match self.version {
            MqttVersion::V5 => "5",
            MqttVersion::V311 => "3.1.1",
        };
        let mut text = format!("{scheme}://{}:{}, MQTT {version}", self.host, self.port);
        if let Some(tls) = &self.tls {
            text += &format!(", CA {}", tls.ca);
        }
        if let Some((user, _)) = &self.credentials {
            text += &format!(", user {user}");
        }
        text
    }

    /// The node's own client id: other clients of the node take it with a suffix.
    pub fn client_id(&self) -> &str {
        &self.client_id
    }

    /// MQTT 3.1.1 options for a client that only subscribes (`cityeye tail`): the node's broker,
    /// transport and credentials, its own client id, no last will.
    pub fn subscriber_options(&self, client_id: &str) -> rumqttc::MqttOptions {
        let mut options = rumqttc::MqttOptions::new(client_id, &self.host, self.port);
        options
            .set_keep_alive(self.keep_alive)
            .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES)
            .set_transport(self.transport());
        if let Some((user, password)) = &self.credentials {
            options.set_credentials(user, password);
        }
        options
    }

    fn transport(&self) -> Transport {
        match &self.tls {
            Some(tls) => Transport::tls_with_config(TlsConfiguration::Rustls(tls.config.clone())),
            None => Transport::Tcp,
        }
    }
}

/// The rustls client config for `mqtts://`.
fn tls(mqtt: &MqttConfig) -> Result<Tls, SettingsError> {
    let mut roots = rustls::RootCertStore::empty();
    let ca = match &mqtt.ca_file {
        Some(path) => {
            let (added, _) = roots.add_parsable_certificates(certificates("ca_file", path)?);
            if added == 0 {
                return Err(SettingsError::NoUsableCa(path.clone()));
            }
            path.display().to_string()
        }
        None => {
            let system = rustls_native_certs::load_native_certs();
            roots.add_parsable_certificates(system.certs);
            if roots.is_empty() {
                return Err(SettingsError::NoSystemCa(system.errors));
            }
            "the system's roots".to_string()
        }
    };
    let builder = rustls::ClientConfig::builder_with_provider(
        rustls::crypto::ring::default_provider().into(),
    )
    .with_safe_default_protocol_versions()
    .map_err(SettingsError::Tls)?
    .with_root_certificates(roots);
    let config = match (&mqtt.cert_file, &mqtt.key_file) {
        (Some(cert), Some(key)) => {
            let bytes = read("key_file", key)?;
            let key_der = PrivateKeyDer::from_pem_slice(&bytes)
                .map_err(|source| SettingsError::NoPrivateKey { path: key.clone(), source })?;
            builder
                .with_client_auth_cert(certificates("cert_file", cert)?, key_der)
                .map_err(SettingsError::KeyMismatch)?
        }
        _ => builder.with_no_client_auth(),
    };
    Ok(Tls { config: Arc::new(config), ca })
}

fn read(key: &'static str, path: &Path) -> Result<Vec<u8>, SettingsError> {
    std::fs::read(path).map_err(|source| SettingsError::Unreadable {
        key,
        path: path.to_path_buf(),
        source,
    })
}

/// The PEM certificates in a file: at least one, and all of them well formed.
fn certificates(
    key: &'static str,
    path: &Path,
) -> Result<Vec<CertificateDer<'static>>, SettingsError> {
    let bytes = read(key, path)?;
    let certificates = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|source| SettingsError::NotPem { key, path: path.to_path_buf(), source })?;
    if certificates.is_empty() {
        return Err(SettingsError::NoCertificate { key, path: path.to_path_buf() });
    }
    Ok(certificates)
}

/// Publishes for the sink; each call only queues for the connection task, never waits.
pub enum Client {
    V5(rumqttc::v5::AsyncClient),
    V311(rumqttc::AsyncClient),
}

impl Client {
    /// Queues a QoS 1 publish, with its MQTT 5 properties; false when the client takes no more
    /// for now.
    pub fn try_publish(&self, p: &Publication) -> bool {
        let (topic, payload) = (p.topic.as_str(), p.payload.clone());
        match self {
            Client::V5(c) => c
                .try_publish_with_properties(
                    topic,
                    QoS5::AtLeastOnce,
                    p.retain,
                    payload,
                    properties(p),
                )
                .is_ok(),
            Client::V311(c) => c.try_publish(topic, QoS::AtLeastOnce, p.retain, payload).is_ok(),
        }
    }

    /// Queues a DISCONNECT, after which the broker drops the last will; false when the client
    /// takes no more (the last will then says `offline` instead).
    pub fn try_disconnect(&self) -> bool {
        match self {
            Client::V5(c) => c.try_disconnect().is_ok(),
            Client::V311(c) => c.try_disconnect().is_ok(),
        }
    }
}

/// A publication's MQTT 5 properties: what a hub on a shared subscription needs to handle a
/// message on its own.
fn properties(p: &Publication) -> PublishProperties {
    let content_type = p.content_type();
    let id = p.incident_id();
    PublishProperties {
        // 1: the payload is UTF-8 text.
        payload_format_indicator: (content_type == "application/json").then_some(1),
        content_type: Some(content_type.to_string()),
        correlation_data: id.clone().map(Into::into),
        user_properties: id.map(|id| vec![("incident_id".to_string(), id)]).unwrap_or_default(),
        ..PublishProperties::default()
    }
}

/// Connects in the background: the client to publish with, what happens to the link, and the
/// task driving it (it ends after [`Client::try_disconnect`]). `window` is how many publishes
/// the client queues at most.
pub fn open(
    settings: &Settings,
    node: &str,
    topics: &Topics,
    window: usize,
) -> (Client, mpsc::Receiver<LinkEvent>, JoinHandle<()>) {
    let (client, connection) = match settings.version {
        MqttVersion::V5 => {
            let mut options =
                rumqttc::v5::MqttOptions::new(&settings.client_id, &settings.host, settings.port);
            options
                .set_keep_alive(settings.keep_alive)
                .set_clean_start(true)
                .set_max_packet_size(Some(MAX_PACKET_BYTES as u32))
                .set_transport(settings.transport());
            if let Some((user, password)) = &settings.credentials {
                options.set_credentials(user, password);
            }
            let (client, eventloop) = rumqttc::v5::AsyncClient::new(options, window);
            (Client::V5(client), Connection::V5(eventloop))
        }
        MqttVersion::V311 => {
            let mut options =
                rumqttc::MqttOptions::new(&settings.client_id, &settings.host, settings.port);
            options
                .set_keep_alive(settings.keep_alive)
                .set_clean_session(true)
                .set_max_packet_size(MAX_PACKET_BYTES, MAX_PACKET_BYTES)
                .set_transport(settings.transport());
            if let Some((user, password)) = &settings.credentials {
                options.set_credentials(user, password);
            }
            let (client, eventloop) = rumqttc::AsyncClient::new(options, window);
            (Client::V311(client), Connection::V311(eventloop))
        }
    };
    let (tx, rx) = mpsc::channel(4 * window);
    let driver = tokio::spawn(drive(connection, tx, node.to_string(), topics.clone()));
    (client, rx, driver)
}

/// Polls the connection on a task of its own (a poll cancelled halfway through connecting would
/// leave the broker a broken session and make it announce the last will) and reports what
/// matters to the sink. Reconnects with [`Backoff`]. Ends on disconnect.
async fn drive(
    mut connection: Connection,
    link: mpsc::Sender<LinkEvent>,
    node: String,
    topics: Topics,
) {
    let mut backoff = Backoff::default();
    let mut since = SystemTime::now();
    connection.renew_last_will(&node, &topics, since);
    loop {
        let event = match connection.poll().await {
            Polled::Connected(max_packet) => {
                backoff = Backoff::default();
                LinkEvent::Up { since, max_packet }
            }
            Polled::Heard => LinkEvent::Heard,
            Polled::Sent(pkid) => LinkEvent::Sent(pkid),
            Polled::Acknowledged(pkid) => LinkEvent::Acknowledged(pkid),
            Polled::Disconnected => return,
            Polled::Other => continue,
            Polled::Failed { error, too_large } => {
                let retry_in = backoff.next_delay();
                let _ = link.send(LinkEvent::Down { error, retry_in, too_large }).await;
                tokio::time::sleep(retry_in).await;
                connection.forget_unsent();
                since = SystemTime::now();
                connection.renew_last_will(&node, &topics, since);
                continue;
            }
        };
        if link.send(event).await.is_err() {
            return;
        }
    }
}

/// The event loop of either protocol version.
#[expect(clippy::large_enum_variant, reason = "one per node, owned by its task")]
enum Connection {
    V5(rumqttc::v5::EventLoop),
    V311(rumqttc::EventLoop),
}

/// What the event loop did, in the terms the driver acts on.
enum Polled {
    /// With the broker's Maximum Packet Size, when its CONNACK says.
    Connected(Option<u32>),
    Heard,
    Sent(u16),
    Acknowledged(u16),
    /// Our own DISCONNECT went out.
    Disconnected,
    Other,
    /// `too_large`: the broker refused a message as too large.
    Failed {
        error: String,
        too_large: bool,
    },
}

impl Polled {
    fn failed(error: String) -> Polled {
        Polled::Failed { error, too_large: false }
    }
}

impl Connection {
    async fn poll(&mut self) -> Polled {
        use rumqttc::v5::{ConnectionError as Error5, Event as Event5};
        use rumqttc::{ConnectionError as Error311, Event as Event311};
        match self {
            Connection::V5(eventloop) => match eventloop.poll().await {
                Ok(Event5::Incoming(packets5::Packet::ConnAck(ack))) => {
                    Polled::Connected(ack.properties.and_then(|p| p.max_packet_size))
                }
                Ok(Event5::Incoming(packets5::Packet::PingResp(_))) => Polled::Heard,
                Ok(Event5::Outgoing(Outgoing::Publish(pkid))) => Polled::Sent(pkid),
                Ok(Event5::Incoming(packets5::Packet::PubAck(ack))) => {
                    // A refusal is final (resending would be refused again): say so, move on.
                    if !matches!(
                        ack.reason,
                        PubAckReason::Success | PubAckReason::NoMatchingSubscribers
                    ) {
                        tracing::warn!(
                            pkid = ack.pkid,
                            "the broker refused a message: {:?}",
                            ack.reason
                        );
                    }
                    Polled::Acknowledged(ack.pkid)
                }
                Ok(Event5::Outgoing(Outgoing::Disconnect)) => Polled::Disconnected,
                Ok(_) => Polled::Other,
                // A CONNACK with a failure reason code ends up here.
                Err(Error5::ConnectionRefused(code)) => Polled::failed(refused(
                    &code,
                    matches!(code, Code5::BadUserNamePassword | Code5::NotAuthorized),
                )),
                Err(Error5::Tls(e)) => Polled::failed(tls_failure(&e)),
                Err(Error5::MqttState(e)) if refused_as_too_large(&e) => {
                    Polled::Failed { error: format!("{e}: {TOO_LARGE_HINT}"), too_large: true }
                }
                Err(e) => Polled::failed(e.to_string()),
            },
            Connection::V311(eventloop) => match eventloop.poll().await {
                Ok(Event311::Incoming(rumqttc::Packet::ConnAck(_))) => Polled::Connected(None),
                Ok(Event311::Incoming(rumqttc::Packet::PingResp)) => Polled::Heard,
                Ok(Event311::Outgoing(Outgoing::Publish(pkid))) => Polled::Sent(pkid),
                Ok(Event311::Incoming(rumqttc::Packet::PubAck(ack))) => {
                    Polled::Acknowledged(ack.pkid)
                }
                Ok(Event311::Outgoing(Outgoing::Disconnect)) => Polled::Disconnected,
                Ok(_) => Polled::Other,
                Err(Error311::ConnectionRefused(code)) => Polled::failed(refused(
                    &code,
                    matches!(code, Code311::BadUserNamePassword | Code311::NotAuthorized),
                )),
                Err(Error311::Tls(e)) => Polled::failed(tls_failure(&e)),
                Err(e) => Polled::failed(e.to_string()),
            },
        }
    }

    /// Drops the publications the sink handed over before it learnt the link was down: the
    /// outbox sends them again after the reconnect, and a second, stale copy from the client's
    /// channel would take the packet ids the outbox expects for its own.
    fn forget_unsent(&mut self) {
        match self {
            Connection::V5(eventloop) => {
                eventloop.clean();
                eventloop.pending.clear();
            }
            Connection::V311(eventloop) => {
                eventloop.clean();
                eventloop.pending.clear();
            }
        }
    }

    /// The last will for the next connection, opened `since`: the node's retained `offline`
    /// status, timed like the connection's `online` (the node cannot know when it will die; the
    /// broker publishes the will at that moment).
    fn renew_last_will(&mut self, node: &str, topics: &Topics, since: SystemTime) {
        let (topic, payload) = (topics.node_status(), node_status(node, false, since, None, None));
        match self {
            Connection::V5(eventloop) => {
                let will = packets5::LastWill::new(topic, payload, QoS5::AtLeastOnce, true, None);
                eventloop.options.set_last_will(will);
            }
            Connection::V311(eventloop) => {
                let will = rumqttc::LastWill::new(topic, payload, QoS::AtLeastOnce, true);
                eventloop.mqtt_options.set_last_will(will);
            }
        }
    }
}

/// What to do when the broker refuses a message as too large (0x95).
const TOO_LARGE_HINT: &str = "the broker refused a message as too large (0x95, packet too \
    large) without announcing its limit at connect time: set mqtt.max_packet_bytes to the \
    broker's limit (mosquitto: message_size_limit), or have the broker announce it (mosquitto: \
    max_packet_size)";

/// The broker refused a message as too large: a DISCONNECT saying so, or a PUBACK with reason
/// 0x95, which rumqttc cannot read (`Invalid return code received as response for connect =
/// 149`).
fn refused_as_too_large(e: &rumqttc::v5::StateError) -> bool {
    use rumqttc::v5::StateError;
    use rumqttc::v5::mqttbytes::Error;
    matches!(
        e,
        StateError::Deserialization(Error::InvalidConnectReturnCode(0x95))
            | StateError::ServerDisconnect {
                reason_code: DisconnectReasonCode::PacketTooLarge,
                ..
            }
    )
}

/// A CONNACK refusal, with the keys to look at when it is about the credentials.
fn refused(code: &dyn Debug, credentials: bool) -> String {
    if credentials {
        format!(
            "the broker refused the connection: not authorised ({code:?}); check mqtt.username \
             and mqtt.password_file"
        )
    } else {
        format!("the broker refused the connection: {code:?}")
    }
}

/// A TLS failure, with what to check: rumqttc's own text (`TLS: I/O: invalid peer certificate:
/// UnknownIssuer`) names neither the cause nor the key.
fn tls_failure(e: &TlsError) -> String {
    let cause = match e {
        TlsError::TLS(e) => e,
        TlsError::Io(io) => match io.get_ref().and_then(|e| e.downcast_ref::<rustls::Error>()) {
            Some(e) => e,
            // The peer hung up mid-handshake: a plain MQTT listener does (mosquitto resets).
            None => {
                return format!(
                    "TLS: the handshake failed ({io}); is mqtt.url's port a TLS listener?"
                );
            }
        },
        TlsError::DNSName(_) => {
            return "TLS: the host of mqtt.url is not a valid name for a certificate".into();
        }
        _ => return format!("TLS: {e}"),
    };
    let hint = match cause {
        rustls::Error::InvalidCertificate(CertificateError::UnknownIssuer) => {
            "the broker's certificate is not signed by a CA this node trusts (mqtt.ca_file)"
        }
        rustls::Error::InvalidCertificate(
            CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. },
        ) => "the broker's certificate is not for the host in mqtt.url",
        rustls::Error::InvalidCertificate(
            CertificateError::Expired
            | CertificateError::ExpiredContext { .. }
            | CertificateError::NotValidYet
            | CertificateError::NotValidYetContext { .. },
        ) => "the broker's certificate is out of date, or this node's clock is wrong",
        rustls::Error::AlertReceived(_) => {
            "the broker refused the handshake, perhaps for want of a client certificate \
             (mqtt.cert_file, mqtt.key_file)"
        }
        rustls::Error::InvalidMessage(_) => {
            "the broker did not answer in TLS (is mqtt.url's port a TLS listener?)"
        }
        _ => return format!("TLS: {cause}"),
    };
    format!("TLS: {hint}: {cause}")
}

/// Reconnect delays: 1 s doubling to 30 s, each ±20 %.
#[derive(Debug)]
struct Backoff {
    nominal: Duration,
}

const FIRST_DELAY: Duration = Duration::from_secs(1);
const LONGEST_DELAY: Duration = Duration::from_secs(30);

impl Default for Backoff {
    fn default() -> Self {
        Backoff { nominal: FIRST_DELAY }
    }
}

impl Backoff {
    fn next_delay(&mut self) -> Duration {
        let delay = jittered(self.nominal, random_unit());
        self.nominal = (self.nominal * 2).min(LONGEST_DELAY);
        delay
    }
}

/// `nominal` moved by up to ±20 %, `unit` (in [0, 1)) saying where in that range.
fn jittered(nominal: Duration, unit: f64) -> Duration {
    nominal.mul_f64(0.8 + 0.4 * unit)
}

/// A number in [0, 1), different at every call: std's hasher keys are random per process and
/// change with each `RandomState`, which is all jitter needs (no crate for it).
fn random_unit() -> f64 {
    let bits = RandomState::new().hash_one(Instant::now());
    (bits >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_to_thirty_seconds_within_twenty_percent() {
        let mut backoff = Backoff::default();
        for nominal in [1.0, 2.0, 4.0, 8.0, 16.0, 30.0, 30.0] {
            let delay = backoff.next_delay().as_secs_f64();
            assert!(
                (nominal * 0.8..nominal * 1.2).contains(&delay),
                "{delay} s is not {nominal} s ± 20 %"
            );
        }
        assert_eq!(jittered(Duration::from_secs(10), 0.0), Duration::from_secs(8));
        assert_eq!(jittered(Duration::from_secs(10), 0.5), Duration::from_secs(10));
    }

    #[test]
    fn jitter_spreads_the_delays() {
        let units: Vec<f64> = (0..100).map(|_| random_unit()).collect();
        assert!(units.iter().all(|u| (0.0..1.0).contains(u)));
        let low = units.iter().filter(|u| **u < 0.5).count();
        assert!((20..=80).contains(&low), "{low} of 100 below one half");
    }

    fn mqtt(text: &str) -> MqttConfig {
        let config: crate::config::Config =
            toml::from_str(&format!("[node]\nid = \"n\"\n[mqtt]\n{text}")).unwrap();
        config.mqtt
    }

    #[test]
    fn unreadable_or_non_pem_files_name_their_key() {
        let dir = tempfile::tempdir().unwrap();
        let junk = dir.path().join("junk.pem");
        std::fs::write(&junk, "not a certificate").unwrap();
        let junk = junk.display();
        let error = |text: &str| Settings::load(&mqtt(text), "n").err().unwrap().to_string();

        let e = error(&format!("url = \"mqtts://h\"\nca_file = \"{junk}\""));
        assert!(e.starts_with("mqtt.ca_file: no PEM certificate in "), "{e}");
        let e = error("url = \"mqtts://h\"\nca_file = \"/nonexistent/ca.pem\"");
        assert!(e.starts_with("mqtt.ca_file: cannot read /nonexistent/ca.pem"), "{e}");
        let e = error("username = \"u\"\npassword_file = \"/nonexistent/pw\"");
        assert!(e.starts_with("mqtt.password_file: cannot read"), "{e}");
    }

    #[test]
    fn settings_errors_read_as_before() {
        // Each text is the one these errors had as strings.
        let pem = "/etc/cityeye/client.pem";
        assert_eq!(
            SettingsError::NoCertificate { key: "cert_file", path: pem.into() }.to_string(),
            format!("mqtt.cert_file: no PEM certificate in {pem}")
        );
        assert_eq!(
            SettingsError::NoUsableCa("/etc/cityeye/ca.pem".into()).to_string(),
            "mqtt.ca_file: no usable CA certificate in /etc/cityeye/ca.pem"
        );
        assert_eq!(
            SettingsError::NoSystemCa(Vec::new()).to_string(),
            "mqtt.ca_file: not set, and this system has no CA certificates to use instead"
        );
        let why = rustls::Error::General("no".into());
        let text = format!("mqtt.key_file: does not go with mqtt.cert_file: {why}");
        assert_eq!(SettingsError::KeyMismatch(why).to_string(), text);
    }

    #[test]
    fn the_embedded_broker_is_spoken_to_in_3_1_1() {
        let settings = Settings::load(&mqtt("embedded_broker = true"), "n").unwrap();
        assert_eq!(settings.version, MqttVersion::V311);
        let settings = Settings::load(&mqtt("url = \"mqtt://hub:1884\""), "n").unwrap();
        assert_eq!(settings.describe(), "mqtt://hub:1884, MQTT 5");
    }
}
