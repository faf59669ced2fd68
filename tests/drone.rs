//! Drone cameras end to end over real parts. The shared footage stands in for a drone's camera
//! looking straight down from 60 m while drifting north; its telemetry comes either as MISB
//! ST 0601 KLV muxed beside the H.264 video in MPEG-TS over UDP (GStreamer's mpegtsmux, from
//! an appsrc), or as JSON on a mosquitto topic beside an RTSP stream. The appliance must put
//! its incidents on the ground where that telemetry says, and its geo-fences must take in the
//! parked vehicles at the top right and leave them out of a fence over the left of the view.

mod common;

use std::net::UdpSocket;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use cityeye::drone::klv::{self, UasSample};
use common::*;
use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

const LAT0: f64 = 31.230_400;
const LON0: f64 = 121.473_700;
/// The drone drifts north at this many degrees a second (0.55 m/s): its latitude, rounded to 7
/// decimals in the payload, tells the time to 0.02 s.
const DRIFT_DEG_S: f64 = 5e-6;
const GROUND_M: f64 = 4.0;
const HEIGHT_M: f64 = 60.0;
const HFOV_DEG: f64 = 60.0;
/// vtest.avi is 768x576: the vertical field of view of square pixels.
fn vfov_deg() -> f64 {
    2.0 * ((HFOV_DEG.to_radians() / 2.0).tan() * 0.75).atan().to_degrees()
}
const KLV_PERIOD_S: f64 = 0.1;
const EARTH_R_M: f64 = 6_371_000.0;

/// Telemetry at sender time `t`.
fn sample(t: f64) -> UasSample {
    UasSample {
        timestamp_us: Some(1_795_000_000_000_000 + (t * 1e6) as u64),
        platform_heading_deg: Some(0.0),
        platform_pitch_deg: Some(0.0),
        platform_roll_deg: Some(0.0),
        sensor_latitude_deg: Some(LAT0 + DRIFT_DEG_S * t),
        sensor_longitude_deg: Some(LON0),
        sensor_altitude_m: Some(GROUND_M + HEIGHT_M),
        sensor_hfov_deg: Some(HFOV_DEG),
        sensor_vfov_deg: Some(vfov_deg()),
        sensor_relative_azimuth_deg: Some(0.0),
        sensor_relative_elevation_deg: Some(-90.0),
        sensor_relative_roll_deg: Some(0.0),
        ..UasSample::default()
    }
}

/// A position `north_m` and `east_m` from (`lat`, `lon`), on a sphere: independent of the
/// appliance's WGS84 arithmetic, and within 0.5 % of it at these distances.
fn moved(lat: f64, lon: f64, north_m: f64, east_m: f64) -> (f64, f64) {
    let lat2 = lat + (north_m / EARTH_R_M).to_degrees();
    (lat2, lon + (east_m / (EARTH_R_M * lat.to_radians().cos())).to_degrees())
}

fn apart_m(a: (f64, f64), b: (f64, f64)) -> f64 {
    let north = (b.0 - a.0).to_radians() * EARTH_R_M;
    let east = (b.1 - a.1).to_radians() * EARTH_R_M * a.0.to_radians().cos();
    north.hypot(east)
}

/// A rectangle on the ground, north and east of the drone's start, as TOML `[[lat, lon], …]`,
/// and a test for it.
struct Fence {
    north: (f64, f64),
    east: (f64, f64),
}

impl Fence {
    fn toml(&self) -> String {
        let corners = [
            (self.north.0, self.east.0),
            (self.north.0, self.east.1),
            (self.north.1, self.east.1),
            (self.north.1, self.east.0),
        ];
        let points: Vec<String> = corners
            .iter()
            .map(|(n, e)| {
                let (lat, lon) = moved(LAT0, LON0, *n, *e);
                format!("[{lat:.8}, {lon:.8}]")
            })
            .collect();
        format!("[{}]", points.join(", "))
    }

