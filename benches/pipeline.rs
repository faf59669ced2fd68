//! Micro-benchmarks of the per-frame stages on realistic inputs: `cargo bench --bench pipeline`.
//!
//! - `detect`: [`Detector::detect`] end to end (letterbox, ONNX Runtime, decode, NMS, mapping
//!   back) on frame 0 of `vtest.avi` with the shared YOLOX-Nano, 1 and 2 intra-op threads;
//! - `track`: one [`Tracker::update`] with 10 / 50 / 200 objects moving steadily;
//! - `rules`: one [`Rules::update`] with 10 / 50 / 200 tracks, parked and moving, under an
//!   `illegal_parking` rule;
//! - `evidence_jpeg`: the incident snapshot of a 768x576 frame with its boxes drawn;
//! - `plates`: one plate read of the 720x1160 CCPD photo `db1.jpg` (text detector, regions,
//!   recognizer, plate syntax), beside its ceiling: the text detector alone on the same photo
//!   plus the recognizer alone on one line, ONNX Runtime with nothing around it;
//! - `letterbox`, `decode`, `nms` (the second section): the private preprocessing and
//!   postprocessing steps on their own.
//!
//! Sample sizes and times are kept small so the whole run takes about two minutes on 2 cores.

use std::hint::black_box;
use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::{Duration, SystemTime};

use criterion::{BenchmarkId, Criterion, SamplingMode, Throughput, criterion_group};

use cityeye::config::{Config, PlatesConfig};
use cityeye::frame::Frame;
use cityeye::geometry::{BBox, Detection, Point, Polygon};
use cityeye::incident::{Evidence, evidence_jpeg};
use cityeye::infer::ocr::{TextDetector, TextRecognizer};
use cityeye::infer::{Detector, Scratch};
use cityeye::ingest;
use cityeye::plates::PlateReader;
use cityeye::rules::{self, Rules, Verdicts};
use cityeye::track::{Track, TrackUpdate, Tracker, TrackerConfig};

const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/models/yolox_nano.onnx");
const CLASSES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/coco80.txt");
const VIDEO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/testdata/vtest.avi");

/// Object counts for the tracker and rules benchmarks.
const OBJECT_COUNTS: [usize; 3] = [10, 50, 200];
/// Analysed frames per second of the synthetic scenes (the demo's rate).
const SCENE_FPS: f64 = 5.0;
/// Frames in one back-and-forth cycle of the synthetic motion.
const SCENE_PERIOD: usize = 80;

/// The bench's node config: the shared model and footage, and an `illegal_parking` rule over
/// the lower half of the frame (the demo's settings, a zone that sees many objects).
fn config(threads: usize) -> Config {
    let text = format!(
        r#"
[node]
id = "bench"

[[models]]
name = "coco"
path = "{MODEL}"
format = "yolox"
classes = "{CLASSES}"
input_size = [416, 416]
threads = {threads}

[[cameras]]
id = "bench"
url = "file://{VIDEO}"
analysis_fps = 10
model = "coco"

  [[cameras.zones]]
  name = "kerb"
  polygon = [[0.0, 0.45], [1.0, 0.45], [1.0, 1.0], [0.0, 1.0]]

  [[cameras.algorithms]]
  type = "illegal_parking"
  zone = "kerb"
  dwell_s = 10
  cooldown_s = 600
"#
    );
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/pipeline.toml");
    Config::parse(&text, &path).unwrap_or_else(|e| panic!("bench config: {e}"))
}

/// Frame 0 of vtest.avi, decoded once through cityeye's own ingest.
fn frame0() -> &'static Frame {
    static FRAME: OnceLock<Frame> = OnceLock::new();
    FRAME.get_or_init(|| {
        ingest::first_frame(&config(1).cameras[0]).unwrap_or_else(|e| panic!("vtest.avi: {e}"))
    })
}

