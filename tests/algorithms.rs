//! Catalog algorithms end to end on the shared footage (vtest.avi: pedestrians crossing a
//! campus road, two vehicles parked at the top right), through `cityeye replay` with the shared
//! YOLOX-Nano: crowd_gathering, intrusion, tripwire in both directions, loitering, a schedule,
//! and a cascade algorithm with a real (generated) second-stage classifier.

mod common;

use std::path::Path;
use std::process::Command;
use std::sync::OnceLock;

use serde_json::Value;

use common::*;

/// The road the pedestrians walk on, and a tripwire across it.
const ROAD: &str =
    "[[0.0, 0.30], [0.70, 0.25], [1.0, 0.45], [1.0, 0.85], [0.55, 0.62], [0.0, 0.42]]";
const LINE: [[f64; 2]; 2] = [[0.5, 0.2], [0.5, 0.9]];
/// vtest.avi is 79.5 s long; at the default 5 frames/s the last analysed frame is at 79.4 s.
const VIDEO_LAST_ANALYSED_S: f64 = 79.4;

fn config(models: &str, algorithms: &str) -> String {
    format!(
        r#"
[node]
id = "edge-test"

[[models]]
name = "coco"
path = "{model}"
format = "yolox"
classes = "{classes}"
{models}

[[cameras]]
id = "campus"
url = "test://smpte"
model = "coco"

  [[cameras.zones]]
  name = "road"
  polygon = {ROAD}
{algorithms}
"#,
        model = shared("models/yolox_nano.onnx").display(),
        classes = repo("models/coco80.txt").display(),
    )
}

/// Replays vtest.avi through camera `campus` of `config`, the node's clock set to UTC and the
/// first frame at `start`; returns the payloads written.
fn replay(dir: &Path, config: &str, start: &str) -> Vec<Value> {
    let path = dir.join("cityeye.toml");
    std::fs::write(&path, config).unwrap();
    let out = dir.join("out");
    let run = Command::new(env!("CARGO_BIN_EXE_cityeye"))
        .args(["replay", "--camera", "campus", "--start-time", start, "--config"])
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
    lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

/// One replay with four algorithms at once, shared by the tests below.
fn campus() -> &'static [Value] {
    static INCIDENTS: OnceLock<Vec<Value>> = OnceLock::new();
    INCIDENTS.get_or_init(|| {
        let algorithms = format!(
            r#"
  [[cameras.algorithms]]
  type = "crowd_gathering"
  min_count = 6
  persist_s = 5

  [[cameras.algorithms]]
  type = "intrusion"
  zone = "road"

  [[cameras.algorithms]]
  type = "tripwire"
  line = {LINE:?}

  [[cameras.algorithms]]
  type = "loitering"
  zone = "road"
  dwell_s = 12
"#
        );
        let dir = tempfile::tempdir().unwrap();
        let incidents = replay(dir.path(), &config("", &algorithms), "2026-11-23T09:00:00Z");
        for p in &incidents {
            assert_matches_schema("schemas/incident.v1.json", p);
        }
        incidents
    })
}

fn of<'a>(algorithm: &str, state: &str) -> Vec<&'a Value> {
    campus().iter().filter(|p| p["algorithm"] == algorithm && p["state"] == state).collect()
}

fn classes(p: &Value) -> Vec<&str> {
    p["objects"].as_array().unwrap().iter().map(|o| o["class"].as_str().unwrap()).collect()
}

#[test]
fn crowd_gathering_fires_once_when_six_people_are_in_view_for_5_s() {
    let starts = of("crowd_gathering", "start");
    assert_eq!(starts.len(), 1, "{starts:?}");
    let crowd = starts[0];
    assert!(crowd["count"].as_u64().unwrap() >= 6, "{crowd}");
    assert!(classes(crowd).len() >= 6 && classes(crowd).iter().all(|c| *c == "person"));
    assert!(crowd["stream_time_s"].as_f64().unwrap() >= 5.0);
    assert_eq!(
        (crowd["name_zh"].as_str(), crowd["category"].as_str()),
        (Some("人员聚集"), Some("emergency"))
    );
}

