//! Covering a district (issue 14): cameras that decode key frames only.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use common::*;

/// vtest.avi (10 frames/s) re-encoded to H.264 in MP4 with a key frame every 2 s and at no
/// other place (no scene-cut key frames): the stream a city camera sends. Made in `dir`.
fn keyframe_every_2s(dir: &Path) -> PathBuf {
    let mp4 = dir.join("vtest-gop2s.mp4");
    gst_launch(&format!(
        "filesrc location={} ! decodebin ! videoconvert ! x264enc speed-preset=ultrafast \
         key-int-max=20 bframes=0 option-string=scenecut=0 ! h264parse ! mp4mux \
         ! filesink location={}",
        shared("testdata/vtest.avi").display(),
        mp4.display()
    ));
    mp4
}

/// The parked-kerb config for `video`, decoding as `decode` says.
fn kerb_decoding(video: &Path, decode: &str) -> (tempfile::TempDir, PathBuf) {
    let url = format!("file://{}", video.display());
    let config = kerb_config(1883, false, &url, 5.0)
        .replace("analysis_fps = 5\n", &format!("analysis_fps = 5\ndecode = \"{decode}\"\n"));
    write_config(&config)
}

/// `cityeye replay` of the kerb camera: its summary line and its incident starts.
fn replay(config: &Path, video: &Path) -> (String, Vec<serde_json::Value>) {
    let out = config.parent().unwrap().join("replay");
    let replay = Command::new(env!("CARGO_BIN_EXE_cityeye"))
        .args(["replay", "--camera", "kerb", "--config"])
        .arg(config)
        .arg("--input")
        .arg(video)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&replay.stdout).into_owned();
    assert!(replay.status.success(), "{stdout}\n{}", String::from_utf8_lossy(&replay.stderr));
    let lines = std::fs::read_to_string(out.join("incidents.jsonl")).unwrap();
    let starts = lines
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|p| p["state"] == "start")
        .collect();
    (stdout, starts)
}

/// The number after `label ` in a replay's summary line.
fn summary_count(stdout: &str, label: &str) -> u64 {
    let after = stdout.split(&format!("{label} ")).nth(1).unwrap_or_else(|| panic!("{stdout}"));
    after.split(',').next().unwrap().trim().parse().unwrap_or_else(|_| panic!("{stdout}"))
}

fn iou(a: &serde_json::Value, b: &serde_json::Value) -> f64 {
    let r = |v: &serde_json::Value| -> [f64; 4] {
        let b = v["objects"][0]["bbox"].as_array().unwrap();
        [0, 1, 2, 3].map(|i| b[i].as_f64().unwrap())
    };
    let ([ax, ay, aw, ah], [bx, by, bw, bh]) = (r(a), r(b));
    let w = ((ax + aw).min(bx + bw) - ax.max(bx)).max(0.0);
    let h = ((ay + ah).min(by + bh) - ay.max(by)).max(0.0);
    w * h / (aw * ah + bw * bh - w * h)
}

