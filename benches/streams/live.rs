//! Live cameras on one box: how many 720p H.264 RTSP cameras at 25 frames/s, each analysed at
//! 5 frames/s, `cityeye run` carries on this machine, against the bound the ceilings set.
//!
//! The footage is vtest.avi scaled to 1280x720 at 25 frames/s and encoded once to H.264
//! (`target/bench/vtest-720p25.mp4`). An RTSP server in this process serves it without
//! re-encoding (so the server costs next to nothing), every camera of the node pulls the same
//! URL, and a mosquitto broker receives what the node publishes. Each trial has a server of its
//! own, so every camera starts at the beginning of the 79.5 s file and none reaches its end. A trial
//! runs the node for `WARM_UP` and then measures for `MEASURE`: each camera's analysed rate and
//! dropped frames from the node's stats topic, the process's CPU time and resident memory from
//! /proc, and the frame-to-PUBACK latency of incident messages from the stats' `latency_ms`.
//! `intrusion` on the whole frame with `update_s = 1` gives each camera a few incident
//! messages a second to measure latency on.
//!
//! Where the node's CPU goes is read per thread from /proc, by the threads' names: the built-in
//! `rtsp` template's `queue` runs the decoder (`queueN:src`), each camera's analysis (letterbox,
//! inference, tracking, rules) runs on `camera-*` threads, RTSP receiving on `rtpjitterbuffer`
//! and GStreamer's `task*` threads; the rest is publishing and the node's own upkeep.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use gstreamer as gst;
use gstreamer::prelude::*;
use gstreamer_rtsp_server as rtsp;
use gstreamer_rtsp_server::prelude::*;

use super::Result;
use super::common::{Message, Mosquitto, Subscriber};

const WIDTH: u32 = 1280;
const HEIGHT: u32 = 720;
const FPS: u32 = 25;
const ANALYSIS_FPS: f64 = 5.0;
const WARM_UP: Duration = Duration::from_secs(12);
const MEASURE: Duration = Duration::from_secs(20);
/// A camera starves below this share of its analysis rate.
const FAIR_SHARE: f64 = 0.9;

/// What each camera of a trial decodes and runs.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Decoding {
    /// Every frame, analysed at 5 frames/s, `intrusion` on the whole frame (incident messages
    /// to measure latency on).
    Every,
    /// Key frames only (`decode = "keyframes"`), each analysed, `illegal_parking` on the kerb:
    /// a slow-event camera. `key_fps` is the footage's key-frame rate.
    Keyframes { key_fps: f64 },
}

impl Decoding {
    /// The analysed frames a second a carried camera gets.
    fn expected_fps(self) -> f64 {
        match self {
            Decoding::Every => ANALYSIS_FPS,
            Decoding::Keyframes { key_fps } => key_fps,
        }
    }

    /// The camera's settings after its `url`.
    fn camera_settings(self) -> String {
        match self {
            Decoding::Every => format!(
                "analysis_fps = {ANALYSIS_FPS}\nmodel = \"coco\"\n  [[cameras.algorithms]]\n  \
                 type = \"intrusion\"\n  update_s = 1\n"
            ),
            Decoding::Keyframes { .. } => format!(
                "analysis_fps = {ANALYSIS_FPS}\ndecode = \"keyframes\"\nmodel = \"coco\"\n  \
                 [[cameras.zones]]\n  name = \"kerb\"\n  \
                 polygon = [[0.80, 0.00], [1.00, 0.00], [1.00, 0.25], [0.80, 0.25]]\n  \
                 [[cameras.algorithms]]\n  type = \"illegal_parking\"\n  zone = \"kerb\"\n"
            ),
        }
    }
}

/// What one trial with `cameras` cameras measured.
pub struct Trial {
    pub cameras: usize,
    pub decoding: Decoding,
    /// All cameras together.
    pub analysed_fps: f64,
    pub slowest_fps: f64,
    pub cpu_percent: f64,
    /// The cameras' RTSP server and TCP relays (this process) and the broker, on the same cores.
    pub harness_cpu_percent: f64,
    pub rss_mb: f64,
    pub latency_p50_ms: Option<f64>,
    pub latency_p99_ms: Option<f64>,
    /// Frames sampled for analysis but replaced by a newer one, all cameras, in the window.
    pub dropped: u64,
    /// The node's CPU by stage, in cores.
    pub stages: Stages,
    /// Frames decoded and analysed a second, all cameras.
    pub decoded_fps: f64,
}

