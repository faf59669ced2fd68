//! The end-to-end stream benchmark: `cargo bench --bench streams`.
//!
//! One run measures, on this machine:
//!
//! - **inference ceiling**: ONNX Runtime alone on the shared YOLOX-Nano, one preprocessed vtest
//!   frame fed again and again (no decoding): one session with 1 intra-op thread, one with 2, and
//!   two 1-thread sessions running concurrently on two threads. The best is the ceiling;
//! - **decode ceiling**: GStreamer decoding vtest.avi into an I420 appsink (the decoder's own
//!   format, which cityeye takes) with nothing downstream, one decoding thread (as cityeye
//!   decodes: FFmpeg's frame threads cost more CPU a frame);
//! - **cityeye replay** of vtest.avi with the demo camera, analysing every frame
//!   (`analysis_fps` 10, vtest's own rate), at the demo's 5 fps, and every frame with the
//!   motion gate (`analysis.motion_gate`; the demo's only zone is the kerb), and every frame
//!   with the detector on OpenVINO's CPU device (`device = "openvino"`) when its plugin is
//!   installed;
//! - **batching**: four threads standing for four cameras sharing one detector (the
//!   dynamic-batch YOLOX scripts/make-test-models writes), each detecting frame after frame:
//!   frames/s and the latency of a detection, frames run alone and with `max_batch` 2 and 4;
//! - unless `--no-live` is given (`cargo bench --bench streams -- --no-live`), **live cameras**
//!   ([`live`]) and **district coverage** ([`district`]: key-frame cameras, sub-stream
//!   cameras against main-stream ones, a patrol of simulated cameras);
//!
//! and prints Markdown tables for BENCHMARKS.md. `-- --district` runs the district section
//! alone, with the inference ceiling it is compared with; `-- --substream` its sub-stream
//! comparison alone.
//!
//! ONNX Runtime allows one environment per process and cityeye's belongs to its detector, so
//! the inference ceiling runs in a child process of this program (`--inference-ceiling`).
//! Under `cargo test --benches` (no `--bench` argument) nothing is measured.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::{Arc, Barrier};
use std::time::{Instant, SystemTime};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_app as gst_app;
use gstreamer_video as gst_video;
use ort::environment::Environment;
use ort::session::Session;
use ort::value::TensorRef;

use cityeye::commands::replay::{self, ReplayRequest, ReplaySummary};
use cityeye::config::{Config, Device, ModelFormat};
use cityeye::engine::{self, Models};
use cityeye::infer::letterbox::{InputSpec, letterbox_frame};
use cityeye::ingest;

const MODEL: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/models/yolox_nano.onnx");
const VIDEO: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/testdata/vtest.avi");
const CLASSES: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/models/coco80.txt");
const DEMO_CONFIG: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/config/demo.toml");
/// YOLOX-Nano with a dynamic batch dimension, from scripts/make-test-models.
const BATCH_MODEL: &str =
    concat!(env!("CARGO_MANIFEST_DIR"), "/target/models/yolox_nano.batch.onnx");
/// Cameras sharing the detector in the batching measurement, and detections each makes.
const BATCH_CAMERAS: usize = 4;
const BATCH_DETECTIONS: usize = 40;
/// Where `scripts/setup` installs ONNX Runtime when `ORT_DYLIB_PATH` is not set.
const ORT_LIBRARY: &str = "/usr/local/lib/cityeye/libonnxruntime.so";

/// The child-process mode that measures ONNX Runtime alone.
const CEILING_ARG: &str = "--inference-ceiling";
const WARM_UP_RUNS: usize = 20;
const TIMED_RUNS: usize = 200;
/// YOLOX-Nano's input: `images`, [1, 3, 416, 416], BGR 0..255, letterboxed top-left, pad 114.
const SIDE: usize = 416;

type Result<T> = std::result::Result<T, String>;

// The tests' real parts: a mosquitto broker and a subscriber.
#[path = "../tests/common/mod.rs"]
mod common;
#[path = "streams/district.rs"]
mod district;
#[path = "streams/live.rs"]
mod live;

