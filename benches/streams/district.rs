//! Covering a district (issue 14): how far key-frame analysis and patrols stretch one box.
//!
//! - **Key-frame cameras**: 720p H.264 RTSP cameras at 25 frames/s with a key frame every 2 s,
//!   each with `decode = "keyframes"` and `illegal_parking`, served as in [`super::live`]
//!   (one server, no re-encoding), `cityeye run` measured over a window: each camera's analysed
//!   rate against its key-frame rate, CPU by stage, resident memory per camera. The bound is
//!   what the cores allow at the receiving (one stream alone), decoding (key frames only) and
//!   inference ceilings measured in this run, and what the harness (server, broker) leaves of
//!   them. Trials search for the largest count carried, unless
//!   `CITYEYE_BENCH_KEYFRAME_CAMERAS` names one.
//! - **Patrol**: cameras served by the project's `simulate` server (vtest.avi re-encoded for
//!   each session, as `cityeye simulate` does), all in one `[[patrols]]` patrol: the real
//!   revisit period from the node's stats, and each visit's time from its start to its first
//!   analysed frame from the node's log.
//!
//! - **Sub-stream**: cameras whose 1080p main stream comes with a 640x360 detect sub-stream
//!   (`record_url` beside `url`), against cameras detecting on the 1080p stream itself: the
//!   most real-time cameras (every frame decoded, 5 analysed a second) carried each way.
//!
//! The counts come from the environment, so a loaded or small machine can run a smaller
//! version: `CITYEYE_BENCH_KEYFRAME_CAMERAS` (one trial with that many instead of the search), `CITYEYE_BENCH_PATROL_CAMERAS`
//! (256), `CITYEYE_BENCH_PATROL_SLOTS` (8), `CITYEYE_BENCH_PATROL_VISIT_S` (10); so do the
//! sections run (`CITYEYE_BENCH_DISTRICT=keyframes,patrol`; all three by default).

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use cityeye::commands::simulate::{Codec, Mount, Server};

use super::common::{Message, Mosquitto, Subscriber};
use super::live::{self, Decoding};
use super::{CLASSES, MODEL, Result, VIDEO, cheapest, decode_frames, inference_ceilings};

/// The key-frame footage: one every 2 s at 25 frames/s.
const KEY_S: u32 = 2;

