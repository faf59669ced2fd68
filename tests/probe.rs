//! `cityeye check --probe` on a site with a working RTSP camera, a camera whose port refuses,
//! a real broker and a data dir: the table says which works and why the other does not.

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