fn detector(threads: usize) -> Detector {
    Detector::load(&config(threads).models[0]).unwrap_or_else(|e| panic!("model: {}: {e}", e.key()))
}

fn bench_detect(c: &mut Criterion) {
    let frame = frame0();
    let mut group = c.benchmark_group("detect");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(15)
        .measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(1));
    for threads in [1, 2] {
        let detector = detector(threads);
        let mut scratch = Scratch::default();
        let found = detector.detect(frame, &mut scratch).expect("detect");
        assert!(!found.is_empty(), "YOLOX-Nano finds nothing on vtest frame 0");
        group.bench_function(BenchmarkId::new("yolox_nano_768x576", format!("{threads}t")), |b| {
            b.iter(|| detector.detect(black_box(frame), &mut scratch).expect("detect"))
        });
    }
    group.finish();
}

/// The CCPD photo `db1.jpg` as a frame (its plate reads 皖ACJ218).
fn plate_photo() -> Frame {
    let path = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/testdata/plates/db1.jpg");
    let image = image::open(path).unwrap_or_else(|e| panic!("{path}: {e}")).to_rgb8();
    let bgr: Vec<u8> = image.pixels().flat_map(|p| [p[2], p[1], p[0]]).collect();
    Frame {
        width: image.width() as usize,
        height: image.height() as usize,
        data: bgr.into(),
        stream_time_s: 0.0,
        captured_at: SystemTime::now(),
        metadata: Vec::new(),
    }
}

fn bench_plates(c: &mut Criterion) {
    let config = PlatesConfig::default();
    let reader = PlateReader::load(&config)
        .unwrap_or_else(|e| panic!("plate models (run scripts/setup): plates.{}: {e}", e.0));
    let frame = plate_photo();
    let whole = BBox { x: 0.0, y: 0.0, w: 1.0, h: 1.0 };
    let read = reader.read_area(&frame, whole).expect("read").expect("db1's plate");
    assert_eq!(read.text, "皖ACJ218");
    let detector = TextDetector::load(&config.detector, 1).expect("text detector");
    let recognizer =
        TextRecognizer::load(&config.recognizer, &config.dictionary, 1).expect("recognizer");
    // One plate line, the recognizer's minimum input: 320 x 48.
    let line = vec![128u8; 320 * 48 * 3];
    let mut group = c.benchmark_group("plates");
    group
        .sampling_mode(SamplingMode::Flat)
        .sample_size(10)
        .measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(1));
    group.bench_function("read_720x1160", |b| {
        b.iter(|| reader.read_area(black_box(&frame), whole).expect("read"))
    });
    group.bench_function("ceiling_text_detector_720x1160", |b| {
        b.iter(|| {
            detector.text_map(black_box(frame.bgr()), frame.width, frame.height).expect("det")
        })
    });
    group.bench_function("ceiling_recognizer_320x48", |b| {
        b.iter(|| recognizer.read_line(black_box(&line), 320, 48).expect("rec"))
    });
    group.finish();
}

/// A tiny deterministic generator, so every run sees the same synthetic scene.
struct XorShift(u64);

impl XorShift {
    fn next_f32(&mut self) -> f32 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        (self.0 >> 40) as f32 / (1u64 << 24) as f32
    }
}

