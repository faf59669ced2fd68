//! `cityeye replay` writes exactly what MQTT carries: the same payloads, one a line, with the
//! evidence beside them, for the same video through the same camera config.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::Duration;

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;

use common::*;

/// `cityeye replay --camera CAMERA --config CONFIG --input INPUT --out OUT` and `extra`.
fn run_replay(
    camera: &str,
    config: &Path,
    input: &Path,
    out: &Path,
    extra: &[&std::ffi::OsStr],
) -> std::process::Output {
    Command::new(env!("CARGO_BIN_EXE_cityeye"))
        .args(["replay", "--camera", camera, "--config"])
        .arg(config)
        .arg("--input")
        .arg(input)
        .arg("--out")
        .arg(out)
        .args(extra)
        .output()
        .unwrap()
}

/// Logs as JSON, so a progress bar could not hide among them.
const JSON_LOGS: [&str; 2] = ["--log-format", "json"];

/// A payload without what differs by nature between two runs: its id (and the evidence topic
/// built from it) and the wall-clock time.
fn comparable(mut payload: serde_json::Value) -> serde_json::Value {
    let p = payload.as_object_mut().unwrap();
    p.remove("id");
    p.remove("detected_at");
    if let Some(e) = p.get_mut("evidence").and_then(|e| e.as_object_mut()) {
        e.remove("topic");
    }
    payload
}

#[test]
fn replay_output_equals_the_mqtt_payloads() {
    let video = shared("testdata/vtest.avi");
    let broker = Mosquitto::start();
    let subscriber = Subscriber::connect(broker.port, "cityeye/+/+/incident/#");
    let camera_url = format!("file://{}", video.display());
    let (dir, config) = write_config(&kerb_config(broker.port, false, &camera_url, 5.0));

    let mut appliance = Appliance::run(&config);
    let live = subscriber.wait_until(Duration::from_secs(60), |m| incidents(m, "start").len() >= 2);
    appliance.stop();
    let live = incidents(&live, "start");
    assert!(live.len() >= 2, "live run found {} parked vehicles:\n{}", live.len(), appliance.log());

    let out = dir.path().join("replay");
    let json = JSON_LOGS.map(std::ffi::OsStr::new);
    let replay = run_replay("kerb", &config, &video, &out, &json);
    let stdout = String::from_utf8_lossy(&replay.stdout);
    assert!(replay.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&replay.stderr));
    assert!(stdout.contains("frames decoded 795,"), "{stdout}");
    assert!(stdout.contains("frames analysed 398,"), "every other frame at 5 fps: {stdout}");

    let lines = std::fs::read_to_string(out.join("incidents.jsonl")).unwrap();
    let replayed: Vec<serde_json::Value> =
        lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    for p in &replayed {
        assert_matches_schema("schemas/incident.v1.json", p);
        if p["state"] == "start" {
            let jpeg = out.join("evidence").join(format!("{}.jpg", p["id"].as_str().unwrap()));
            assert!(image::open(&jpeg).is_ok(), "evidence {} is a readable JPEG", jpeg.display());
        }
    }
    // The log, one JSON object a line, names the same incidents.
    let logged: Vec<serde_json::Value> = String::from_utf8_lossy(&replay.stderr)
        .lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("{l} is not JSON: {e}")))
        .filter(|l: &serde_json::Value| l["message"] == "incident")
        .collect();
    let ids = |values: &[serde_json::Value]| -> Vec<String> {
        values.iter().map(|v| v["id"].as_str().unwrap().to_string()).collect()
    };
    assert_eq!(ids(&logged), ids(&replayed));
    assert!(logged.iter().all(|l| l["camera"] == "kerb" && l["level"] == "INFO"), "{logged:?}");
    let replayed: Vec<serde_json::Value> = replayed.into_iter().map(comparable).collect();
    for message in live {
        let expected = comparable(message.json());
        assert!(
            replayed.contains(&expected),
            "the live incident\n{expected}\nis not in the replay:\n{lines}"
        );
    }
}

/// A video as GStreamer reads it back: demuxed by qtdemux, decoded, in RGB.
struct Decoded {
    width: usize,
    height: usize,
    /// Presentation time of each frame, in seconds from the first.
    times: Vec<f64>,
    frames: Vec<Vec<u8>>,
}

impl Decoded {
    fn pixel(&self, frame: usize, x: usize, y: usize) -> [u8; 3] {
        let at = (y * self.width + x) * 3;
        self.frames[frame][at..at + 3].try_into().unwrap()
    }

    /// The frame shown at `t` seconds.
    fn at(&self, t: f64) -> usize {
        self.times.iter().rposition(|&s| s <= t + 0.001).unwrap_or(0)
    }
}