    fn contains(&self, (lat, lon): (f64, f64)) -> bool {
        let north = (lat - LAT0).to_radians() * EARTH_R_M;
        let east = (lon - LON0).to_radians() * EARTH_R_M * LAT0.to_radians().cos();
        (self.north.0..=self.north.1).contains(&north)
            && (self.east.0..=self.east.1).contains(&east)
    }
}

/// Over the parked vehicles at the top right (13-18 m north of the drone), all along its
/// drift (44 m over the clip).
const KERB: Fence = Fence { north: (8.0, 80.0), east: (15.0, 40.0) };
/// Over the left of the view, where people walk and nothing parks.
const LEFT: Fence = Fence { north: (-40.0, 80.0), east: (-40.0, -2.0) };

fn drone_config(broker_port: u16, url: &str, telemetry: &str) -> String {
    format!(
        r#"
[node]
id = "edge-test"
data_dir = "data"

[mqtt]
url = "mqtt://127.0.0.1:{broker_port}"

[http]
enabled = false

[evidence]
clips = false

[[models]]
name = "coco"
path = "{model}"
format = "yolox"
classes = "{classes}"

[[cameras]]
id = "drone"
kind = "drone"
url = "{url}"
analysis_fps = 5
model = "coco"

  [cameras.telemetry]
  ground_altitude_m = {GROUND_M}
  max_age_s = 0.5
  {telemetry}

  [[cameras.zones]]
  name = "kerb"
  geo_polygon = {kerb}

  [[cameras.zones]]
  name = "left"
  geo_polygon = {left}

  [[cameras.algorithms]]
  type = "illegal_parking"
  zone = "kerb"
  dwell_s = 5

  [[cameras.algorithms]]
  type = "illegal_parking"
  zone = "left"
  dwell_s = 5

  [[cameras.algorithms]]
  type = "intrusion"
  zone = "left"
"#,
        model = shared("models/yolox_nano.onnx").display(),
        classes = repo("models/coco80.txt").display(),
        kerb = KERB.toml(),
        left = LEFT.toml(),
    )
}

/// Sends vtest.avi as H.264 in MPEG-TS through the GStreamer `sink` in real time, with a KLV
/// packet every [`KLV_PERIOD_S`] stamped on the video's clock; until dropped.
struct TsSender {
    pipeline: gst::Pipeline,
    stop: Arc<AtomicBool>,
}

impl TsSender {
    fn start(sink: &str) -> TsSender {
        gst::init().unwrap();
        let description = format!(
            "filesrc location=\"{video}\" ! decodebin ! videoconvert \
             ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max=10 ! h264parse \
             ! queue ! mpegtsmux name=mux alignment=7 ! {sink} \
             appsrc name=klv format=time caps=meta/x-klv,parsed=true ! queue ! mux.",
            video = shared("testdata/vtest.avi").display()
        );
        let pipeline =
            gst::parse::launch(&description).unwrap().downcast::<gst::Pipeline>().unwrap();
        let appsrc = pipeline.by_name("klv").unwrap().downcast::<gst_app::AppSrc>().unwrap();
        appsrc.set_max_bytes(64 << 10);
        appsrc.set_block(true);
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            for i in 0..800u64 {
                if stopped.load(Ordering::Relaxed) {
                    break;
                }
                let t = i as f64 * KLV_PERIOD_S;
                let mut buffer = gst::Buffer::from_slice(klv::encode(&sample(t)));
                let b = buffer.get_mut().unwrap();
                b.set_pts(gst::ClockTime::from_nseconds((t * 1e9) as u64));
                b.set_duration(gst::ClockTime::from_mseconds(100));
                if appsrc.push_buffer(buffer).is_err() {
                    break;
                }
            }
            let _ = appsrc.end_of_stream();
        });
        pipeline.set_state(gst::State::Playing).unwrap();
        TsSender { pipeline, stop }
    }
}

impl Drop for TsSender {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.pipeline.set_state(gst::State::Null);
    }
}