#[test]
fn intrusion_fires_at_once_for_people_on_the_road_and_updates_every_minute() {
    let starts = of("intrusion", "start");
    assert_eq!(starts.len(), 1, "{starts:?}");
    let start = starts[0];
    assert!(start["stream_time_s"].as_f64().unwrap() <= 2.0, "{start}");
    assert!(classes(start).iter().all(|c| *c == "person"));
    assert_eq!(start["zone"], "road");
    let updates = of("intrusion", "update");
    assert!(!updates.is_empty(), "a minute on the road gives an update");
    for u in updates {
        assert_eq!(u["id"], start["id"], "updates repeat the start's id");
        assert!(
            u["stream_time_s"].as_f64().unwrap() - start["stream_time_s"].as_f64().unwrap() >= 60.0
        );
        assert!(u.get("evidence").is_none());
    }
}

#[test]
fn tripwire_counts_crossings_both_ways_each_once() {
    let starts = of("tripwire", "start");
    let way = |d: &str| starts.iter().filter(|p| p["direction"] == d).count();
    assert!(
        way("a_to_b") >= 3 && way("b_to_a") >= 3,
        "a_to_b {}, b_to_a {}",
        way("a_to_b"),
        way("b_to_a")
    );
    let mut crossings: Vec<(u64, &str)> = Vec::new();
    for p in &starts {
        assert_eq!(p["line"], serde_json::json!(LINE));
        assert_eq!(classes(p), ["person"], "only pedestrians cross the road's middle");
        let crossing =
            (p["objects"][0]["track_id"].as_u64().unwrap(), p["direction"].as_str().unwrap());
        assert!(!crossings.contains(&crossing), "{crossing:?} counted twice");
        crossings.push(crossing);
        let ends: Vec<_> =
            of("tripwire", "end").into_iter().filter(|e| e["id"] == p["id"]).collect();
        // A crossing on the video's last analysed frame has no later frame to end on.
        let last_frame = p["stream_time_s"].as_f64().unwrap() >= VIDEO_LAST_ANALYSED_S;
        assert_eq!(ends.len(), usize::from(!last_frame), "every crossing ends once: {p}");
    }
}

#[test]
fn loitering_fires_for_people_on_the_road_for_12_s() {
    // Pedestrians stay on the road 12 s and more all through the video; only one stays 20 s,
    // at the very end, and whether its track holds that long is down to single detections.
    let starts = of("loitering", "start");
    assert!(starts.len() >= 5, "{} loiterers", starts.len());
    for p in starts {
        assert_eq!(classes(p), ["person"]);
        assert!(p["objects"][0]["dwell_s"].as_f64().unwrap() >= 12.0, "{p}");
    }
}

#[test]
fn nothing_fires_outside_the_schedule() {
    let algorithms = r#"
  [[cameras.algorithms]]
  type = "intrusion"
  zone = "road"
  schedule = ["Mon-Fri 07:00-22:00"]
"#;
    let dir = tempfile::tempdir().unwrap();
    let at_night = replay(dir.path(), &config("", algorithms), "2026-11-23T03:00:00Z");
    assert!(at_night.is_empty(), "{at_night:?}");
    let dir = tempfile::tempdir().unwrap();
    let by_day = replay(dir.path(), &config("", algorithms), "2026-11-23T09:00:00Z");
    assert_eq!(by_day.iter().filter(|p| p["state"] == "start").count(), 1);
}