fn decode_mp4(path: &Path) -> Decoded {
    gst::init().unwrap();
    let pipeline = gst::parse::launch(&format!(
        "filesrc location=\"{}\" ! qtdemux ! h264parse ! avdec_h264 ! videoconvert \
         ! video/x-raw,format=RGB ! appsink name=frames sync=false",
        path.display()
    ))
    .unwrap()
    .downcast::<gst::Pipeline>()
    .unwrap();
    let sink = pipeline.by_name("frames").unwrap().downcast::<gst_app::AppSink>().unwrap();
    pipeline.set_state(gst::State::Playing).unwrap();
    let mut decoded = Decoded { width: 0, height: 0, times: Vec::new(), frames: Vec::new() };
    while let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(10)) {
        let info = gstreamer_video::VideoInfo::from_caps(sample.caps().unwrap()).unwrap();
        (decoded.width, decoded.height) = (info.width() as usize, info.height() as usize);
        let buffer = sample.buffer().unwrap();
        // Running time: from the video's start, whatever the edit list shifts the media by.
        let segment = sample.segment().unwrap().downcast_ref::<gst::ClockTime>().unwrap();
        let t = segment.to_running_time(buffer.pts().unwrap()).unwrap();
        decoded.times.push(t.nseconds() as f64 / 1e9);
        let data = buffer.map_readable().unwrap();
        let (stride, row) = (info.stride()[0] as usize, decoded.width * 3);
        decoded.frames.push(data.chunks(stride).flat_map(|r| r[..row].to_vec()).collect());
    }
    let eos = sink.is_eos();
    let error = pipeline.bus().unwrap().pop_filtered(&[gst::MessageType::Error]);
    pipeline.set_state(gst::State::Null).unwrap();
    assert!(error.is_none() && eos, "{} does not play to its end: {error:?}", path.display());
    decoded
}

fn yellowish([r, g, b]: [u8; 3]) -> bool {
    r > 170 && g > 150 && b < 110
}

fn reddish([r, g, b]: [u8; 3]) -> bool {
    r > 150 && g < 90 && b < 90
}

#[test]
fn replay_annotate_writes_every_analysed_frame_with_zones_tracks_and_banners() {
    let video = shared("testdata/vtest.avi");
    let camera_url = format!("file://{}", video.display());
    // Two frames a second keep it quick; the parked cars still start incidents.
    let config =
        kerb_config(1883, false, &camera_url, 5.0).replace("analysis_fps = 5", "analysis_fps = 2");
    let (dir, config) = write_config(&config);
    let (out, mp4) = (dir.path().join("replay"), dir.path().join("annotated.mp4"));
    let [format, json] = JSON_LOGS.map(std::ffi::OsStr::new);
    let replay = run_replay(
        "kerb",
        &config,
        &video,
        &out,
        &[format, json, "--annotate".as_ref(), mp4.as_ref()],
    );
    let stdout = String::from_utf8_lossy(&replay.stdout);
    let stderr = String::from_utf8_lossy(&replay.stderr);
    assert!(replay.status.success(), "{stdout}\n{stderr}");
    // No progress bar in a pipe: every line of stderr is a JSON log line.
    assert!(
        stderr.lines().all(|l| serde_json::from_str::<serde_json::Value>(l).is_ok()),
        "{stderr}"
    );
    let analysed: usize = stdout
        .split("frames analysed ")
        .nth(1)
        .and_then(|rest| rest.split(',').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("{stdout}"));
    assert_eq!(analysed, 159, "vtest.avi's 79.5 s at 2 frames/s: {stdout}");
    let written = format!("annotated video {} ({analysed} frames)", mp4.display());
    assert!(stdout.contains(&written), "{stdout}");

    let decoded = decode_mp4(&mp4);
    assert_eq!((decoded.width, decoded.height), (768, 576));
    assert_eq!(decoded.frames.len(), analysed, "every analysed frame, no other");
    assert!(
        (decoded.times[1] - 0.5).abs() < 0.01,
        "at the analysed rate: {:?}",
        &decoded.times[..3]
    );

    // The no-parking zone's left edge (x = 0.80) is yellow, from the first frame on.
    let edge_x = (0.80f64 * 767.0).round() as usize;
    let on_edge =
        |frame: usize| (edge_x - 2..=edge_x + 2).any(|x| yellowish(decoded.pixel(frame, x, 100)));
    assert!(on_edge(0), "zone edge at x {edge_x}: {:?}", decoded.pixel(0, edge_x, 100));
    assert!(!yellowish(decoded.pixel(0, edge_x - 40, 100)), "beside the edge is the picture");

    // A red banner at the top left from an incident's start on, for a while; none before.
    let lines = std::fs::read_to_string(out.join("incidents.jsonl")).unwrap();
    let first: serde_json::Value = serde_json::from_str(lines.lines().next().unwrap()).unwrap();
    assert_eq!(first["state"], "start");
    let t = first["stream_time_s"].as_f64().unwrap();
    let (before, at, later) = (decoded.at(t - 0.5), decoded.at(t), decoded.at(t + 1.5));
    assert!(!reddish(decoded.pixel(before, 3, 3)), "{:?}", decoded.pixel(before, 3, 3));
    assert!(reddish(decoded.pixel(at, 3, 3)), "banner at {t} s: {:?}", decoded.pixel(at, 3, 3));
    assert!(reddish(decoded.pixel(later, 3, 3)), "still up at {} s", t + 1.5);
}

