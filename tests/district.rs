//! Covering a district (issue 14): cameras that decode key frames only.

mod common;

use std::path::{Path, PathBuf};
use std::process::Command;

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
