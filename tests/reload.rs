//! Hot reload on a running node: a real mosquitto, the shared footage as a file camera, and the
//! config file edited under the node's feet as an operator (or config management) would.

mod common;

use std::path::Path;
use std::time::Duration;

use common::*;
use sha2::{Digest, Sha256};

/// An empty corner of vtest.avi's frame: nothing parks there.
const EMPTY_CORNER: &str = "[[0.00, 0.90], [0.10, 0.90], [0.10, 1.00], [0.00, 1.00]]";
const KERB: &str = "[[0.80, 0.00], [1.00, 0.00], [1.00, 0.25], [0.80, 0.25]]";

fn sha256(text: &str) -> String {
    Sha256::digest(text.as_bytes()).iter().map(|b| format!("{b:02x}")).collect()
}

/// Replaces the file in one step, as editors and config management do.
fn replace_config(path: &Path, text: &str) {
    let staged = path.with_extension("toml.new");
    std::fs::write(&staged, text).unwrap();
    std::fs::rename(&staged, path).unwrap();
}

fn node_statuses(messages: &[Message]) -> Vec<serde_json::Value> {
    messages.iter().filter(|m| m.topic == "cityeye/edge-test/status").map(Message::json).collect()
}

fn camera_video() -> String {
    format!("file://{}", shared("testdata/vtest.avi").display())
}

#[test]
fn a_zone_moved_mid_run_applies_without_restarting_the_stream() {
    let broker = Mosquitto::start();
    let subscriber = Subscriber::connect(broker.port, "cityeye/#");
    let kerb = kerb_config(broker.port, false, &camera_video(), 3.0);
    assert!(kerb.contains(KERB));
    let corner = kerb.replace(KERB, EMPTY_CORNER);
    let (_dir, config) = write_config(&corner);
    let appliance = Appliance::run(&config);

    // Parked vehicles dwell 3 s; 8 s in the empty corner raise nothing.
    let online = subscriber.wait_until(Duration::from_secs(30), |m| {
        m.iter()
            .any(|m| m.topic == "cityeye/edge-test/kerb/status" && m.json()["state"] == "online")
    });
    assert!(!online.is_empty(), "camera online:\n{}", appliance.log());
    std::thread::sleep(Duration::from_secs(8));
    assert!(incidents(&subscriber.messages(), "start").is_empty(), "{}", appliance.log());

    replace_config(&config, &kerb);
    let messages = subscriber.wait_until(Duration::from_secs(40), |m| {
        !incidents(m, "start").is_empty()
            && node_statuses(m).last().is_some_and(|s| s["config"]["sha256"] == sha256(&kerb))
    });
    let starts = incidents(&messages, "start");
    assert!(!starts.is_empty(), "an incident in the moved zone:\n{}", appliance.log());
    let start = starts[0].json();
    assert_eq!(start["zone"], "no-parking");
    let b = &start["objects"][0]["bbox"];
    let foot_x = b[0].as_f64().unwrap() + b[2].as_f64().unwrap() / 2.0;
    assert!(foot_x >= 0.8, "the vehicle stands in the new zone: {b}");

    let status = node_statuses(&messages).pop().unwrap();
    assert_matches_schema("schemas/status.v1.json", &status);
    assert!(status["config"].get("errors").is_none(), "{status}");
    let connecting = messages
        .iter()
        .filter(|m| m.topic == "cityeye/edge-test/kerb/status")
        .filter(|m| m.json()["state"] == "connecting")
        .count();
    assert_eq!(connecting, 1, "the stream was not reopened:\n{}", appliance.log());
    assert!(appliance.log().contains("analysis reconfigured"), "{}", appliance.log());
}

#[test]
fn a_broken_config_is_refused_and_the_node_runs_on() {
    let broker = Mosquitto::start();
    let subscriber = Subscriber::connect(broker.port, "cityeye/#");
    let good = kerb_config(broker.port, false, &camera_video(), 3.0);
    let (_dir, config) = write_config(&good);
    let mut appliance = Appliance::run(&config);
    let first = subscriber.wait_until(Duration::from_secs(30), |m| !node_statuses(m).is_empty());
    let applied = node_statuses(&first).pop().expect("node status");
    assert_eq!(applied["config"]["sha256"], sha256(&good), "{}", appliance.log());

    let broken = good.replace("dwell_s = 3", "dwell_s = \"three\"");
    replace_config(&config, &broken);
    let messages = subscriber.wait_until(Duration::from_secs(20), |m| {
        node_statuses(m).last().is_some_and(|s| s["config"].get("errors").is_some())
    });
    let refused = node_statuses(&messages).pop().unwrap();
    assert_matches_schema("schemas/status.v1.json", &refused);
    let error = refused["config"]["errors"][0].as_str().unwrap_or_default().to_string();
    assert!(
        error.contains("cityeye.toml") && error.contains("cameras[0].algorithms[0].dwell_s"),
        "the error names the file and the key: {refused}\n{}",
        appliance.log()
    );
    assert_eq!(refused["config"]["sha256"], sha256(&good), "still running the good config");
    assert!(appliance.log().contains("config reload refused"), "{}", appliance.log());

    // The node goes on with the config it ran: the parked vehicles are still reported.
    let later =
        subscriber.wait_until(Duration::from_secs(40), |m| !incidents(m, "start").is_empty());
    assert!(!incidents(&later, "start").is_empty(), "{}", appliance.log());
    assert!(appliance.is_running());

    // Fixed, and SIGHUP applies it at once.
    replace_config(&config, &good);
    appliance.signal("HUP");
    let fixed = subscriber.wait_until(Duration::from_secs(10), |m| {
        node_statuses(m).last().is_some_and(|s| s["config"].get("errors").is_none())
    });
    let status = node_statuses(&fixed).pop().unwrap();
    assert!(status["config"].get("errors").is_none(), "{status}\n{}", appliance.log());
    assert!(appliance.log().contains("SIGHUP: reloading the config"), "{}", appliance.log());
}