/// Only the district section (key-frame cameras, a patrol): `cargo bench --bench streams --
/// --district`.
const DISTRICT_ARG: &str = "--district";
/// Only the sub-stream comparison: `cargo bench --bench streams -- --substream`.
const SUBSTREAM_ARG: &str = "--substream";

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let outcome = if args.iter().any(|a| a == CEILING_ARG) {
        inference_ceiling_child()
    } else if args.iter().any(|a| a == DISTRICT_ARG) {
        district::run()
    } else if args.iter().any(|a| a == SUBSTREAM_ARG) {
        district::run_substream()
    } else if args.iter().any(|a| a == "--bench") {
        run()
    } else {
        println!("streams: a benchmark; run it with `cargo bench --bench streams`");
        Ok(())
    };
    if let Err(e) = outcome {
        eprintln!("streams: {e}");
        std::process::exit(1);
    }
}

/// One line of the table.
struct Row {
    configuration: String,
    fps: f64,
    /// Compared with the inference ceiling; `None` for rows that are ceilings of another kind.
    ratio: Option<f64>,
    /// CPU time (all threads) per frame, milliseconds, where measured in this process.
    cpu_ms: Option<f64>,
}

/// CPU seconds this process has used so far, all threads, user and system.
fn cpu_seconds() -> f64 {
    let mut usage = std::mem::MaybeUninit::<libc::rusage>::zeroed();
    // SAFETY: getrusage fills the struct it is given; RUSAGE_SELF is always valid.
    let usage = unsafe {
        libc::getrusage(libc::RUSAGE_SELF, usage.as_mut_ptr());
        usage.assume_init()
    };
    let seconds = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    seconds(usage.ru_utime) + seconds(usage.ru_stime)
}

