//! Plate reading on the shared CCPD photos (`../shared/testdata/plates/`), through `cityeye
//! preview --json` with the built-in PP-OCR models that scripts/setup installs. The photos are
//! close-ups a street detector rarely recognises as cars (YOLOX-Nano finds 4 of the 11), so the
//! camera is a plate camera (`plates = "frame"`): the whole frame is read. The targets of the
//! issue: at least 90% of the labelled plates read exactly, nothing read on the cars without a
//! plate.

mod common;

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;

use common::{repo, shared, write_config};

fn config(extra: &str) -> String {
    format!(
        r#"
[node]
id = "edge-plates"

[plates]
{extra}

[[models]]
name = "coco"
path = "{model}"
format = "yolox"
classes = "{classes}"

[[cameras]]
id = "gate"
url = "file://{video}"
model = "coco"
plates = "frame"
"#,
        model = shared("models/yolox_nano.onnx").display(),
        classes = repo("models/coco80.txt").display(),
        video = shared("testdata/vtest.avi").display(),
    )
}

/// `cityeye preview --json` on one still: its JSON report and the picture's path.
fn preview(config: &Path, still: &Path, out: &Path) -> Result<serde_json::Value, String> {
    let run = Command::new(env!("CARGO_BIN_EXE_cityeye"))
        .args(["preview", "--camera", "gate", "--json", "--config"])
        .arg(config)
        .arg("--input")
        .arg(still)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    if !run.status.success() {
        return Err(String::from_utf8_lossy(&run.stderr).into_owned());
    }
    serde_json::from_slice(&run.stdout).map_err(|e| format!("{e}: {:?}", run.stdout))
}

/// Every plate read on the photo.
fn plates(report: &serde_json::Value) -> Vec<String> {
    let objects = report["objects"].as_array().expect("objects");
    objects.iter().filter_map(|o| o["plate"]["text"].as_str().map(String::from)).collect()
}

#[test]
fn plates_are_read_on_the_labelled_photos_and_nothing_on_cars_without_one() {
    let labels: BTreeMap<String, serde_json::Value> = serde_json::from_str(
        &std::fs::read_to_string(shared("testdata/plates/labels.json")).unwrap(),
    )
    .unwrap();
    let (dir, path) = write_config(&config(""));
    let (mut exact, mut labelled, mut misses) = (0, 0, Vec::new());
    for (file, label) in &labels {
        let out = dir.path().join(file);
        let report = preview(&path, &shared(&format!("testdata/plates/{file}")), &out)
            .unwrap_or_else(|e| panic!("{file}: {e}"));
        let read = plates(&report);
        match label["plate"].as_str() {
            Some(plate) => {
                labelled += 1;
                if read.iter().any(|r| r == plate) {
                    exact += 1;
                } else {
                    misses.push(format!("{file}: {plate} read as {read:?}"));
                }
                // Never a guess: whatever was read is a plate number.
                for r in &read {
                    assert!(cityeye::config::plate_number(r).as_deref() == Some(r.as_str()), "{r}");
                }
            }
            None => assert!(read.is_empty(), "{file} has no plate, yet {read:?} was read"),
        }
        let objects = report["objects"].as_array().unwrap();
        for o in objects.iter().filter(|o| o["plate"].is_object()) {
            let confidence = o["plate"]["confidence"].as_f64().unwrap();
            assert!((0.8..=1.0).contains(&confidence), "{file}: {o}");
            let class = o["class"].as_str().unwrap();
            assert!(["plate", "car", "truck", "bus", "motorcycle"].contains(&class), "{o}");
        }
    }
    assert_eq!(labelled, 11);
    assert!(
        exact * 10 >= labelled * 9,
        "{exact} of {labelled} read exactly:\n{}",
        misses.join("\n")
    );
}

#[test]
fn the_picture_shows_the_plate_under_its_box() {
    let (dir, path) = write_config(&config(""));
    let out = dir.path().join("db1.jpg");
    let report = preview(&path, &shared("testdata/plates/db1.jpg"), &out).unwrap();
    let plate = report["objects"]
        .as_array()
        .unwrap()
        .iter()
        .find(|o| o["plate"]["text"] == "皖ACJ218")
        .unwrap_or_else(|| panic!("db1's plate not read: {report}"));
    let picture = image::open(&out).unwrap().to_rgb8();
    assert_eq!((picture.width(), picture.height()), (720, 1160));
    // The label, green with black text, just under the plate's box.
    let b: Vec<f64> =
        plate["bbox"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
    let x = ((b[0] + 0.02) * 720.0) as u32;
    let y = (((b[1] + b[3]) * 1160.0) as u32 + 6).min(1150);
    let green = (y..(y + 10).min(1160))
        .flat_map(|y| (x..x + 40).map(move |x| (x, y)))
        .filter(|&(x, y)| picture.get_pixel(x, y).0 == [0, 200, 0])
        .count();
    assert!(green > 50, "no label under the plate: {green} green pixels");
}

#[test]
fn check_names_each_plate_mistake_with_its_key() {
    let dir = tempfile::tempdir().unwrap();
    let dictionary = dir.path().join("dict.txt");
    // Three characters: PP-OCR's recognizer has thousands of classes.
    std::fs::write(&dictionary, "A\nB\nC\n").unwrap();
    let cases = [
        (
            format!("dictionary = \"{}\"", dir.path().join("missing.txt").display()),
            "plates.dictionary",
            "not found",
        ),
        (format!("dictionary = \"{}\"", dictionary.display()), "plates.recognizer", "does not fit"),
        ("watch = [\"皖A#*\"]".to_string(), "plates.watch[0]", "no plate has"),
        ("allow = [\"皖ACJ2\"]".to_string(), "plates.allow[0]", "not a plate number"),
    ];
    for (extra, key, says) in cases {
        let (_dir, path) = write_config(&config(&extra));
        let run = Command::new(env!("CARGO_BIN_EXE_cityeye"))
            .args(["check", "--config"])
            .arg(&path)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&run.stderr);
        let stdout = String::from_utf8_lossy(&run.stdout);
        assert!(!run.status.success(), "{extra}: accepted");
        let said = format!("{stdout}{stderr}");
        assert!(said.contains(key) && said.contains(says), "{extra}: {said}");
        assert!(said.contains(&path.display().to_string()), "{said}");
    }
}