/// A node's CPU time by pipeline stage, from its threads' names; the rest is the process's
/// time less theirs.
#[derive(Debug, Default, Clone, Copy)]
pub struct Stages {
    pub decoding: f64,
    pub analysis: f64,
    pub receiving: f64,
    pub rest: f64,
}

impl Stages {
    /// CPU seconds so far of process `pid`'s threads, by stage.
    fn of(pid: u32) -> Stages {
        let mut stages = Stages::default();
        let Ok(threads) = std::fs::read_dir(format!("/proc/{pid}/task")) else { return stages };
        for thread in threads.flatten() {
            let Ok(stat) = std::fs::read_to_string(thread.path().join("stat")) else { continue };
            let Some((name, seconds)) = name_and_cpu(&stat) else { continue };
            let stage = match name {
                n if n.starts_with("queue") => &mut stages.decoding,
                n if n.starts_with("camera-") => &mut stages.analysis,
                n if n.starts_with("rtpjitterbuffer") || n.starts_with("task") => {
                    &mut stages.receiving
                }
                _ => continue,
            };
            *stage += seconds;
        }
        stages
    }

    /// Cores used between `before` and `self`, over `seconds` in which the process used
    /// `cpu_seconds` (which keeps the time of threads that ended).
    fn cores_since(self, before: Stages, seconds: f64, cpu_seconds: f64) -> Stages {
        let decoding = (self.decoding - before.decoding) / seconds;
        let analysis = (self.analysis - before.analysis) / seconds;
        let receiving = (self.receiving - before.receiving) / seconds;
        let rest = cpu_seconds / seconds - decoding - analysis - receiving;
        Stages { decoding, analysis, receiving, rest }
    }
}

impl Trial {
    pub fn carried(&self) -> bool {
        self.slowest_fps >= FAIR_SHARE * self.decoding.expected_fps()
    }
}

/// What a trial's cameras stream: the footage they detect on and, for cameras with stream
/// roles, the larger footage of their record stream.
#[derive(Debug, Clone, Copy)]
pub struct Footage<'a> {
    pub detect: &'a Path,
    pub record: Option<&'a Path>,
}

