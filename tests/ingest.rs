//! The ingest stage on every built-in pipeline template: RTSP with H.264 and H.265 (served by a
//! real gst-rtsp-server), a local file, and GStreamer's test pattern; frame sampling to the
//! camera's `analysis_fps` by stream time; and the encoded stream clips are cut from. Also what
//! the outside world does to it: a server that offers RTP over UDP only, an audio-only file, a
//! stream whose frame size changes.

mod common;

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::SystemTime;

use cityeye::config::{CameraConfig, Config, Transport};
use cityeye::ingest::{self, Encoded, IngestError};
use cityeye::wire::CameraState;
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
    assert_eq!(frame.bgr().len(), 768 * 576 * 3);
    // Real picture content, not a blank frame: the grass and road span many grey levels.
    let levels: std::collections::HashSet<u8> = frame.bgr().iter().step_by(97).copied().collect();
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
    assert_eq!((frame.width, frame.height, frame.bgr().len()), (320, 240, 320 * 240 * 3));
}

#[test]
fn frames_come_as_the_decoders_i420_and_convert_to_packed_bgr() {
    // At 322 pixels GStreamer pads the rows of every plane (to 324 and 164 bytes).
    for width in [320, 322] {
        let (_dir, camera) = camera(&format!("test://smpte?width={width}&height=240&fps=5"));
        let frame = ingest::first_frame(&camera).unwrap();
        let planes = frame.i420().expect("decoded video comes as I420");
        assert!(planes.y_stride >= width && planes.uv_stride >= width / 2);
        assert_eq!((frame.width, frame.bgr().len()), (width, width * 240 * 3));
        // The SMPTE bars are vertical in the top two thirds: every row there is the same,
        // which a padding byte left in would shift out of line.
        let row = |y: usize| &frame.bgr()[y * width * 3..(y + 1) * width * 3];
        assert!((1..150).all(|y| row(y) == row(0)), "width {width}: rows differ");
        // The first bar is white, the last blue (BGR order).
        let (first, last) = (&row(0)[..3], &row(0)[(width - 1) * 3..]);
        assert!(first.iter().all(|&c| c >= 250), "width {width}: {first:?}");
        assert!(last[0] > 150 && last[1] < 30 && last[2] < 30, "width {width}: {last:?}");
    }
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

/// The stream times of a camera's first `frames` sampled frames, and the encoded buffers that came
/// meanwhile.
fn frames_and_encoded(url: &str, frames: usize) -> (Vec<f64>, Vec<Encoded>) {
    let (_dir, camera) = camera(url);
    let stop = AtomicBool::new(false);
    let (mut times, mut encoded) = (Vec::new(), Vec::new());
    ingest::run(
        &camera,
        ingest::Mode::Replay { start: SystemTime::now() },
        &stop,
        &Default::default(),
        &mut |_| {},
        &mut |frame| {
            times.push(frame.stream_time_s);
            stop.store(times.len() == frames, Ordering::Relaxed);
        },
        Some(&mut |buffer| encoded.push(buffer)),
    )
    .unwrap_or_else(|e| assert_eq!(e.to_string(), "stopped", "{url}"));
    (times, encoded)
}

/// Every analysed frame but the last (whose buffer may still be on its way) has its encoded
/// buffer, at the same stream time; key frames are marked.
fn assert_encoded_stream(url: &str, media: &str) {
    let (times, encoded) = frames_and_encoded(url, 20);
    assert!(encoded.iter().all(|b| b.caps.starts_with(media)), "{url}: {}", encoded[0].caps);
    assert!(encoded.iter().all(|b| !b.data.is_empty()));
    assert!(encoded.iter().any(|b| b.keyframe), "{url}: no key frame");
    assert!(encoded.iter().any(|b| !b.keyframe), "{url}: only key frames");
    for t in &times[..times.len() - 1] {
        assert!(encoded.iter().any(|b| (b.pts_s - t).abs() < 1e-3), "{url}: no buffer at {t} s");
    }
}

#[test]
fn rtsp_cameras_expose_their_encoded_stream_in_stream_time() {
    let h264 = RtspServer::start_with(&shared("testdata/vtest.avi"), Codec::H264);
    assert_encoded_stream(&h264.url(), "video/x-h264");
    let h265 = RtspServer::start_with(&shared("testdata/vtest.avi"), Codec::H265);
    assert_encoded_stream(&h265.url(), "video/x-h265");
}

#[test]
fn file_cameras_expose_their_encoded_stream_and_test_patterns_have_none() {
    let video = format!("file://{}", shared("testdata/vtest.avi").display());
    assert_encoded_stream(&video, "video/x-divx");
    let (times, encoded) = frames_and_encoded("test://ball?width=320&height=240&fps=5", 3);
    assert_eq!((times.len(), encoded.len()), (3, 0));
}

#[test]
fn a_camera_that_is_not_there_fails_with_a_reason() {
    let (_dir, camera) = camera(&format!("rtsp://127.0.0.1:{}/nothing", free_port()));
    let error = ingest::first_frame(&camera).unwrap_err().to_string();
    assert!(error.starts_with("rtspsrc") && error.contains("Could not open resource"), "{error}");
    let (_dir, camera) = camera_of_broken_file();
    let error = ingest::first_frame(&camera).unwrap_err().to_string();
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

#[test]
fn a_server_offering_only_udp_is_reached_by_auto_and_udp_and_refuses_tcp_with_461() {
    let server = RtspServer::start_udp_only(&shared("testdata/vtest.avi"));
    let (_dir, mut camera) = camera(&server.url());
    for transport in [None, Some(Transport::Auto), Some(Transport::Udp)] {
        camera.transport = transport;
        let frame =
            ingest::first_frame(&camera).unwrap_or_else(|e| panic!("transport {transport:?}: {e}"));
        assert_eq!((frame.width, frame.height), (768, 576));
    }
    camera.transport = Some(Transport::Tcp);
    let error = ingest::first_frame(&camera).unwrap_err();
    let text = error.to_string();
    assert!(matches!(error, IngestError::Rtsp { status: 461, .. }), "{error:?}");
    assert!(
        text.starts_with(
            "461 unsupported transport: the camera does not send RTP over TCP; \
             set transport = \"udp\" or \"auto\""
        ),
        "{text}"
    );
}

#[test]
fn a_path_the_server_does_not_serve_is_404_in_an_installers_words() {
    let server = RtspServer::start(&shared("testdata/vtest.avi"));
    let (_dir, camera) = camera(&server.url().replace("/camera", "/camera2"));
    let error = ingest::first_frame(&camera).unwrap_err();
    assert!(matches!(error, IngestError::Rtsp { status: 404, .. }), "{error:?}");
    let text = error.to_string();
    assert!(text.starts_with("404 not found: the camera has no stream at this path"), "{text}");
}

#[test]
fn an_audio_only_file_has_no_video_track() {
    let dir = tempfile::tempdir().unwrap();
    let (mp4, mka) = (dir.path().join("a.mp4"), dir.path().join("a.mka"));
    audio_only_mp4(&mp4);
    gst_launch(&format!(
        "audiotestsrc num-buffers=50 ! audioconvert ! opusenc ! matroskamux ! filesink location={}",
        mka.display()
    ));
    for (file, media) in [(mp4, "audio/mpeg"), (mka, "audio/x-opus")] {
        let name = file.display();
        let (_config, camera) = camera(&format!("file://{}", file.display()));
        let error = ingest::first_frame(&camera).unwrap_err();
        assert!(matches!(error, IngestError::NoVideoTrack { .. }), "{name}: {error:?}");
        assert_eq!(error.to_string(), format!("no video track: the stream holds only {media}"));
    }
}

#[test]
fn a_change_of_frame_size_is_reported_online_with_the_new_size() {
    // Two segments in one MPEG-TS file: 320x240, then 640x480 (new SPS, same stream).
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("resized.ts");
    let segment = |w: u32, h: u32| {
        format!(
            "videotestsrc num-buffers=10 ! video/x-raw,width={w},height={h},framerate=10/1 ! c."
        )
    };
    gst_launch(&format!(
        "concat name=c ! videoconvert ! x264enc key-int-max=5 speed-preset=ultrafast ! h264parse \
         ! mpegtsmux ! filesink location={} {} {}",
        file.display(),
        segment(320, 240),
        segment(640, 480)
    ));
    let (_config, camera) = camera(&format!("file://{}", file.display()));
    let (mut states, mut sizes) = (Vec::new(), Vec::new());
    ingest::run(
        &camera,
        ingest::Mode::Replay { start: SystemTime::now() },
        &AtomicBool::new(false),
        &Default::default(),
        &mut |state| states.push(state),
        &mut |frame| sizes.push((frame.width, frame.height)),
        None,
    )
    .unwrap();
    assert_eq!(sizes.first(), Some(&(320, 240)));
    assert_eq!(sizes.last(), Some(&(640, 480)));
    assert_eq!(
        states,
        [
            CameraState::Connecting,
            CameraState::Online { width: 320, height: 240 },
            CameraState::Online { width: 640, height: 480 },
        ]
    );
}

#[test]
fn each_sessions_first_frame_comes_after_the_encoded_stream_up_to_it() {
    use std::cell::Cell;
    use std::sync::{Arc, Mutex};
    // A live RTSP camera that is cut off once and comes back: at the first frame of each
    // session, its key frame is already handed on, so that an incident found on that frame
    // (the first after a reconnect) has video to cut its clip from.
    let mut server = RtspServer::start(&shared("testdata/vtest.avi"));
    let (_dir, camera) = camera(&server.url());
    let stop = AtomicBool::new(false);
    let encoded = Mutex::new(Vec::<(f64, bool)>::new());
    // Per session: where its encoded buffers begin, and what its first frame found before it.
    let (session_start, frames_in_session) = (Cell::new(0), Cell::new(0));
    let mut first_frames = Vec::new();
    let (tx, rx) = std::sync::mpsc::channel::<()>();
    let cutter = std::thread::spawn(move || {
        let _ = rx.recv(); // the first session is online
        std::thread::sleep(std::time::Duration::from_secs(1));
        server.stop();
        std::thread::sleep(std::time::Duration::from_secs(2));
        server.resume();
        server
    });
    let started = std::time::Instant::now();
    ingest::run(
        &camera,
        ingest::Mode::Live,
        &stop,
        &Arc::default(),
        &mut |state| {
            if let CameraState::Online { .. } = state {
                session_start.set(encoded.lock().unwrap().len());
                frames_in_session.set(0);
                let _ = tx.send(());
            }
        },
        &mut |frame| {
            frames_in_session.set(frames_in_session.get() + 1);
            if frames_in_session.get() == 1 {
                let handed = encoded.lock().unwrap();
                let key_by_frame = handed[session_start.get()..]
                    .iter()
                    .any(|(t, key)| *key && *t <= frame.stream_time_s + 1e-3);
                first_frames.push((frame.stream_time_s, key_by_frame));
            }
            let enough = first_frames.len() == 2 && frames_in_session.get() >= 3;
            stop.store(enough || started.elapsed().as_secs() > 60, Ordering::Relaxed);
        },
        Some(&mut |buffer: Encoded| encoded.lock().unwrap().push((buffer.pts_s, buffer.keyframe))),
    )
    .unwrap();
    let _server = cutter.join().unwrap();
    assert_eq!(first_frames.len(), 2, "two sessions: {first_frames:?}");
    assert!(first_frames.iter().all(|(_, key)| *key), "{first_frames:?}");
}