#[test]
fn a_keyframe_replay_finds_the_incidents_of_an_every_frame_replay_decoding_only_key_frames() {
    let media = tempfile::tempdir().unwrap();
    let video = keyframe_every_2s(media.path());

    let (_all_dir, all) = kerb_decoding(&video, "all");
    let (every, every_starts) = replay(&all, &video);
    assert_eq!(summary_count(&every, "frames decoded"), 795, "{every}");
    assert_eq!(summary_count(&every, "delta frames skipped"), 0, "{every}");

    let (_keys_dir, keys) = kerb_decoding(&video, "keyframes");
    let (keyed, key_starts) = replay(&keys, &video);
    // 79.5 s with a key frame every 2 s: 40 key frames, and only they were decoded.
    assert_eq!(summary_count(&keyed, "frames decoded"), 40, "{keyed}");
    assert_eq!(summary_count(&keyed, "delta frames skipped"), 795 - 40, "{keyed}");
    assert_eq!(summary_count(&keyed, "frames analysed"), 40, "{keyed}");

    assert!(every_starts.len() >= 2, "the two parked vehicles: {every_starts:#?}");
    assert_eq!(
        key_starts.len(),
        every_starts.len(),
        "every frame:\n{every_starts:#?}\nkey frames:\n{key_starts:#?}"
    );
    for (e, k) in every_starts.iter().zip(&key_starts) {
        assert_eq!(e["algorithm"], k["algorithm"]);
        assert_eq!(e["objects"][0]["class"], k["objects"][0]["class"], "{e}\n{k}");
        let (te, tk) = (e["stream_time_s"].as_f64().unwrap(), k["stream_time_s"].as_f64().unwrap());
        assert!((te - tk).abs() <= 2.0, "within one key-frame interval: {te} s and {tk} s");
        assert!(iou(e, k) >= 0.5, "the same place: {e}\n{k}");
    }
}

/// vtest.avi mirrored left to right, as H.264 in MP4, made in `dir`: a second camera whose
/// frames differ from the first's at the same size.
fn mirrored_vtest(dir: &Path) -> PathBuf {
    let mp4 = dir.join("vtest-mirrored.mp4");
    gst_launch(&format!(
        "filesrc location={} ! decodebin ! videoconvert ! videoflip video-direction=horiz \
         ! videoconvert ! x264enc speed-preset=ultrafast ! mp4mux ! filesink location={}",
        shared("testdata/vtest.avi").display(),
        mp4.display()
    ));
    mp4
}

/// A key-frame camera watching two kerbs for parked vehicles: `parked` at the top corner where
/// its video shows the parked vehicles, `empty` at the other top corner, where it shows none.
fn two_kerb_camera(id: &str, url: &str, parked_on_left: bool) -> String {
    let left = "[[0.00, 0.00], [0.20, 0.00], [0.20, 0.25], [0.00, 0.25]]";
    let right = "[[0.80, 0.00], [1.00, 0.00], [1.00, 0.25], [0.80, 0.25]]";
    let (parked, empty) = if parked_on_left { (left, right) } else { (right, left) };
    let kerb = |name: &str, polygon: &str| {
        format!(
            r#"
  [[cameras.zones]]
  name = "{name}"
  polygon = {polygon}

  [[cameras.algorithms]]
  type = "illegal_parking"
  zone = "{name}"
  dwell_s = 4
  cooldown_s = 600
"#
        )
    };
    format!(
        "\n[[cameras]]\nid = \"{id}\"\nurl = \"{url}\"\ndecode = \"keyframes\"\nmodel = \"coco\"\n{}{}",
        kerb("parked", parked),
        kerb("empty", empty)
    )
}