fn free_udp_port() -> u16 {
    UdpSocket::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Waits until something holds `port` (the appliance's udpsrc), so that the stream's first
/// frame is the first one sent.
fn wait_until_bound(port: u16, appliance: &Appliance) {
    let until = Instant::now() + Duration::from_secs(30);
    while UdpSocket::bind(("127.0.0.1", port)).is_ok() {
        assert!(
            Instant::now() < until,
            "the appliance never listened on {port}:\n{}",
            appliance.log()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn f(v: &serde_json::Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("{v} is not a number"))
}

/// Where the test expects an object to stand: the bottom centre of its box, seen straight
/// down from `HEIGHT_M` above the platform's position at (`lat`, `lon`), north up.
fn expected_ground(lat: f64, lon: f64, bbox: &[f64]) -> (f64, f64) {
    let (x, y) = (bbox[0] + bbox[2] / 2.0, bbox[1] + bbox[3]);
    let east = (2.0 * x - 1.0) * HEIGHT_M * (HFOV_DEG.to_radians() / 2.0).tan();
    let north = -(2.0 * y - 1.0) * HEIGHT_M * (vfov_deg().to_radians() / 2.0).tan();
    moved(lat, lon, north, east)
}

/// Checks one incident's `geo` block against the telemetry and the fence of its zone; returns
/// the drone's time its platform latitude implies.
fn check_geo(p: &serde_json::Value, source: &str) -> f64 {
    assert_matches_schema("schemas/incident.v1.json", p);
    let geo = &p["geo"];
    assert_eq!(geo["telemetry"], "ok", "{p}");
    assert_eq!(geo["source"], source);
    let (lat, lon) = (f(&geo["platform"]["lat"]), f(&geo["platform"]["lon"]));
    assert!((lon - LON0).abs() < 1e-7, "{geo}");
    let height = f(&geo["platform"]["altitude_m"]) - f(&geo["ground_altitude_m"]);
    assert!((height - HEIGHT_M).abs() < 0.5, "{geo}");
    let fence = if p["zone"] == "kerb" { &KERB } else { &LEFT };
    let objects = p["objects"].as_array().unwrap();
    let ground = geo["objects"].as_array().unwrap();
    assert_eq!(ground.len(), objects.len(), "every object is on the ground: {p}");
    for (object, g) in objects.iter().zip(ground) {
        assert_eq!(object["track_id"], g["track_id"]);
        let bbox: Vec<f64> = object["bbox"].as_array().unwrap().iter().map(f).collect();
        let at = (f(&g["lat"]), f(&g["lon"]));
        let expected = expected_ground(lat, lon, &bbox);
        let off = apart_m(at, expected);
        // Exact telemetry over flat ground: only rounding and the earth model differ.
        assert!(off < 0.5, "{} at {at:?}, {off:.2} m from {expected:?}", object["class"]);
        let sigma = f(&g["uncertainty_m"]);
        assert!((3.0..30.0).contains(&sigma), "uncertainty {sigma} m at 60 m height");
        assert!(fence.contains(at), "{} at {at:?} is outside zone {}", object["class"], p["zone"]);
    }
    (lat - LAT0) / DRIFT_DEG_S
}

/// The incidents the fences must produce: both parked vehicles in `kerb`, none parked in
/// `left`, and people in `left` placed inside it. Returns the incidents, checked.
fn check_fences(subscriber: &Subscriber, appliance: &Appliance, source: &str) -> Vec<Message> {
    let parked = |m: &Message| {
        let p = m.json();
        p["algorithm"] == "illegal_parking" && p["zone"] == "kerb" && p["state"] == "start"
    };
    let intruders = |m: &Message| m.json()["algorithm"] == "intrusion";
    let messages = subscriber.wait_until(Duration::from_secs(90), |m| {
        let incidents: Vec<&Message> =
            m.iter().filter(|m| m.topic.contains("/incident/")).collect();
        incidents.iter().filter(|m| parked(m)).count() >= 2
            && incidents.iter().any(|m| intruders(m))
    });
    let incidents: Vec<&Message> =
        messages.iter().filter(|m| m.topic.contains("/incident/")).collect();
    let summary: Vec<String> = incidents.iter().map(|m| m.json().to_string()).collect();
    assert!(
        incidents.iter().filter(|m| parked(m)).count() >= 2,
        "expected the car and the van in the kerb fence:\n{}\n{}",
        summary.join("\n"),
        appliance.log()
    );
    assert!(incidents.iter().any(|m| intruders(m)), "nobody walked in the left fence");
    assert!(
        !incidents
            .iter()
            .any(|m| m.json()["algorithm"] == "illegal_parking" && m.json()["zone"] == "left"),
        "nothing parks in the left fence:\n{}",
        summary.join("\n")
    );
    for incident in &incidents {
        check_geo(&incident.json(), source);
    }
    incidents.into_iter().cloned().collect()
}

#[test]
fn klv_in_mpeg_ts_over_udp_places_incidents_and_fences_them() {
    let broker = Mosquitto::start();
    let subscriber = Subscriber::connect(broker.port, "cityeye/#");
    let port = free_udp_port();
    let (_dir, config) = write_config(&drone_config(
        broker.port,
        &format!("udp://127.0.0.1:{port}"),
        r#"source = "klv""#,
    ));
    let appliance = Appliance::run(&config);
    wait_until_bound(port, &appliance);
    let _sender = TsSender::start(&format!("udpsink host=127.0.0.1 port={port}"));

    // The appliance listened before the first packet was sent.
    check_klv_timing(&check_fences(&subscriber, &appliance, "klv"), 0.25);
}

/// Each frame got the sample of its own time: the drone's time (from its latitude) minus the
/// stream time is the same for every incident, to the KLV period (0.1 s) and the latitude's
/// rounding (0.02 s); it is the drone's time when the appliance's stream began, at most
/// `joined_by_s`. Returns it.
fn check_klv_timing(incidents: &[Message], joined_by_s: f64) -> f64 {
    let mut offsets = Vec::new();
    for incident in incidents.iter().map(Message::json) {
        offsets.push(check_geo(&incident, "klv") - f(&incident["stream_time_s"]));
        assert!(f(&incident["geo"]["age_s"]).abs() <= KLV_PERIOD_S / 2.0 + 1e-3, "{incident}");
    }
    let (lo, hi) = offsets.iter().fold((f64::MAX, f64::MIN), |(l, h), o| (l.min(*o), h.max(*o)));
    assert!(hi - lo <= 0.15, "frames and telemetry drift apart: {offsets:?}");
    assert!(lo >= -0.1 && hi <= joined_by_s, "joined at {offsets:?}");
    lo
}

#[test]
fn klv_in_mpeg_ts_over_srt_places_incidents() {
    let broker = Mosquitto::start();
    let subscriber = Subscriber::connect(broker.port, "cityeye/#");
    let port = free_udp_port();
    // The drone listens and the appliance calls it, as with a ground station's SRT output.
    // (A listener given 127.0.0.1 here never accepted a caller; the wildcard address does.)
    let _sender = TsSender::start(&format!("srtsink uri=\"srt://:{port}?mode=listener\""));
    let url = format!("srt://127.0.0.1:{port}");
    let (_dir, config) = write_config(&drone_config(broker.port, &url, r#"source = "klv""#));
    let appliance = Appliance::run(&config);

    // The drone started sending when the appliance called, from where its video was then.
    check_klv_timing(&check_fences(&subscriber, &appliance, "klv"), 5.0);
}

/// Every built-in drone template makes a pipeline this machine's GStreamer can build (the RTMP
/// one is not run end to end: no RTMP server here).
#[test]
fn drone_templates_build() {
    gst::init().unwrap();
    for url in [
        "udp://127.0.0.1:5600",
        "srt://127.0.0.1:9000?mode=listener",
        "rtmp://127.0.0.1/live/drone",
    ] {
        let text = drone_config(
            1883,
            url,
            r#"source = "mqtt"
  topic = "t"
  hfov_deg = 60
  [cameras.telemetry.fields]
  latitude = "/a"
  longitude = "/b"
  altitude = "/c"
  heading = "/d"
  gimbal_pitch = "/e""#,
        );
        let (_dir, path) = write_config(&text);
        let config = cityeye::config::Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
        let description = cityeye::config::pipeline_description(&config.cameras[0], false).unwrap();
        let pipeline = gst::parse::launch(&description).unwrap_or_else(|e| panic!("{url}: {e}"));
        assert!(pipeline.downcast_ref::<gst::Bin>().unwrap().by_name("encoded").is_some());
    }
}

/// Publishes a dock's OSD-style JSON (DJI Cloud API shape) at 10 Hz, stamped with the wall
/// clock, until dropped; the drone's time counts from `start`.
struct OsdPublisher {
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

const OSD_TOPIC: &str = "thing/product/DOCK-1/osd";

impl OsdPublisher {
    fn start(port: u16, start: std::time::SystemTime) -> OsdPublisher {
        OsdPublisher::with_latitude_offset(port, start, 0.0)
    }

    /// A publisher whose latitudes are off by `offset` degrees: a broken bridge's telemetry.
    fn with_latitude_offset(port: u16, start: std::time::SystemTime, offset: f64) -> OsdPublisher {
        let id = format!("osd-publisher-{offset}");
        let options = rumqttc::MqttOptions::new(id, "127.0.0.1", port);
        let (client, mut connection) = rumqttc::Client::new(options, 64);
        std::thread::spawn(move || for _ in connection.iter() {});
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        let thread = std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                let now = std::time::SystemTime::now();
                let t = now.duration_since(start).unwrap().as_secs_f64();
                let ms = now.duration_since(std::time::UNIX_EPOCH).unwrap().as_millis();
                let s = sample(t);
                let osd = serde_json::json!({
                    "timestamp": ms as u64,
                    "data": {
                        "latitude": s.sensor_latitude_deg.map(|l| l + offset),
                        "longitude": s.sensor_longitude_deg,
                        "height": HEIGHT_M, "attitude_head": 0.0,
                        "payload": [{"gimbal_pitch": -90.0, "gimbal_yaw": 0.0}]
                    }
                });
                let payload = serde_json::to_vec(&osd).unwrap();
                let _ = client.publish(OSD_TOPIC, rumqttc::QoS::AtMostOnce, false, payload);
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = client.disconnect();
        });
        OsdPublisher { stop, thread: Some(thread) }
    }
}

impl Drop for OsdPublisher {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn mqtt_telemetry_places_incidents_and_its_loss_is_reported() {
    let broker = Mosquitto::start();
    let subscriber = Subscriber::connect(broker.port, "cityeye/#");
    let camera = RtspServer::start(&shared("testdata/vtest.avi"));
    // Heights count from the take-off point here: the ground is at 0.
    let telemetry = format!(
        r#"source = "mqtt"
  topic = "{OSD_TOPIC}"
  hfov_deg = {HFOV_DEG}
  [cameras.telemetry.fields]
  latitude = "/data/latitude"
  longitude = "/data/longitude"
  altitude = "/data/height"
  heading = "/data/attitude_head"
  gimbal_pitch = "/data/payload/0/gimbal_pitch"
  gimbal_yaw = "/data/payload/0/gimbal_yaw"
  timestamp_ms = "/timestamp""#
    );
    let text = drone_config(broker.port, &camera.url(), &telemetry)
        .replace(&format!("ground_altitude_m = {GROUND_M}"), "ground_altitude_m = 0");
    let (_dir, config) = write_config(&text);
    let start = std::time::SystemTime::now();
    let publisher = OsdPublisher::start(broker.port, start);
    let appliance = Appliance::run(&config);

    let incidents = check_fences(&subscriber, &appliance, "mqtt");
    for incident in incidents.iter().map(Message::json) {
        // MQTT samples meet frames by wall-clock time: the sample nearest the frame's arrival
        // (10 Hz, so within 0.05 s), late by the video's own latency (RTSP, decoding; about
        // 0.1 s here, more on a loaded machine).
        let detected =
            chrono::DateTime::parse_from_rfc3339(incident["detected_at"].as_str().unwrap())
                .unwrap();
        let since_start = std::time::SystemTime::from(detected).duration_since(start).unwrap();
        let offset = check_geo(&incident, "mqtt") - since_start.as_secs_f64();
        assert!(offset.abs() <= 0.5, "frame and telemetry {offset:.2} s apart: {incident}");
    }

    let telemetry_status = |m: &Message, state: &str| {
        m.topic == "cityeye/edge-test/drone/status" && m.json()["telemetry"] == state
    };
    let ok = subscriber.messages().into_iter().find(|m| telemetry_status(m, "ok"));
    let ok = ok.expect("the camera's status says its telemetry is ok").json();
    assert_matches_schema("schemas/status.v1.json", &ok);
    assert_eq!(ok["state"], "online");

    // Without telemetry, incidents still go out, marked so and without positions, and the
    // camera's status says so.
    drop(publisher);
    let seen = subscriber.messages().len();
    let messages = subscriber.wait_until(Duration::from_secs(60), |m| {
        m[seen..]
            .iter()
            .any(|m| m.topic.contains("/incident/") && m.json()["geo"]["telemetry"] == "stale")
    });
    let stale = messages[seen..]
        .iter()
        .find(|m| m.topic.contains("/incident/") && m.json()["geo"]["telemetry"] == "stale")
        .unwrap_or_else(|| panic!("no incident after the telemetry stopped:\n{}", appliance.log()))
        .json();
    assert_matches_schema("schemas/incident.v1.json", &stale);
    assert!(stale["geo"].get("platform").is_none() && stale["geo"].get("objects").is_none());
    assert!(f(&stale["geo"]["age_s"]) > 0.5, "{stale}");
    assert!(appliance.log().contains("telemetry: stale"), "{}", appliance.log());
    let status = subscriber.wait_until(Duration::from_secs(10), |m| {
        m[seen..].iter().any(|m| telemetry_status(m, "stale"))
    });
    let stale = status[seen..].iter().find(|m| telemetry_status(m, "stale"));
    let stale = stale.expect("the camera's status says its telemetry is stale").json();
    assert_matches_schema("schemas/status.v1.json", &stale);

    // Telemetry with an impossible latitude is turned away: no incident carries a position made
    // from it (once, incidents carried lat 999.9993), and the status says why.
    let _broken = OsdPublisher::with_latitude_offset(broker.port, start, 1000.0);
    let seen = subscriber.messages().len();
    let invalid_incident =
        |m: &Message| m.topic.contains("/incident/") && m.json()["geo"]["telemetry"] == "invalid";
    let messages = subscriber.wait_until(Duration::from_secs(60), |m| {
        m[seen..].iter().any(invalid_incident)
            && m[seen..].iter().any(|m| telemetry_status(m, "invalid"))
    });
    let invalid = messages[seen..].iter().find(|m| invalid_incident(m));
    let invalid = invalid.unwrap_or_else(|| panic!("no invalid incident:\n{}", appliance.log()));
    assert_matches_schema("schemas/incident.v1.json", &invalid.json());
    assert!(invalid.json()["geo"].get("objects").is_none(), "{}", invalid.json());
    for m in messages[seen..].iter().filter(|m| m.topic.contains("/incident/")) {
        let lat = &m.json()["geo"]["platform"]["lat"];
        assert!(lat.is_null() || f(lat).abs() <= 90.0, "a position from bad telemetry: {lat}");
    }
    let status = messages[seen..].iter().find(|m| telemetry_status(m, "invalid"));
    assert_matches_schema("schemas/status.v1.json", &status.expect("an invalid status").json());
    let log = appliance.log();
    assert!(log.contains("telemetry sample rejected: latitude 10"), "{log}");
}