/// `n` objects on a grid, each in its own cell; every third stands still (parked), the others
/// move steadily to and fro along x. Returns `SCENE_PERIOD` frames of detections; the motion is
/// a triangle wave, so the frames can be replayed in a loop without a jump.
fn scene(n: usize) -> Vec<Vec<Detection>> {
    let cols = (n as f64).sqrt().ceil() as usize * 2;
    let rows = n.div_ceil(cols);
    let (cell_w, cell_h) = (1.0 / cols as f32, 1.0 / rows as f32);
    let (w, h) = (cell_w * 0.5, cell_h * 0.6);
    let classes: [Arc<str>; 3] = [Arc::from("car"), Arc::from("person"), Arc::from("truck")];
    let mut rng = XorShift(0x9e37_79b9_7f4a_7c15);
    let objects: Vec<(f32, f32, f32, Arc<str>, f32)> = (0..n)
        .map(|i| {
            let (col, row) = (i % cols, i / cols);
            // A quarter of a cell over half a period: never into a neighbour's box.
            let speed = if i % 3 == 0 { 0.0 } else { cell_w * 0.25 / (SCENE_PERIOD / 2) as f32 };
            let class = classes[i % classes.len()].clone();
            let confidence = 0.6 + 0.35 * rng.next_f32();
            (
                col as f32 * cell_w + cell_w * 0.1,
                row as f32 * cell_h + cell_h * 0.2,
                speed,
                class,
                confidence,
            )
        })
        .collect();
    (0..SCENE_PERIOD)
        .map(|f| {
            let half = SCENE_PERIOD / 2;
            let step = if f < half { f } else { SCENE_PERIOD - f } as f32;
            objects
                .iter()
                .map(|(x, y, speed, class, confidence)| Detection {
                    bbox: BBox { x: x + speed * step, y: *y, w, h },
                    class: class.clone(),
                    confidence: *confidence,
                })
                .collect()
        })
        .collect()
}

fn bench_track(c: &mut Criterion) {
    let mut group = c.benchmark_group("track");
    for n in OBJECT_COUNTS {
        let frames = scene(n);
        let mut tracker = Tracker::new(TrackerConfig::default());
        // Two cycles to settle: every track confirmed and moving.
        let mut k = 0usize;
        for _ in 0..2 * SCENE_PERIOD {
            tracker.update(&frames[k % SCENE_PERIOD], k as f64 / SCENE_FPS);
            k += 1;
        }
        let tracked = tracker.update(&frames[k % SCENE_PERIOD], k as f64 / SCENE_FPS).tracks.len();
        assert_eq!(tracked, n, "the synthetic scene should keep every object tracked");
        k += 1;
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::new("objects", n), |b| {
            b.iter(|| {
                let t = k as f64 / SCENE_FPS;
                let tracks = tracker.update(black_box(&frames[k % SCENE_PERIOD]), t).tracks.len();
                k += 1;
                tracks
            })
        });
    }
    group.finish();
}

fn bench_rules(c: &mut Criterion) {
    let config = config(1);
    let camera = &config.cameras[0];
    let mut group = c.benchmark_group("rules");
    for n in OBJECT_COUNTS {
        // The tracks the tracker reports for the same scene, frame by frame.
        let mut tracker = Tracker::new(TrackerConfig::default());
        let frames: Vec<Vec<Track>> = scene(n)
            .iter()
            .enumerate()
            .map(|(k, d)| tracker.update(d, k as f64 / SCENE_FPS).tracks.to_vec())
            .collect();
        let mut rules = Rules::new(rules::specs(camera, 0.35).expect("valid"));
        let (verdicts, at) = (Verdicts::new(), SystemTime::UNIX_EPOCH);
        // Past the dwell time, so parked vehicles have their incidents open.
        let mut k = 0usize;
        let mut started = 0;
        for _ in 0..2 * SCENE_PERIOD {
            let update = TrackUpdate { tracks: &frames[k % SCENE_PERIOD], removed: Vec::new() };
            started += rules.update(&update, &verdicts, k as f64 / SCENE_FPS, at).len();
            k += 1;
        }
        assert!(started > 0, "the parked cars of the synthetic scene should start incidents");
        group.throughput(Throughput::Elements(n as u64));
        group.bench_function(BenchmarkId::new("tracks", n), |b| {
            b.iter(|| {
                let update = TrackUpdate { tracks: &frames[k % SCENE_PERIOD], removed: Vec::new() };
                let events = rules.update(black_box(&update), &verdicts, k as f64 / SCENE_FPS, at);
                k += 1;
                events
            })
        });
    }
    group.finish();
}