#[test]
fn key_frame_cameras_share_a_decoder_per_codec_and_size_and_each_gets_its_own_frames() {
    let media = tempfile::tempdir().unwrap();
    let vtest = shared("testdata/vtest.avi");
    // Two H.264 cameras of one size, whose frames a mix-up would show (one is mirrored), one
    // of half the size, and one in H.265.
    let servers = [
        ("straight", RtspServer::start(&vtest), false, 768),
        ("mirrored", RtspServer::start(&mirrored_vtest(media.path())), true, 768),
        ("half", RtspServer::start(&half_size_vtest(media.path())), false, 384),
        ("hevc", RtspServer::start_with(&vtest, Codec::H265), false, 768),
    ];
    let broker = Mosquitto::start();
    let subscriber = Subscriber::connect(broker.port, "cityeye/#");
    let cameras: String =
        servers.iter().map(|(id, s, left, _)| two_kerb_camera(id, &s.url(), *left)).collect();
    // kerb_config's node, broker and model, with stats every 2 s, and these cameras.
    let node = kerb_config(broker.port, false, "unused", 4.0).replace(
        "topic_prefix = \"cityeye\"\n",
        "topic_prefix = \"cityeye\"\nstats_interval_s = 2\n",
    );
    let node = &node[..node.find("[[cameras]]").unwrap()];
    let (_dir, config) = write_config(&format!("{node}{cameras}"));
    let mut appliance = Appliance::run(&config);
    let parked = |m: &[Message], camera: &str| {
        incidents(m, "start").iter().any(|i| i.json()["camera"] == camera)
    };
    let messages = subscriber.wait_until(Duration::from_secs(120), |m| {
        servers.iter().all(|(id, ..)| parked(m, id)) && last_stats(m).is_some()
    });
    appliance.stop();
    let log = appliance.log();

    for (id, _, _, width) in &servers {
        let starts: Vec<serde_json::Value> = incidents(&messages, "start")
            .iter()
            .map(|m| m.json())
            .filter(|i| i["camera"] == *id)
            .collect();
        assert!(!starts.is_empty(), "{id}: no parked vehicle\n{log}");
        for start in &starts {
            // A frame of another camera would have shown parked vehicles at the empty kerb.
            assert_eq!(start["zone"], "parked", "{id}: {start}");
            // Each camera's frames came at its own size.
            assert_eq!(start["evidence"]["width"], *width, "{id}: {start}");
        }
    }
    // One decoder for each codec and size, the H.265 stream found after the H.264 parser
    // refused it.
    for kind in ["video/x-h264 768x576", "video/x-h264 384x288", "video/x-h265 768x576"] {
        let opened = format!("key frames of {kind} decoded by a shared decoder");
        assert_eq!(log.matches(&opened).count(), 1, "{kind}\n{log}");
    }
    assert!(log.contains("the stream is not H.264; trying H.265"), "{log}");
    // Only key frames were decoded.
    let stats = last_stats(&messages).unwrap_or_else(|| panic!("no stats\n{log}"));
    for (id, ..) in &servers {
        let camera = &stats["cameras"][id];
        assert_eq!(camera["decoding"], "keyframes", "{id}: {camera}");
        let (decoded, skipped) = (camera["frames_in"].as_u64(), camera["frames_skipped"].as_u64());
        assert!(decoded > Some(0) && skipped > decoded, "{id}: {camera}");
    }
}

/// A node config: cameras `kerb-1` … `kerb-N` at `urls`, each watching the parked-vehicle kerb
/// of vtest.avi for `dwell_s`, all in one patrol of `slots` slots visiting each for `visit_s`.
fn patrol_config(broker_port: u16, urls: &[String], slots: usize, visit_s: f64) -> String {
    let cameras: String = urls
        .iter()
        .enumerate()
        .map(|(i, url)| {
            format!(
                r#"
[[cameras]]
id = "kerb-{n}"
url = "{url}"
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
                n = i + 1,
                dwell_s = PATROL_DWELL_S,
            )
        })
        .collect();
    format!(
        r#"
[node]
id = "edge-test"
data_dir = "data"

[mqtt]
url = "mqtt://127.0.0.1:{broker_port}"
topic_prefix = "cityeye"
stats_interval_s = 2

[http]
listen = "127.0.0.1:0"

[[models]]
name = "coco"
path = "{model}"
format = "yolox"
classes = "{classes}"
{cameras}
[[patrols]]
id = "district-7"
cameras = ["kerb-*"]
slots = {slots}
visit_s = {visit_s}
"#,
        model = shared("models/yolox_nano.onnx").display(),
        classes = repo("models/coco80.txt").display(),
    )
}

/// Longer than a visit: only a car seen across visits can dwell this long.
const PATROL_DWELL_S: f64 = 8.0;

/// The states camera `camera`'s status topic carried, in order.
fn states(messages: &[Message], camera: &str) -> Vec<serde_json::Value> {
    let topic = format!("cityeye/edge-test/{camera}/status");
    messages.iter().filter(|m| m.topic == topic).map(Message::json).collect()
}