impl<'a> Footage<'a> {
    /// One stream, analysed and clipped.
    pub fn one(detect: &'a Path) -> Footage<'a> {
        Footage { detect, record: None }
    }
}

/// The 720p footage with a key frame every `key_s` seconds, encoded once.
pub fn footage(video: &str, key_s: u32) -> Result<PathBuf> {
    footage_sized(video, key_s, WIDTH, HEIGHT)
}

/// The footage at `width`x`height`, 25 frames/s, a key frame every `key_s` seconds, encoded
/// once.
pub fn footage_sized(video: &str, key_s: u32, width: u32, height: u32) -> Result<PathBuf> {
    let size = match (width, height) {
        (WIDTH, HEIGHT) => "720p25".to_string(),
        (w, h) => format!("{w}x{h}p25"),
    };
    let name = match key_s {
        1 => format!("vtest-{size}.mp4"),
        s => format!("vtest-{size}-key{s}s.mp4"),
    };
    let out = Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench").join(name);
    if out.is_file() {
        return Ok(out);
    }
    std::fs::create_dir_all(out.parent().expect("a folder")).map_err(|e| e.to_string())?;
    let partial = out.with_extension("partial.mp4");
    let description = format!(
        "filesrc location=\"{video}\" ! decodebin ! videoconvert ! videoscale ! videorate \
         ! video/x-raw,format=I420,width={width},height={height},framerate={FPS}/1 \
         ! x264enc speed-preset=veryfast key-int-max={} option-string=scenecut=0 bitrate=3000 \
         ! h264parse ! mp4mux ! filesink location=\"{}\"",
        FPS * key_s,
        partial.display()
    );
    run_to_end(&description)?;
    std::fs::rename(&partial, &out).map_err(|e| e.to_string())?;
    Ok(out)
}

fn run_to_end(description: &str) -> Result<()> {
    gst::init().map_err(|e| e.to_string())?;
    let pipeline = gst::parse::launch(description).map_err(|e| e.to_string())?;
    pipeline.set_state(gst::State::Playing).map_err(|e| e.to_string())?;
    let bus = pipeline.bus().ok_or("no bus")?;
    let outcome = match bus.timed_pop_filtered(
        gst::ClockTime::from_seconds(600),
        &[gst::MessageType::Eos, gst::MessageType::Error],
    ) {
        Some(m) if m.type_() == gst::MessageType::Eos => Ok(()),
        Some(m) => Err(format!("encoding the footage failed: {m:?}")),
        None => Err("encoding the footage timed out".into()),
    };
    let _ = pipeline.set_state(gst::State::Null);
    outcome
}

/// An RTSP server on 127.0.0.1 serving the footage as it is, from its start for every client:
/// the detect stream at `/cam`, the record stream, if any, at `/main`.
pub struct Camera {
    pub url: String,
    pub record_url: Option<String>,
    _server: rtsp::RTSPServer,
    main_loop: gst::glib::MainLoop,
}

impl Camera {
    pub fn serve(footage: Footage<'_>) -> Result<Camera> {
        let server = rtsp::RTSPServer::new();
        server.set_address("127.0.0.1");
        server.set_service("0");
        let mounts = server.mount_points().ok_or("no mount points")?;
        let streams = std::iter::once(("/cam", footage.detect))
            .chain(footage.record.map(|record| ("/main", record)));
        for (path, file) in streams {
            let factory = rtsp::RTSPMediaFactory::new();
            factory.set_launch(&format!(
                "( filesrc location=\"{}\" ! qtdemux ! h264parse config-interval=-1 \
                 ! rtph264pay name=pay0 pt=96 )",
                file.display()
            ));
            mounts.add_factory(path, factory);
        }
        let context = gst::glib::MainContext::new();
        server.attach(Some(&context)).map_err(|e| e.to_string())?;
        let main_loop = gst::glib::MainLoop::new(Some(&context), false);
        let running = main_loop.clone();
        std::thread::spawn(move || running.run());
        let base = format!("rtsp://127.0.0.1:{}", server.bound_port());
        let record_url = footage.record.map(|_| format!("{base}/main"));
        Ok(Camera { url: format!("{base}/cam"), record_url, _server: server, main_loop })
    }
}

impl Drop for Camera {
    fn drop(&mut self) {
        self.main_loop.quit();
    }
}

/// A node config with `cameras` cameras on `camera`'s streams, decoding as `decoding` says.
fn config(
    broker_port: u16,
    camera: &Camera,
    cameras: usize,
    decoding: Decoding,
    model: &str,
    classes: &str,
) -> String {
    let mut text = format!(
        "[node]\nid = \"bench\"\ndata_dir = \"data\"\n\n[mqtt]\nurl = \"mqtt://127.0.0.1:{broker_port}\"\n\
         stats_interval_s = 5\n\n[http]\nenabled = false\n\n[[models]]\nname = \"coco\"\n\
         path = \"{model}\"\nformat = \"yolox\"\nclasses = \"{classes}\"\n"
    );
    let record =
        camera.record_url.as_ref().map_or(String::new(), |r| format!("record_url = \"{r}\"\n"));
    for i in 0..cameras {
        let _ = write!(
            text,
            "\n[[cameras]]\nid = \"cam{i}\"\nurl = \"{}\"\n{record}{}",
            camera.url,
            decoding.camera_settings()
        );
    }
    text
}

/// The CPU one camera's RTSP stream costs to receive, ms a second: `gst-launch-1.0` receiving
/// `footage` from its own server as the node's `rtsp` template does (RTP over TCP, the jitter
/// buffer, depayloading, parsing), nothing decoded, over 10 s after 2 s of warm-up.
pub fn receive_ms(footage: &Path) -> Result<f64> {
    let camera = Camera::serve(Footage::one(footage))?;
    let mut receiver = Command::new("gst-launch-1.0")
        .args([
            "-q",
            "rtspsrc",
            &format!("location={}", camera.url),
            "protocols=tcp",
            "latency=200",
        ])
        .args(["!", "application/x-rtp,media=video", "!", "parsebin", "!", "fakesink"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("gst-launch-1.0: {e}"))?;
    std::thread::sleep(Duration::from_secs(2));
    let before = cpu_seconds(receiver.id());
    let started = Instant::now();
    std::thread::sleep(Duration::from_secs(10));
    let after = cpu_seconds(receiver.id());
    let seconds = started.elapsed().as_secs_f64();
    let _ = receiver.kill();
    let _ = receiver.wait();
    match (before, after) {
        (Some(b), Some(a)) if a > b => Ok((a - b) * 1e3 / seconds),
        _ => Err("the RTSP receiver did not run".into()),
    }
}

/// CPU seconds (user and system) process `pid` has used.
pub fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    name_and_cpu(&stat).map(|(_, seconds)| seconds)
}

/// The name and CPU seconds (user and system) in a process's or thread's `stat`.
fn name_and_cpu(stat: &str) -> Option<(&str, f64)> {
    // The name is in parentheses and may hold spaces; utime and stime are fields 14 and 15.
    let (head, tail) = stat.rsplit_once(')')?;
    let name = head.split_once('(')?.1;
    let fields: Vec<&str> = tail.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // SAFETY: sysconf has no preconditions.
    let per_second = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
    Some((name, ticks / per_second))
}

pub fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// Runs `cityeye run` with `cameras` cameras on `footage` and measures it.
pub fn trial(
    footage: Footage<'_>,
    cameras: usize,
    decoding: Decoding,
    model: &str,
    classes: &str,
) -> Result<Trial> {
    let camera = Camera::serve(footage)?;
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("cityeye.toml");
    std::fs::write(&path, config(broker.port, &camera, cameras, decoding, model, classes))
        .map_err(|e| e.to_string())?;
    let reports = Subscriber::connect(broker.port, "cityeye/bench/stats");
    let mut node = Command::new(env!("CARGO_BIN_EXE_cityeye"))
        .args(["run", "--config"])
        .arg(&path)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .map_err(|e| format!("cityeye run: {e}"))?;
    std::thread::sleep(WARM_UP);
    let pid = node.id();
    let harness = || Some(cpu_seconds(std::process::id())? + cpu_seconds(broker.pid())?);
    let (cpu_before, seen_before) = (cpu_seconds(pid), reports.messages().len());
    let (harness_before, stages_before) = (harness(), Stages::of(pid));
    let started = Instant::now();
    std::thread::sleep(MEASURE);
    let cpu = cpu_seconds(pid).zip(cpu_before).map(|(after, before)| after - before);
    let harness = harness().zip(harness_before).map(|(after, before)| after - before);
    let seconds = started.elapsed().as_secs_f64();
    let stages = Stages::of(pid).cores_since(stages_before, seconds, cpu.unwrap_or(f64::NAN));
    let rss = rss_mb(pid);
    let _ = Command::new("kill").arg("-TERM").arg(pid.to_string()).status();
    let _ = node.wait();
    let reports: Vec<serde_json::Value> =
        reports.messages()[seen_before..].iter().map(Message::json).collect();
    let (first, last) = match (reports.first(), reports.last()) {
        (Some(first), Some(last)) if reports.len() >= 2 => (first, last),
        _ => return Err(format!("{cameras} cameras: too few stats reports to measure")),
    };
    // Rates from the totals between the first and the last report of the window.
    let span = seconds_between(first, last).max(1.0);
    let mut per_camera = Vec::new();
    let (mut dropped, mut decoded) = (0, 0);
    for i in 0..cameras {
        let id = format!("cam{i}");
        let count = |report: &serde_json::Value, key: &str| {
            report["cameras"][&id][key].as_u64().unwrap_or_default()
        };
        per_camera
            .push((count(last, "frames_analysed") - count(first, "frames_analysed")) as f64 / span);
        dropped += count(last, "frames_dropped") - count(first, "frames_dropped");
        decoded += count(last, "frames_in") - count(first, "frames_in");
    }
    let latencies: Vec<&serde_json::Value> =
        reports[1..].iter().filter_map(|r| r.get("latency_ms")).collect();
    let p50 = median(latencies.iter().filter_map(|l| l["p50"].as_f64()).collect());
    let p99 = latencies.iter().filter_map(|l| l["p99"].as_f64()).reduce(f64::max);
    Ok(Trial {
        cameras,
        decoding,
        analysed_fps: per_camera.iter().sum(),
        slowest_fps: per_camera.iter().copied().fold(f64::INFINITY, f64::min),
        cpu_percent: cpu.map_or(f64::NAN, |c| 100.0 * c / seconds),
        harness_cpu_percent: harness.map_or(f64::NAN, |c| 100.0 * c / seconds),
        rss_mb: rss.unwrap_or(f64::NAN),
        latency_p50_ms: p50,
        latency_p99_ms: p99,
        dropped,
        stages,
        decoded_fps: decoded as f64 / span,
    })
}

fn seconds_between(first: &serde_json::Value, last: &serde_json::Value) -> f64 {
    let at = |r: &serde_json::Value| {
        r["at"]
            .as_str()
            .and_then(|t| chrono::DateTime::parse_from_rfc3339(t).ok())
            .map(|t| t.timestamp_millis() as f64 / 1e3)
    };
    at(last).zip(at(first)).map_or(0.0, |(b, a)| b - a)
}

fn median(mut values: Vec<f64>) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    values.get(values.len() / 2).copied()
}

