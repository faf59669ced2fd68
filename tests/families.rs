//! The detector families cityeye decodes, proven on real footage: scripts/make-test-models
//! rebuilds the shared YOLOX-Nano as a `yolo_end2end` model (decode and class-wise NMS inside),
//! a `detr` model (RGB 0..1 in, `labels`/`boxes`/`scores` scaled by `orig_target_sizes` out), an
//! Ultralytics `rtdetr` model, a `yolo_nas` model and a dynamic-batch YOLOX. The network and the
//! pixels it sees are the same in each, so the same frames must give the same detections, and
//! the same replay the same incidents, through every decoder; and frames batched together
//! (`max_batch`) the same detections as frames run alone.

mod common;

use std::path::Path;
use std::process::Command;
use std::time::SystemTime;

use cityeye::config::Config;
use cityeye::geometry::Detection;
use cityeye::infer::{Detector, Scratch};
use serde_json::Value;

use common::*;

/// The road the pedestrians walk on, and a tripwire across it; the kerb the van is parked at.
const ROAD: &str =
    "[[0.0, 0.30], [0.70, 0.25], [1.0, 0.45], [1.0, 0.85], [0.55, 0.62], [0.0, 0.42]]";
const KERB: &str = "[[0.80, 0.00], [1.00, 0.00], [1.00, 0.25], [0.80, 0.25]]";

/// Each layout: its name, and the `[[models]]` keys beyond `name` and `classes`. The YOLOX
/// network inside takes BGR 0..255 letterboxed at the top-left; end2end keeps that input, the
/// others take RGB 0..1 (their formats' default) but need the same letterbox.
fn layouts() -> Vec<(&'static str, String)> {
    let model = |path: &Path, format: &str, extra: &str| {
        format!("path = \"{}\"\nformat = \"{format}\"\n{extra}", path.display())
    };
    let top_left = "resize = \"letterbox_top_left\"";
    vec![
        ("yolox", model(&shared("models/yolox_nano.onnx"), "yolox", "")),
        (
            "yolo_end2end",
            model(
                &test_model("yolox_nano.end2end.onnx"),
                "yolo_end2end",
                &format!("channels = \"bgr\"\nscale = \"raw\"\n{top_left}"),
            ),
        ),
        ("detr", model(&test_model("yolox_nano.detr.onnx"), "detr", top_left)),
        ("rtdetr", model(&test_model("yolox_nano.rtdetr.onnx"), "rtdetr", top_left)),
        ("yolo_nas", model(&test_model("yolox_nano.nas.onnx"), "yolo_nas", top_left)),
        ("dynamic batch", model(&test_model("yolox_nano.batch.onnx"), "yolox", "")),
    ]
}

fn config(model: &str) -> String {
    format!(
        r#"
[node]
id = "edge-test"

[[models]]
name = "coco"
classes = "{classes}"
{model}

[[cameras]]
id = "campus"
url = "file://{video}"
model = "coco"

  [[cameras.zones]]
  name = "road"
  polygon = {ROAD}

  [[cameras.zones]]
  name = "kerb"
  polygon = {KERB}

  [[cameras.algorithms]]
  type = "tripwire"
  line = [[0.5, 0.2], [0.5, 0.9]]

  [[cameras.algorithms]]
  type = "intrusion"
  zone = "road"

  [[cameras.algorithms]]
  type = "illegal_parking"
  zone = "kerb"
  dwell_s = 5
"#,
        classes = repo("models/coco80.txt").display(),
        video = shared("testdata/vtest.avi").display(),
    )
}

/// The detections of frames 0 and 300 of vtest.avi through the config's model.
fn detections(config: &str) -> Vec<Vec<Detection>> {
    let (_dir, path) = write_config(config);
    let config = Config::load(&path).unwrap();
    let detector =
        Detector::load(&config.models[0]).unwrap_or_else(|e| panic!("models[0].{}: {e}", e.key()));
    let mut camera = config.cameras[0].clone();
    camera.analysis_fps = 10.0; // vtest.avi's own rate: keep every frame
    let mut frames = Vec::new();
    let mut index = 0;
    replay_frames(&camera, SystemTime::now(), &mut |frame| {
        if index == 0 || index == 300 {
            frames.push(detector.detect(&frame, &mut Scratch::default()).unwrap());
        }
        index += 1;
    });
    frames
}

#[test]
fn every_layout_finds_the_same_objects_on_the_same_frames() {
    let layouts = layouts();
    let (_, reference) = &layouts[0];
    let expected = detections(&config(reference));
    assert!(expected.iter().all(|d| d.len() >= 6), "{expected:?}");
    for (layout, model) in &layouts[1..] {
        let got = detections(&config(model));
        for (frame, (got, expected)) in got.iter().zip(&expected).enumerate() {
            assert_eq!(got.len(), expected.len(), "{layout}, frame {frame}: {got:?}");
            for (g, e) in got.iter().zip(expected) {
                let close = (g.bbox.x - e.bbox.x).abs() < 1e-3
                    && (g.bbox.y - e.bbox.y).abs() < 1e-3
                    && (g.bbox.w - e.bbox.w).abs() < 1e-3
                    && (g.bbox.h - e.bbox.h).abs() < 1e-3
                    && (g.confidence - e.confidence).abs() < 1e-3;
                assert!(g.class == e.class && close, "{layout}, frame {frame}: {g:?} != {e:?}");
            }
        }
    }
}

/// What makes an incident the same one: its algorithm, state, where, when, and the objects'
/// classes and tracks.
fn incident_key(p: &Value) -> String {
    let objects: Vec<String> = p["objects"]
        .as_array()
        .map(|objects| {
            objects.iter().map(|o| format!("{}#{}", o["class"], o["track_id"])).collect()
        })
        .unwrap_or_default();
    format!(
        "{} {} zone={} line={} direction={} t={} objects={objects:?}",
        p["algorithm"], p["state"], p["zone"], p["line"], p["direction"], p["stream_time_s"]
    )
}

