//! The node's HTTP endpoints, scraped as Prometheus and a health checker would.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use common::*;

/// Status code and body of `GET path`.
fn get(port: u16, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(stream, "GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n").unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).unwrap();
    let status = response.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = response.split_once("\r\n\r\n").map(|(_, b)| b.to_string()).unwrap_or_default();
    (status, body)
}

/// The value of the sample `name` (with its labels) in a Prometheus text page.
fn sample(page: &str, name: &str) -> Option<f64> {
    page.lines().find_map(|l| l.strip_prefix(name)?.strip_prefix(' ')?.parse().ok())
}

#[test]
fn metrics_and_health_follow_the_running_node() {
    let broker = Mosquitto::start();
    let subscriber = Subscriber::connect(broker.port, "cityeye/#");
    let video = format!("file://{}", shared("testdata/vtest.avi").display());
    let (_dir, config) = write_config(&kerb_config(broker.port, false, &video, 5.0));
    let appliance = Appliance::run(&config);
    let started = |m: &[Message]| incidents(m, "start").len() >= 2;
    assert!(
        started(&subscriber.wait_until(Duration::from_secs(40), started)),
        "{}",
        appliance.log()
    );
    let port =
        appliance.http_port().unwrap_or_else(|| panic!("no HTTP port:\n{}", appliance.log()));

    let (status, page) = get(port, "/metrics");
    assert_eq!(status, 200);
    let kerb = |name: &str| sample(&page, &format!("{name}{{camera=\"kerb\"}}"));
    assert!(kerb("cityeye_frames_analysed_total").unwrap() >= 25.0, "5 s at 5 fps:\n{page}");
    assert!(kerb("cityeye_frames_in_total") > kerb("cityeye_frames_analysed_total"), "{page}");
    assert_eq!(kerb("cityeye_camera_online"), Some(1.0), "{page}");
    assert_eq!(kerb("cityeye_inference_seconds_count"), kerb("cityeye_frames_analysed_total"));
    let parked = "cityeye_incidents_total{camera=\"kerb\",algorithm=\"illegal_parking\"}";
    assert_eq!(sample(&page, parked), Some(2.0), "{page}");
    assert_eq!(sample(&page, "cityeye_mqtt_connected"), Some(1.0), "{page}");

    let (status, health) = get(port, "/healthz");
    assert_eq!(status, 200, "{health}");
    let health: serde_json::Value = serde_json::from_str(&health).unwrap();
    assert_eq!(health["status"], "ok");
    assert_eq!(health["cameras"]["kerb"], "online");

    // The broker goes away: the metrics say so.
    drop(broker);
    let mut disconnected = false;
    for _ in 0..50 {
        disconnected = sample(&get(port, "/metrics").1, "cityeye_mqtt_connected") == Some(0.0);
        if disconnected {
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(disconnected, "{}", appliance.log());
    assert_eq!(get(port, "/nothing-here").0, 404);
}

#[test]
fn a_taken_http_port_stops_the_node_at_start() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = taken.local_addr().unwrap().port();
    let broker = Mosquitto::start();
    let video = format!("file://{}", shared("testdata/vtest.avi").display());
    let text = kerb_config(broker.port, false, &video, 5.0)
        .replace("listen = \"127.0.0.1:0\"", &format!("listen = \"127.0.0.1:{port}\""));
    let (_dir, config) = write_config(&text);
    let mut appliance = Appliance::run(&config);
    let status = appliance.wait_exit(Duration::from_secs(20)).expect("stops by itself");
    assert!(!status.success());
    assert!(appliance.log().contains(&format!("http.listen: cannot listen on 127.0.0.1:{port}")));
}
