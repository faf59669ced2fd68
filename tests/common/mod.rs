//! Real parts for the integration tests: a mosquitto broker, an RTSP server serving the shared
//! footage, an MQTT subscriber, and the `cityeye` binary itself. Everything listens on
//! 127.0.0.1 on free ports and is stopped when dropped.

#![allow(dead_code)] // each test binary uses its own subset

use std::fs;
use std::net::{Ipv4Addr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

pub mod browser;
pub mod mqtt5;

pub use cityeye::commands::simulate::Codec;
use cityeye::commands::simulate::{Mount, Server};

pub fn shared(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../shared").join(path)
}

pub fn repo(path: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join(path)
}

/// A model scripts/make-test-models made (scripts/test runs it) from the shared YOLOX-Nano
/// with the official `onnx` package: `yolox_nano.end2end.onnx`, `colour_red_blue.onnx`, ...
pub fn test_model(file: &str) -> PathBuf {
    let path = repo("target/models").join(file);
    assert!(
        path.is_file(),
        "{} is missing: run scripts/make-test-models ../shared/models/yolox_nano.onnx \
         target/models",
        path.display()
    );
    path
}

pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

fn wait_for_port(port: u16, timeout: Duration) -> bool {
    let until = Instant::now() + timeout;
    while Instant::now() < until {
        if TcpStream::connect(("127.0.0.1", port)).is_ok() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    false
}

/// A mosquitto broker on 127.0.0.1 and a free port.
pub struct Mosquitto {
    pub port: u16,
    child: Child,
    dir: tempfile::TempDir,
}

impl Mosquitto {
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    pub fn start() -> Mosquitto {
        Mosquitto::start_on(free_port())
    }

    pub fn start_on(port: u16) -> Mosquitto {
        Mosquitto::start_with(port, "")
    }

    /// Starts with an anonymous listener on `port` followed by `extra` configuration: more
    /// listeners, each with settings of its own (`per_listener_settings` is on).
    pub fn start_with(port: u16, extra: &str) -> Mosquitto {
        let dir = tempfile::tempdir().unwrap();
        let conf = dir.path().join("mosquitto.conf");
        // As root, mosquitto would switch to its own user, who cannot read this private folder.
        fs::write(
            &conf,
            format!(
                "user root\nper_listener_settings true\npersistence false\n\
                 log_dest file {log}\nlistener {port} 127.0.0.1\nallow_anonymous true\n{extra}",
                log = dir.path().join("mosquitto.log").display(),
            ),
        )
        .unwrap();
        let child = Command::new("mosquitto")
            .arg("-c")
            .arg(&conf)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("mosquitto is installed by scripts/setup");
        assert!(wait_for_port(port, Duration::from_secs(10)), "mosquitto did not start on {port}");
        Mosquitto { port, child, dir }
    }

    /// What it logged so far: connections, with protocol (`p2` is 3.1.1, `p5` is 5) and user.
    pub fn log(&self) -> String {
        fs::read_to_string(self.dir.path().join("mosquitto.log")).unwrap_or_default()
    }
}

impl Drop for Mosquitto {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A camera: the library's RTSP server (what `cityeye simulate` runs) on 127.0.0.1 serving a
/// video file re-encoded, looped, reached at `url()` through a relay that can cut it off the
/// network (`stop`) and bring it back (`resume`).
pub struct RtspServer {
    relay: Relay,
    _server: Server,
}

impl RtspServer {
    pub fn start(file: &Path) -> RtspServer {
        RtspServer::start_with(file, Codec::H264)
    }

    pub fn start_with(file: &Path, codec: Codec) -> RtspServer {
        RtspServer::serve(
            Mount { path: "/camera".into(), video: file.to_path_buf(), udp_only: false },
            codec,
        )
    }

    /// A server that offers RTP over UDP only, as VLC's RTSP output: asked for TCP, it answers
    /// `461 Unsupported transport`.
    pub fn start_udp_only(file: &Path) -> RtspServer {
        RtspServer::serve(
            Mount { path: "/camera".into(), video: file.to_path_buf(), udp_only: true },
            Codec::H264,
        )
    }

    fn serve(mount: Mount, codec: Codec) -> RtspServer {
        let server = Server::start(Ipv4Addr::LOCALHOST.into(), 0, &[mount], codec)
            .unwrap_or_else(|e| panic!("RTSP server: {e}"));
        RtspServer { relay: Relay::start(server.port()), _server: server }
    }

    pub fn url(&self) -> String {
        format!("rtsp://127.0.0.1:{}/camera", self.relay.port)
    }

    /// The camera drops off the network: its port closes and open connections are reset.
    pub fn stop(&mut self) {
        self.relay.cut();
    }

    /// The camera is back on the same address.
    pub fn resume(&mut self) {
        self.relay.restore();
    }
}

/// A TCP relay from a port of its own to `target`, which can be cut and restored.
struct Relay {
    port: u16,
    target: u16,
    up: Arc<std::sync::atomic::AtomicBool>,
    connections: Arc<Mutex<Vec<TcpStream>>>,
    acceptor: Option<std::thread::JoinHandle<()>>,
}

impl Relay {
    fn start(target: u16) -> Relay {
        let mut relay = Relay {
            port: free_port(),
            target,
            up: Arc::default(),
            connections: Arc::default(),
            acceptor: None,
        };
        relay.restore();
        relay
    }

    fn restore(&mut self) {
        use std::sync::atomic::Ordering;
        let listener =
            TcpListener::bind(("127.0.0.1", self.port)).expect("relay port is free again");
        listener.set_nonblocking(true).unwrap();
        self.up.store(true, Ordering::SeqCst);
        let (up, connections, target) = (self.up.clone(), self.connections.clone(), self.target);
        self.acceptor = Some(std::thread::spawn(move || {
            while up.load(Ordering::SeqCst) {
                let Ok((client, _)) = listener.accept() else {
                    std::thread::sleep(Duration::from_millis(20));
                    continue;
                };
                client.set_nonblocking(false).unwrap();
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else { continue };
                let mut kept = connections.lock().unwrap();
                kept.push(client.try_clone().unwrap());
                kept.push(server.try_clone().unwrap());
                for (mut from, mut to) in
                    [(client.try_clone().unwrap(), server.try_clone().unwrap()), (server, client)]
                {
                    std::thread::spawn(move || {
                        let _ = std::io::copy(&mut from, &mut to);
                        let _ = to.shutdown(std::net::Shutdown::Both);
                    });
                }
            }
        }));
    }

    fn cut(&mut self) {
        self.up.store(false, std::sync::atomic::Ordering::SeqCst);
        if let Some(acceptor) = self.acceptor.take() {
            let _ = acceptor.join(); // drops the listener: the port closes
        }
        for stream in self.connections.lock().unwrap().drain(..) {
            let _ = stream.shutdown(std::net::Shutdown::Both);
        }
    }
}

impl Drop for Relay {
    fn drop(&mut self) {
        self.cut();
    }
}

/// An MQTT message as a subscriber received it.
#[derive(Debug, Clone)]
pub struct Message {
    pub topic: String,
    pub payload: Vec<u8>,
    pub retain: bool,
}

impl Message {
    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.payload)
            .unwrap_or_else(|e| panic!("{} is not JSON: {e}", self.topic))
    }
}

/// Subscribes to `filter` and keeps every message, in arrival order.
pub struct Subscriber {
    messages: Arc<Mutex<Vec<Message>>>,
    client: rumqttc::Client,
}

impl Subscriber {
    pub fn connect(port: u16, filter: &str) -> Subscriber {
        let mut options =
            rumqttc::MqttOptions::new(format!("test-{}", free_port()), "127.0.0.1", port);
        options.set_max_packet_size(16 << 20, 16 << 20);
        options.set_keep_alive(Duration::from_secs(5));
        let (client, mut connection) = rumqttc::Client::new(options, 100);
        let messages = Arc::new(Mutex::new(Vec::new()));
        let (subscribed_tx, subscribed) = mpsc::channel();
        let sink = messages.clone();
        let (resubscribe, filter) = (client.clone(), filter.to_string());
        std::thread::spawn(move || {
            for event in connection.iter() {
                match event {
                    // Also after a broker restart: a clean session forgets subscriptions.
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                        let _ = resubscribe.try_subscribe(&filter, rumqttc::QoS::AtLeastOnce);
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                        let _ = subscribed_tx.send(());
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                        sink.lock().unwrap().push(Message {
                            topic: p.topic.clone(),
                            payload: p.payload.to_vec(),
                            retain: p.retain,
                        })
                    }
                    Ok(_) => {}
                    // The broker may be restarted by a test; keep trying.
                    Err(_) => std::thread::sleep(Duration::from_millis(200)),
                }
            }
        });
        subscribed.recv_timeout(Duration::from_secs(10)).expect("subscribed");
        Subscriber { messages, client }
    }

    pub fn messages(&self) -> Vec<Message> {
        self.messages.lock().unwrap().clone()
    }

    /// Waits until `done` holds for the messages so far; returns them either way.
    pub fn wait_until(&self, timeout: Duration, done: impl Fn(&[Message]) -> bool) -> Vec<Message> {
        wait_for(timeout, || self.messages(), done)
    }
}

