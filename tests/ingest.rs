//! The ingest stage on every built-in pipeline template: RTSP with H.264 and H.265 (served by a
//! real gst-rtsp-server), a local file, and GStreamer's test pattern; and frame sampling to the
//! camera's `analysis_fps` by stream time.

mod common;

use std::time::SystemTime;

use cityeye::config::{CameraConfig, Config};
use cityeye::ingest;
use common::*;

fn camera(url: &str) -> (tempfile::TempDir, CameraConfig) {
    let (dir, path) = write_config(&kerb_config(1883, false, url, 5.0));
    let config = Config::load(&path).unwrap_or_else(|e| panic!("{e}"));
    (dir, config.cameras[0].clone())
}

fn assert_vtest_frame(url: &str) {
    let (_dir, camera) = camera(url);
    let frame = ingest::first_frame(&camera).unwrap_or_else(|e| panic!("{url}: {e}"));
    assert_eq!((frame.width, frame.height), (768, 576), "{url}");
    assert_eq!(frame.data.len(), 768 * 576 * 3);
    // Real picture content, not a blank frame: the grass and road span many grey levels.
    let levels: std::collections::HashSet<u8> = frame.data.iter().step_by(97).copied().collect();
    assert!(levels.len() > 100, "{url}: only {} distinct levels", levels.len());
}

#[test]
fn rtsp_h264_camera_is_decoded() {
    let server = RtspServer::start_with(&shared("testdata/vtest.avi"), Codec::H264);
    assert_vtest_frame(&server.url());
}

#[test]
fn rtsp_h265_camera_is_decoded() {
    let server = RtspServer::start_with(&shared("testdata/vtest.avi"), Codec::H265);
    assert_vtest_frame(&server.url());
}

#[test]
fn file_camera_is_decoded() {
    assert_vtest_frame(&format!("file://{}", shared("testdata/vtest.avi").display()));
}

#[test]
fn test_pattern_camera_has_the_size_it_asks_for() {
    let (_dir, camera) = camera("test://ball?width=320&height=240&fps=5");
    let frame = ingest::first_frame(&camera).unwrap();
    assert_eq!((frame.width, frame.height, frame.data.len()), (320, 240, 320 * 240 * 3));
}

#[test]
fn frames_are_sampled_to_analysis_fps_by_stream_time() {
    let (_dir, mut camera) = camera(&format!("file://{}", shared("testdata/vtest.avi").display()));
    camera.analysis_fps = 2.5; // every 4th frame of a 10 frames/s video
    let mut times = Vec::new();
    let start = SystemTime::UNIX_EPOCH;
    let decoded =
        replay_frames(&camera, start, &mut |f| times.push((f.stream_time_s, f.captured_at)));
    assert_eq!(decoded, 795);
    assert_eq!(times.len(), 199, "frames 0, 4, 8, … 792");
    for (i, (t, at)) in times.iter().enumerate() {
        assert!((t - i as f64 * 0.4).abs() < 1e-6, "frame {i} at {t} s");
        // Replay wall-clock time is the start plus stream time.
        let since = at.duration_since(start).unwrap().as_secs_f64();
        assert!((since - t).abs() < 1e-6);
    }
}

#[test]
fn a_camera_that_is_not_there_fails_with_a_reason() {
    let (_dir, camera) = camera(&format!("rtsp://127.0.0.1:{}/nothing", free_port()));
    let error = ingest::first_frame(&camera).unwrap_err();
    assert!(error.starts_with("rtspsrc") && error.contains("Could not open resource"), "{error}");
    let (_dir, camera) = camera_of_broken_file();
    let error = ingest::first_frame(&camera).unwrap_err();
    assert!(error.contains("Could not determine type of stream"), "{error}");
}

/// A "video" file holding text: decodebin cannot type it.
fn camera_of_broken_file() -> (tempfile::TempDir, CameraConfig) {
    let dir = tempfile::tempdir().unwrap();
    let video = dir.path().join("broken.mp4");
    std::fs::write(&video, "this is not a video").unwrap();
    let (config_dir, camera) = camera(&format!("file://{}", video.display()));
    drop(config_dir);
    (dir, camera)
}
