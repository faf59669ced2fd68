//! The broker goes away before the incidents happen and comes back later: the appliance keeps
//! analysing, queues what it finds, and delivers every incident (with its evidence) once the
//! broker is back.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn incidents_found_while_the_broker_is_down_arrive_when_it_is_back() {
    let port = free_port();
    let broker = Mosquitto::start_on(port);
    let camera = RtspServer::start(&shared("testdata/vtest.avi"));
    let subscriber = Subscriber::connect(port, "cityeye/#");
    let (_dir, config) = write_config(&kerb_config(port, false, &camera.url(), 6.0));
    let appliance = Appliance::run(&config);

    let online = |m: &[Message]| {
        m.iter().any(|m| m.topic.ends_with("/kerb/status") && m.json()["state"] == "online")
    };
    assert!(online(&subscriber.wait_until(Duration::from_secs(30), online)), "{}", appliance.log());
    drop(broker);
    // Parked vehicles reach their 6 s dwell while nobody is listening.
    std::thread::sleep(Duration::from_secs(10));
    assert!(incidents(&subscriber.messages(), "start").is_empty());
    assert!(
        appliance.log().contains("algorithm=illegal_parking"),
        "found meanwhile:\n{}",
        appliance.log()
    );
    let _broker = Mosquitto::start_on(port);

    let delivered = |m: &[Message]| {
        let starts = incidents(m, "start");
        starts.len() >= 2
            && starts.iter().all(|i| {
                m.iter().any(|e| e.topic == i.json()["evidence"]["topic"].as_str().unwrap())
            })
    };
    let messages = subscriber.wait_until(Duration::from_secs(60), delivered);
    assert!(delivered(&messages), "incidents lost during the outage:\n{}", appliance.log());
    for incident in incidents(&messages, "start") {
        assert!(
            incident.json()["stream_time_s"].as_f64().unwrap() < 16.0,
            "found during the outage"
        );
    }
}

#[test]
fn incidents_committed_before_a_kill_are_delivered_first_after_the_restart() {
    let port = free_port(); // no broker yet
    let video = format!("file://{}", shared("testdata/vtest.avi").display());
    let (dir, config) = write_config(&kerb_config(port, false, &video, 5.0));
    let data_dir = dir.path().join("data");
    let mut first = Appliance::run(&config);
    let deadline = std::time::Instant::now() + Duration::from_secs(40);
    while committed_incidents(&data_dir).len() < 2 && std::time::Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    let committed = committed_incidents(&data_dir);
    assert_eq!(
        committed.len(),
        2,
        "two parked vehicles while the broker is away:\n{}",
        first.log()
    );
    first.kill();

    let _broker = Mosquitto::start_on(port);
    let subscriber = Subscriber::connect(port, "cityeye/#");
    let second = Appliance::run(&config);
    let arrived = |m: &[Message]| {
        let ids: Vec<String> = incidents(m, "start")
            .iter()
            .map(|i| i.json()["id"].as_str().unwrap().to_string())
            .collect();
        committed.iter().all(|c| ids.contains(c))
    };
    let messages = subscriber.wait_until(Duration::from_secs(40), arrived);
    assert!(arrived(&messages), "incidents of the killed run were lost:\n{}", second.log());
    // They come before anything the second run found, in the order they happened.
    let order: Vec<String> = incidents(&messages, "start")
        .iter()
        .map(|i| i.json()["id"].as_str().unwrap().to_string())
        .collect();
    assert_eq!(order[..2], committed[..], "{order:?}");
    for incident in incidents(&messages, "start").into_iter().take(2) {
        let evidence = incident.json()["evidence"]["topic"].as_str().unwrap().to_string();
        assert!(messages.iter().any(|m| m.topic == evidence), "evidence kept too");
    }
}

/// `(id, state)` of every incident message a run logged, in order.
fn logged_messages(log: &str) -> Vec<(String, String)> {
    let field = |line: &str, key: &str| {
        line.split_whitespace().find_map(|w| w.strip_prefix(key)).map(str::to_lowercase)
    };
    log.lines()
        .filter(|l| l.contains(" incident camera="))
        .filter_map(|l| Some((field(l, "id=")?, field(l, "state=")?)))
        .collect()
}