/// Trials from the count the bound suggests, up while every camera is carried and down while
/// one starves (by one camera, or a twentieth of the count for large ones); the largest count
/// carried and every trial made.
pub fn largest_carried(
    footage: Footage<'_>,
    decoding: Decoding,
    bound: f64,
    model: &str,
    classes: &str,
) -> Result<(Option<usize>, Vec<Trial>)> {
    let mut trials = Vec::new();
    let mut n = ((0.85 * bound).floor() as usize).max(1);
    let first = trial(footage, n, decoding, model, classes)?;
    let up = first.carried();
    eprintln!("  {n} cameras: slowest {:.2} frames/s", first.slowest_fps);
    trials.push(first);
    let mut best = up.then_some(n);
    loop {
        let step = (n / 20).max(1);
        n = if up { n + step } else { n.saturating_sub(step) };
        if n == 0 || n as f64 > bound.ceil() + 2.0 * step as f64 {
            break;
        }
        let t = trial(footage, n, decoding, model, classes)?;
        eprintln!("  {n} cameras: slowest {:.2} frames/s", t.slowest_fps);
        let carried = t.carried();
        trials.push(t);
        match (up, carried) {
            (true, true) => best = Some(n),
            (true, false) => break,
            (false, true) => {
                best = Some(n);
                break;
            }
            (false, false) => {}
        }
    }
    trials.sort_by_key(|t| t.cameras);
    Ok((best, trials))
}