fn count(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// `--district`: the inference ceiling, then the sections.
pub fn run() -> Result<()> {
    let (ceiling, inference_ms) = preamble("district")?;
    sections(ceiling, inference_ms)
}

/// `--substream`: the inference ceiling, then the sub-stream section alone.
pub fn run_substream() -> Result<()> {
    let (ceiling, inference_ms) = preamble("sub-stream")?;
    substream(ceiling, inference_ms)
}

/// Prints the report's title and machine, and measures the inference ceiling: the best
/// frames/s, and one frame's milliseconds on one thread.
fn preamble(title: &str) -> Result<(f64, f64)> {
    println!("# cityeye {title} benchmark\n");
    println!("{}\n", super::machine());
    eprintln!("inference ceiling (child process) ...");
    let ceilings = inference_ceilings()?;
    let ceiling = ceilings.iter().map(|(_, fps)| *fps).fold(0.0, f64::max);
    let single = ceilings.first().map_or(f64::NAN, |(_, fps)| *fps);
    Ok((ceiling, 1e3 / single))
}

/// Every section, against the inference ceiling of the same run (`inference_ms`: one frame
/// on one thread).
/// `CITYEYE_BENCH_DISTRICT` (`keyframes,substream,patrol` by default) picks which.
pub fn sections(ceiling: f64, inference_ms: f64) -> Result<()> {
    let chosen = std::env::var("CITYEYE_BENCH_DISTRICT")
        .unwrap_or_else(|_| "keyframes,substream,patrol".into());
    let wanted = |name: &str| chosen.split(',').any(|s| s.trim() == name);
    if wanted("keyframes") {
        keyframe_cameras(ceiling, inference_ms)?;
    }
    if wanted("substream") {
        substream(ceiling, inference_ms)?;
    }
    if wanted("patrol") {
        patrol()?;
    }
    Ok(())
}

/// Real-time cameras at 5 analysed frames/s: detecting on a 640x360 sub-stream, clips from
/// the 1080p main stream, against detecting on the 1080p stream.
fn substream(ceiling: f64, inference_ms: f64) -> Result<()> {
    eprintln!("sub-stream: 1080p and 640x360 footage ...");
    let main = live::footage_sized(VIDEO, 1, 1920, 1080)?;
    let sub = live::footage_sized(VIDEO, 1, 640, 360)?;
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let ways = [
        ("1080p main stream detected", live::Footage::one(&main), &main),
        (
            "640x360 sub-stream detected, 1080p recorded",
            live::Footage { detect: &sub, record: Some(&main) },
            &sub,
        ),
    ];
    let mut summary = Vec::new();
    println!("## Sub-stream cameras\n");
    for (label, footage, detected) in ways {
        let decode =
            cheapest((0..2).map(|_| decode_frames(detected, false)).collect::<Result<_>>()?);
        let per_camera_ms = 25.0 * decode.cpu_ms() + 5.0 * inference_ms;
        let bound = cores * 1e3 / per_camera_ms;
        eprintln!("sub-stream: {label}: bound {bound:.1}; trials ...");
        let (best, trials) =
            live::largest_carried(footage, Decoding::Every, bound, MODEL, CLASSES)?;
        println!(
            "**{label}** ({}x{} decoded, {:.2} ms of CPU a frame; a camera costs {per_camera_ms:.0} ms of CPU a second, so {cores} cores bound the box at {bound:.1} cameras):\n",
            decode.width,
            decode.height,
            decode.cpu_ms()
        );
        println!("{}", live::table(&trials, ceiling));
        let carried = best.and_then(|n| trials.iter().find(|t| t.cameras == n));
        if let Some(t) = carried {
            println!("{}\n", live::stages(t, decode.cpu_ms(), inference_ms));
        }
        summary.push((label, best, bound));
    }
    let said: Vec<String> = summary
        .iter()
        .map(|(label, best, bound)| match best {
            Some(n) => format!("{label}: {n} cameras ({:.2} of its bound)", *n as f64 / bound),
            None => format!("{label}: none"),
        })
        .collect();
    println!(
        "Largest count with every camera within 10 % of 5 analysed frames/s, each decoding \
         every frame of its detect stream (25 frames/s): {}.\n",
        said.join("; ")
    );
    Ok(())
}

fn keyframe_cameras(ceiling: f64, inference_ms: f64) -> Result<()> {
    eprintln!("key-frame cameras: 720p footage, a key frame every {KEY_S} s ...");
    let footage = live::footage(VIDEO, KEY_S)?;
    let all = cheapest((0..2).map(|_| decode_frames(&footage, false)).collect::<Result<_>>()?);
    let keys = cheapest((0..2).map(|_| decode_frames(&footage, true)).collect::<Result<_>>()?);
    eprintln!("key-frame cameras: receiving one stream alone ...");
    let receive_ms = live::receive_ms(&footage)?;
    let key_fps = 1.0 / f64::from(KEY_S);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    // A camera's CPU a second: receiving its stream, and its key frames decoded (their share of
    // the key-only pass's CPU, which parses every frame too) and analysed.
    let key_ms = keys.cpu_seconds * 1e3 / keys.frames as f64;
    let per_camera_ms = receive_ms + key_fps * (key_ms + inference_ms);
    let bound = cores * 1e3 / per_camera_ms;
    let decoding = Decoding::Keyframes { key_fps };
    let streams = live::Footage::one(&footage);
    let (best, trials) = match std::env::var("CITYEYE_BENCH_KEYFRAME_CAMERAS") {
        Ok(_) => {
            let cameras = count("CITYEYE_BENCH_KEYFRAME_CAMERAS", 100);
            eprintln!("key-frame cameras: bound {bound:.0}; trial with {cameras} ...");
            let trial = live::trial(streams, cameras, decoding, MODEL, CLASSES)?;
            (trial.carried().then_some(cameras), vec![trial])
        }
        Err(_) => {
            eprintln!("key-frame cameras: bound {bound:.0}; trials ...");
            live::largest_carried(streams, decoding, bound, MODEL, CLASSES)?
        }
    };
    println!("## Key-frame cameras\n");
    println!("{}", live::table(&trials, ceiling));
    println!(
        "720p H.264 at 25 frames/s ({}x{}), a key frame every {KEY_S} s. Decoding every frame \
         costs {:.2} ms of CPU a frame ({:.1} s for the file); dropping delta frames before the \
         decoder, {:.2} s for the file ({} key frames, {key_ms:.2} ms each, parsing every frame \
         included). Receiving one camera's stream alone (RTSP over TCP, jitter buffer, parsing) \
         costs {receive_ms:.1} ms of CPU a second. Each camera analyses its key frames \
         ({key_fps} a second; inference {inference_ms:.2} ms a frame): {per_camera_ms:.1} ms of \
         CPU a second, so {cores} cores bound the box at {bound:.0} cameras.\n",
        all.width,
        all.height,
        all.cpu_ms(),
        all.cpu_seconds,
        keys.cpu_seconds,
        keys.frames,
    );
    let carried = best.and_then(|n| trials.iter().find(|t| t.cameras == n));
    match carried {
        Some(t) => {
            let left = cores - t.harness_cpu_percent / 100.0;
            let bound_left = left * 1e3 / per_camera_ms;
            println!(
                "Largest count carried (every camera within 10 % of its {key_fps} frames/s): {} \
                 cameras, {:.0} % CPU, resident memory {:.1} MB a camera. The harness used {:.0} \
                 % of a core; the {left:.2} cores it left bound the box at {bound_left:.0}, and \
                 {} is {:.2} of that.\n",
                t.cameras,
                t.cpu_percent,
                t.rss_mb / t.cameras as f64,
                t.harness_cpu_percent,
                t.cameras,
                t.cameras as f64 / bound_left,
            );
            println!("{}\n", live::stages(t, key_ms, inference_ms));
        }
        None => println!("No count tried was carried.\n"),
    }
    Ok(())
}

/// A node config: `urls.len()` cameras watching vtest.avi's kerb, all in one patrol.
fn patrol_config(broker_port: u16, urls: &[String], slots: usize, visit_s: f64) -> String {
    let mut text = format!(
        "[node]\nid = \"bench\"\ndata_dir = \"data\"\n\n[mqtt]\nurl = \"mqtt://127.0.0.1:{broker_port}\"\n\
         stats_interval_s = 5\n\n[http]\nenabled = false\n\n[[models]]\nname = \"coco\"\n\
         path = \"{MODEL}\"\nformat = \"yolox\"\nclasses = \"{CLASSES}\"\n"
    );
    for (i, url) in urls.iter().enumerate() {
        let _ = write!(
            text,
            "\n[[cameras]]\nid = \"kerb-{i}\"\nurl = \"{url}\"\nmodel = \"coco\"\n  \
             decode = \"keyframes\"\n  [[cameras.zones]]\n  name = \"kerb\"\n  \
             polygon = [[0.80, 0.00], [1.00, 0.00], [1.00, 0.25], [0.80, 0.25]]\n  \
             [[cameras.algorithms]]\n  type = \"illegal_parking\"\n  zone = \"kerb\"\n"
        );
    }
    let _ = write!(
        text,
        "\n[[patrols]]\nid = \"district\"\ncameras = [\"kerb-*\"]\nslots = {slots}\nvisit_s = {visit_s}\n"
    );
    text
}

fn percentile(values: &mut [f64], q: f64) -> Option<f64> {
    values.sort_by(f64::total_cmp);
    let i = ((values.len() as f64 - 1.0) * q).round() as usize;
    values.get(i).copied()
}

fn patrol() -> Result<()> {
    let cameras = count("CITYEYE_BENCH_PATROL_CAMERAS", 256);
    let slots = count("CITYEYE_BENCH_PATROL_SLOTS", 8);
    let visit_s = count("CITYEYE_BENCH_PATROL_VISIT_S", 10) as f64;
    eprintln!("patrol: {cameras} simulated cameras, {slots} slots, visit_s {visit_s} ...");
    let mounts: Vec<Mount> = (0..cameras)
        .map(|i| Mount { path: format!("/kerb-{i}"), video: VIDEO.into(), udp_only: false })
        .collect();
    let server = Server::start(Ipv4Addr::LOCALHOST.into(), 0, &mounts, Codec::H264)?;
    let urls: Vec<String> = mounts.iter().map(|m| server.url(&m.path)).collect();
    let broker = Mosquitto::start();
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let path = dir.path().join("cityeye.toml");
    std::fs::write(&path, patrol_config(broker.port, &urls, slots, visit_s))
        .map_err(|e| e.to_string())?;
    let log_path = dir.path().join("node.log");
    let log = std::fs::File::create(&log_path).map_err(|e| e.to_string())?;
    let reports = Subscriber::connect(broker.port, "cityeye/bench/stats");
    let mut node = Command::new(env!("CARGO_BIN_EXE_cityeye"))
        .args(["--log-format", "json", "run", "--config"])
        .arg(&path)
        .env("RUST_LOG", "info")
        .stdout(Stdio::null())
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cityeye run: {e}"))?;
    // Two visits of every camera give each a revisit period; at most three rounds' worth of
    // the nominal period, and 30 minutes.
    let rounds = cameras.div_ceil(slots) as f64;
    let limit = Duration::from_secs_f64((3.0 * rounds * (visit_s + 1.0)).min(1800.0));
    let started = Instant::now();
    let revisited = |reports: &[Message]| {
        reports.last().is_some_and(|r| {
            let r = r.json();
            (0..cameras).all(|i| r["cameras"][format!("kerb-{i}")]["revisit_s"].is_number())
        })
    };
    let reports = reports.wait_until(limit, revisited);
    let ran_s = started.elapsed().as_secs_f64();
    let rss = live::rss_mb(node.id());
    let cpu = live::cpu_seconds(node.id());
    let _ = Command::new("kill").arg("-TERM").arg(node.id().to_string()).status();
    let _ = node.wait();
    let last = reports.last().map(Message::json).ok_or("no stats report")?;
    let mut revisits: Vec<f64> = (0..cameras)
        .filter_map(|i| last["cameras"][format!("kerb-{i}")]["revisit_s"].as_f64())
        .collect();
    let text = std::fs::read_to_string(&log_path).map_err(|e| e.to_string())?;
    let visits: Vec<serde_json::Value> = text
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .filter(|l| l["message"] == "visit done")
        .collect();
    let mut first_frames: Vec<f64> =
        visits.iter().filter_map(|v| v["first_frame_ms"].as_f64()).map(|ms| ms / 1e3).collect();
    let failed = text.lines().filter(|l| l.contains("stream lost")).count();
    let revisited_n = revisits.len();
    let first_n = first_frames.len();
    let s = |v: Option<f64>| v.map_or("—".to_string(), |v| format!("{v:.1}"));
    println!("## Patrol\n");
    println!(
        "| cameras | slots | visit_s | cameras revisited | revisit period s (median / max) | \
         visits | first frame s (p50 / p95) | failed opens | CPU % | RSS MB |\n\
         |---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n\
         | {cameras} | {slots} | {visit_s} | {revisited_n} | {} / {} | {} | {} / {} | {failed} | \
         {:.0} | {:.0} |\n",
        s(percentile(&mut revisits, 0.5)),
        s(percentile(&mut revisits, 1.0)),
        visits.len(),
        s(percentile(&mut first_frames, 0.5)),
        s(percentile(&mut first_frames, 0.95)),
        cpu.map_or(f64::NAN, |c| 100.0 * c / ran_s),
        rss.unwrap_or(f64::NAN),
    );
    println!(
        "Served by the project's RTSP simulator (vtest.avi, 768x576 at 10 frames/s, re-encoded \
         to H.264 for each session, key frame every 10 frames), in this process; each camera \
         decodes key frames only (`decode = \"keyframes\"`), as a slow-event camera would. The nominal \
         revisit period is {rounds} rounds of {visit_s} s = {:.0} s plus opening each stream. \
         {first_n} visits timed from the slot being taken to the first analysed frame; ran \
         {ran_s:.0} s.\n",
        rounds * visit_s
    );
    Ok(())
}
