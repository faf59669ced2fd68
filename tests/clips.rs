//! Evidence clips end to end: an RTSP camera (vtest.avi as H.264) watched for a parked car; its
//! incident gets an MP4 cut from the camera's own stream, written under `data_dir`, named in the
//! incident's next message, and with `publish_clips` sent over MQTT too. A reconnect does not
//! shorten the pre-roll of the clips after it.

mod common;

use std::net::Ipv4Addr;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use cityeye::commands::simulate::{Mount, Server};
use common::*;

const PRE_S: f64 = 3.0;
const POST_S: f64 = 2.0;
/// The test camera sends a key frame every 10 frames: a second at 10 frames/s.
const FRAME_S: f64 = 0.1;
const KEY_FRAME_INTERVAL_S: f64 = 1.0;

/// A kerb camera with short clips; the car is reported after 5 s, once the ring holds `PRE_S`.
fn config(broker_port: u16, camera_url: &str, publish_clips: bool) -> String {
    config_dwelling(broker_port, camera_url, publish_clips, 5.0)
}

fn config_dwelling(
    broker_port: u16,
    camera_url: &str,
    publish_clips: bool,
    dwell_s: f64,
) -> String {
    format!(
        "{}\n[evidence]\nclip_pre_s = {PRE_S}\nclip_post_s = {POST_S}\n\
         publish_clips = {publish_clips}\n",
        kerb_config(broker_port, false, camera_url, dwell_s)
    )
}

fn clip_of(message: &Message) -> Option<serde_json::Value> {
    if !message.topic.contains("/incident/") {
        return None;
    }
    let clip = message.json()["evidence"]["clip"].clone();
    (!clip.is_null()).then_some(clip)
}

/// The first incident message naming a clip, and the `start` of its incident.
fn first_clip(messages: &[Message]) -> Option<(&Message, &Message)> {
    let with_clip = messages.iter().find(|m| clip_of(m).is_some())?;
    let start = incidents(messages, "start")
        .into_iter()
        .find(|s| s.json()["id"] == with_clip.json()["id"])?;
    Some((with_clip, start))
}

/// A clip as GStreamer reads it back: demuxed by qtdemux, decoded, in grey.
struct Decoded {
    /// Presentation time of each frame, seconds from the clip's start.
    times: Vec<f64>,
    frames: Vec<Vec<u8>>,
    /// As the MP4 states it.
    duration_s: f64,
}

fn decode_mp4(path: &Path) -> Decoded {
    decode_mp4_as(path, "width=768,height=576")
}

/// As [`decode_mp4`], the frames of the size `size` asks for (`width=…,height=…`): the clip's
/// own, or scaled to it.
fn decode_mp4_as(path: &Path, size: &str) -> Decoded {
    let tail = format!("videoconvert ! videoscale ! video/x-raw,format=GRAY8,{size}");
    let (pipeline, sink) = play_mp4(path, &tail);
    let (mut times, mut frames) = (Vec::new(), Vec::new());
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(10)) {
        let buffer = sample.buffer().unwrap();
        times.push(buffer.pts().unwrap().nseconds() as f64 / 1e9);
        frames.push(buffer.map_readable().unwrap().to_vec());
    }
    let eos = sink.is_eos();
    let duration = pipeline.query_duration::<gst::ClockTime>();
    let error = pipeline.bus().unwrap().pop_filtered(&[gst::MessageType::Error]);
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(error.is_none() && eos, "{} does not play to its end: {error:?}", path.display());
    Decoded { times, frames, duration_s: duration.unwrap().nseconds() as f64 / 1e9 }
}