fn run() -> Result<()> {
    println!("# cityeye stream benchmark\n");
    println!("{}\n", machine());

    eprintln!("decode ceiling ...");
    // The first pass warms the page cache and GStreamer's plugin registry.
    let decode = (0..3).map(|_| decode_video(Path::new(VIDEO))).collect::<Result<Vec<_>>>()?;
    let decode = cheapest(decode);

    eprintln!("inference ceiling (child process) ...");
    let ceilings = inference_ceilings()?;
    let ceiling = ceilings.iter().map(|(_, fps)| *fps).fold(0.0, f64::max);

    eprintln!("cityeye replay ...");
    let mut config = Config::load(Path::new(DEMO_CONFIG)).map_err(|e| e.to_string())?;
    let models = engine::load_models(&config).map_err(|e| e.to_string())?;
    let native = decode.native_fps().round();
    let every_frame = replay(&mut config, &models, native)?;
    // The same frames with the detectors on OpenVINO, when its plugin is installed.
    let set_device = |config: &mut Config, device| {
        config.models.iter_mut().for_each(|m| m.device = device);
    };
    set_device(&mut config, Device::Openvino);
    let openvino = engine::load_models(&config)
        .map_err(|e| e.to_string())
        .and_then(|models| replay(&mut config, &models, native));
    set_device(&mut config, Device::Cpu);
    let demo_rate = replay(&mut config, &models, 5.0)?;
    // The demo's only zone is the kerb: the motion gate's case.
    config.analysis.motion_gate = true;
    let gated = replay(&mut config, &models, native)?;

    let mut rows: Vec<Row> = ceilings
        .iter()
        .map(|(name, fps)| Row {
            configuration: format!("Inference ceiling: ONNX Runtime alone, {name}"),
            fps: *fps,
            ratio: Some(fps / ceiling),
            cpu_ms: None,
        })
        .collect();
    rows.push(Row {
        configuration: "Decode ceiling: GStreamer vtest.avi → I420 appsink, nothing downstream"
            .into(),
        fps: decode.fps(),
        ratio: None,
        cpu_ms: Some(decode.cpu_ms()),
    });
    let mut replays = vec![(&every_frame, native, ""), (&demo_rate, 5.0, ""), (&gated, native, "")];
    match &openvino {
        Ok(replay) => replays.insert(1, (replay, native, ", device openvino (CPU)")),
        Err(e) => eprintln!("OpenVINO not measured: {e}"),
    }
    for ((summary, cpu), analysis_fps, device) in replays {
        let real_time = decode.video_seconds / summary.seconds;
        let gate = match summary.frames_gated {
            0 => String::new(),
            n => format!(", motion gate: detectors skipped on {n}"),
        };
        rows.push(Row {
            configuration: format!(
                "cityeye replay, analysis_fps {analysis_fps}{device} ({} of {} frames{gate}, {real_time:.1}× real time)",
                summary.frames_analysed, summary.frames_decoded
            ),
            fps: summary.analysed_fps(),
            ratio: Some(summary.analysed_fps() / ceiling),
            cpu_ms: Some(cpu * 1e3 / summary.frames_analysed as f64),
        });
    }
    println!("{}", table(&rows));
    // Where the time goes when every frame is analysed: decoding and inference are the physical
    // part (a single-threaded session's time is its CPU time); the rest is cityeye's own work.
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let single = ceilings.first().map_or(f64::NAN, |(_, fps)| *fps);
    let (decode_ms, inference_ms) = (decode.cpu_ms(), 1e3 / single);
    let (replay, replay_cpu) = &every_frame;
    let replay_ms = replay_cpu * 1e3 / replay.frames_analysed as f64;
    let bound = cores * 1e3 / (decode_ms + inference_ms);
    println!(
        "vtest.avi: {} frames, {:.1} s at {:.0} frames/s, {}x{}. ONNX Runtime: {WARM_UP_RUNS} \
         warm-up and {TIMED_RUNS} timed runs per session, same preprocessed frame. ms/frame is \
         1000 / frames/s (throughput, not latency). Replay frames/s counts analysed frames over \
         the whole replay's wall time, decoding and evidence writing included.",
        decode.frames,
        decode.video_seconds,
        decode.native_fps(),
        decode.width,
        decode.height
    );
    println!(
        "Every frame analysed, CPU per frame: decoding {decode_ms:.2} ms + inference \
         {inference_ms:.2} ms (1 thread) = {:.2} ms, so {cores} cores bound a replay at {bound:.1} \
         frames/s ({:.2} of the inference ceiling). cityeye used {replay_ms:.2} ms: \
         {:.2} ms more (preprocessing, tracking, rules, evidence, publishing), and reached \
         {:.2} of that bound.\n",
        decode_ms + inference_ms,
        bound / ceiling,
        replay_ms - decode_ms - inference_ms,
        replay.analysed_fps() / bound,
    );
    println!("{}", batching(&mut config)?);
    if std::env::args().any(|a| a == "--no-live") {
        return Ok(());
    }
    live_cameras(ceiling, inference_ms)?;
    district::sections(ceiling, inference_ms)
}