/// The latency goal: frame-to-PUBACK p99.
pub const P99_GOAL_MS: f64 = 150.0;

/// The largest count whose cameras are all carried with p99 latency within [`P99_GOAL_MS`]:
/// from the trials made, else from new trials below the smallest count tried (at most four).
pub fn largest_within_latency(
    footage: Footage<'_>,
    trials: &mut Vec<Trial>,
    model: &str,
    classes: &str,
) -> Result<Option<usize>> {
    let within = |t: &Trial| t.carried() && t.latency_p99_ms.is_some_and(|p| p <= P99_GOAL_MS);
    if let Some(t) = trials.iter().rev().find(|t| within(t)) {
        return Ok(Some(t.cameras));
    }
    let smallest = trials.first().map_or(1, |t| t.cameras);
    for n in (smallest.saturating_sub(4).max(1)..smallest).rev() {
        let t = trial(footage, n, Decoding::Every, model, classes)?;
        eprintln!("  {n} cameras: p99 {:?} ms", t.latency_p99_ms);
        let found = within(&t);
        trials.insert(0, t);
        if found {
            return Ok(Some(n));
        }
    }
    Ok(None)
}

/// Where a trial's CPU went, stage by stage, against the ceilings' costs: which stage costs
/// more in the node than alone.
pub fn stages(t: &Trial, decode_ms: f64, inference_ms: f64) -> String {
    let s = t.stages;
    let per = |cores: f64, fps: f64| cores * 1e3 / fps.max(1e-9);
    format!(
        "At {} cameras the node used {:.2} cores: decoding {:.2} ({:.2} ms a frame; {decode_ms:.2} \
         alone), analysis {:.2} ({:.2} ms a frame: letterbox, inference, tracking, rules; \
         inference alone {inference_ms:.2}), RTSP receiving {:.2}, publishing and the rest {:.2}.",
        t.cameras,
        s.decoding + s.analysis + s.receiving + s.rest,
        s.decoding,
        per(s.decoding, t.decoded_fps),
        s.analysis,
        per(s.analysis, t.analysed_fps),
        s.receiving,
        s.rest,
    )
}

pub fn table(trials: &[Trial], ceiling: f64) -> String {
    let mut out = String::from(
        "| cameras | analysed frames/s (all) | slowest camera | ratio to inference ceiling | CPU % | harness CPU % | RSS MB (per camera) | latency p50 / p99 ms | frames dropped |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|\n",
    );
    let ms = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.0}"));
    for t in trials {
        let _ = writeln!(
            out,
            "| {} | {:.1} | {:.2} | {:.2} | {:.0} | {:.0} | {:.0} ({:.1}) | {} / {} | {} |",
            t.cameras,
            t.analysed_fps,
            t.slowest_fps,
            t.analysed_fps / ceiling,
            t.cpu_percent,
            t.harness_cpu_percent,
            t.rss_mb,
            t.rss_mb / t.cameras as f64,
            ms(t.latency_p50_ms),
            ms(t.latency_p99_ms),
            t.dropped,
        );
    }
    out
}
