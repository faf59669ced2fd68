//! Bad configs through the real binary: `cityeye check --config FILE` must exit 2 and say which
//! file, which key and what is wrong, and never panic, whatever the file holds.
//!
//! Every case starts from one valid config (checked first, so each failure is caused by its
//! edit) and changes one thing.
//!
//! Mistakes found while parsing (unknown keys, wrong types) stop at the first and cite a line;
//! the checks after parsing (names that must match, ranges, the algorithm catalog) report every
//! mistake, by key, without a line.

use std::path::Path;
use std::process::Command;

/// The shared model, read in place from the checkout's sibling `shared/` folder.
const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/models/yolox_nano.onnx");
const CLASSES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/coco80.txt");
const CONFIG_NAME: &str = "cityeye.toml";
const RTSP_PASSWORD: &str = "s3cret";

/// Exit code for a config mistake (`EXIT_CONFIG` in src/main.rs).
const EXIT_CONFIG: i32 = 2;

fn model_block(name: &str) -> String {
    format!(
        r#"[[models]]
name = "{name}"
path = "{MODEL}"
format = "yolox"
classes = "{CLASSES}"
"#
    )
}

/// A classifier model named `attributes` (what `no_helmet` names), labels `helmet` and
/// `no_helmet`. Its file is the detector's: the config checks come before any model is loaded,
/// so only cases that fail those checks may use it.
fn classifier_block() -> String {
    format!(
        r#"[[models]]
name = "attributes"
path = "{MODEL}"
format = "classifier"
classes = ["helmet", "no_helmet"]
"#
    )
}

/// A valid config: a test-pattern camera and an RTSP camera with credentials, each with a zone
/// and an `illegal_parking` algorithm watching it. Both cameras name their model with the
/// singular `model` (the alias of `models`).
fn base_config() -> String {
    format!(
        r#"[node]
id = "edge-test"
data_dir = "data"

[mqtt]
url = "mqtt://127.0.0.1:1883"
topic_prefix = "cityeye"

{model}
[[cameras]]
id = "yard"
url = "test://smpte?width=320&height=240&fps=5"
analysis_fps = 5
model = "coco"

  [[cameras.zones]]
  name = "kerb"
  polygon = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]

  [[cameras.algorithms]]
  type = "illegal_parking"
  zone = "kerb"
  dwell_s = 10

[[cameras]]
id = "gate"
url = "rtsp://admin:{RTSP_PASSWORD}@192.0.2.10:554/stream1"
model = "coco"

  [[cameras.zones]]
  name = "bus-stop"
  polygon = [[0.0, 0.5], [0.5, 0.5], [0.5, 1.0]]

  [[cameras.algorithms]]
  type = "illegal_parking"
  zone = "bus-stop"
"#,
        model = model_block("coco")
    )
}

/// A camera's `pipeline` naming a file that is no pipeline template (the issue's own example).
const PASSWD: &str = "pipeline = \"../../../../etc/passwd\"";

/// The first camera's algorithm in [`base_config`], which the algorithm cases rewrite.
const FIRST_ALGORITHM: &str = "  type = \"illegal_parking\"\n  zone = \"kerb\"\n  dwell_s = 10\n";

/// Runs `cityeye check --config path`: (exit code, stdout, stderr). Whatever the input, the
/// binary must not panic.
fn run_check(path: &Path) -> (i32, String, String) {
    let output = Command::new(env!("CARGO_BIN_EXE_cityeye"))
        .args(["check", "--config"])
        .arg(path)
        .env_remove("RUST_LOG")
        .output()
        .expect("cannot run cityeye");
    let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&output.stderr).into_owned();
    assert!(!stderr.contains("panicked"), "cityeye panicked on {}:\n{stderr}", path.display());
    (output.status.code().unwrap_or(-1), stdout, stderr)
}

/// Writes `text` as the config file in `dir` and checks it.
fn check(dir: &Path, text: &str) -> (i32, String, String) {
    std::fs::write(dir.join(CONFIG_NAME), text).expect("cannot write the config");
    run_check(&dir.join(CONFIG_NAME))
}

/// `text` with the first `from` replaced; `from` must be there, so no case tests nothing.
fn replace(text: &str, from: &str, to: &str) -> String {
    assert!(text.contains(from), "`{from}` is not in the config");
    text.replacen(from, to, 1)
}

/// `text` with the last `from` replaced (the second camera repeats the first one's keys).
fn replace_last(text: &str, from: &str, to: &str) -> String {
    let at = text.rfind(from).unwrap_or_else(|| panic!("`{from}` is not in the config"));
    format!("{}{to}{}", &text[..at], &text[at + from.len()..])
}

/// `text` with the first camera's algorithm made of `settings` (one `key = value` each).
fn with_first_algorithm(text: &str, settings: &[&str]) -> String {
    let body: String = settings.iter().map(|s| format!("  {s}\n")).collect();
    replace(text, FIRST_ALGORITHM, &body)
}

/// `text` with `setting` added to the first camera's algorithm.
fn add_to_first_algorithm(text: &str, setting: &str) -> String {
    replace(text, FIRST_ALGORITHM, &format!("{FIRST_ALGORITHM}  {setting}\n"))
}

/// `text` with `setting` added to the (first) model.
fn add_to_model(text: &str, setting: &str) -> String {
    replace(text, "format = \"yolox\"\n", &format!("format = \"yolox\"\n{setting}\n"))
}

/// A drone camera on MPEG-TS over UDP with KLV telemetry and a geo-fence: `cameras[2]` when
/// appended to [`base_config`] by [`with_drone`].
const DRONE: &str = r#"
[[cameras]]
id = "drone"
kind = "drone"
url = "udp://0.0.0.0:5600"
model = "coco"
dedup_radius_m = 15

  [cameras.telemetry]
  source = "klv"
  ground_altitude_m = 4

  [[cameras.zones]]
  name = "river"
  geo_polygon = [[31.2300, 121.4730], [31.2310, 121.4730], [31.2310, 121.4745]]

  [[cameras.algorithms]]
  type = "illegal_parking"
  zone = "river"
"#;