/// The live section: as many 720p RTSP cameras at 25 frames/s, analysed at 5, as this box
/// carries, against the bound its decoding and inference ceilings set.
fn live_cameras(ceiling: f64, inference_ms: f64) -> Result<()> {
    eprintln!("live cameras: 720p footage ...");
    let footage = live::footage(VIDEO, 1)?;
    let decode = (0..2).map(|_| decode_video(&footage)).collect::<Result<Vec<_>>>()?;
    let decode = cheapest(decode);
    let decode_ms = decode.cpu_ms();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let per_camera_ms = 25.0 * decode_ms + 5.0 * inference_ms;
    let bound = cores * 1e3 / per_camera_ms;
    eprintln!("live cameras: bound {bound:.1}; trials ...");
    let streams = live::Footage::one(&footage);
    let (best, mut trials) =
        live::largest_carried(streams, live::Decoding::Every, bound, MODEL, CLASSES)?;
    let prompt = live::largest_within_latency(streams, &mut trials, MODEL, CLASSES)?;
    println!("## Live RTSP cameras\n");
    println!("{}", live::table(&trials, ceiling));
    // The cameras' server and the broker run on the same cores: what they leave bounds too.
    let carried = best.and_then(|n| trials.iter().find(|t| t.cameras == n));
    let harness = carried.map(|t| {
        let left = cores - t.harness_cpu_percent / 100.0;
        let bound_left = left * 1e3 / per_camera_ms;
        format!(
            " The harness (the cameras' RTSP server and relays, the broker) used {:.0} % of a core \
             at that count; the {left:.2} cores it left bound the box at {bound_left:.1} cameras, \
             and {} is {:.2} of that.",
            t.harness_cpu_percent,
            t.cameras,
            t.cameras as f64 / bound_left
        )
    });
    let best =
        best.map_or("none".to_string(), |n| format!("{n} ({:.2} of the bound)", n as f64 / bound));
    println!(
        "720p H.264 at 25 frames/s ({}x{}, decoding {decode_ms:.2} ms CPU a frame, {:.0} \
         frames/s alone), each camera analysed at 5 frames/s (inference {inference_ms:.2} ms a \
         frame): a camera costs {per_camera_ms:.0} ms of CPU a second, so {cores} cores bound \
         the box at {bound:.1} cameras. Largest count with every camera within 10 % of 5 \
         frames/s: {best}. Latency: a frame's arrival at the node to the broker's PUBACK of an \
         incident message it raised (median of the 5 s reports' p50, largest p99).{} Largest \
         count carried with p99 within {} ms: {}.",
        decode.width,
        decode.height,
        decode.fps(),
        harness.unwrap_or_default(),
        live::P99_GOAL_MS,
        prompt.map_or("none tried".to_string(), |n| format!(
            "{n} ({:.2} of the bound)",
            n as f64 / bound
        )),
    );
    if let Some(t) = carried {
        println!("\n{}", live::stages(t, decode_ms, inference_ms));
    }
    Ok(())
}