fn went(states: &[serde_json::Value], state: &str) -> usize {
    states.iter().filter(|s| s["state"] == state).count()
}

#[test]
fn a_patrol_of_6_cameras_with_2_slots_visits_each_in_turn_and_keeps_dwell_across_visits() {
    let video = shared("testdata/vtest.avi");
    let broker = Mosquitto::start();
    let subscriber = Subscriber::connect(broker.port, "cityeye/#");
    let mut servers: Vec<RtspServer> = (0..6).map(|_| RtspServer::start(&video)).collect();
    // kerb-4's camera is off the network during its turns.
    servers[3].stop();
    let urls: Vec<String> = servers.iter().map(RtspServer::url).collect();
    let (_dir, config) = write_config(&patrol_config(broker.port, &urls, 2, 3.0));
    let (code, stdout, stderr) = {
        let out = Command::new(env!("CARGO_BIN_EXE_cityeye"))
            .args(["check", "--config"])
            .arg(&config)
            .output()
            .unwrap();
        let text = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
        (out.status.code(), text(&out.stdout), text(&out.stderr))
    };
    assert_eq!(code, Some(0), "{stdout}\n{stderr}");

    let mut appliance = Appliance::run(&config);
    let live = ["kerb-1", "kerb-2", "kerb-3", "kerb-5", "kerb-6"];
    let messages = subscriber.wait_until(Duration::from_secs(150), |m| {
        live.iter().all(|c| went(&states(m, c), "online") >= 2)
            && went(&states(m, "kerb-4"), "offline") >= 2
            && !incidents(m, "start").is_empty()
            // Stats go out every 2 s: wait for a report that has counted the second visits.
            && last_stats(m).is_some_and(|stats| {
                live.iter().all(|c| stats["cameras"][c]["visits"].as_u64().unwrap_or(0) >= 2)
            })
    });
    appliance.stop();
    let log = appliance.log();

    // Every camera visited; the one that is down reported offline at each of its turns and
    // never stalled the others: all of them were visited again after it failed.
    for camera in live {
        let states = states(&messages, camera);
        assert!(went(&states, "online") >= 2, "{camera} visited twice: {states:?}\n{log}");
        // standby → online → standby: closed between visits, not offline.
        let names: Vec<&str> = states.iter().filter_map(|s| s["state"].as_str()).collect();
        let cycle = names.windows(3).any(|w| {
            w[0] == "standby" && matches!(w[1], "connecting" | "online") && w[2] != "offline"
        });
        assert!(cycle && !names.contains(&"offline"), "{camera}: {names:?}");
        for s in &states {
            assert_matches_schema("schemas/status.v1.json", s);
            if s["state"] == "standby" {
                assert!(s["next_visit_at"].is_string(), "{s}");
            }
        }
    }
    let down = states(&messages, "kerb-4");
    let failed = down.iter().filter(|s| s["state"] == "offline").collect::<Vec<_>>();
    assert!(failed.len() >= 2 && failed.iter().all(|s| s["reason"].is_string()), "{down:?}");
    assert_eq!(went(&down, "online"), 0);
    let first_failure = messages
        .iter()
        .position(|m| m.topic.ends_with("kerb-4/status") && m.json()["state"] == "offline")
        .unwrap();
    for camera in live {
        let after = states(&messages[first_failure..], camera);
        assert!(went(&after, "online") >= 1, "{camera} visited after kerb-4 failed\n{log}");
    }

    // A parked car raises illegal_parking after dwelling longer than any one visit.
    let starts = incidents(&messages, "start");
    let parked = starts.iter().map(|m| m.json()).find(|p| p["algorithm"] == "illegal_parking");
    let parked = parked.unwrap_or_else(|| panic!("no illegal_parking incident\n{log}"));
    let dwell = parked["objects"][0]["dwell_s"].as_f64().unwrap();
    assert!(dwell >= PATROL_DWELL_S, "dwelled {dwell} s across visits of 3 s: {parked}");

    // The stats count each camera's visits and its real revisit period.
    let last = last_stats(&messages).unwrap_or_else(|| panic!("no stats\n{log}"));
    assert_matches_schema("schemas/stats.v1.json", &last);
    for camera in live {
        let report = &last["cameras"][camera];
        assert!(report["visits"].as_u64().unwrap_or(0) >= 2, "{camera}: {report}");
        let revisit = report["revisit_s"].as_f64().unwrap_or(0.0);
        // Six cameras two at a time: at least two other visits of 3 s come between.
        assert!(revisit > 3.0 && revisit < 60.0, "{camera}: {report}");
    }
}