fn bench_evidence(c: &mut Criterion) {
    let frame = Arc::new(frame0().clone());
    let mut scratch = Scratch::default();
    let boxes: Vec<BBox> =
        detector(1).detect(&frame, &mut scratch).expect("detect").iter().map(|d| d.bbox).collect();
    let evidence = Evidence {
        frame,
        zones: vec![Polygon::new(vec![
            Point { x: 0.80, y: 0.00 },
            Point { x: 1.00, y: 0.00 },
            Point { x: 1.00, y: 0.25 },
            Point { x: 0.80, y: 0.25 },
        ])],
        lines: vec![],
        subjects: boxes[..1].to_vec(),
        others: boxes[1..].to_vec(),
        labels: vec![],
    };
    let mut group = c.benchmark_group("evidence_jpeg");
    group.sampling_mode(SamplingMode::Flat).measurement_time(Duration::from_secs(3));
    group.throughput(Throughput::Elements(1));
    group.bench_function("768x576", |b| b.iter(|| evidence_jpeg(black_box(&evidence)).unwrap()));
    group.finish();
}

// ------------------------------------------------------------------------------------------------
// Private stages. These need `cityeye::infer::letterbox` and `cityeye::infer::decode` to be
// public (`pub mod letterbox; pub mod decode;` in src/infer/mod.rs).
// ------------------------------------------------------------------------------------------------

mod internals {
    use std::hint::black_box;
    use std::io::Write as _;
    use std::process::Command;

    use criterion::{BenchmarkId, Criterion, Throughput};
    use ort::session::Session;
    use ort::value::TensorRef;

    use cityeye::config::ModelFormat;
    use cityeye::infer::decode::{Candidate, Tensors, decode, nms};
    use cityeye::infer::letterbox::{InputSpec, letterbox_frame, letterbox_into};

    use super::{MODEL, RAW_OUTPUT_CHILD, XorShift, frame0};

    const COCO: usize = 80;
    const CONFIDENCE: f32 = 0.35;
    const NMS_IOU: f32 = 0.45;
    /// The config's default `cross_class_iou`.
    const CROSS_CLASS_IOU: f32 = 0.8;

    /// Nearest-neighbour resize of packed BGR8, to make a 1080p frame out of vtest's 768x576.
    fn resize(src: &[u8], sw: usize, sh: usize, dw: usize, dh: usize) -> Vec<u8> {
        let mut out = Vec::with_capacity(dw * dh * 3);
        for y in 0..dh {
            let row = &src[(y * sh / dh) * sw * 3..][..sw * 3];
            for x in 0..dw {
                out.extend_from_slice(&row[(x * sw / dw) * 3..][..3]);
            }
        }
        out
    }

    pub fn bench_letterbox(c: &mut Criterion) {
        let frame = frame0();
        let hd = resize(frame.bgr(), frame.width, frame.height, 1920, 1080);
        let sources = [
            ("768x576", frame.bgr(), frame.width, frame.height),
            ("1920x1080", &hd[..], 1920, 1080),
        ];
        let mut out = vec![0.0f32; 3 * 416 * 416];
        let mut group = c.benchmark_group("letterbox");
        group.throughput(Throughput::Elements(1));
        for (name, data, w, h) in sources {
            for (spec_name, format) in
                [("yolox", ModelFormat::Yolox), ("ultralytics", ModelFormat::Yolov8)]
            {
                let spec = &InputSpec::new(416, 416, &format.preprocessing());
                let id = BenchmarkId::new(format!("{name}_to_416"), spec_name);
                group.bench_function(id, |b| {
                    b.iter(|| letterbox_into(black_box(data), w, h, spec, &mut out))
                });
            }
        }
        // What the appliance does: the decoder's I420, converted only where the model samples.
        for (spec_name, format) in
            [("yolox", ModelFormat::Yolox), ("ultralytics", ModelFormat::Yolov8)]
        {
            let spec = &InputSpec::new(416, 416, &format.preprocessing());
            let id = BenchmarkId::new("768x576_i420_to_416", spec_name);
            group.bench_function(id, |b| {
                b.iter(|| letterbox_frame(black_box(frame), spec, &mut out))
            });
        }
        group.finish();
    }