/// A plate camera's config watching for `皖AC*`, with `algorithm_extra` on its `plate_watch`.
fn gate_config(video: &Path, algorithm_extra: &str) -> String {
    format!(
        r#"
[node]
id = "edge-plates"

[plates]
watch = ["皖AC*"]

[[models]]
name = "coco"
path = "{model}"
format = "yolox"
classes = "{classes}"

[[cameras]]
id = "gate"
url = "file://{video}"
model = "coco"
plates = "frame"
analysis_fps = 5

  [[cameras.algorithms]]
  type = "plate_watch"
  classes = ["plate"]
  {algorithm_extra}
"#,
        model = shared("models/yolox_nano.onnx").display(),
        classes = repo("models/coco80.txt").display(),
        video = video.display(),
    )
}

/// `cityeye replay` of the gate camera over `video`: the incident messages and the out folder.
fn replay_gate(config: &str, video: &Path, out: &Path) -> Vec<serde_json::Value> {
    let (_dir, path) = write_config(config);
    let run = Command::new(env!("CARGO_BIN_EXE_cityeye"))
        .args(["replay", "--camera", "gate", "--config"])
        .arg(&path)
        .arg("--input")
        .arg(video)
        .arg("--out")
        .arg(out)
        .output()
        .unwrap();
    assert!(run.status.success(), "{}", String::from_utf8_lossy(&run.stderr));
    let lines = std::fs::read_to_string(out.join("incidents.jsonl")).unwrap();
    lines.lines().map(|l| serde_json::from_str(l).unwrap()).collect()
}

#[test]
fn a_watched_plate_at_a_plate_camera_raises_plate_watch_with_its_picture() {
    let dir = tempfile::tempdir().unwrap();
    // Ten seconds of db1's car standing at the gate, H.264 as a camera sends it.
    let video = dir.path().join("gate.mp4");
    common::gst_launch(&format!(
        "filesrc location={} ! jpegdec ! imagefreeze num-buffers=50 ! \
         video/x-raw,framerate=5/1 ! videoconvert ! x264enc key-int-max=10 ! mp4mux ! \
         filesink location={}",
        shared("testdata/plates/db1.jpg").display(),
        video.display()
    ));
    let out = dir.path().join("watched");
    let messages = replay_gate(&gate_config(&video, ""), &video, &out);
    let start = messages.iter().find(|m| m["state"] == "start").expect("a plate_watch start");
    common::assert_matches_schema("schemas/incident.v1.json", start);
    assert_eq!(start["algorithm"], "plate_watch");
    assert_eq!(start["label"], "皖ACJ218");
    let plate = &start["objects"][0]["plate"];
    assert_eq!(plate["text"], "皖ACJ218");
    // The plate's picture: named on the start, written beside the snapshot.
    let id = start["id"].as_str().unwrap();
    let track = start["objects"][0]["track_id"].as_u64().unwrap();
    let topic = format!("cityeye/edge-plates/gate/evidence/{id}/plate/{track}");
    assert_eq!(plate["evidence"]["topic"], topic.as_str());
    let picture = image::open(out.join(format!("evidence/{id}-plate-{track}.jpg"))).unwrap();
    let size = (u64::from(picture.width()), u64::from(picture.height()));
    assert_eq!(
        size,
        (
            plate["evidence"]["width"].as_u64().unwrap(),
            plate["evidence"]["height"].as_u64().unwrap()
        )
    );
    assert!(size.0 > 2 * size.1, "a plate is wide: {size:?}");
    // Later messages (the clip's update) name the plate without sending the picture again.
    let later: Vec<_> =
        messages.iter().filter(|m| m["id"] == id && m["state"] != "start").collect();
    assert!(!later.is_empty());
    for m in later {
        assert_eq!(m["objects"][0]["plate"]["text"], "皖ACJ218");
        assert!(m["objects"][0]["plate"]["evidence"].is_null(), "{m}");
    }

    // The same car, allowed on this algorithm: nothing is raised.
    let out = dir.path().join("allowed");
    let allowed = replay_gate(&gate_config(&video, r#"plate_allow = ["皖ACJ218"]"#), &video, &out);
    assert!(allowed.is_empty(), "an allowed plate raised {allowed:?}");
}