/// A cascade on the parked white van: the detector finds the truck, a generated colour
/// classifier labels bright crops `uncovered`.
fn muck_truck_replay(bright_means_uncovered: bool) -> Vec<Value> {
    let dir = tempfile::tempdir().unwrap();
    // Labels: covered (constant logit 0), uncovered (logit 4 (r + g + b) - 4, signed).
    let classifier = test_model(if bright_means_uncovered {
        "colour_bright_uncovered.onnx"
    } else {
        "colour_dark_uncovered.onnx"
    });
    let models = format!(
        r#"
[[models]]
name = "attributes"
path = "{}"
format = "classifier"
classes = ["covered", "uncovered"]
"#,
        classifier.display()
    );
    let algorithms = r#"
  [[cameras.algorithms]]
  type = "muck_truck_uncovered"
"#;
    replay(dir.path(), &config(&models, algorithms), "2026-11-23T09:00:00Z")
}

#[test]
fn cascade_fires_when_the_classifier_labels_the_truck() {
    let incidents = muck_truck_replay(true);
    let starts: Vec<_> = incidents.iter().filter(|p| p["state"] == "start").collect();
    assert!(!starts.is_empty(), "{incidents:?}");
    for p in starts {
        assert_matches_schema("schemas/incident.v1.json", p);
        assert_eq!(p["label"], "uncovered");
        assert!(p["score"].as_f64().unwrap() >= 0.6, "{p}");
        assert_eq!(classes(p), ["truck"]);
        let b = &p["objects"][0]["bbox"];
        assert!(b[0].as_f64().unwrap() > 0.8, "the van at the top right: {p}");
    }
}

#[test]
fn cascade_stays_quiet_when_the_classifier_says_otherwise() {
    let incidents = muck_truck_replay(false);
    assert!(incidents.is_empty(), "{incidents:?}");
}

#[test]
fn the_catalog_listing_names_every_algorithm_for_people_and_machines() {
    let run = |args: &[&str]| {
        let out = Command::new(env!("CARGO_BIN_EXE_cityeye")).args(args).output().unwrap();
        assert!(out.status.success());
        String::from_utf8(out.stdout).unwrap()
    };
    let json = run(&["algorithms", "--json"]);
    let entries: Vec<Value> = json.lines().map(|l| serde_json::from_str(l).unwrap()).collect();
    assert_eq!(entries.len(), 47);
    let parking = entries.iter().find(|e| e["id"] == "illegal_parking").unwrap();
    assert_eq!(parking["name_zh"], "机动车违停");
    assert_eq!(
        (parking["primitive"].as_str(), parking["category"].as_str()),
        (Some("dwell"), Some("street_order"))
    );
    let stove = entries.iter().find(|e| e["id"] == "stove_unattended").unwrap();
    assert_eq!(
        (stove["classes"][0].as_str(), stove["partner_classes"][0].as_str()),
        (Some("person"), Some("fire"))
    );
    let text = run(&["algorithms"]);
    for e in &entries {
        assert!(
            text.contains(e["id"].as_str().unwrap())
                && text.contains(e["name_zh"].as_str().unwrap())
        );
    }
}

#[test]
fn preview_draws_the_shipped_vtest_site_on_its_first_frame() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("site.jpg");
    let run = Command::new(env!("CARGO_BIN_EXE_cityeye"))
        .args(["preview", "--camera", "campus", "--config"])
        .arg(repo("config/vtest.toml"))
        .arg("--out")
        .arg(&out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let image = image::open(&out).unwrap().to_rgb8();
    assert_eq!(image.dimensions(), (768, 576));
    // The tripwire at x = 0.30 from y = 0.26 to 0.47 is drawn in yellow; beside it, grass.
    let yellow = |x: u32, y: u32| {
        let p = image.get_pixel(x, y);
        p[0] > 180 && p[1] > 160 && p[2] < 100
    };
    let on_line = (170..260).filter(|y| yellow(230, *y)).count();
    let beside = (170..260).filter(|y| yellow(250, *y)).count();
    assert!(on_line > 70 && beside < 10, "line {on_line} px, beside {beside} px");
}
