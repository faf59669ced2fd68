//! `cityeye check --probe` on a site with a working RTSP camera, a camera whose port refuses,
//! a real broker and a data dir: the table says which works and why the other does not. And
//! the outside world's harder cases: a server that refuses RTP over TCP, an audio-only file.

mod common;

use std::process::Command;

use common::*;

fn probe(config: &std::path::Path) -> (bool, String) {
    let out = Command::new(env!("CARGO_BIN_EXE_cityeye"))
        .args(["check", "--probe", "--config"])
        .arg(config)
        .output()
        .unwrap();
    let text =
        String::from_utf8_lossy(&out.stdout).into_owned() + &String::from_utf8_lossy(&out.stderr);
    (out.status.success(), text)
}

#[test]
fn the_probe_reports_each_camera_the_broker_and_the_data_dir() {
    let broker = Mosquitto::start();
    let camera = RtspServer::start(&shared("testdata/vtest.avi"));
    let config = kerb_config(broker.port, false, &camera.url(), 5.0);
    let (_dir, path) = write_config(&config);
    let (ok, report) = probe(&path);
    assert!(ok, "{report}");
    let kerb =
        report.lines().find(|l| l.starts_with("kerb ")).unwrap_or_else(|| panic!("{report}"));
    let cells: Vec<&str> = kerb.split_whitespace().collect();
    assert_eq!(cells[1..4], ["yes", "H.264", "768x576"], "{report}");
    let fps: f64 = cells[4].parse().unwrap();
    assert!((9.0..=11.0).contains(&fps), "vtest runs at 10 fps: {report}");
    assert!(report.contains("broker   ok: mqtt://127.0.0.1:"), "{report}");
    assert!(report.contains("data dir ok: "), "{report}");

    // A second camera whose port refuses; and the broker gone.
    let refused = format!("rtsp://127.0.0.1:{}/gate", free_port());
    let gate =
        format!("{config}\n[[cameras]]\nid = \"gate\"\nurl = \"{refused}\"\nmodel = \"coco\"\n");
    drop(broker);
    let (_dir, path) = write_config(&gate);
    let (ok, report) = probe(&path);
    assert!(!ok, "a failing camera fails the probe: {report}");
    let gate =
        report.lines().find(|l| l.starts_with("gate ")).unwrap_or_else(|| panic!("{report}"));
    assert!(gate.contains(" NO ") && gate.contains("refused: nothing answers"), "{report}");
    assert!(report.lines().any(|l| l.starts_with("kerb ") && l.contains(" yes ")), "{report}");
    assert!(report.contains("broker   FAILED: "), "{report}");
}

#[test]
fn the_probe_tells_a_refused_transport_and_an_audio_only_file_in_an_installers_words() {
    let broker = Mosquitto::start();
    let camera = RtspServer::start_udp_only(&shared("testdata/vtest.avi"));
    let media = tempfile::tempdir().unwrap();
    let audio = media.path().join("audio.mp4");
    audio_only_mp4(&audio);
    // kerb asks for TCP only; gate, on the same server, lets the node choose.
    let kerb = kerb_config(broker.port, false, &camera.url(), 5.0)
        .replace("model = \"coco\"\n", "model = \"coco\"\ntransport = \"tcp\"\n");
    let config = format!(
        "{kerb}\n[[cameras]]\nid = \"gate\"\nurl = \"{}\"\nmodel = \"coco\"\n\n\
         [[cameras]]\nid = \"lobby\"\nurl = \"file://{}\"\nmodel = \"coco\"\n",
        camera.url(),
        audio.display()
    );
    let (_dir, path) = write_config(&config);
    let (ok, report) = probe(&path);
    assert!(!ok, "{report}");
    let row = |id: &str| {
        report
            .lines()
            .find(|l| l.starts_with(&format!("{id} ")))
            .unwrap_or_else(|| panic!("{report}"))
    };
    let kerb = row("kerb");
    assert!(kerb.contains(" NO "), "{report}");
    assert!(
        kerb.contains(
            "461 unsupported transport: the camera does not send RTP over TCP; \
             set transport = \"udp\" or \"auto\" (rtspsrc"
        ),
        "{report}"
    );
    let gate: Vec<&str> = row("gate").split_whitespace().collect();
    assert_eq!(gate[1..4], ["yes", "H.264", "768x576"], "{report}");
    assert!(
        row("lobby").contains(" NO ")
            && row("lobby").ends_with("no video track: the stream holds only audio/mpeg"),
        "{report}"
    );
}

/// A camera with stream roles gets a row for each stream: the detect stream decoded, the
/// record stream only parsed, its size read from its caps. A record stream that does not answer
/// fails the probe, in an installer's words.
#[test]
fn the_probe_reports_a_cameras_detect_and_record_streams() {
    let broker = Mosquitto::start();
    let media = tempfile::tempdir().unwrap();
    let sub = half_size_vtest(media.path());
    let detect = RtspServer::start(&sub);
    let record = RtspServer::start(&shared("testdata/vtest.avi"));
    let with_record = |record_url: &str| {
        kerb_config(broker.port, false, &detect.url(), 5.0).replace(
            &format!("url = \"{}\"\n", detect.url()),
            &format!("url = \"{}\"\nrecord_url = \"{record_url}\"\n", detect.url()),
        )
    };
    let (_dir, path) = write_config(&with_record(&record.url()));
    let (ok, report) = probe(&path);
    assert!(ok, "{report}");
    let row = |name: &str| -> Vec<String> {
        let line =
            report.lines().find(|l| l.starts_with(name)).unwrap_or_else(|| panic!("{report}"));
        line.split_whitespace().map(str::to_string).collect()
    };
    assert_eq!(row("kerb detect")[2..5], ["yes", "H.264", "384x288"], "{report}");
    assert_eq!(row("kerb record")[2..5], ["yes", "H.264", "768x576"], "{report}");
    let fps: f64 = row("kerb record")[5].parse().unwrap();
    assert!((9.0..=11.0).contains(&fps), "vtest runs at 10 fps: {report}");

    let refused = format!("rtsp://127.0.0.1:{}/main", free_port());
    let (_dir, path) = write_config(&with_record(&refused));
    let (ok, report) = probe(&path);
    assert!(!ok, "a record stream that does not answer fails the probe: {report}");
    let line = report.lines().find(|l| l.starts_with("kerb record")).unwrap();
    assert!(line.contains(" NO ") && line.contains("refused: nothing answers"), "{report}");
}