#[test]
fn the_progress_total_is_the_videos_frame_count() {
    assert_eq!(cityeye::commands::progress::frames_in(&shared("testdata/vtest.avi")), Some(795));
    assert_eq!(cityeye::commands::progress::frames_in(Path::new("/nonexistent.mp4")), None);
}

#[test]
fn replay_of_a_missing_video_or_unknown_camera_is_a_usage_error() {
    let (dir, config) = write_config(&kerb_config(1883, false, "test://smpte", 5.0));
    let run = |camera: &str, input: &Path| {
        run_replay(camera, &config, input, &dir.path().join("out"), &[])
    };
    let missing = run("kerb", &dir.path().join("nope.mp4"));
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope.mp4: video file not found"));
    let unknown = run("gate", &shared("testdata/vtest.avi"));
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no camera `gate`; cameras: kerb"));
}

#[test]
fn replay_of_an_audio_only_file_says_it_has_no_video_track() {
    let (dir, config) = write_config(&kerb_config(1883, false, "test://smpte", 5.0));
    let audio = dir.path().join("audio.mp4");
    audio_only_mp4(&audio);
    let replay = run_replay("kerb", &config, &audio, &dir.path().join("out"), &[]);
    let stderr = String::from_utf8_lossy(&replay.stderr);
    assert_eq!(replay.status.code(), Some(1), "{stderr}");
    assert!(stderr.contains("no video track: the stream holds only audio/mpeg"), "{stderr}");
}

/// Replays vtest.avi through `config`; stdout and the incidents as (state, stream time, track).
fn replay_incidents(config: &Path, out: &Path) -> (String, Vec<String>) {
    let replay = run_replay("kerb", config, &shared("testdata/vtest.avi"), out, &[]);
    let stdout = String::from_utf8_lossy(&replay.stdout).to_string();
    assert!(replay.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&replay.stderr));
    let lines = std::fs::read_to_string(out.join("incidents.jsonl")).unwrap();
    let incidents = lines
        .lines()
        .map(|l| {
            let p: serde_json::Value = serde_json::from_str(l).unwrap();
            let object = &p["objects"][0];
            format!(
                "{} {} {} {}",
                p["state"], p["stream_time_s"], object["track_id"], object["class"]
            )
        })
        .collect();
    (stdout, incidents)
}

#[test]
fn motion_gating_skips_most_frames_and_finds_the_same_incidents() {
    let camera_url = format!("file://{}", shared("testdata/vtest.avi").display());
    let plain = kerb_config(1883, false, &camera_url, 5.0);
    let gated = plain.replace("[[models]]", "[analysis]\nmotion_gate = true\n\n[[models]]");
    let (dir, plain_config) = write_config(&plain);
    let gated_config = dir.path().join("gated.toml");
    std::fs::write(&gated_config, gated).unwrap();

    let (_, expected) = replay_incidents(&plain_config, &dir.path().join("plain"));
    let (stdout, found) = replay_incidents(&gated_config, &dir.path().join("gated"));
    assert!(expected.iter().filter(|i| i.starts_with("\"start\"")).count() >= 2, "{expected:?}");
    assert_eq!(found, expected, "the same incidents with and without the gate");
    let skipped: u64 = stdout
        .split("detectors skipped on ")
        .nth(1)
        .and_then(|rest| rest.split(' ').next())
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no gate summary: {stdout}"));
    assert!(skipped * 2 > 398, "most of the 398 frames skip the detectors: {stdout}");
}

#[test]
fn an_annotated_video_needs_an_mp4_name_in_a_folder_that_exists() {
    let (dir, config) = write_config(&kerb_config(1883, false, "test://smpte", 5.0));
    let annotate_video = |input: &Path, target: &Path| {
        let out = dir.path().join("out");
        run_replay("kerb", &config, input, &out, &["--annotate".as_ref(), target.as_ref()])
    };
    let annotate = |target: &Path| annotate_video(&shared("testdata/vtest.avi"), target);
    let avi = annotate(&dir.path().join("seen.avi"));
    assert_eq!(avi.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&avi.stderr);
    assert!(
        stderr.contains("seen.avi: the annotated video is MP4; give a file name ending in .mp4")
    );
    let nowhere = annotate(&dir.path().join("nowhere/seen.mp4"));
    assert_eq!(nowhere.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&nowhere.stderr);
    assert!(stderr.contains("nowhere does not exist"), "{stderr}");
    assert!(!dir.path().join("out").exists(), "nothing ran");

    // A file that is no video: the replay's failure is reported, not the empty video's.
    let not_video = annotate_video(&config, &dir.path().join("seen.mp4"));
    assert_eq!(not_video.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&not_video.stderr);
    assert!(
        stderr.contains("error: replay of ") && !stderr.contains("annotated video"),
        "{stderr}"
    );
}