/// The node's newest stats report.
fn last_stats(messages: &[Message]) -> Option<serde_json::Value> {
    messages.iter().rev().find(|m| m.topic == "cityeye/edge-test/stats").map(Message::json)
}

/// The node's own status messages, in order.
fn node_statuses(messages: &[Message]) -> Vec<serde_json::Value> {
    messages.iter().filter(|m| m.topic == "cityeye/edge-test/status").map(Message::json).collect()
}

#[test]
fn patrol_and_decode_mistakes_are_refused_at_reload_naming_the_key() {
    let broker = Mosquitto::start();
    let subscriber = Subscriber::connect(broker.port, "cityeye/edge-test/status");
    let urls = vec!["test://smpte?width=320&height=240&fps=5".to_string(); 2];
    let good = patrol_config(broker.port, &urls, 1, 2.0);
    let (_dir, config) = write_config(&good);
    let mut appliance = Appliance::run(&config);
    subscriber.wait_until(Duration::from_secs(30), |m| !node_statuses(m).is_empty());
    let tripwire = "type = \"tripwire\"\n  line = [[0.5, 0.0], [0.5, 1.0]]";
    let mistakes: [(String, &str); 5] = [
        (good.replace("[\"kerb-*\"]", "[\"kerb-1\", \"gate\"]"), "patrols[0].cameras"),
        (
            format!(
                "{good}\n[[patrols]]\nid = \"again\"\ncameras = [\"kerb-2\"]\nslots = 1\nvisit_s = 5\n"
            ),
            "patrols[1].cameras",
        ),
        (good.replace("slots = 1", "slots = 0"), "patrols[0].slots"),
        (
            good.replacen("type = \"illegal_parking\"\n  zone = \"no-parking\"", tripwire, 1),
            "cameras[0].algorithms[0].type",
        ),
        (
            good.replace("[\"kerb-*\"]", "[\"kerb-2\"]")
                .replacen("model = \"coco\"", "model = \"coco\"\ndecode = \"keyframes\"", 1)
                .replacen("type = \"illegal_parking\"\n  zone = \"no-parking\"", tripwire, 1),
            "cameras[0].decode",
        ),
    ];
    for (i, (bad, key)) in mistakes.iter().enumerate() {
        std::fs::write(&config, bad).unwrap();
        appliance.signal("HUP");
        let messages = subscriber.wait_until(Duration::from_secs(20), |m| {
            node_statuses(m).iter().filter(|s| s["config"].get("errors").is_some()).count() > i
        });
        let refused = node_statuses(&messages)
            .into_iter()
            .filter(|s| s["config"].get("errors").is_some())
            .nth(i)
            .unwrap_or_else(|| panic!("reload {i} not refused\n{}", appliance.log()));
        let errors = refused["config"]["errors"].to_string();
        assert!(errors.contains(&format!("{key}: ")), "{key}: {errors}");
        assert_eq!(refused["config"]["sha256"], cityeye::config::sha256_hex(good.as_bytes()));
    }
    assert!(appliance.is_running());
    appliance.stop();
}