    /// YOLOX-Nano's real output for vtest frame 0, [1, 3549, 85]. ONNX Runtime allows one
    /// environment per process and this one's belongs to cityeye's detector, so a child process
    /// (this bench again, with `RAW_OUTPUT_CHILD` set) runs the model and prints the tensor.
    fn yolox_output() -> Vec<f32> {
        let exe = std::env::current_exe().expect("bench executable");
        let output = Command::new(exe).env(RAW_OUTPUT_CHILD, "1").output().expect("child bench");
        assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
        let data: Vec<f32> = output
            .stdout
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        assert_eq!(data.len(), 3549 * 85, "unexpected YOLOX output size");
        data
    }

    /// The child's side of [`yolox_output`]: the raw output as little-endian f32 on stdout.
    pub fn print_yolox_output() {
        let frame = frame0();
        let mut input = vec![0.0f32; 3 * 416 * 416];
        let spec = InputSpec::new(416, 416, &ModelFormat::Yolox.preprocessing());
        letterbox_frame(frame, &spec, &mut input);
        let library = std::env::var_os("ORT_DYLIB_PATH")
            .unwrap_or_else(|| "/usr/local/lib/cityeye/libonnxruntime.so".into());
        let env = ort::init_from(&library)
            .expect("ONNX Runtime library")
            .with_name("bench")
            .build()
            .expect("ONNX Runtime environment");
        let mut session = Session::builder(&env)
            .map_err(|e| e.to_string())
            .and_then(|b| b.with_intra_threads(1).map_err(|e| e.to_string()))
            .and_then(|mut b| b.commit_from_file(MODEL).map_err(|e| e.to_string()))
            .expect("YOLOX-Nano session");
        let tensor = TensorRef::from_array_view(([1usize, 3, 416, 416], &input[..])).unwrap();
        let outputs = session.run(ort::inputs!["images" => tensor]).expect("inference");
        let (shape, data) = outputs[0].try_extract_tensor::<f32>().unwrap();
        assert_eq!(&shape[..], &[1, 3549, 85]);
        let bytes: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
        std::io::stdout().write_all(&bytes).expect("stdout");
    }

    /// A synthetic output of `anchors` rows `[cx, cy, w, h, objectness?, 80 classes]` for a
    /// 640x640 input: 12 objects, each seen by 25 anchors at jittered boxes with high scores;
    /// every other anchor is background scoring under the threshold.
    fn synthetic_rows(anchors: usize, objectness: bool, rng: &mut XorShift) -> Vec<Vec<f32>> {
        let (objects, per_object) = (12, 25);
        let truths: Vec<[f32; 5]> = (0..objects)
            .map(|i| {
                let (w, h) = (20.0 + 150.0 * rng.next_f32(), 20.0 + 200.0 * rng.next_f32());
                let (cx, cy) = (
                    w / 2.0 + (640.0 - w) * rng.next_f32(),
                    h / 2.0 + (640.0 - h) * rng.next_f32(),
                );
                [cx, cy, w, h, (i * 7 % COCO) as f32]
            })
            .collect();
        (0..anchors)
            .map(|a| {
                let mut row = Vec::with_capacity(5 + COCO);
                let step = anchors / (objects * per_object);
                let truth = a % step == 0;
                let t = truths[(a / step) % objects];
                if truth {
                    let jitter = |v: f32, r: &mut XorShift| v * (0.9 + 0.2 * r.next_f32());
                    row.extend([
                        jitter(t[0], rng),
                        jitter(t[1], rng),
                        jitter(t[2], rng),
                        jitter(t[3], rng),
                    ]);
                } else {
                    row.extend([
                        640.0 * rng.next_f32(),
                        640.0 * rng.next_f32(),
                        60.0 * rng.next_f32(),
                        60.0 * rng.next_f32(),
                    ]);
                }
                if objectness {
                    row.push(if truth {
                        0.6 + 0.39 * rng.next_f32()
                    } else {
                        0.3 * rng.next_f32().powi(4)
                    });
                }
                for class in 0..COCO {
                    let hit = truth && class == t[4] as usize;
                    row.push(if hit {
                        0.5 + 0.45 * rng.next_f32()
                    } else {
                        0.2 * rng.next_f32().powi(3)
                    });
                }
                row
            })
            .collect()
    }