/// `cityeye replay` of vtest.avi through `config`: its incidents, as [`incident_key`]s.
fn replayed_incidents(dir: &Path, config: &str) -> Vec<String> {
    let path = dir.join("cityeye.toml");
    std::fs::write(&path, config).unwrap();
    let out = dir.join("out");
    let run = Command::new(env!("CARGO_BIN_EXE_cityeye"))
        .args(["replay", "--camera", "campus", "--start-time", "2026-11-23T09:00:00Z"])
        .arg("--config")
        .arg(&path)
        .arg("--input")
        .arg(shared("testdata/vtest.avi"))
        .arg("--out")
        .arg(&out)
        .env("TZ", "UTC")
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let lines = std::fs::read_to_string(out.join("incidents.jsonl")).unwrap();
    lines.lines().map(|l| incident_key(&serde_json::from_str(l).unwrap())).collect()
}

#[test]
fn every_layout_gives_the_same_incidents() {
    let layouts = layouts();
    let dir = tempfile::tempdir().unwrap();
    let expected = replayed_incidents(dir.path(), &config(&layouts[0].1));
    let algorithms = ["tripwire", "intrusion", "illegal_parking"];
    for algorithm in algorithms {
        assert!(
            expected.iter().any(|k| k.starts_with(&format!("\"{algorithm}\" \"start\""))),
            "the reference replay has a {algorithm} incident: {expected:#?}"
        );
    }
    for (layout, model) in &layouts[1..] {
        let dir = tempfile::tempdir().unwrap();
        let got = replayed_incidents(dir.path(), &config(model));
        assert_eq!(got, expected, "{layout}");
    }
}

/// Detections of frames 0, 100, 200 and 300 of vtest.avi, detected on four threads at once.
fn detect_concurrently(config: &str) -> Vec<Vec<Detection>> {
    let (_dir, path) = write_config(config);
    let config = Config::load(&path).unwrap();
    let detector =
        Detector::load(&config.models[0]).unwrap_or_else(|e| panic!("models[0].{}: {e}", e.key()));
    let mut camera = config.cameras[0].clone();
    camera.analysis_fps = 10.0;
    let (mut frames, mut index) = (Vec::new(), 0);
    replay_frames(&camera, SystemTime::now(), &mut |frame| {
        if index % 100 == 0 && index <= 300 {
            frames.push(frame);
        }
        index += 1;
    });
    let barrier = std::sync::Barrier::new(frames.len());
    std::thread::scope(|scope| {
        let threads: Vec<_> = frames
            .iter()
            .map(|frame| {
                let (detector, barrier) = (&detector, &barrier);
                scope.spawn(move || {
                    barrier.wait();
                    detector.detect(frame, &mut Scratch::default()).unwrap()
                })
            })
            .collect();
        threads.into_iter().map(|t| t.join().unwrap()).collect()
    })
}

#[test]
fn frames_batched_together_find_what_frames_run_alone_find() {
    let batch = test_model("yolox_nano.batch.onnx");
    let model = |extra: &str| {
        format!("path = \"{}\"\nformat = \"yolox\"\nsessions = 1\n{extra}", batch.display())
    };
    let alone = detect_concurrently(&config(&model("")));
    let batched = detect_concurrently(&config(&model("max_batch = 4\nbatch_wait_ms = 200")));
    assert!(alone.iter().all(|d| !d.is_empty()), "{alone:?}");
    for (frame, (b, a)) in batched.iter().zip(&alone).enumerate() {
        assert_eq!(b.len(), a.len(), "frame {frame}: {b:?}\n{a:?}");
        for (b, a) in b.iter().zip(a) {
            let close = (b.bbox.x - a.bbox.x).abs() < 1e-3
                && (b.bbox.y - a.bbox.y).abs() < 1e-3
                && (b.bbox.w - a.bbox.w).abs() < 1e-3
                && (b.bbox.h - a.bbox.h).abs() < 1e-3
                && (b.confidence - a.confidence).abs() < 1e-3;
            assert!(b.class == a.class && close, "frame {frame}: {b:?} != {a:?}");
        }
    }
}

#[test]
fn batching_a_model_of_fixed_batch_is_an_error_on_max_batch() {
    let fixed = format!(
        "path = \"{}\"\nformat = \"yolox\"\nmax_batch = 4",
        shared("models/yolox_nano.onnx").display()
    );
    let (_dir, path) = write_config(&config(&fixed));
    let config = Config::load(&path).unwrap();
    let Err(e) = Detector::load(&config.models[0]) else { panic!("a fixed batch was batched") };
    assert_eq!(
        (e.key(), e.to_string().as_str()),
        (
            "max_batch",
            "is 4 but the model's batch dimension is fixed at 1: batching needs a dynamic one"
        )
    );
}

#[test]
fn models_inspect_tells_each_family_from_its_shapes() {
    for (file, guess) in [
        ("yolox_nano.end2end.onnx", "looks like `yolo_end2end`, input 416x416"),
        ("yolox_nano.detr.onnx", "looks like `detr`, input 416x416"),
        ("yolox_nano.rtdetr.onnx", "looks like `rtdetr` with 80 classes, input 416x416"),
        ("yolox_nano.nas.onnx", "looks like `yolo_nas` with 80 classes, input 416x416"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_cityeye"))
            .args(["models", "inspect"])
            .arg(test_model(file))
            .output()
            .unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && stdout.contains(guess), "{file}: {stdout}");
    }
}