/// The drone camera's telemetry over MQTT instead of KLV.
const MQTT_TELEMETRY: &str = "source = \"mqtt\"
  topic = \"thing/product/DOCK-1/osd\"
  hfov_deg = 82
  fields = { latitude = \"/data/latitude\", longitude = \"/data/longitude\", \
             altitude = \"/data/height\", heading = \"/data/attitude_head\", \
             gimbal_pitch = \"/data/gimbal_pitch\" }";

/// `text` with the drone camera appended, `from` replaced by `to` in it.
fn with_drone(text: &str, from: &str, to: &str) -> String {
    format!("{text}{}", replace(DRONE, from, to))
}

/// A `[[patrols]]` block visiting `cameras` (TOML array text) with `slots` slots.
fn patrol(id: &str, cameras: &str, slots: usize) -> String {
    format!("\n[[patrols]]\nid = \"{id}\"\ncameras = {cameras}\nslots = {slots}\nvisit_s = 10\n")
}

/// Which line an error must cite.
enum Line {
    /// The first line of the config holding this text.
    Of(&'static str),
    /// Some line (see `unknown_key_at_line_start_cites_its_own_line`; inside an algorithm, the
    /// line of its `[[cameras.algorithms]]` header rather than the key's own).
    Any,
    /// Not checked: whole-file checks run after parsing and carry no line.
    Unchecked,
}

struct Case {
    name: &'static str,
    edit: fn(&str) -> String,
    /// The key path the error names; empty when the error is about the file as a whole.
    key: &'static str,
    fragment: &'static str,
    line: Line,
}

fn cases() -> Vec<Case> {
    vec![
        // Unknown keys (found while parsing: the first one stops it, with a line).
        Case {
            name: "unknown top-level key",
            edit: |c| format!("colour = \"red\"\n{c}"),
            key: "colour",
            fragment: "unknown field `colour`",
            line: Line::Of("colour"),
        },
        Case {
            name: "unknown key in [mqtt]",
            edit: |c| {
                replace(
                    c,
                    "topic_prefix = \"cityeye\"\n",
                    "topic_prefix = \"cityeye\"\nretries = 3\n",
                )
            },
            key: "mqtt.retries",
            fragment: "unknown field `retries`",
            line: Line::Of("retries = 3"),
        },
        Case {
            name: "unknown key in a zone",
            edit: |c| replace(c, "polygon = [[0.0, 0.5]", "polygn = [[0.0, 0.5]"),
            key: "cameras[1].zones[0].polygn",
            fragment: "unknown field `polygn`, expected one of `name`, `polygon`, `geo_polygon`",
            line: Line::Of("polygn"),
        },
        // Models.
        Case {
            name: "missing model file",
            edit: |c| replace(c, "yolox_nano.onnx", "no_such_model.onnx"),
            key: "models[0].path",
            fragment: "model file not found",
            line: Line::Unchecked,
        },
        Case {
            name: "missing class file",
            edit: |c| replace(c, "coco80.txt", "no_such_classes.txt"),
            key: "models[0].classes",
            fragment: "cannot read class file",
            line: Line::Unchecked,
        },
        Case {
            name: "model output does not fit its format",
            edit: |c| replace(c, "format = \"yolox\"", "format = \"yolov8\""),
            key: "models[0].format",
            fragment: "does not fit yolov8 with 80 classes",
            line: Line::Unchecked,
        },
        Case {
            name: "class list of the wrong length",
            // The algorithms name classes from the short list, or that error comes first.
            edit: |c| {
                let c = replace(c, &format!("\"{CLASSES}\""), r#"["car", "bus", "truck"]"#);
                c.replace(
                    "type = \"illegal_parking\"",
                    "type = \"illegal_parking\"\n  classes = [\"car\"]",
                )
            },
            key: "models[0].format",
            fragment: "(the class list has 3 names)",
            line: Line::Unchecked,
        },
        Case {
            name: "algorithm watching a class the model lacks (by default)",
            edit: |c| replace(c, &format!("\"{CLASSES}\""), r#"["car", "bus", "truck"]"#),
            key: "cameras[0].algorithms[0].classes",
            fragment: "illegal_parking needs motorcycle, which none of this camera's models (coco) \
                       provide",
            line: Line::Unchecked,
        },
        Case {
            name: "input_size the model does not take",
            edit: |c| {
                replace(c, "format = \"yolox\"\n", "format = \"yolox\"\ninput_size = [320, 320]\n")
            },
            key: "models[0].input_size",
            fragment: "is [320, 320] but the model takes [416, 416]",
            line: Line::Unchecked,
        },
        Case {
            name: "duplicate model name",
            edit: |c| replace(c, "[[cameras]]", &format!("{}\n[[cameras]]", model_block("coco"))),
            key: "models[1].name",
            fragment: "duplicate model name `coco`",
            line: Line::Unchecked,
        },
        // Zones and algorithms.
        Case {
            name: "polygon with 2 points",
            edit: |c| replace(c, ", [0.9, 0.9], [0.1, 0.9]]", "]"),
            key: "cameras[0].zones[0].polygon",
            fragment: "at least 3 points, this one has 2",
            line: Line::Of("polygon"),
        },
        Case {
            name: "polygon coordinate outside 0..1",
            edit: |c| replace(c, "[0.9, 0.1]", "[1.5, 0.1]"),
            key: "cameras[0].zones[0].polygon",
            fragment: "point 1 [1.5, 0.1] is outside the image",
            line: Line::Of("polygon"),
        },
        Case {
            name: "duplicate zone name",
            edit: |c| {
                let zone =
                    "  [[cameras.zones]]\n  name = \"kerb\"\n  polygon = [[0, 0], [1, 0], [1, 1]]";
                replace(
                    c,
                    "  [[cameras.algorithms]]",
                    &format!("{zone}\n\n  [[cameras.algorithms]]"),
                )
            },
            key: "cameras[0].zones[1].name",
            fragment: "duplicate zone name `kerb`",
            line: Line::Unchecked,
        },
        Case {
            name: "unknown algorithm type",
            edit: |c| replace(c, "type = \"illegal_parking\"", "type = \"speeding\""),
            key: "cameras[0].algorithms[0].type",
            fragment: "unknown algorithm `speeding`; `cityeye algorithms` lists them",
            // Looked up in the catalog after parsing, so no line.
            line: Line::Unchecked,
        },
        Case {
            name: "algorithm naming an unknown zone",
            edit: |c| replace(c, "zone = \"kerb\"", "zone = \"kurb\""),
            key: "cameras[0].algorithms[0].zone",
            fragment: "unknown zone `kurb`; zones of this camera: kerb",
            line: Line::Unchecked,
        },
        // Algorithm settings: common ones, primitive parameters, schedules, classes.
        Case {
            name: "primitive parameter the algorithm's primitive does not take",
            edit: |c| add_to_first_algorithm(c, "line = [[0, 0.5], [1, 0.5]]"),
            key: "cameras[0].algorithms[0].line",
            fragment: "does not apply to dwell algorithms",
            line: Line::Unchecked,
        },
        Case {
            name: "unknown key in an algorithm",
            edit: |c| add_to_first_algorithm(c, "dwel_s = 5"),
            key: "cameras[0].algorithms[0].dwel_s",
            // Only what an illegal_parking algorithm accepts: common settings and dwell's.
            fragment: "unknown field `dwel_s`; this algorithm takes type, zone, classes, \
                       min_confidence, min_box_area, schedule, cooldown_s, severity, update_s, \
                       plates, plate_allow and dwell_s, max_motion",
            line: Line::Any,
        },
        Case {
            name: "wrong type in an algorithm",
            edit: |c| replace(c, "dwell_s = 10", "dwell_s = \"long\""),
            key: "cameras[0].algorithms[0].dwell_s",
            fragment: "invalid type: string \"long\", expected a number",
            line: Line::Any,
        },
        Case {
            name: "tripwire without its line",
            edit: |c| with_first_algorithm(c, &["type = \"tripwire\""]),
            key: "cameras[0].algorithms[0].line",
            fragment: "is required by line_cross algorithms",
            line: Line::Unchecked,
        },
        Case {
            name: "wrong_way without its heading",
            edit: |c| with_first_algorithm(c, &["type = \"wrong_way\""]),
            key: "cameras[0].algorithms[0].heading_deg",
            fragment: "is required by direction algorithms",
            line: Line::Unchecked,
        },
        Case {
            name: "tripwire given a zone",
            edit: |c| {
                with_first_algorithm(
                    c,
                    &["type = \"tripwire\"", "zone = \"kerb\"", "line = [[0.5, 0.0], [0.5, 1.0]]"],
                )
            },
            key: "cameras[0].algorithms[0].zone",
            fragment: "line_cross algorithms watch their line, not a zone",
            line: Line::Unchecked,
        },
        Case {
            name: "key frames only for a tripwire, which needs 5 frames a second",
            edit: |c| {
                let c =
                    replace(c, "analysis_fps = 5\n", "analysis_fps = 5\ndecode = \"keyframes\"\n");
                with_first_algorithm(
                    &c,
                    &["type = \"tripwire\"", "line = [[0.5, 0.0], [0.5, 1.0]]"],
                )
            },
            key: "cameras[0].decode",
            fragment: "but tripwire needs 5 frames a second",
            line: Line::Unchecked,
        },
        Case {
            name: "an unknown decode mode",
            edit: |c| replace(c, "analysis_fps = 5\n", "analysis_fps = 5\ndecode = \"some\"\n"),
            key: "cameras[0].decode",
            fragment: "unknown variant `some`, expected one of `all`, `keyframes`, `auto`",
            line: Line::Of("decode = \"some\""),
        },
        // Patrols.
        Case {
            name: "a patrol naming an unknown camera",
            edit: |c| format!("{c}{}", patrol("district-7", "[\"yard\", \"kerb-*\"]", 1)),
            key: "patrols[0].cameras",
            fragment: "unknown camera `kerb-*` (no camera id is, or matches, it); cameras \
                       defined: yard, gate",
            line: Line::Unchecked,
        },
        Case {
            name: "a camera in two patrols",
            edit: |c| {
                format!("{c}{}{}", patrol("north", "[\"yard\"]", 1), patrol("all", "[\"*\"]", 1))
            },
            key: "patrols[1].cameras",
            fragment: "camera `yard` is already in patrol `north` (patrols[0])",
            line: Line::Unchecked,
        },
        Case {
            name: "a patrol without slots",
            edit: |c| format!("{c}{}", patrol("district-7", "[\"*\"]", 0)),
            key: "patrols[0].slots",
            fragment: "must be at least 1",
            line: Line::Unchecked,
        },
        Case {
            name: "a tripwire on a patrolled camera",
            edit: |c| {
                let c = with_first_algorithm(
                    c,
                    &["type = \"tripwire\"", "line = [[0.5, 0.0], [0.5, 1.0]]"],
                );
                format!("{c}{}", patrol("district-7", "[\"yard\"]", 1))
            },
            key: "cameras[0].algorithms[0].type",
            fragment: "tripwire needs 5 frames a second without gaps, but camera `yard` is \
                       patrolled by `district-7`",
            line: Line::Unchecked,
        },
        Case {
            name: "tripwire whose line is a single point",
            edit: |c| {
                with_first_algorithm(c, &["type = \"tripwire\"", "line = [[0.5, 0.5], [0.5, 0.5]]"])
            },
            key: "cameras[0].algorithms[0].line",
            fragment: "needs two different points",
            line: Line::Unchecked,
        },
        Case {
            name: "tripwire whose line leaves the image",
            edit: |c| {
                with_first_algorithm(c, &["type = \"tripwire\"", "line = [[0.5, 0.5], [1.5, 0.5]]"])
            },
            key: "cameras[0].algorithms[0].line",
            fragment: "points must lie in the image: 0 to 1",
            line: Line::Unchecked,
        },
        Case {
            name: "crowd of zero",
            edit: |c| with_first_algorithm(c, &["type = \"crowd_gathering\"", "min_count = 0"]),
            key: "cameras[0].algorithms[0].min_count",
            fragment: "must be at least 1",
            line: Line::Unchecked,
        },
        Case {
            name: "schedule window without HH:MM times",
            edit: |c| add_to_first_algorithm(c, r#"schedule = ["Mon-Fri 7-22"]"#),
            key: "cameras[0].algorithms[0].schedule",
            fragment: "`Mon-Fri 7-22`: bad start time; expected e.g. \"Mon-Fri 07:00-22:00\"",
            line: Line::Unchecked,
        },
        Case {
            name: "algorithm needing a class no model of the camera provides",
            edit: |c| with_first_algorithm(c, &["type = \"exposed_garbage\""]),
            key: "cameras[0].algorithms[0].classes",
            fragment: "exposed_garbage needs garbage, which none of this camera's models (coco) \
                       provide; map a model's class onto it with class_map",
            line: Line::Unchecked,
        },
        Case {
            name: "class_map renaming a class the model does not have",
            edit: |c| add_to_model(c, r#"class_map = { "bin" = "garbage" }"#),
            key: "models[0].class_map",
            fragment: "`bin` is not a class of this model",
            line: Line::Unchecked,
        },
        // Cascade algorithms: `no_helmet`'s catalog entry names classifier `attributes`, labels
        // `no_helmet`.
        Case {
            name: "cascade algorithm naming a classifier that does not exist",
            edit: |c| {
                with_first_algorithm(c, &["type = \"no_helmet\"", "classifier = \"helmets\""])
            },
            key: "cameras[0].algorithms[0].classifier",
            fragment: "no classifier model `helmets`; classifiers defined: none (a [[models]] entry \
                       with format = \"classifier\")",
            line: Line::Unchecked,
        },
        Case {
            name: "cascade algorithm naming a detector as its classifier",
            edit: |c| with_first_algorithm(c, &["type = \"no_helmet\"", "classifier = \"coco\""]),
            key: "cameras[0].algorithms[0].classifier",
            fragment: "model `coco` is not a classifier",
            line: Line::Unchecked,
        },
        Case {
            name: "cascade algorithm wanting a label its classifier lacks",
            edit: |c| {
                let c = replace(c, "[[cameras]]", &format!("{}\n[[cameras]]", classifier_block()));
                with_first_algorithm(&c, &["type = \"no_helmet\"", r#"labels = ["no_vest"]"#])
            },
            key: "cameras[0].algorithms[0].labels",
            fragment: "`no_vest` is not a label of classifier `attributes`",
            line: Line::Unchecked,
        },
        Case {
            name: "unknown severity",
            edit: |c| add_to_first_algorithm(c, "severity = \"urgent\""),
            key: "cameras[0].algorithms[0].severity",
            fragment: "unknown variant `urgent`, expected one of `info`, `warning`, `critical`",
            line: Line::Any,
        },
        Case {
            name: "min_box_area above 1",
            edit: |c| add_to_first_algorithm(c, "min_box_area = 2"),
            key: "cameras[0].algorithms[0].min_box_area",
            fragment: "must be between 0 and 1",
            line: Line::Unchecked,
        },
        // Cameras.
        Case {
            name: "camera naming an unknown model",
            edit: |c| replace_last(c, "model = \"coco\"", "model = \"yolo\""),
            key: "cameras[1].models",
            fragment: "unknown model `yolo`; models defined: coco",
            line: Line::Unchecked,
        },
        Case {
            name: "camera naming an unknown model in its list",
            edit: |c| replace(c, "model = \"coco\"", r#"models = ["coco", "nope"]"#),
            key: "cameras[0].models",
            fragment: "unknown model `nope`; models defined: coco",
            line: Line::Unchecked,
        },
        Case {
            name: "camera naming a classifier among its detectors",
            edit: |c| {
                let c = replace(c, "[[cameras]]", &format!("{}\n[[cameras]]", classifier_block()));
                replace(&c, "model = \"coco\"", r#"models = ["coco", "attributes"]"#)
            },
            key: "cameras[0].models",
            fragment: "`attributes` is a classifier: a camera's models are detectors",
            line: Line::Unchecked,
        },
        Case {
            name: "camera with an empty model list",
            edit: |c| replace(c, "model = \"coco\"", "models = []"),
            key: "cameras[0].models",
            fragment: "needs at least one model",
            line: Line::Unchecked,
        },
        Case {
            name: "duplicate camera id",
            edit: |c| replace(c, "id = \"gate\"", "id = \"yard\""),
            key: "cameras[1].id",
            fragment: "duplicate camera id `yard`",
            line: Line::Unchecked,
        },
        Case {
            name: "camera URL with an unsupported scheme",
            edit: |c| replace(c, "test://smpte", "http://smpte"),
            key: "cameras[0].url",
            fragment: "scheme `http` is not supported",
            line: Line::Of("http://"),
        },
        Case {
            name: "camera URL that is not a URL",
            edit: |c| replace(c, "test://smpte?width=320&height=240&fps=5", "the yard camera"),
            key: "cameras[0].url",
            fragment: "not a valid camera URL",
            line: Line::Of("the yard camera"),
        },
        Case {
            name: "file:// camera whose file does not exist",
            edit: |c| {
                replace(c, "test://smpte?width=320&height=240&fps=5", "file:///no/such/video.mp4")
            },
            key: "cameras[0].url",
            fragment: "video file not found: /no/such/video.mp4",
            line: Line::Unchecked,
        },
        Case {
            name: "wrong type",
            edit: |c| replace(c, "analysis_fps = 5", "analysis_fps = \"fast\""),
            key: "cameras[0].analysis_fps",
            fragment: "invalid type: string \"fast\"",
            line: Line::Of("analysis_fps"),
        },
        Case {
            name: "unknown RTSP transport",
            edit: |c| replace(c, "554/stream1\"\n", "554/stream1\"\ntransport = \"quic\"\n"),
            key: "cameras[1].transport",
            fragment: "unknown variant `quic`, expected one of `auto`, `tcp`, `udp`",
            line: Line::Of("quic"),
        },
        Case {
            name: "transport on a camera that is not RTSP",
            edit: |c| replace(c, "analysis_fps = 5", "analysis_fps = 5\ntransport = \"udp\""),
            key: "cameras[0].transport",
            fragment: "applies to rtsp:// and rtsps:// cameras only, not test://smpte",
            line: Line::Unchecked,
        },
        Case {
            name: "record stream that is not a URL",
            edit: |c| replace(c, "554/stream1\"\n", "554/stream1\"\nrecord_url = \"main\"\n"),
            key: "cameras[1].record_url",
            fragment: "not a valid camera URL",
            line: Line::Of("\"main\""),
        },
        Case {
            name: "record stream whose template exposes no encoded stream",
            edit: |c| {
                replace(c, "554/stream1\"\n", "554/stream1\"\nrecord_url = \"test://ball\"\n")
            },
            key: "cameras[1].record_url",
            fragment: "template `test` names no element `encoded`",
            line: Line::Unchecked,
        },
        Case {
            name: "record stream file missing",
            edit: |c| {
                replace(
                    c,
                    "554/stream1\"\n",
                    "554/stream1\"\nrecord_url = \"file:///no/main.mp4\"\n",
                )
            },
            key: "cameras[1].record_url",
            fragment: "video file not found: /no/main.mp4",
            line: Line::Unchecked,
        },
        // MQTT.
        Case {
            name: "MQTT URL with an unsupported scheme",
            edit: |c| replace(c, "mqtt://127.0.0.1", "http://127.0.0.1"),
            key: "mqtt.url",
            fragment: "scheme `http` is not supported; use mqtt:// or mqtts://",
            line: Line::Of("http://"),
        },
        Case {
            name: "MQTT URL with credentials",
            edit: |c| replace(c, "mqtt://127.0.0.1", "mqtt://node:pw@127.0.0.1"),
            key: "mqtt.url",
            fragment: "credentials do not belong in the URL",
            line: Line::Of("mqtt://"),
        },
        Case {
            name: "a CA file without TLS",
            edit: |c| {
                replace(
                    c,
                    "topic_prefix = \"cityeye\"\n",
                    "topic_prefix = \"cityeye\"\nca_file = \"cityeye.toml\"\n",
                )
            },
            key: "mqtt.ca_file",
            fragment: "is only used with TLS: make mqtt.url mqtts://",
            line: Line::Unchecked,
        },
        Case {
            name: "a CA file that is not PEM",
            edit: |c| {
                replace(
                    c,
                    "url = \"mqtt://127.0.0.1:1883\"\n",
                    "url = \"mqtts://127.0.0.1:1883\"\nca_file = \"cityeye.toml\"\n",
                )
            },
            key: "mqtt.ca_file",
            fragment: "no PEM certificate in ",
            line: Line::Unchecked,
        },
        Case {
            name: "the embedded broker with TLS",
            edit: |c| {
                replace(
                    c,
                    "url = \"mqtt://127.0.0.1:1883\"\n",
                    "url = \"mqtts://127.0.0.1:1883\"\nembedded_broker = true\n",
                )
            },
            key: "mqtt.embedded_broker",
            fragment: "the embedded broker does not speak TLS",
            line: Line::Unchecked,
        },
        Case {
            name: "an unknown MQTT version",
            edit: |c| {
                replace(
                    c,
                    "topic_prefix = \"cityeye\"\n",
                    "topic_prefix = \"cityeye\"\nversion = \"4\"\n",
                )
            },
            key: "mqtt.version",
            fragment: "unknown MQTT version `4`; use \"5\" or \"3.1.1\"",
            line: Line::Of("version = "),
        },
        Case {
            name: "an outbox size without a unit we know",
            edit: |c| format!("{c}\n[outbox]\nmax_bytes = \"1 gallon\"\n"),
            key: "outbox.max_bytes",
            fragment: "unknown size unit `gallon`",
            line: Line::Of("max_bytes"),
        },
        Case {
            name: "a packet limit too small for an incident",
            edit: |c| {
                replace(
                    c,
                    "topic_prefix = \"cityeye\"\n",
                    "topic_prefix = \"cityeye\"\nmax_packet_bytes = \"1 KiB\"\n",
                )
            },
            key: "mqtt.max_packet_bytes",
            fragment: "must be between 4 KiB (an incident's JSON must fit) and 256 MiB",
            line: Line::Unchecked,
        },
        Case {
            name: "the page on the LAN without sign-in",
            edit: |c| format!("{c}\n[http]\nlisten = \"0.0.0.0:8630\"\n"),
            key: "http.listen",
            fragment: "0.0.0.0:8630 is not a loopback address, and without sign-in",
            line: Line::Unchecked,
        },
        Case {
            name: "suppressions for no time",
            edit: |c| format!("{c}\n[verdicts]\nsuppress_days = 0\n"),
            key: "verdicts.suppress_days",
            fragment: "must be above 0 and at most 3650",
            line: Line::Unchecked,
        },
        Case {
            name: "keep-alive too short",
            edit: |c| {
                replace(
                    c,
                    "topic_prefix = \"cityeye\"\n",
                    "topic_prefix = \"cityeye\"\nkeep_alive_s = 2\n",
                )
            },
            key: "mqtt.keep_alive_s",
            fragment: "must be between 5 and 65535 seconds",
            line: Line::Unchecked,
        },
        Case {
            name: "password file without a user name",
            edit: |c| {
                replace(
                    c,
                    "topic_prefix = \"cityeye\"\n",
                    "topic_prefix = \"cityeye\"\npassword_file = \"cityeye.toml\"\n",
                )
            },
            key: "mqtt.password_file",
            fragment: "a password needs mqtt.username too",
            line: Line::Unchecked,
        },
        Case {
            name: "node id with a space",
            edit: |c| replace(c, "id = \"edge-test\"", "id = \"edge test\""),
            key: "node.id",
            fragment: "use ASCII letters, digits, `-`, `_` or `.`",
            line: Line::Unchecked,
        },
        // Drone cameras.
        Case {
            name: "drone camera without telemetry",
            edit: |c| {
                with_drone(
                    c,
                    "  [cameras.telemetry]\n  source = \"klv\"\n  ground_altitude_m = 4\n",
                    "",
                )
            },
            key: "cameras[2].telemetry",
            fragment: "a drone camera needs [cameras.telemetry]",
            line: Line::Unchecked,
        },
        Case {
            name: "telemetry on a fixed camera",
            edit: |c| with_drone(c, "kind = \"drone\"\n", ""),
            key: "cameras[2].telemetry.source",
            fragment: "telemetry is for drone cameras",
            line: Line::Unchecked,
        },
        Case {
            name: "unknown camera kind",
            edit: |c| with_drone(c, "kind = \"drone\"", "kind = \"boat\""),
            key: "cameras[2].kind",
            fragment: "unknown variant `boat`, expected `fixed` or `drone`",
            line: Line::Of("kind = \"boat\""),
        },
        Case {
            name: "image polygon on a drone camera",
            edit: |c| {
                with_drone(
                    c,
                    "geo_polygon = [[31.2300",
                    "polygon = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9]]\n  #[[31.2300",
                )
            },
            key: "cameras[2].zones[0].polygon",
            fragment: "image zones mean nothing: use geo_polygon",
            line: Line::Unchecked,
        },
        Case {
            name: "geo-fence on a fixed camera",
            edit: |c| {
                let fence = "  [[cameras.zones]]\n  name = \"fence\"\n  \
                             geo_polygon = [[1, 2], [1, 3], [2, 3]]\n\n  [[cameras.algorithms]]";
                replace(c, "  [[cameras.algorithms]]", fence)
            },
            key: "cameras[0].zones[1].geo_polygon",
            fragment: "geo-fences are for drone cameras",
            line: Line::Unchecked,
        },
        Case {
            name: "geo-fence point that is not a position",
            edit: |c| with_drone(c, "[31.2310, 121.4745]", "[121.4745, 31.2310]"),
            key: "cameras[2].zones[0].geo_polygon",
            fragment: "point 2 [121.4745, 31.231] is not a position",
            line: Line::Of("geo_polygon"),
        },
        Case {
            name: "geo-fence with two points",
            edit: |c| with_drone(c, ", [31.2310, 121.4745]]", "]"),
            key: "cameras[2].zones[0].geo_polygon",
            fragment: "a geo_polygon needs at least 3 points, this one has 2",
            line: Line::Of("geo_polygon"),
        },
        Case {
            name: "KLV telemetry from a stream that carries none",
            edit: |c| with_drone(c, "udp://0.0.0.0:5600", "rtsp://192.0.2.20/drone"),
            key: "cameras[2].telemetry.source",
            fragment: "KLV telemetry needs a pipeline with an element named `klv`",
            line: Line::Unchecked,
        },
        Case {
            name: "telemetry max_age_s of zero",
            edit: |c| {
                with_drone(c, "ground_altitude_m = 4", "ground_altitude_m = 4\n  max_age_s = 0")
            },
            key: "cameras[2].telemetry.max_age_s",
            fragment: "must be above 0 seconds",
            line: Line::Unchecked,
        },
        Case {
            name: "unknown key in telemetry",
            edit: |c| with_drone(c, "ground_altitude_m = 4", "ground_altitude = 4"),
            key: "cameras[2].telemetry.ground_altitude",
            fragment: "unknown field `ground_altitude`",
            line: Line::Of("ground_altitude = 4"),
        },
        Case {
            name: "MQTT telemetry without a topic",
            edit: |c| {
                with_drone(
                    c,
                    "source = \"klv\"",
                    &MQTT_TELEMETRY.replace("topic = \"thing/product/DOCK-1/osd\"", ""),
                )
            },
            key: "cameras[2].telemetry.topic",
            fragment: "MQTT telemetry needs the topic",
            line: Line::Unchecked,
        },
        Case {
            name: "MQTT telemetry without a required field",
            edit: |c| {
                with_drone(
                    c,
                    "source = \"klv\"",
                    &MQTT_TELEMETRY.replace("heading = \"/data/attitude_head\", ", ""),
                )
            },
            key: "cameras[2].telemetry.fields.heading",
            fragment: "missing: the JSON pointer to this value",
            line: Line::Unchecked,
        },
        Case {
            name: "MQTT telemetry field that is not a JSON pointer",
            edit: |c| {
                with_drone(
                    c,
                    "source = \"klv\"",
                    &MQTT_TELEMETRY.replace("\"/data/latitude\"", "\"data.latitude\""),
                )
            },
            key: "cameras[2].telemetry.fields.latitude",
            fragment: "`data.latitude` is not a JSON pointer",
            line: Line::Unchecked,
        },
        Case {
            name: "MQTT telemetry field of an unknown name",
            edit: |c| {
                with_drone(
                    c,
                    "source = \"klv\"",
                    &MQTT_TELEMETRY.replace("altitude =", "altitud ="),
                )
            },
            key: "cameras[2].telemetry.fields.altitud",
            fragment: "unknown telemetry field; fields are latitude, longitude, altitude",
            line: Line::Unchecked,
        },
        Case {
            name: "MQTT telemetry without a field of view",
            edit: |c| {
                with_drone(c, "source = \"klv\"", &MQTT_TELEMETRY.replace("hfov_deg = 82", ""))
            },
            key: "cameras[2].telemetry.hfov_deg",
            fragment: "needed when the telemetry has no hfov field",
            line: Line::Unchecked,
        },
        Case {
            name: "negative dedup radius",
            edit: |c| with_drone(c, "dedup_radius_m = 15", "dedup_radius_m = -1"),
            key: "cameras[2].dedup_radius_m",
            fragment: "must be above 0 metres",
            line: Line::Unchecked,
        },
        // What the checks once let through (issue "Hardening against the outside world").
        Case {
            name: "camera id `..`",
            edit: |c| replace(c, "id = \"yard\"", "id = \"..\""),
            key: "cameras[0].id",
            fragment: "`..` names a folder",
            line: Line::Unchecked,
        },
        Case {
            name: "camera id too long for a topic",
            edit: |c| replace(c, "id = \"yard\"", &format!("id = \"{}\"", "y".repeat(70))),
            key: "cameras[0].id",
            fragment: "is 70 characters long; the most is 64",
            line: Line::Unchecked,
        },
        Case {
            name: "zone crossing itself",
            edit: |c| {
                replace(
                    c,
                    "polygon = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]",
                    "polygon = [[0.1, 0.1], [0.9, 0.9], [0.9, 0.1], [0.1, 0.9]]",
                )
            },
            key: "cameras[0].zones[0].polygon",
            fragment: "the polygon crosses itself: its edge from point 0 and its edge from point 2",
            line: Line::Of("polygon = [[0.1, 0.1], [0.9, 0.9]"),
        },
        Case {
            name: "zone of too many points",
            edit: |c| {
                let circle: Vec<String> = (0..300)
                    .map(|i| {
                        let a = i as f64 / 300.0 * std::f64::consts::TAU;
                        format!("[{:.4}, {:.4}]", 0.5 + 0.4 * a.cos(), 0.5 + 0.4 * a.sin())
                    })
                    .collect();
                replace(
                    c,
                    "polygon = [[0.1, 0.1], [0.9, 0.1], [0.9, 0.9], [0.1, 0.9]]",
                    &format!("polygon = [{}]", circle.join(", ")),
                )
            },
            key: "cameras[0].zones[0].polygon",
            fragment: "a polygon has at most 256 points, this one has 300",
            line: Line::Of("polygon = [[0.9000"),
        },
        Case {
            name: "dwell of 1e308 seconds",
            edit: |c| replace(c, "dwell_s = 10", "dwell_s = 1e308"),
            key: "cameras[0].algorithms[0].dwell_s",
            fragment: "must be zero or more seconds, and at most 2592000 (30 days)",
            line: Line::Unchecked,
        },
        Case {
            name: "cooldown of 1e308 seconds",
            edit: |c| add_to_first_algorithm(c, "cooldown_s = 1e308"),
            key: "cameras[0].algorithms[0].cooldown_s",
            fragment: "at most 2592000 (30 days)",
            line: Line::Unchecked,
        },
        Case {
            name: "number too large for any type",
            edit: |c| {
                replace(
                    c,
                    "topic_prefix = \"cityeye\"\n",
                    "topic_prefix = \"cityeye\"\nkeep_alive_s = 99999999999999999999\n",
                )
            },
            key: "mqtt.keep_alive_s",
            fragment: "",
            line: Line::Of("keep_alive_s = 9999"),
        },
        Case {
            name: "pipeline template that is no template",
            edit: |c| replace(c, "analysis_fps = 5\n", &format!("analysis_fps = 5\n{PASSWD}\n")),
            key: "cameras[0].pipeline",
            fragment: "not a GStreamer pipeline: no element ",
            line: Line::Unchecked,
        },
        Case {
            name: "model path is a folder",
            edit: |c| replace(c, MODEL, env!("CARGO_MANIFEST_DIR")),
            key: "models[0].path",
            fragment: "is a folder, not a model file",
            line: Line::Unchecked,
        },
        // The file as a whole.
        Case {
            name: "empty file",
            edit: |_| String::new(),
            key: "",
            fragment: "missing field `node`",
            line: Line::Any,
        },
    ]
}

/// The 1-based number of the first line of `text` holding `marker`.
fn line_of(text: &str, marker: &str) -> usize {
    text.lines().position(|l| l.contains(marker)).expect("marker not in the config") + 1
}

/// The line an error cites: `error: FILE:LINE: ...`.
fn cited_line(error: &str, file: &str) -> Option<usize> {
    let rest = error.strip_prefix(&format!("error: {file}:"))?;
    let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
    digits.parse().ok()
}

/// Whether `error` names exactly `key`: `...: KEY: message`.
fn names_key(error: &str, key: &str) -> bool {
    error.contains(&format!(": {key}: "))
}

#[test]
fn base_config_passes_check() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = check(dir.path(), &base_config());
    assert_eq!(code, 0, "the base config must be valid:\n{stderr}");
    assert!(stdout.contains("valid"), "{stdout}");
}

#[test]
fn bad_configs_name_file_key_and_mistake() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(CONFIG_NAME).display().to_string();
    let (code, _, stderr) = check(dir.path(), &base_config());
    assert_eq!(code, 0, "the base config must be valid, or the cases prove nothing:\n{stderr}");

    let mut failures = Vec::new();
    for case in cases() {
        let text = (case.edit)(&base_config());
        let (code, _, stderr) = check(dir.path(), &text);
        let errors: Vec<&str> = stderr.lines().filter(|l| l.starts_with("error: ")).collect();
        let hit = errors.iter().find(|e| {
            e.starts_with(&format!("error: {file}"))
                && (case.key.is_empty() || names_key(e, case.key))
                && e.contains(case.fragment)
        });
        let line_ok = hit.is_some_and(|e| match case.line {
            Line::Of(marker) => cited_line(e, &file) == Some(line_of(&text, marker)),
            Line::Any => cited_line(e, &file).is_some(),
            Line::Unchecked => true,
        });
        if code != EXIT_CONFIG || hit.is_none() || !line_ok {
            failures.push(format!(
                "{}: exit {code}; want exit {EXIT_CONFIG}, key `{}`, message `{}`{}; stderr:\n{stderr}",
                case.name,
                case.key,
                case.fragment,
                if hit.is_some() && !line_ok { " on the right line" } else { "" }
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

#[test]
fn drone_cameras_pass_check() {
    let dir = tempfile::tempdir().unwrap();
    for (text, telemetry) in [
        (with_drone(&base_config(), "", ""), "telemetry KLV (MISB ST 0601) in the stream"),
        (
            with_drone(&base_config(), "source = \"klv\"", MQTT_TELEMETRY),
            "telemetry MQTT thing/product/DOCK-1/osd on mqtt://127.0.0.1:1883",
        ),
        (
            with_drone(
                &base_config(),
                "udp://0.0.0.0:5600",
                "srt://192.0.2.30:9000?passphrase=0123456789",
            ),
            "angle 1°, altitude 2 m, position 3 m",
        ),
    ] {
        let (code, stdout, stderr) = check(dir.path(), &text);
        assert_eq!(code, 0, "{text}\n{stderr}");
        assert!(stdout.contains(telemetry), "{stdout}");
        assert!(!stdout.contains("0123456789"), "the SRT passphrase is shown:\n{stdout}");
    }
}

#[test]
fn missing_config_file_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("no-such-config.toml");
    let (code, _, stderr) = run_check(&path);
    assert_eq!(code, EXIT_CONFIG, "{stderr}");
    assert!(
        stderr.contains(&format!("error: {}: cannot read the config file", path.display())),
        "{stderr}"
    );
}

#[test]
fn an_endless_file_is_refused_at_once() {
    let (code, _, stderr) = run_check(Path::new("/dev/zero"));
    assert_eq!(code, EXIT_CONFIG, "{stderr}");
    assert!(stderr.contains("error: /dev/zero: the file is larger than 4 MiB"), "{stderr}");
}

#[test]
fn semantic_mistakes_are_all_reported_in_one_run() {
    let dir = tempfile::tempdir().unwrap();
    let text = replace_last(&base_config(), "model = \"coco\"", "model = \"yolo\"");
    // One algorithm with three mistakes: each is its own error.
    let text = with_first_algorithm(
        &text,
        &[
            "type = \"illegal_parking\"",
            "zone = \"kurb\"",
            "line = [[0, 0.5], [1, 0.5]]",
            r#"schedule = ["Mon-Fri 7-22"]"#,
        ],
    );
    let (code, _, stderr) = check(dir.path(), &text);
    assert_eq!(code, EXIT_CONFIG, "{stderr}");
    for key in [
        "cameras[0].algorithms[0].zone",
        "cameras[0].algorithms[0].line",
        "cameras[0].algorithms[0].schedule",
        "cameras[1].models",
    ] {
        assert!(names_key(&stderr, key), "no error at {key}:\n{stderr}");
    }
    assert_eq!(stderr.lines().filter(|l| l.starts_with("error: ")).count(), 4, "{stderr}");
}

/// `model = "x"`, `models = "x"` and `models = ["x", ...]` all name a camera's models.
#[test]
fn model_alias_and_model_lists_pass() {
    let dir = tempfile::tempdir().unwrap();
    let two_models =
        replace(&base_config(), "[[cameras]]", &format!("{}\n[[cameras]]", model_block("city")));
    for text in [
        base_config(),
        replace(&base_config(), "model = \"coco\"", "models = \"coco\""),
        replace(&base_config(), "model = \"coco\"", r#"models = ["coco"]"#),
        replace(&two_models, "model = \"coco\"", r#"models = ["coco", "city"]"#),
    ] {
        let (code, stdout, stderr) = check(dir.path(), &text);
        assert_eq!(code, 0, "{stderr}\n{text}");
        assert!(stdout.contains("valid"), "{stdout}");
    }
}

/// An algorithm needing a class no model detects under that name passes once a model's
/// `class_map` renames one of its classes to it, on the camera's only model or on another of
/// its models.
#[test]
fn class_map_provides_a_needed_class() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = |text: &str| with_first_algorithm(text, &["type = \"exposed_garbage\""]);
    let mapped = r#"class_map = { "handbag" = "garbage" }"#;

    let one_model = add_to_model(&base_config(), mapped);
    let city = add_to_model(&model_block("city"), mapped);
    let two_models = replace(&base_config(), "[[cameras]]", &format!("{city}\n[[cameras]]"));
    let two_models = replace(&two_models, "model = \"coco\"", r#"models = ["coco", "city"]"#);

    // Without the map it is a mistake (the "needs a class" case), with it it is not.
    let (code, _, stderr) = check(dir.path(), &garbage(&base_config()));
    assert_eq!(code, EXIT_CONFIG, "{stderr}");
    for text in [garbage(&one_model), garbage(&two_models)] {
        let (code, stdout, stderr) = check(dir.path(), &text);
        assert_eq!(code, 0, "{stderr}\n{text}");
        assert!(stdout.contains("valid"), "{stdout}");
    }
}

#[test]
fn rtsp_password_never_shown() {
    let dir = tempfile::tempdir().unwrap();
    let (code, stdout, stderr) = check(dir.path(), &base_config());
    assert_eq!(code, 0, "{stderr}");
    assert!(stdout.contains("rtsp://admin:***@192.0.2.10:554/stream1"), "{stdout}");
    assert!(!stdout.contains(RTSP_PASSWORD) && !stderr.contains(RTSP_PASSWORD), "{stdout}{stderr}");

    // Nor in errors about that camera.
    for text in [
        replace_last(&base_config(), "model = \"coco\"", "model = \"yolo\""),
        replace(&base_config(), "192.0.2.10:554", "192.0.2.10:99999"),
    ] {
        let (code, stdout, stderr) = check(dir.path(), &text);
        assert_eq!(code, EXIT_CONFIG, "{stderr}");
        assert!(
            names_key(&stderr, "cameras[1].url") || names_key(&stderr, "cameras[1].models"),
            "{stderr}"
        );
        assert!(!stdout.contains(RTSP_PASSWORD) && !stderr.contains(RTSP_PASSWORD), "{stderr}");
    }
}

/// An unknown key should be named once (`mqtt.retries`, not `mqtt.retries.retries`) and located
/// on its own line even when it starts the line.
#[test]
fn unknown_key_at_line_start_cites_its_own_line() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join(CONFIG_NAME).display().to_string();
    let text = replace(&base_config(), "[mqtt]\n", "[mqtt]\nretries = 3\n");
    let (code, _, stderr) = check(dir.path(), &text);
    assert_eq!(code, EXIT_CONFIG, "{stderr}");
    let line = line_of(&text, "retries");
    assert!(
        stderr.contains(&format!("error: {file}:{line}: mqtt.retries: unknown field `retries`")),
        "{stderr}"
    );
}

/// A malformed MQTT URL is quoted back in the error, credentials and all.
#[test]
fn mqtt_url_error_does_not_echo_credentials() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        replace(&base_config(), "mqtt://127.0.0.1:1883", "mqtt://node:hunter2@127.0.0.1:99999");
    let (code, _, stderr) = check(dir.path(), &text);
    assert_eq!(code, EXIT_CONFIG, "{stderr}");
    assert!(names_key(&stderr, "mqtt.url"), "{stderr}");
    assert!(!stderr.contains("hunter2"), "{stderr}");
}

/// `check` builds each camera's pipeline (without starting it) and reports one GStreamer cannot
/// build, without echoing the file the template named: `/etc/passwd` passed, and was printed.
#[test]
fn a_file_that_is_no_pipeline_template_is_refused_and_not_shown() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        replace(&base_config(), "analysis_fps = 5\n", &format!("analysis_fps = 5\n{PASSWD}\n"));
    let (code, stdout, stderr) = check(dir.path(), &text);
    assert_eq!(code, EXIT_CONFIG, "{stdout}{stderr}");
    let file = dir.path().join(CONFIG_NAME).display().to_string();
    let expected =
        format!("error: {file}: cameras[0].pipeline: not a GStreamer pipeline: no element");
    assert!(stderr.lines().any(|l| l.starts_with(&expected)), "{stderr}");
    // GStreamer names the first word it could not make an element of; nothing more of the file.
    let passwd = std::fs::read_to_string("/etc/passwd").unwrap();
    for line in passwd.lines().skip(1).filter(|l| !l.is_empty()) {
        assert!(
            !stdout.contains(line) && !stderr.contains(line),
            "`{line}` shown:\n{stdout}{stderr}"
        );
    }
    assert!(!stdout.contains("pipeline "), "no pipeline printed for a failed check:\n{stdout}");
}

/// `run` tells a mistake in a file the config names (here a CA file that is no certificate) by
/// exit code 2 like `check` does, not 1: systemd restarts the unit on 1, in vain.
#[test]
fn run_exits_2_like_check_for_a_bad_ca_file() {
    let dir = tempfile::tempdir().unwrap();
    let text = replace(
        &base_config(),
        "url = \"mqtt://127.0.0.1:1883\"\n",
        "url = \"mqtts://127.0.0.1:1883\"\nca_file = \"cityeye.toml\"\n",
    );
    let (code, _, stderr) = check(dir.path(), &text);
    assert_eq!(code, EXIT_CONFIG, "check: {stderr}");
    assert!(names_key(&stderr, "mqtt.ca_file"), "{stderr}");

    let output = Command::new(env!("CARGO_BIN_EXE_cityeye"))
        .args(["run", "--config"])
        .arg(dir.path().join(CONFIG_NAME))
        .env_remove("RUST_LOG")
        .output()
        .expect("cannot run cityeye");
    let stderr = String::from_utf8_lossy(&output.stderr);
    assert_eq!(output.status.code(), Some(EXIT_CONFIG), "run: {stderr}");
    let file = dir.path().join(CONFIG_NAME).display().to_string();
    assert!(
        stderr.contains(&format!("error: {file}: mqtt.ca_file: no PEM certificate in ")),
        "{stderr}"
    );
}