    pub fn bench_decode(c: &mut Criterion) {
        let mut rng = XorShift(0x2545_f491_4f6c_dd1d);
        // YOLOv5 at 640: [1, 25200, 85], anchor rows.
        let v5: Vec<f32> = synthetic_rows(25200, true, &mut rng).concat();
        // YOLOv8 at 640: [1, 84, 8400], channels first.
        let rows = synthetic_rows(8400, false, &mut rng);
        let v8: Vec<f32> = (0..4 + COCO).flat_map(|ch| rows.iter().map(move |r| r[ch])).collect();
        let cases = [
            ("yolox_416_vtest", ModelFormat::Yolox, yolox_output(), vec![1, 3549, 85], 416),
            ("yolov5_640_synthetic", ModelFormat::Yolov5, v5, vec![1, 25200, 85], 640),
            ("yolov8_640_synthetic", ModelFormat::Yolov8, v8, vec![1, 84, 8400], 640),
        ];
        let mut decode_group = c.benchmark_group("decode");
        decode_group.throughput(Throughput::Elements(1));
        let mut decoded = Vec::new();
        for (name, format, data, shape, size) in &cases {
            let mut out: Vec<Candidate> = Vec::new();
            let tensors = || Tensors::One { data: black_box(data), shape };
            decode(*format, tensors(), COCO, (*size, *size), CONFIDENCE, &mut out);
            assert!(!out.is_empty(), "{name}: no candidates");
            decode_group.bench_function(*name, |b| {
                b.iter(|| decode(*format, tensors(), COCO, (*size, *size), CONFIDENCE, &mut out))
            });
            decoded.push((*name, out));
        }
        decode_group.finish();

        let mut nms_group = c.benchmark_group("nms");
        nms_group.throughput(Throughput::Elements(1));
        let mut work = Vec::new();
        for (name, candidates) in &decoded {
            let id = BenchmarkId::new(*name, format!("{}_candidates", candidates.len()));
            nms_group.bench_function(id, |b| {
                b.iter(|| {
                    work.clear();
                    work.extend_from_slice(black_box(candidates));
                    nms(&mut work, NMS_IOU, CROSS_CLASS_IOU);
                    work.len()
                })
            });
        }
        nms_group.finish();
    }
}

fn settings() -> Criterion {
    Criterion::default()
        .sample_size(20)
        .warm_up_time(Duration::from_millis(500))
        .measurement_time(Duration::from_secs(2))
        .configure_from_args()
}

criterion_group! {
    name = stages;
    config = settings();
    targets = bench_detect, bench_track, bench_rules, bench_evidence, bench_plates
}
criterion_group! {
    name = private_stages;
    config = settings();
    targets = internals::bench_letterbox, internals::bench_decode
}

/// Set in the child process that only prints YOLOX-Nano's raw output (see `yolox_output`).
const RAW_OUTPUT_CHILD: &str = "CITYEYE_BENCH_RAW_YOLOX_OUTPUT";

// `criterion_main!` with a way in for the child process.
fn main() {
    if std::env::var_os(RAW_OUTPUT_CHILD).is_some() {
        internals::print_yolox_output();
        return;
    }
    stages();
    private_stages();
    Criterion::default().configure_from_args().final_summary();
}
