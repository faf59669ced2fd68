//! `cityeye replay` writes exactly what MQTT carries: the same payloads, one a line, with the
//! evidence beside them, for the same video through the same camera config.

mod common;

use std::process::Command;
use std::time::Duration;

use common::*;

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
    let replay = Command::new(env!("CARGO_BIN_EXE_cityeye"))
        .args(["--log-format", "json", "replay", "--camera", "kerb", "--config"])
        .arg(&config)
        .arg("--input")
        .arg(&video)
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
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

#[test]
fn replay_of_a_missing_video_or_unknown_camera_is_a_usage_error() {
    let (dir, config) = write_config(&kerb_config(1883, false, "test://smpte", 5.0));
    let run = |camera: &str, input: &std::path::Path| {
        Command::new(env!("CARGO_BIN_EXE_cityeye"))
            .args(["replay", "--camera", camera, "--config"])
            .arg(&config)
            .arg("--input")
            .arg(input)
            .arg("--out")
            .arg(dir.path().join("out"))
            .output()
            .unwrap()
    };
    let missing = run("kerb", &dir.path().join("nope.mp4"));
    assert_eq!(missing.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&missing.stderr).contains("nope.mp4: video file not found"));
    let unknown = run("gate", &shared("testdata/vtest.avi"));
    assert_eq!(unknown.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&unknown.stderr).contains("no camera `gate`; cameras: kerb"));
}

/// Replays vtest.avi through `config`; stdout and the incidents as (state, stream time, track).
fn replay_incidents(config: &std::path::Path, out: &std::path::Path) -> (String, Vec<String>) {
    let replay = Command::new(env!("CARGO_BIN_EXE_cityeye"))
        .args(["replay", "--camera", "kerb", "--config"])
        .arg(config)
        .arg("--input")
        .arg(shared("testdata/vtest.avi"))
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
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