/// Frames/s and latency of [`BATCH_CAMERAS`] threads sharing the dynamic-batch detector, each
/// detecting [`BATCH_DETECTIONS`] vtest frames in turn: alone, and batched 2 and 4 at a time.
fn batching(config: &mut Config) -> Result<String> {
    eprintln!("batching ...");
    let mut camera = config.cameras.first().ok_or("the demo config has no camera")?.clone();
    camera.analysis_fps = 10.0;
    let (mut frames, mut index) = (Vec::new(), 0);
    common::replay_frames(&camera, SystemTime::now(), &mut |frame| {
        if index % 40 == 0 {
            frames.push(frame);
        }
        index += 1;
    });
    let mut out = String::from(
        "## Batching\n\n| configuration | frames/s | latency p50 ms | latency p99 ms |\n|---|---:|---:|---:|\n",
    );
    let model = config.models.first_mut().ok_or("the demo config has no model")?;
    model.path = BATCH_MODEL.into();
    model.sha256 = None;
    for (max_batch, wait_ms) in [(1, 0), (2, 5), (4, 5), (4, 20)] {
        (model.max_batch, model.batch_wait_ms) = (max_batch, wait_ms);
        let detector = cityeye::infer::Detector::load(model).map_err(|e| e.to_string())?;
        let barrier = Barrier::new(BATCH_CAMERAS);
        let started = Instant::now();
        let mut latencies: Vec<f64> = std::thread::scope(|scope| {
            let threads: Vec<_> = (0..BATCH_CAMERAS)
                .map(|camera| {
                    let (detector, barrier, frames) = (&detector, &barrier, &frames);
                    scope.spawn(move || {
                        let mut scratch = cityeye::infer::Scratch::default();
                        barrier.wait();
                        (0..BATCH_DETECTIONS)
                            .map(|i| {
                                let frame = &frames[(camera + i * BATCH_CAMERAS) % frames.len()];
                                let start = Instant::now();
                                detector.detect(frame, &mut scratch).map(|_| ())?;
                                Ok(start.elapsed().as_secs_f64() * 1e3)
                            })
                            .collect::<std::result::Result<Vec<f64>, cityeye::infer::InferError>>()
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().expect("a detecting thread")).collect::<Vec<_>>()
        })
        .into_iter()
        .collect::<std::result::Result<Vec<Vec<f64>>, _>>()
        .map_err(|e| e.to_string())?
        .concat();
        let fps = latencies.len() as f64 / started.elapsed().as_secs_f64();
        latencies.sort_by(f64::total_cmp);
        let at = |q: f64| latencies[((latencies.len() - 1) as f64 * q).round() as usize];
        let name = match max_batch {
            1 => "each frame alone".to_string(),
            n => format!("max_batch {n}, batch_wait_ms {wait_ms}"),
        };
        let _ = writeln!(out, "| {name} | {fps:.1} | {:.1} | {:.1} |", at(0.5), at(0.99));
    }
    let _ = writeln!(
        out,
        "\n{BATCH_CAMERAS} threads share one detector ({} sessions), each detecting \
         {BATCH_DETECTIONS} vtest frames back to back; latency is one `detect` call, \
         letterboxing and waiting for the batch included.",
        config.models[0].session_count()
    );
    Ok(out)
}

fn table(rows: &[Row]) -> String {
    let mut out = String::from(
        "| configuration | frames/s | ms/frame | ratio to ceiling | CPU ms/frame |\n|---|---:|---:|---:|---:|\n",
    );
    for row in rows {
        let ratio = row.ratio.map_or("—".to_string(), |r| format!("{r:.2}"));
        let cpu = row.cpu_ms.map_or("—".to_string(), |ms| format!("{ms:.2}"));
        let _ = writeln!(
            out,
            "| {} | {:.1} | {:.2} | {ratio} | {cpu} |",
            row.configuration,
            row.fps,
            1000.0 / row.fps
        );
    }
    out
}

/// CPU, cores, date and the library versions in play.
fn machine() -> String {
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|info| {
            info.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split_once(':'))
                .map(|(_, name)| name.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into());
    let onnxruntime = std::fs::canonicalize(ort_library())
        .ok()
        .and_then(|p| p.file_name().map(|f| f.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "not found".into());
    let gstreamer =
        gst::init().map_or("unavailable".into(), |()| gst::version_string().to_string());
    format!(
        "- date: {}\n- machine: {cpu}, {cores} cores (nproc)\n- {gstreamer}; ONNX Runtime {onnxruntime}\n\
         - model: shared yolox_nano.onnx (416x416); video: shared vtest.avi",
        chrono::Utc::now().format("%Y-%m-%d %H:%M UTC")
    )
}

/// What one decoding pass saw.
struct Decoded {
    frames: u64,
    seconds: f64,
    cpu_seconds: f64,
    /// Stream time covered: the end of the last frame.
    video_seconds: f64,
    width: u32,
    height: u32,
}

impl Decoded {
    fn fps(&self) -> f64 {
        self.frames as f64 / self.seconds
    }

    fn native_fps(&self) -> f64 {
        self.frames as f64 / self.video_seconds
    }

    /// CPU per frame, milliseconds.
    fn cpu_ms(&self) -> f64 {
        self.cpu_seconds * 1e3 / self.frames as f64
    }
}

/// The pass that cost the least CPU a frame: the ceiling is the best the decoder does.
fn cheapest(passes: Vec<Decoded>) -> Decoded {
    let cheapest = passes.into_iter().min_by(|a, b| a.cpu_ms().total_cmp(&b.cpu_ms()));
    cheapest.expect("at least one decoding pass")
}

/// Decodes a video into an I420 appsink, as cityeye does, as fast as it goes on one thread.
fn decode_video(video: &Path) -> Result<Decoded> {
    decode_frames(video, false)
}

/// [`decode_video`], with `keyframes`: delta frames dropped before the decoder, as a camera
/// with `decode = "keyframes"` does.
fn decode_frames(video: &Path, keyframes: bool) -> Result<Decoded> {
    gst::init().map_err(|e| format!("GStreamer: {e}"))?;
    let only_keys =
        if keyframes { "parsebin ! identity drop-buffer-flags=delta-unit ! " } else { "" };
    let description = format!(
        "filesrc location=\"{}\" ! {only_keys}decodebin ! videoconvert ! video/x-raw,format=I420 \
         ! appsink name=sink sync=false",
        video.display()
    );
    let pipeline = gst::parse::launch(&description)
        .map_err(|e| format!("decode pipeline: {e}"))?
        .downcast::<gst::Pipeline>()
        .map_err(|_| "not a pipeline")?;
    ingest::single_threaded_decoders(&pipeline);
    let sink = pipeline
        .by_name("sink")
        .and_then(|e| e.downcast::<gst_app::AppSink>().ok())
        .ok_or("no appsink")?;
    let started = Instant::now();
    pipeline.set_state(gst::State::Playing).map_err(|e| format!("decode pipeline: {e}"))?;
    let cpu = cpu_seconds();
    let mut decoded = Decoded {
        frames: 0,
        seconds: 0.0,
        cpu_seconds: 0.0,
        video_seconds: 0.0,
        width: 0,
        height: 0,
    };
    let outcome = loop {
        let Some(sample) = sink.try_pull_sample(gst::ClockTime::from_seconds(10)) else {
            break if sink.is_eos() { Ok(()) } else { Err(bus_error(&pipeline)) };
        };
        let buffer = sample.buffer().ok_or("a sample without a buffer")?;
        let end = buffer.pts().unwrap_or_default() + buffer.duration().unwrap_or_default();
        decoded.video_seconds = end.nseconds() as f64 / 1e9;
        if decoded.frames == 0 {
            let caps = sample.caps().ok_or("a frame without caps")?;
            let info = gst_video::VideoInfo::from_caps(caps).map_err(|e| e.to_string())?;
            (decoded.width, decoded.height) = (info.width(), info.height());
        }
        decoded.frames += 1;
    };
    decoded.seconds = started.elapsed().as_secs_f64();
    decoded.cpu_seconds = cpu_seconds() - cpu;
    let _ = pipeline.set_state(gst::State::Null);
    outcome.map(|()| decoded)
}

fn bus_error(pipeline: &gst::Pipeline) -> String {
    let message = pipeline.bus().and_then(|bus| bus.pop_filtered(&[gst::MessageType::Error]));
    match message.as_ref().map(|m| m.view()) {
        Some(gst::MessageView::Error(e)) => format!("decoding failed: {}", e.error()),
        _ => "decoding stalled".into(),
    }
}

/// Replays vtest.avi through the demo camera at `analysis_fps`, into a temporary folder; also
/// the CPU seconds it took.
fn replay(config: &mut Config, models: &Models, analysis_fps: f64) -> Result<(ReplaySummary, f64)> {
    let camera = config.cameras.first_mut().ok_or("the demo config has no camera")?;
    camera.analysis_fps = analysis_fps;
    let camera = camera.id.clone();
    let out = tempfile::tempdir().map_err(|e| e.to_string())?;
    let request = ReplayRequest {
        camera: &camera,
        input: Path::new(VIDEO),
        out_dir: out.path(),
        start: SystemTime::now(),
        annotate: None,
    };
    let cpu = cpu_seconds();
    let summary = replay::replay(config, models, &request, &Arc::default())
        .map_err(|e| format!("replay at analysis_fps {analysis_fps}: {e:?}"))?;
    eprintln!(
        "  analysis_fps {analysis_fps}: {} frames analysed in {:.2} s, {} incidents",
        summary.frames_analysed, summary.seconds, summary.incidents
    );
    Ok((summary, cpu_seconds() - cpu))
}

fn ort_library() -> PathBuf {
    std::env::var_os("ORT_DYLIB_PATH").map_or_else(|| PathBuf::from(ORT_LIBRARY), PathBuf::from)
}

/// Runs this program again as `--inference-ceiling` and reads its `ceiling<TAB>name<TAB>fps`
/// lines.
fn inference_ceilings() -> Result<Vec<(String, f64)>> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let output = Command::new(exe)
        .arg(CEILING_ARG)
        .output()
        .map_err(|e| format!("cannot start the inference child: {e}"))?;
    let stdout = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        return Err(format!(
            "the inference child failed: {}",
            String::from_utf8_lossy(&output.stderr).trim()
        ));
    }
    stdout
        .lines()
        .filter_map(|l| l.strip_prefix("ceiling\t"))
        .map(|l| {
            let (name, fps) = l.split_once('\t').ok_or("bad child output")?;
            Ok((name.to_string(), fps.parse().map_err(|_| "bad child output")?))
        })
        .collect()
}

/// Child process: ONNX Runtime alone, three ways, on frame 0 of vtest.avi.
fn inference_ceiling_child() -> Result<()> {
    let config = Config::load(Path::new(DEMO_CONFIG)).map_err(|e| e.to_string())?;
    let frame = ingest::first_frame(&config.cameras[0]).map_err(|e| e.to_string())?;
    let mut input = vec![0.0; 3 * SIDE * SIDE];
    let spec = InputSpec::new(SIDE, SIDE, &ModelFormat::Yolox.preprocessing());
    letterbox_frame(&frame, &spec, &mut input);
    let library = ort_library();
    if !library.is_file() {
        return Err(format!("ONNX Runtime not found at {}", library.display()));
    }
    let env = ort::init_from(&library)
        .map_err(|e| format!("cannot load {}: {e}", library.display()))?
        .with_name("streams-bench")
        .build()
        .map_err(|e| e.to_string())?;

    let mut one = session(&env, 1)?;
    println!("ceiling\t1 session × 1 intra-op thread\t{}", timed_fps(&mut one, &input, None)?);
    drop(one);
    let mut two = session(&env, 2)?;
    println!("ceiling\t1 session × 2 intra-op threads\t{}", timed_fps(&mut two, &input, None)?);
    drop(two);

    let start = Barrier::new(2);
    let fps: Result<f64> = std::thread::scope(|s| {
        let workers: Vec<_> = (0..2)
            .map(|_| {
                s.spawn(|| {
                    let mut session = session(&env, 1)?;
                    timed_fps(&mut session, &input, Some(&start))
                })
            })
            .collect();
        workers.into_iter().map(|w| w.join().map_err(|_| "a worker panicked".to_string())?).sum()
    });
    println!("ceiling\t2 sessions × 1 intra-op thread, concurrent\t{}", fps?);
    Ok(())
}

fn session(env: &Environment, threads: usize) -> Result<Session> {
    // Builder errors carry the builder, which is not Send: keep only their text.
    Session::builder(env)
        .map_err(|e| e.to_string())?
        .with_intra_threads(threads)
        .map_err(|e| e.to_string())?
        .commit_from_file(MODEL)
        .map_err(|e| format!("cannot load {MODEL}: {e}"))
}

/// Frames/s of `session` over the timed runs; with `start`, the timed runs begin together with
/// the other workers'.
fn timed_fps(session: &mut Session, input: &[f32], start: Option<&Barrier>) -> Result<f64> {
    let mut infer = || -> Result<()> {
        let tensor = TensorRef::from_array_view(([1usize, 3, SIDE, SIDE], input))
            .map_err(|e| e.to_string())?;
        session.run(ort::inputs!["images" => tensor]).map_err(|e| e.to_string())?;
        Ok(())
    };
    for _ in 0..WARM_UP_RUNS {
        infer()?;
    }
    if let Some(start) = start {
        start.wait();
    }
    let began = Instant::now();
    for _ in 0..TIMED_RUNS {
        infer()?;
    }
    Ok(TIMED_RUNS as f64 / began.elapsed().as_secs_f64())
}
