//! `cityeye simulate` serves a site's loopback cameras from video files: the node's own probe
//! reads them as cameras; a URL of another machine is refused; a stream loops on past the end of
//! its file with time running on.

mod common;

use std::io::{BufRead, BufReader};
use std::net::Ipv4Addr;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, mpsc};
use std::time::{Duration, SystemTime};

use cityeye::commands::simulate::{Codec, Mount, Server};
use cityeye::config::Config;
use common::*;

fn simulate(config: &Path) -> Command {
    let mut command = Command::new(env!("CARGO_BIN_EXE_cityeye"));
    command.args(["simulate", "--config"]).arg(config);
    command
}

#[test]
fn simulated_cameras_pass_the_probe_and_stop_on_sigterm() {
    let broker = Mosquitto::start();
    let url = format!("rtsp://127.0.0.1:{}/kerb", free_port());
    let (_dir, config) = write_config(&kerb_config(broker.port, false, &url, 5.0));
    let mut child = simulate(&config)
        .arg("--default-video")
        .arg(shared("testdata/vtest.avi"))
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let (tx, lines) = mpsc::channel();
    let stdout = BufReader::new(child.stdout.take().unwrap());
    std::thread::spawn(move || stdout.lines().map_while(Result::ok).for_each(|l| drop(tx.send(l))));
    let mut table = Vec::new();
    while let Ok(line) = lines.recv_timeout(Duration::from_secs(30)) {
        let done = line.starts_with("serving ");
        table.push(line);
        if done {
            break;
        }
    }
    assert!(table.last().is_some_and(|l| l.starts_with("serving 1 camera as H.264")), "{table:?}");
    let row: Vec<&str> = table[1].split_whitespace().collect();
    assert_eq!(row[..2], ["kerb", url.as_str()], "{table:?}");

    let probe = Command::new(env!("CARGO_BIN_EXE_cityeye"))
        .args(["check", "--probe", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&probe.stdout).into_owned();
    assert!(probe.status.success(), "{report}{}", String::from_utf8_lossy(&probe.stderr));
    let kerb = report.lines().find(|l| l.starts_with("kerb ")).unwrap();
    let cells: Vec<&str> = kerb.split_whitespace().collect();
    assert_eq!(cells[1..4], ["yes", "H.264", "768x576"], "{report}");

    let _ = Command::new("kill").arg("-TERM").arg(child.id().to_string()).status();
    let status = child.wait().unwrap();
    assert!(status.success(), "stops cleanly on SIGTERM: {status:?}");
}

#[test]
fn a_camera_of_another_machine_is_refused() {
    let config = kerb_config(1883, false, "rtsp://admin:pw@192.0.2.10:8554/kerb", 5.0);
    let (_dir, config) = write_config(&config);
    let out = simulate(&config).arg("--default-video").arg(shared("testdata/vtest.avi")).output();
    let out = out.unwrap();
    assert_eq!(out.status.code(), Some(2));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr
            .contains("camera kerb: rtsp://admin:***@192.0.2.10:8554/kerb is not on this machine"),
        "{stderr}"
    );
    assert!(stderr.contains("will not impersonate a real camera"), "{stderr}");

    let out = simulate(&config).arg("--video").arg("kerb").output().unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("expected CAMERA=FILE"));
}

/// A 1 s clip of GStreamer's test pattern, 10 frames a second, as H.264 in MP4.
fn one_second_clip(path: &Path) {
    gstreamer::init().unwrap();
    let made = Command::new("gst-launch-1.0")
        .args(["-q", "videotestsrc", "num-buffers=10", "pattern=ball", "!"])
        .args(["video/x-raw,width=320,height=240,framerate=10/1", "!", "x264enc", "!"])
        .args(["mp4mux", "!", "filesink"])
        .arg(format!("location={}", path.display()))
        .status()
        .unwrap();
    assert!(made.success());
}

#[test]
fn a_stream_loops_past_the_end_of_its_file_with_time_running_on() {
    let dir = tempfile::tempdir().unwrap();
    let clip = dir.path().join("clip.mp4");
    one_second_clip(&clip);
    let mount = Mount { path: "/loop".into(), video: clip, udp_only: false };
    let server = Server::start(Ipv4Addr::LOCALHOST.into(), 0, &[mount], Codec::H264).unwrap();
    let (_config_dir, path) = write_config(&kerb_config(1883, false, &server.url("/loop"), 5.0));
    let mut camera = Config::load(&path).unwrap_or_else(|e| panic!("{e}")).cameras.remove(0);
    // Above the stream's rate: every frame, however its arrival jitters.
    camera.analysis_fps = 20.0;

    let stop = AtomicBool::new(false);
    let mut times = Vec::new();
    let mode = cityeye::ingest::Mode::Replay { start: SystemTime::now() };
    let ran = cityeye::ingest::run(
        &camera,
        mode,
        &stop,
        &Arc::default(),
        &mut |_| {},
        &mut |frame| {
            times.push(frame.stream_time_s);
            if frame.stream_time_s >= 3.5 {
                stop.store(true, Ordering::Relaxed);
            }
        },
        None,
    );
    let ran = ran.map_err(|e| e.to_string());
    assert_eq!(ran, Err("stopped".into()), "the stream never ended; frames at {times:?}");
    assert!(times.windows(2).all(|w| w[1] > w[0]), "time runs on: {times:?}");
    let steps: Vec<f64> = times.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        steps.iter().all(|s| (s - 0.1).abs() < 0.02),
        "one frame every 0.1 s, across the loops too: {times:?}"
    );
}