/// An MP4's H.264 video decoded, through `tail`, into an appsink, playing.
fn play_mp4(path: &Path, tail: &str) -> (gst::Pipeline, gst_app::AppSink) {
    gst::init().unwrap();
    let pipeline = gst::parse::launch(&format!(
        "filesrc location=\"{}\" ! qtdemux ! h264parse ! avdec_h264 ! {tail} \
         ! appsink name=frames sync=false",
        path.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = pipeline.by_name("frames").unwrap().downcast::<gst_app::AppSink>().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    (pipeline, sink)
}

/// Pixels that differ clearly between two grey pictures of the same size: moving people count,
/// compression noise does not.
fn changed_pixels(a: &[u8], b: &[u8]) -> usize {
    a.iter().zip(b).filter(|(x, y)| x.abs_diff(**y) > 40).count()
}

#[test]
fn an_incident_clip_is_an_mp4_from_pre_s_before_its_frame_to_post_s_after() {
    let broker = Mosquitto::start();
    let camera = RtspServer::start(&shared("testdata/vtest.avi"));
    let subscriber = Subscriber::connect(broker.port, "cityeye/#");
    let (dir, config) = write_config(&config(broker.port, &camera.url(), false));
    let appliance = Appliance::run(&config);

    let started =
        subscriber.wait_until(Duration::from_secs(60), |m| !incidents(m, "start").is_empty());
    assert!(!incidents(&started, "start").is_empty(), "no incident:\n{}", appliance.log());
    let first_start = Instant::now();
    let messages = subscriber.wait_until(Duration::from_secs(30), |m| first_clip(m).is_some());
    let (message, start) = first_clip(&messages)
        .unwrap_or_else(|| panic!("no message names a clip:\n{}", appliance.log()));
    eprintln!(
        "clip named {:.1} s after the first start arrived",
        first_start.elapsed().as_secs_f64()
    );

    let p = message.json();
    assert_matches_schema("schemas/incident.v1.json", &p);
    assert!(start.json()["evidence"]["clip"].is_null(), "the start does not wait for its clip");
    assert_eq!(p["state"], "update", "the parked car is still there: an update brings the clip");
    assert_eq!(p["evidence"]["topic"], start.json()["evidence"]["topic"]);
    let clip = clip_of(message).unwrap();
    assert!(clip.get("topic").is_none(), "clips are not published unless asked for");
    assert!(!messages.iter().any(|m| m.topic.ends_with("/clip")));

    let id = p["id"].as_str().unwrap();
    let path = dir.path().join("data/clips/kerb").join(format!("{id}.mp4"));
    assert_eq!(clip["path"].as_str(), Some(path.to_str().unwrap()));
    let bytes = std::fs::read(&path).unwrap();
    assert_eq!(clip["size_bytes"].as_u64(), Some(bytes.len() as u64));
    assert_eq!(&bytes[4..8], b"ftyp", "an ISO media file");

    let decoded = decode_mp4(&path);
    let duration_s = clip["duration_s"].as_f64().unwrap();
    eprintln!(
        "clip: {} bytes, {duration_s} s, {} frames, incident at {} s",
        bytes.len(),
        decoded.frames.len(),
        clip["incident_at_s"]
    );
    assert!((decoded.duration_s - duration_s).abs() <= FRAME_S + 0.01, "{}", decoded.duration_s);
    let shortest = PRE_S + POST_S + FRAME_S - 0.01;
    assert!(
        (shortest..=shortest + KEY_FRAME_INTERVAL_S + 0.02).contains(&duration_s),
        "{duration_s} s: pre, post and the frame at post, plus what the key frame before adds"
    );
    assert_eq!(decoded.frames.len(), (duration_s / FRAME_S).round() as usize, "no frame lost");
    assert!(decoded.times[0] < 0.01, "the clip starts at its first frame: {}", decoded.times[0]);

    // Where in the clip the incident's frame is, found by its picture: the start's snapshot.
    let (_, incident_at_s) = incident_in_clip(&messages, start, &path);
    assert!(
        (incident_at_s - clip["incident_at_s"].as_f64().unwrap()).abs() <= FRAME_S + 0.01,
        "the incident's frame is {incident_at_s} s into the clip, not {}",
        clip["incident_at_s"]
    );
    assert!(clip["incident_at_s"].as_f64().unwrap() >= PRE_S, "{clip}");
    assert!(incident_at_s >= PRE_S - FRAME_S - 0.01, "only {incident_at_s} s before the incident");
    assert!(decoded.duration_s - incident_at_s >= POST_S - 0.01, "{} s", decoded.duration_s);
}

/// Where the incident's frame is in its clip, found by its picture (the start's snapshot): the
/// clip's decoded frames and that frame's time.
fn incident_in_clip(messages: &[Message], start: &Message, path: &Path) -> (Decoded, f64) {
    let snapshot = messages.iter().find(|m| m.topic == start.json()["evidence"]["topic"]).unwrap();
    let snapshot = image::load_from_memory(&snapshot.payload).unwrap().to_luma8();
    let size = format!("width={},height={}", snapshot.width(), snapshot.height());
    let snapshot = snapshot.into_raw();
    // A clip from a record stream is larger than the snapshot: it is compared at the snapshot's
    // size.
    let decoded = decode_mp4_as(path, &size);
    let best = (0..decoded.frames.len())
        .min_by_key(|&i| changed_pixels(&decoded.frames[i], &snapshot))
        .unwrap();
    let at = decoded.times[best];
    (decoded, at)
}

#[test]
fn clips_after_a_reconnect_get_their_full_pre_roll_again() {
    let broker = Mosquitto::start();
    let mut camera = RtspServer::start(&shared("testdata/vtest.avi"));
    let subscriber = Subscriber::connect(broker.port, "cityeye/#");
    // The car is reported 12 s into the stream: well after the reconnect below.
    let (_dir, config) = write_config(&config_dwelling(broker.port, &camera.url(), false, 12.0));
    let appliance = Appliance::run(&config);
    let states = |m: &[Message]| -> Vec<String> {
        m.iter()
            .filter(|m| m.topic == "cityeye/edge-test/kerb/status")
            .map(|m| m.json()["state"].as_str().unwrap_or_default().to_string())
            .collect()
    };
    let online = |m: &[Message]| states(m).iter().any(|s| s == "online");
    assert!(online(&subscriber.wait_until(Duration::from_secs(60), online)), "{}", appliance.log());
    std::thread::sleep(Duration::from_secs(2));
    camera.stop();
    let offline = |m: &[Message]| states(m).iter().any(|s| s == "offline");
    assert!(
        offline(&subscriber.wait_until(Duration::from_secs(30), offline)),
        "{}",
        appliance.log()
    );
    std::thread::sleep(Duration::from_secs(2));
    camera.resume();
    let back =
        |m: &[Message]| states(m).iter().skip_while(|s| *s != "offline").any(|s| s == "online");
    assert!(back(&subscriber.wait_until(Duration::from_secs(30), back)), "{}", appliance.log());
    let reconnected = subscriber.messages().len();

    let messages = subscriber.wait_until(Duration::from_secs(90), |m| first_clip(m).is_some());
    let (message, start) = first_clip(&messages)
        .unwrap_or_else(|| panic!("no message names a clip:\n{}", appliance.log()));
    let position = |m: &Message| messages.iter().position(|n| std::ptr::eq(n, m)).unwrap();
    assert!(position(start) >= reconnected, "the incident started after the reconnect");
    let clip = clip_of(message).unwrap();
    let (decoded, incident_at_s) =
        incident_in_clip(&messages, start, Path::new(clip["path"].as_str().unwrap()));
    eprintln!(
        "clip after the reconnect: {} s, incident at {} s, found at {incident_at_s} s",
        clip["duration_s"], clip["incident_at_s"]
    );
    assert!(
        (incident_at_s - clip["incident_at_s"].as_f64().unwrap()).abs() <= FRAME_S + 0.01,
        "the incident's frame is {incident_at_s} s into the clip, not {}",
        clip["incident_at_s"]
    );
    assert!(incident_at_s >= PRE_S - FRAME_S - 0.01, "only {incident_at_s} s before the incident");
    assert!(decoded.duration_s - incident_at_s >= POST_S - 0.01, "{} s", decoded.duration_s);
}

#[test]
fn published_clips_arrive_before_the_message_naming_them_with_the_same_bytes() {
    let broker = Mosquitto::start();
    let camera = RtspServer::start(&shared("testdata/vtest.avi"));
    let subscriber = Subscriber::connect(broker.port, "cityeye/#");
    let (_dir, config) = write_config(&config(broker.port, &camera.url(), true));
    let appliance = Appliance::run(&config);

    let messages = subscriber.wait_until(Duration::from_secs(90), |m| first_clip(m).is_some());
    let (message, _) = first_clip(&messages)
        .unwrap_or_else(|| panic!("no message names a clip:\n{}", appliance.log()));
    let clip = clip_of(message).unwrap();
    let id = message.json()["id"].as_str().unwrap().to_string();
    let topic = format!("cityeye/edge-test/kerb/evidence/{id}/clip");
    assert_eq!(clip["topic"].as_str(), Some(topic.as_str()));

    let position = |m: &Message| messages.iter().position(|n| std::ptr::eq(n, m)).unwrap();
    let published = messages.iter().find(|m| m.topic == topic).expect("the clip is published");
    assert!(position(published) < position(message), "the clip goes before the message naming it");
    assert!(!published.retain);
    let file = std::fs::read(clip["path"].as_str().unwrap()).unwrap();
    assert_eq!(published.payload.len() as u64, clip["size_bytes"].as_u64().unwrap());
    assert!(published.payload == file, "the published clip is the file");
}

/// The width and height of an MP4's video, as its decoder gives them.
fn video_size(path: &Path) -> (u32, u32) {
    let (pipeline, sink) = play_mp4(path, "identity");
    let sample = sink.try_pull_sample(gst::ClockTime::from_seconds(10)).expect("a frame");
    pipeline.set_state(gst::State::Null).unwrap();
    let caps = sample.caps().unwrap().structure(0).unwrap().to_owned();
    (caps.get::<i32>("width").unwrap() as u32, caps.get::<i32>("height").unwrap() as u32)
}

/// A camera with two streams, as cameras and NVRs serve them: the main stream (vtest.avi,
/// 768x576) and a half-size sub-stream, both from the project's RTSP server. The node decodes
/// and analyses the sub-stream only, and cuts the clip from the main stream, never decoding it.
#[test]
fn a_camera_is_analysed_on_its_detect_stream_and_clipped_from_its_record_stream() {
    let broker = Mosquitto::start();
    let media = tempfile::tempdir().unwrap();
    let sub = half_size_vtest(media.path());
    let mount = |path: &str, video: PathBuf| Mount { path: path.into(), video, udp_only: false };
    let mounts = [mount("/main", shared("testdata/vtest.avi")), mount("/sub", sub)];
    let server = Server::start(Ipv4Addr::LOCALHOST.into(), 0, &mounts, Codec::H264).unwrap();
    let subscriber = Subscriber::connect(broker.port, "cityeye/#");
    let detect_url = server.url("/sub");
    let config = config(broker.port, &detect_url, false).replace(
        &format!("url = \"{detect_url}\"\n"),
        &format!("url = \"{detect_url}\"\nrecord_url = \"{}\"\n", server.url("/main")),
    );
    assert!(config.contains("record_url"), "{config}");
    let (dir, config) = write_config(&config);
    let appliance = Appliance::run(&config);

    let messages = subscriber.wait_until(Duration::from_secs(90), |m| first_clip(m).is_some());
    let (message, start) = first_clip(&messages)
        .unwrap_or_else(|| panic!("no message names a clip:\n{}", appliance.log()));
    let online = messages
        .iter()
        .filter(|m| m.topic == "cityeye/edge-test/kerb/status")
        .map(|m| m.json())
        .find(|s| s["state"] == "online")
        .unwrap();
    assert_eq!((online["width"].as_u64(), online["height"].as_u64()), (Some(384), Some(288)));
    let evidence = &start.json()["evidence"];
    assert_eq!((evidence["width"].as_u64(), evidence["height"].as_u64()), (Some(384), Some(288)));

    let clip = clip_of(message).unwrap();
    let id = message.json()["id"].as_str().unwrap().to_string();
    let path = dir.path().join("data/clips/kerb").join(format!("{id}.mp4"));
    assert_eq!(clip["path"].as_str(), Some(path.to_str().unwrap()));
    assert_eq!(video_size(&path), (768, 576), "the clip is the record stream's");

    // The two streams have clocks of their own: the clip is placed in the detect stream's time
    // by when its buffers arrive. The incident's frame, found by its picture, is where the
    // clip says, give or take network jitter.
    let (decoded, incident_at_s) = incident_in_clip(&messages, start, &path);
    eprintln!(
        "record-stream clip: {} s, incident at {} s, found at {incident_at_s} s",
        clip["duration_s"], clip["incident_at_s"]
    );
    assert!(
        (incident_at_s - clip["incident_at_s"].as_f64().unwrap()).abs() <= 3.0 * FRAME_S + 0.01,
        "the incident's frame is {incident_at_s} s into the clip, not {}",
        clip["incident_at_s"]
    );
    assert!(incident_at_s >= PRE_S - 3.0 * FRAME_S, "only {incident_at_s} s before the incident");
    assert!(decoded.duration_s - incident_at_s >= POST_S - 3.0 * FRAME_S, "{}", decoded.duration_s);
}