/// Polls `messages` until `done` holds for them or `timeout` passes; returns the last ones
/// either way. Every subscriber's `wait_until`.
pub fn wait_for<M>(
    timeout: Duration,
    messages: impl Fn() -> Vec<M>,
    done: impl Fn(&[M]) -> bool,
) -> Vec<M> {
    let until = Instant::now() + timeout;
    loop {
        let messages = messages();
        if done(&messages) || Instant::now() > until {
            return messages;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

impl Drop for Subscriber {
    fn drop(&mut self) {
        let _ = self.client.disconnect();
    }
}

pub fn incidents<'a>(messages: &'a [Message], state: &str) -> Vec<&'a Message> {
    messages
        .iter()
        .filter(|m| m.topic.contains("/incident/") && m.json()["state"] == state)
        .collect()
}

/// The `cityeye` binary running a config, its log kept in the config's folder.
pub struct Appliance {
    child: Child,
    log: PathBuf,
}

impl Appliance {
    pub fn run(config: &Path) -> Appliance {
        Appliance::run_with_env(config, &[])
    }

    /// Runs it with extra environment variables, such as systemd's.
    pub fn run_with_env(config: &Path, env: &[(&str, &str)]) -> Appliance {
        let log = config.with_extension("log");
        let child = Command::new(env!("CARGO_BIN_EXE_cityeye"))
            .args(["run", "--config"])
            .arg(config)
            .env("NO_COLOR", "1")
            .envs(env.iter().copied())
            .stdout(Stdio::null())
            .stderr(fs::File::create(&log).unwrap())
            .spawn()
            .unwrap();
        Appliance { child, log }
    }

    pub fn log(&self) -> String {
        fs::read_to_string(&self.log).unwrap_or_default()
    }

    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits up to `timeout` for it to exit by itself; its exit status if it did.
    pub fn wait_exit(&mut self, timeout: Duration) -> Option<std::process::ExitStatus> {
        let until = Instant::now() + timeout;
        while Instant::now() < until {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        None
    }

    /// The port it logged for its HTTP endpoints (the test configs ask for any free one).
    pub fn http_port(&self) -> Option<u16> {
        let log = self.log();
        let line = log.lines().find(|l| l.contains("HTTP on http://127.0.0.1:"))?;
        let rest = &line[line.find("127.0.0.1:")? + "127.0.0.1:".len()..];
        rest.split(|c: char| !c.is_ascii_digit()).next()?.parse().ok()
    }

    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    /// Kills it outright (SIGKILL), as a power cut or the OOM killer would.
    pub fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// Sends it a signal, e.g. `HUP`.
    pub fn signal(&self, name: &str) {
        let _ =
            Command::new("kill").arg(format!("-{name}")).arg(self.child.id().to_string()).status();
    }

    /// Stops it as systemd would (SIGTERM) and waits; returns whether it exited by itself.
    pub fn stop(&mut self) -> bool {
        self.signal("TERM");
        if self.wait_exit(Duration::from_secs(15)).is_some() {
            return true;
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        false
    }
}

impl Drop for Appliance {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop();
        }
    }
}

/// A node config watching the parked-vehicle kerb at the top right of vtest.avi.
pub fn kerb_config(
    broker_port: u16,
    embedded_broker: bool,
    camera_url: &str,
    dwell_s: f64,
) -> String {
    format!(
        r#"
[node]
id = "edge-test"
data_dir = "data"

[mqtt]
url = "mqtt://127.0.0.1:{broker_port}"
topic_prefix = "cityeye"
embedded_broker = {embedded_broker}

[http]
listen = "127.0.0.1:0"

[[models]]
name = "coco"
path = "{model}"
format = "yolox"
classes = "{classes}"

[[cameras]]
id = "kerb"
url = "{camera_url}"
analysis_fps = 5
model = "coco"

  [[cameras.zones]]
  name = "no-parking"
  polygon = [[0.80, 0.00], [1.00, 0.00], [1.00, 0.25], [0.80, 0.25]]

  [[cameras.algorithms]]
  type = "illegal_parking"
  zone = "no-parking"
  dwell_s = {dwell_s}
  cooldown_s = 600
"#,
        model = shared("models/yolox_nano.onnx").display(),
        classes = repo("models/coco80.txt").display(),
    )
}

/// Writes `text` as `cityeye.toml` in a new temporary folder.
pub fn write_config(text: &str) -> (tempfile::TempDir, PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("cityeye.toml");
    fs::write(&path, text).unwrap();
    (dir, path)
}

/// Replays `camera`'s video once through the ingest stage, wall-clock time counting from
/// `start`; every sampled frame goes to `frame`. Returns how many frames were decoded.
pub fn replay_frames(
    camera: &cityeye::config::CameraConfig,
    start: std::time::SystemTime,
    frame: &mut dyn FnMut(cityeye::frame::Frame),
) -> u64 {
    use std::sync::atomic::{AtomicBool, Ordering};
    let stats = Arc::new(cityeye::stats::CameraStats::default());
    let mode = cityeye::ingest::Mode::Replay { start };
    cityeye::ingest::run(camera, mode, &AtomicBool::new(false), &stats, &mut |_| {}, frame, None)
        .unwrap_or_else(|e| panic!("replay of {}: {e}", camera.url.masked()));
    stats.frames_in.load(Ordering::Relaxed)
}

/// The ids of the incidents (start messages) committed to the outbox in `data_dir`, in order.
/// A logged incident may not be on disk yet: its evidence is still being encoded.
pub fn committed_incidents(data_dir: &std::path::Path) -> Vec<String> {
    let path = data_dir.join("outbox.sqlite");
    let flags = rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY;
    let Ok(store) = rusqlite::Connection::open_with_flags(&path, flags) else { return vec![] };
    let Ok(mut rows) = store.prepare("SELECT topic, payload FROM outbox ORDER BY row") else {
        return vec![];
    };
    let incidents = rows.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, Vec<u8>>(1)?)));
    incidents
        .map(|rows| {
            rows.flatten()
                .filter(|(topic, _)| topic.contains("/incident/"))
                .filter_map(|(_, payload)| {
                    serde_json::from_slice::<serde_json::Value>(&payload).ok()
                })
                .filter(|json| json["state"] == "start")
                .filter_map(|json| json["id"].as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Checks a payload against the repository's JSON Schema for it.
pub fn assert_matches_schema(schema_file: &str, payload: &serde_json::Value) {
    let schema: serde_json::Value =
        serde_json::from_str(&fs::read_to_string(repo(schema_file)).unwrap()).unwrap();
    let validator = jsonschema::validator_for(&schema).expect("the schema is valid");
    let errors: Vec<String> = validator.iter_errors(payload).map(|e| e.to_string()).collect();
    assert!(errors.is_empty(), "{payload} does not match {schema_file}: {errors:?}");
}

/// Runs a gst-launch-1.0 pipeline to its end: test media made with real elements.
pub fn gst_launch(pipeline: &str) {
    let status = Command::new("gst-launch-1.0")
        .arg("-q")
        .args(pipeline.split_whitespace())
        .status()
        .expect("gst-launch-1.0 is installed with GStreamer");
    assert!(status.success(), "gst-launch-1.0 {pipeline}");
}

/// vtest.avi at half its size (384x288), as H.264 in MP4, made in `dir`: a camera's detect
/// sub-stream beside the original as its main stream.
pub fn half_size_vtest(dir: &Path) -> PathBuf {
    let sub = dir.join("vtest-384x288.mp4");
    gst_launch(&format!(
        "filesrc location={} ! decodebin ! videoconvert ! videoscale \
         ! video/x-raw,width=384,height=288 ! x264enc speed-preset=ultrafast ! mp4mux \
         ! filesink location={}",
        shared("testdata/vtest.avi").display(),
        sub.display()
    ));
    sub
}

/// An audio-only MP4 (AAC, 50 buffers of a test tone) at `path`: a "video" without video.
pub fn audio_only_mp4(path: &Path) {
    gst_launch(&format!(
        "audiotestsrc num-buffers=50 ! audioconvert ! avenc_aac ! mp4mux ! filesink location={}",
        path.display()
    ));
}

/// Publishes one QoS 1 message to the broker on `port` and waits for its acknowledgement, as
/// the city platform would (a verdict, say).
pub fn publish(port: u16, topic: &str, payload: &[u8]) {
    let options = rumqttc::MqttOptions::new(format!("test-pub-{}", free_port()), "127.0.0.1", port);
    let (client, mut connection) = rumqttc::Client::new(options, 10);
    client.publish(topic, rumqttc::QoS::AtLeastOnce, false, payload.to_vec()).unwrap();
    for event in connection.iter() {
        match event {
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::PubAck(_))) => break,
            Ok(_) => {}
            Err(e) => panic!("cannot publish to {topic}: {e}"),
        }
    }
    let _ = client.disconnect();
}

/// Intersection over union of two `[x, y, w, h]` boxes.
pub fn iou(a: &[f64], b: &[f64]) -> f64 {
    let ix = (a[0] + a[2]).min(b[0] + b[2]) - a[0].max(b[0]);
    let iy = (a[1] + a[3]).min(b[1] + b[3]) - a[1].max(b[1]);
    if ix <= 0.0 || iy <= 0.0 {
        return 0.0;
    }
    ix * iy / (a[2] * a[3] + b[2] * b[3] - ix * iy)
}

/// The first object's box of an incident message.
pub fn first_box(incident: &serde_json::Value) -> Vec<f64> {
    let bbox = incident["objects"][0]["bbox"].as_array().expect("an object with a box");
    bbox.iter().map(|v| v.as_f64().unwrap()).collect()
}
