//! A camera whose RTSP server disappears is reported offline, retried with backoff, and comes
//! back online by itself; its password never shows in logs or status.

mod common;

use std::time::Duration;

use common::*;

fn camera_states(messages: &[Message]) -> Vec<String> {
    messages
        .iter()
        .filter(|m| m.topic == "cityeye/edge-test/kerb/status")
        .map(|m| m.json()["state"].as_str().unwrap().to_string())
        .collect()
}

#[test]
fn vanished_rtsp_camera_goes_offline_and_comes_back_online() {
    let broker = Mosquitto::start();
    let mut camera = RtspServer::start(&shared("testdata/vtest.avi"));
    let subscriber = Subscriber::connect(broker.port, "cityeye/+/kerb/status");
    let url = camera.url().replace("rtsp://", "rtsp://admin:s3cret-pw@");
    let (_dir, config) = write_config(&kerb_config(broker.port, false, &url, 60.0));
    let appliance = Appliance::run(&config);

    let online = |m: &[Message]| camera_states(m).last().is_some_and(|s| s == "online");
    let seen = subscriber.wait_until(Duration::from_secs(30), online);
    assert!(online(&seen), "camera never online: {:?}\n{}", camera_states(&seen), appliance.log());

    camera.stop();
    let offline = |m: &[Message]| camera_states(m).iter().any(|s| s == "offline");
    let seen = subscriber.wait_until(Duration::from_secs(30), offline);
    assert!(
        offline(&seen),
        "camera never offline: {:?}\n{}",
        camera_states(&seen),
        appliance.log()
    );
    let report = seen
        .iter()
        .find(|m| m.topic.ends_with("/status") && m.json()["state"] == "offline")
        .unwrap();
    assert!(report.json()["reason"].as_str().is_some_and(|r| !r.is_empty()));
    assert!(report.json()["retry_in_s"].as_u64().is_some_and(|s| (1..=30).contains(&s)));
    std::thread::sleep(Duration::from_secs(3));

    camera.resume();
    let back = |m: &[Message]| {
        let states = camera_states(m);
        let first_offline = states.iter().position(|s| s == "offline").unwrap_or(usize::MAX);
        states.iter().skip(first_offline).any(|s| s == "online")
    };
    let seen = subscriber.wait_until(Duration::from_secs(45), back);
    assert!(
        back(&seen),
        "camera did not come back: {:?}\n{}",
        camera_states(&seen),
        appliance.log()
    );

    let log = appliance.log();
    assert!(log.contains("reconnecting in"), "the log says it reconnects:\n{log}");
    assert!(!log.contains("s3cret-pw"), "the password leaked into the log:\n{log}");
    assert!(seen.iter().all(|m| !String::from_utf8_lossy(&m.payload).contains("s3cret-pw")));
}