/// Messages the node sent again after the link dropped (each may have arrived twice).
fn resent(log: &str) -> usize {
    log.lines()
        .filter(|l| l.contains("MQTT connection failed"))
        .filter_map(|l| l.split_whitespace().find_map(|w| w.strip_prefix("resent=")))
        .filter_map(|n| n.parse::<usize>().ok())
        .sum()
}

#[test]
fn a_30_s_broker_outage_while_incidents_happen_loses_nothing_and_keeps_the_order() {
    let port = free_port();
    let mut broker = Some(Mosquitto::start_on(port));
    let subscriber = Subscriber::connect(port, "cityeye/#");
    let video = format!("file://{}", shared("testdata/vtest.avi").display());
    // People crossing the left-hand road, each crossing an incident: a steady stream of them.
    let tripwire = r#"
  [[cameras.algorithms]]
  type = "tripwire"
  classes = ["person"]
  line = [[0.30, 0.47], [0.30, 0.26]]
  direction = "any"
  cooldown_s = 0
"#;
    let (_dir, config) = write_config(&(kerb_config(port, false, &video, 5.0) + tripwire));
    let mut appliance = Appliance::run(&config);
    let started = |m: &[Message]| !incidents(m, "start").is_empty();
    assert!(
        started(&subscriber.wait_until(Duration::from_secs(40), started)),
        "{}",
        appliance.log()
    );

    broker.take();
    let before = logged_messages(&appliance.log()).len();
    std::thread::sleep(Duration::from_secs(30));
    let during = logged_messages(&appliance.log()).len() - before;
    assert!(during >= 3, "incidents happen during the outage: {during}\n{}", appliance.log());
    let node_online = |m: &[Message]| {
        m.iter()
            .filter(|m| m.topic.ends_with("edge-test/status") && m.json()["state"] == "online")
            .count()
    };
    let online_before = node_online(&subscriber.messages());
    broker = Some(Mosquitto::start_on(port));
    // The node's next attempt comes after its backoff (up to 30 s, with jitter): wait for it.
    let back = |m: &[Message]| node_online(m) > online_before;
    assert!(back(&subscriber.wait_until(Duration::from_secs(60), back)), "{}", appliance.log());
    std::thread::sleep(Duration::from_secs(3));
    // A clean stop delivers whatever is left: afterwards, everything logged must have arrived.
    assert!(appliance.stop(), "stops within its grace period");
    drop(broker);

    let logged = logged_messages(&appliance.log());
    let received: Vec<(String, String)> = subscriber
        .messages()
        .iter()
        .filter(|m| m.topic.contains("/incident/"))
        .map(|m| {
            let json = m.json();
            (json["id"].as_str().unwrap().to_string(), json["state"].as_str().unwrap().to_string())
        })
        .collect();
    let mut first_arrivals = Vec::new();
    for message in &received {
        if !first_arrivals.contains(message) {
            first_arrivals.push(message.clone());
        }
    }
    assert_eq!(
        first_arrivals,
        logged,
        "every message, each at least once, in the order found:\n{}",
        appliance.log()
    );
    let duplicates = received.len() - first_arrivals.len();
    let in_flight = resent(&appliance.log());
    assert!(
        duplicates <= in_flight,
        "{duplicates} duplicates, {in_flight} messages in flight when the link dropped"
    );
    if in_flight == 0 {
        assert_eq!(duplicates, 0);
    }
    println!("{} messages ({during} during the outage), {duplicates} duplicates", logged.len());
}

#[test]
fn a_broker_restarted_without_persistence_gets_every_retained_status_again() {
    let port = free_port();
    let broker = Mosquitto::start_on(port);
    let camera = RtspServer::start(&shared("testdata/vtest.avi"));
    let (_dir, config) = write_config(&kerb_config(port, false, &camera.url(), 6.0));
    let appliance = Appliance::run(&config);
    let online = |m: &[Message]| {
        m.iter().any(|m| m.topic.ends_with("/kerb/status") && m.json()["state"] == "online")
    };
    let first = Subscriber::connect(port, "cityeye/#");
    assert!(online(&first.wait_until(Duration::from_secs(30), online)), "{}", appliance.log());
    drop(first);
    drop(broker);
    let _broker = Mosquitto::start_on(port);
    // A hub subscribing after the restart learns, from retained messages alone, that the node
    // and its camera are online.
    let late = Subscriber::connect(port, "cityeye/+/+/status");
    let messages = late.wait_until(Duration::from_secs(30), online);
    assert!(online(&messages), "the camera's status was not retained again:\n{}", appliance.log());
}
