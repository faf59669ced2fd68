//! End to end over real parts: a gst-rtsp-server serves vtest.avi re-encoded to H.264, the
//! appliance pulls it over RTSP, analyses it with the shared YOLOX-Nano model and publishes to
//! a real broker (mosquitto, or the appliance's embedded one), where a subscriber checks what a
//! dispatch centre would receive.

mod common;

use std::time::Duration;

use common::*;

/// The parked-vehicle incidents a subscriber must receive: one `start` per vehicle at the top
/// right (a car and a van), each with its evidence JPEG, and nothing for the pedestrians.
fn assert_parked_vehicle_incidents(subscriber: &Subscriber, appliance: &Appliance) {
    let has_evidence = |messages: &[Message], incident: &Message| {
        let topic = incident.json()["evidence"]["topic"].as_str().unwrap().to_string();
        messages.iter().any(|m| m.topic == topic)
    };
    let messages = subscriber.wait_until(Duration::from_secs(60), |m| {
        let starts = incidents(m, "start");
        starts.len() >= 2 && starts.iter().all(|i| has_evidence(m, i))
    });
    let starts = incidents(&messages, "start");
    assert!(
        starts.len() >= 2,
        "expected 2 parked vehicles, got {}:\n{}",
        starts.len(),
        appliance.log()
    );

    let mut tracks = Vec::new();
    for incident in &starts {
        let p = incident.json();
        assert_matches_schema("schemas/incident.v1.json", &p);
        assert_eq!(incident.topic, "cityeye/edge-test/kerb/incident/illegal_parking");
        assert_eq!(p["algorithm"], "illegal_parking");
        assert_eq!(p["zone"], "no-parking");
        let object = &p["objects"][0];
        let class = object["class"].as_str().unwrap();
        assert!(["car", "truck"].contains(&class), "a parked vehicle, not a {class}");
        let b: Vec<f64> =
            object["bbox"].as_array().unwrap().iter().map(|v| v.as_f64().unwrap()).collect();
        let (foot_x, foot_y) = (b[0] + b[2] / 2.0, b[1] + b[3]);
        assert!(foot_x >= 0.8 && foot_y <= 0.25, "{class} at {b:?} stands outside the kerb zone");
        assert!(object["dwell_s"].as_f64().unwrap() >= 5.0);
        assert!(p["stream_time_s"].as_f64().unwrap() >= 5.0);
        tracks.push(object["track_id"].as_u64().unwrap());

        let evidence = messages.iter().find(|m| m.topic == p["evidence"]["topic"]).unwrap();
        let jpeg = image::load_from_memory(&evidence.payload).expect("evidence is a JPEG");
        assert_eq!((jpeg.width(), jpeg.height()), (768, 576));
        assert_eq!(
            (p["evidence"]["width"].as_u64(), p["evidence"]["height"].as_u64()),
            (Some(768), Some(576))
        );
    }
    tracks.sort();
    tracks.dedup();
    assert_eq!(tracks.len(), starts.len(), "one incident per vehicle");
    assert!(
        !messages
            .iter()
            .filter(|m| m.topic.contains("/incident/"))
            .any(|m| m.json()["objects"][0]["class"] == "person"),
        "no incident for pedestrians"
    );

    let node =
        messages.iter().find(|m| m.topic == "cityeye/edge-test/status").expect("node status");
    assert_eq!(node.json()["state"], "online");
    assert_matches_schema("schemas/status.v1.json", &node.json());
    let camera = messages
        .iter()
        .rfind(|m| m.topic == "cityeye/edge-test/kerb/status")
        .expect("camera status");
    assert_eq!(camera.json()["state"], "online");
    assert_matches_schema("schemas/status.v1.json", &camera.json());
}

#[test]
fn rtsp_camera_to_mosquitto_reports_the_parked_vehicles() {
    let broker = Mosquitto::start();
    let camera = RtspServer::start(&shared("testdata/vtest.avi"));
    let subscriber = Subscriber::connect(broker.port, "cityeye/#");
    let (_dir, config) = write_config(&kerb_config(broker.port, false, &camera.url(), 5.0));
    let mut appliance = Appliance::run(&config);

    assert_parked_vehicle_incidents(&subscriber, &appliance);

    assert!(appliance.stop(), "the appliance stops on SIGTERM");
    let last = subscriber.wait_until(Duration::from_secs(5), |m| {
        m.last().is_some_and(|m| {
            m.topic == "cityeye/edge-test/status" && m.json()["state"] == "offline"
        })
    });
    let status: Vec<_> = last.iter().filter(|m| m.topic == "cityeye/edge-test/status").collect();
    assert_eq!(status.last().unwrap().json()["state"], "offline", "a clean stop says offline");
}

#[test]
fn embedded_broker_delivers_the_same_incidents() {
    let port = free_port();
    let camera = RtspServer::start(&shared("testdata/vtest.avi"));
    let (_dir, config) = write_config(&kerb_config(port, true, &camera.url(), 5.0));
    let appliance = Appliance::run(&config);
    let subscriber = (0..100)
        .find_map(|_| {
            std::thread::sleep(Duration::from_millis(100));
            std::net::TcpStream::connect(("127.0.0.1", port))
                .ok()
                .map(|_| Subscriber::connect(port, "cityeye/#"))
        })
        .unwrap_or_else(|| panic!("the embedded broker did not listen:\n{}", appliance.log()));

    assert_parked_vehicle_incidents(&subscriber, &appliance);
}

#[test]
fn tail_prints_the_incidents_as_they_come() {
    use std::io::BufRead;
    let broker = Mosquitto::start();
    let video = format!("file://{}", shared("testdata/vtest.avi").display());
    let (_dir, config) = write_config(&kerb_config(broker.port, false, &video, 5.0));
    let mut tail = std::process::Command::new(env!("CARGO_BIN_EXE_cityeye"))
        .args(["tail", "--config"])
        .arg(&config)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap();
    let stdout = tail.stdout.take().unwrap();
    let (lines_tx, lines) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = lines_tx.send(line);
        }
    });
    std::thread::sleep(Duration::from_secs(1)); // tail subscribes before the node starts
    let appliance = Appliance::run(&config);

    let mut seen = Vec::new();
    let until = std::time::Instant::now() + Duration::from_secs(40);
    while seen.iter().filter(|l: &&String| l.contains("START  illegal_parking")).count() < 2 {
        let left = until.saturating_duration_since(std::time::Instant::now());
        match lines.recv_timeout(left) {
            Ok(line) => seen.push(line),
            Err(_) => panic!("tail printed {seen:#?}\nnode log:\n{}", appliance.log()),
        }
    }
    let _ = tail.kill();
    let _ = tail.wait();
    assert!(seen.iter().any(|l| l.ends_with("kerb  online 768x576")), "{seen:#?}");
    assert!(seen.iter().any(|l| l.contains("node edge-test online")), "{seen:#?}");
    let parked = seen.iter().find(|l| l.contains("START  illegal_parking")).unwrap();
    assert!(parked.contains("机动车违停 (warning) in no-parking: car #"), "{parked}");
}
