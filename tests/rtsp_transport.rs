//! RTSP transports against a real gst-rtsp-server that offers RTP over UDP only, as VLC's RTSP
//! output and some NVRs do: a camera left on `auto` comes online over UDP, one fixed to `tcp`
//! stays offline with the server's `461 Unsupported transport` told in an installer's words.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn a_udp_only_server_serves_auto_and_refuses_tcp_with_461_in_the_offline_reason() {
    let broker = Mosquitto::start();
    let camera = RtspServer::start_udp_only(&shared("testdata/vtest.avi"));
    let subscriber = Subscriber::connect(broker.port, "cityeye/+/+/status");
    // kerb is left on `auto`; gate, on the same server, asks for TCP only.
    let config = format!(
        "{}\n[[cameras]]\nid = \"gate\"\nurl = \"{}\"\nmodel = \"coco\"\ntransport = \"tcp\"\n",
        kerb_config(broker.port, false, &camera.url(), 60.0),
        camera.url()
    );
    let (_dir, path) = write_config(&config);
    let appliance = Appliance::run(&path);

    let latest = |messages: &[Message], camera: &str| {
        let topic = format!("cityeye/edge-test/{camera}/status");
        messages.iter().rev().find(|m| m.topic == topic).map(Message::json)
    };
    let settled = |m: &[Message]| {
        latest(m, "kerb").is_some_and(|s| s["state"] == "online")
            && latest(m, "gate").is_some_and(|s| s["state"] == "offline")
    };
    let seen = subscriber.wait_until(Duration::from_secs(60), settled);
    assert!(settled(&seen), "{:?}\n{}", seen.last(), appliance.log());
    let kerb = latest(&seen, "kerb").unwrap();
    assert_matches_schema("schemas/status.v1.json", &kerb);
    assert_eq!((kerb["width"].as_u64(), kerb["height"].as_u64()), (Some(768), Some(576)));
    let gate = latest(&seen, "gate").unwrap();
    assert_matches_schema("schemas/status.v1.json", &gate);
    let reason = gate["reason"].as_str().unwrap();
    assert!(
        reason.starts_with(
            "461 unsupported transport: the camera does not send RTP over TCP; \
             set transport = \"udp\" or \"auto\""
        ),
        "{reason}"
    );
    assert!(appliance.log().contains("the camera refuses RTP over tcp: asking for udp"));
}
