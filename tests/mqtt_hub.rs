//! What a hub gets from a real mosquitto: messages never larger than the broker takes (an MQTT 5
//! broker's Maximum Packet Size, or `mqtt.max_packet_bytes` for a broker that does not announce
//! its limit, 3.1.1 or 5), without
//! a reconnect loop or duplicate incidents; one retained `online` per connection, timed as the
//! schema says; and, for a load-balanced hub on a shared subscription, snapshots inside the
//! `start` messages (`evidence.inline`) with MQTT 5 properties on every message.

mod common;

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use base64::Engine;
use common::mqtt5::{Message5, Subscriber5};
use common::*;

const NODE_STATUS: &str = "cityeye/edge-test/status";

/// vtest.avi as a camera: the parked car at the kerb starts an incident after 1 s; its
/// 768x576 snapshot is about 110 KB.
fn parked_car() -> String {
    format!("file://{}", shared("testdata/vtest.avi").display())
}

/// The kerb config on `broker`, with `mqtt` added to its `[mqtt]` and `tables` at the end.
fn config(broker: u16, mqtt: &str, tables: &str) -> String {
    let text = kerb_config(broker, false, &parked_car(), 1.0);
    let line = "embedded_broker = false\n";
    assert!(text.contains(line));
    format!(
        "{}\n[evidence]\nclips = false\n{tables}\n",
        text.replace(line, &format!("{line}{mqtt}\n"))
    )
}

/// How many times the node connected to the broker.
fn connections(appliance: &Appliance) -> usize {
    appliance.log().matches("connected to the MQTT broker").count()
}

fn json(m: &Message) -> serde_json::Value {
    m.json()
}

/// The `start` messages by incident id, each with how many copies arrived.
fn starts_by_id(messages: &[&Message]) -> BTreeMap<String, usize> {
    let mut ids = BTreeMap::new();
    for m in messages.iter().filter(|m| m.topic.contains("/incident/")) {
        let p = json(m);
        if p["state"] == "start" {
            *ids.entry(p["id"].as_str().unwrap().to_string()).or_default() += 1;
        }
    }
    ids
}

fn rfc3339(text: &serde_json::Value) -> SystemTime {
    let text = text.as_str().unwrap_or_else(|| panic!("{text} is no time"));
    chrono::DateTime::parse_from_rfc3339(text).unwrap().into()
}

#[test]
fn an_mqtt_5_broker_limit_shrinks_the_snapshot_without_a_reconnect_loop() {
    const LIMIT: usize = 60_000;
    // max_packet_size: mosquitto announces it in CONNACK (Maximum Packet Size) and disconnects
    // a client that sends more.
    let broker = Mosquitto::start_with(free_port(), &format!("max_packet_size {LIMIT}\n"));
    let subscriber = Subscriber5::connect(broker.port, "cityeye/#");
    let started = SystemTime::now();
    let (_dir, path) = write_config(&config(broker.port, "", ""));
    let appliance = Appliance::run(&path);

    let has_evidence = |m: &[Message5]| {
        m.iter().any(|m| m.message.topic.contains("/incident/"))
            && m.iter().any(|m| m.message.topic.contains("/evidence/"))
    };
    let messages = subscriber.wait_until(Duration::from_secs(60), has_evidence);
    assert!(has_evidence(&messages), "no incident with evidence\n{}", appliance.log());
    std::thread::sleep(Duration::from_secs(3)); // time for a loop to show
    let messages = subscriber.messages();
    let plain: Vec<&Message> = messages.iter().map(|m| &m.message).collect();

    assert_eq!(connections(&appliance), 1, "reconnected:\n{}", appliance.log());
    let starts = starts_by_id(&plain);
    assert!(starts.values().all(|n| *n == 1), "duplicates: {starts:?}");
    for m in &messages {
        let packet = m.message.payload.len() + m.message.topic.len();
        assert!(packet < LIMIT, "{} is {packet} bytes", m.message.topic);
    }
    let evidence = messages.iter().find(|m| m.message.topic.contains("/evidence/")).unwrap();
    let jpeg = image::load_from_memory(&evidence.message.payload).expect("a JPEG, smaller");
    assert!(jpeg.width() <= 768);
    // The MQTT 5 properties of the evidence and of its incident.
    let id = evidence.message.topic.rsplit('/').next().unwrap();
    assert_eq!(evidence.content_type.as_deref(), Some("image/jpeg"));
    assert_eq!(evidence.user_property("incident_id"), Some(id));
    let incident = messages
        .iter()
        .find(|m| m.message.topic.contains("/incident/") && json(&m.message)["id"] == id)
        .expect("the incident of the evidence");
    assert_eq!(incident.content_type.as_deref(), Some("application/json"));
    assert_eq!(incident.correlation_data.as_deref(), Some(id.as_bytes()));

    // One `online` on the first connection, and the broker retains that one, timed when the
    // connection was opened.
    let online: Vec<&Message> = plain
        .iter()
        .copied()
        .filter(|m| m.topic == NODE_STATUS && json(m)["state"] == "online")
        .collect();
    assert_eq!(online.len(), 1, "{online:#?}");
    let at = rfc3339(&json(online[0])["at"]);
    assert!(at >= started - Duration::from_millis(1) && at <= SystemTime::now(), "{at:?}");
    let late = Subscriber::connect(broker.port, NODE_STATUS);
    let retained = late.wait_until(Duration::from_secs(5), |m| !m.is_empty());
    assert_eq!(retained.len(), 1);
    assert!(retained[0].retain);
    assert_eq!(json(&retained[0])["at"], json(online[0])["at"]);
    assert_matches_schema("schemas/status.v1.json", &json(&retained[0]));
}

#[test]
fn a_limit_from_the_config_keeps_snapshots_under_it_on_3_1_1_and_5() {
    const LIMIT: usize = 4096;
    // mosquitto's message_size_limit, announced to no one: a 3.1.1 client's larger message is
    // dropped silently (and acknowledged), an MQTT 5 client's refused with PUBACK 0x95, which
    // rumqttc cannot read (the reported reconnect loop).
    for version in ["3.1.1", "5"] {
        let broker = Mosquitto::start_with(free_port(), &format!("message_size_limit {LIMIT}\n"));
        let subscriber = Subscriber::connect(broker.port, "cityeye/#");
        let mqtt =
            format!("version = \"{version}\"\nmax_packet_bytes = {LIMIT}\nstats_interval_s = 1");
        let (_dir, path) = write_config(&config(broker.port, &mqtt, ""));
        let appliance = Appliance::run(&path);

        let messages =
            subscriber.wait_until(Duration::from_secs(60), |m| !incidents(m, "start").is_empty());
        let starts = incidents(&messages, "start");
        assert!(
            !starts.is_empty(),
            "MQTT {version}: no incident\n{}\n{}",
            appliance.log(),
            broker.log()
        );
        std::thread::sleep(Duration::from_secs(3)); // a stats report after the incident
        let messages = subscriber.messages();
        let all: Vec<&Message> = messages.iter().collect();
        assert_eq!(connections(&appliance), 1, "MQTT {version}: reconnected:\n{}", appliance.log());
        assert!(starts_by_id(&all).values().all(|n| *n == 1), "MQTT {version}: duplicates");

        // Each snapshot arrived, smaller than the limit, or was dropped and counted.
        let evidence: Vec<&Message> =
            messages.iter().filter(|m| m.topic.contains("/evidence/")).collect();
        for jpeg in &evidence {
            assert!(jpeg.payload.len() < LIMIT);
            image::load_from_memory(&jpeg.payload).expect("a JPEG, smaller");
        }
        let stats = messages.iter().rfind(|m| m.topic.ends_with("/stats")).expect("stats").json();
        assert_matches_schema("schemas/stats.v1.json", &stats);
        let dropped = stats["outbox"]["evidence_dropped"].as_u64().unwrap() as usize;
        assert_eq!(
            evidence.len() + dropped,
            incidents(&messages, "start").len(),
            "MQTT {version}: every snapshot arrived or was counted as dropped\n{}",
            appliance.log()
        );
        // The last time the node heard from the broker: a hub's bound on when a node died.
        let last_seen = rfc3339(&stats["last_seen_at"]);
        assert!(last_seen <= rfc3339(&stats["at"]) + Duration::from_millis(1));
    }
}

#[test]
fn an_unannounced_mqtt_5_limit_is_learnt_from_the_first_refusal() {
    const LIMIT: usize = 60_000;
    // The setup: MQTT 5, mosquitto's message_size_limit below a snapshot, and nothing
    // in the config. The broker refuses the 110 KB snapshot (PUBACK 0x95) and the link drops
    // once; after that every message is made to fit, so the node stays connected.
    let broker = Mosquitto::start_with(free_port(), &format!("message_size_limit {LIMIT}\n"));
    let subscriber = Subscriber::connect(broker.port, "cityeye/#");
    let (_dir, path) = write_config(&config(broker.port, "stats_interval_s = 1", ""));
    let appliance = Appliance::run(&path);

    let has_evidence = |m: &[Message]| m.iter().any(|m| m.topic.contains("/evidence/"));
    let messages = subscriber.wait_until(Duration::from_secs(60), has_evidence);
    assert!(has_evidence(&messages), "no evidence got through\n{}", appliance.log());
    std::thread::sleep(Duration::from_secs(5)); // time for a loop to show
    let messages = subscriber.messages();
    assert!(
        connections(&appliance) <= 2,
        "a reconnect loop ({} connections):\n{}",
        connections(&appliance),
        appliance.log()
    );
    assert!(appliance.log().contains("messages are made to fit under"), "{}", appliance.log());
    for m in messages.iter().filter(|m| m.topic.contains("/evidence/")) {
        assert!(m.payload.len() < LIMIT, "{} is {} bytes", m.topic, m.payload.len());
        image::load_from_memory(&m.payload).expect("a JPEG, smaller");
    }
    // The refused message's neighbours in flight may go twice (at least once, as QoS 1 says;
    // the id is the hub's key), never in a loop.
    let all: Vec<&Message> = messages.iter().collect();
    let starts = starts_by_id(&all);
    assert!(!starts.is_empty() && starts.values().all(|n| *n <= 2), "{starts:?}");
}

#[test]
fn a_shared_subscription_gets_each_snapshot_inside_its_start() {
    let broker = Mosquitto::start();
    let hub = [
        Subscriber5::connect(broker.port, "$share/hub/cityeye/#"),
        Subscriber5::connect(broker.port, "$share/hub/cityeye/#"),
    ];
    let (_dir, path) = write_config(&config(broker.port, "", "inline = true"));
    let appliance = Appliance::run(&path);

    let starts = |hub: &[Subscriber5; 2]| -> Vec<Message5> {
        hub.iter()
            .flat_map(|s| s.messages())
            .filter(|m| m.message.topic.contains("/incident/"))
            .filter(|m| json(&m.message)["state"] == "start")
            .collect()
    };
    let until = std::time::Instant::now() + Duration::from_secs(60);
    while starts(&hub).len() < 2 && std::time::Instant::now() < until {
        std::thread::sleep(Duration::from_millis(200));
    }
    let starts = starts(&hub);
    assert!(!starts.is_empty(), "no incident\n{}", appliance.log());
    for start in &starts {
        let p = json(&start.message);
        assert_matches_schema("schemas/incident.v1.json", &p);
        let text = p["evidence"]["jpeg_base64"].as_str().expect("the snapshot inline");
        let jpeg = base64::engine::general_purpose::STANDARD.decode(text).unwrap();
        let image = image::load_from_memory(&jpeg).expect("decodes as a JPEG");
        assert_eq!((image.width(), image.height()), (768, 576));
        let id = p["id"].as_str().unwrap();
        assert_eq!(start.content_type.as_deref(), Some("application/json"));
        assert_eq!(start.user_property("incident_id"), Some(id));
        assert_eq!(start.correlation_data.as_deref(), Some(id.as_bytes()));
    }
    let everything: Vec<Message5> = hub.iter().flat_map(|s| s.messages()).collect();
    assert!(
        !everything.iter().any(|m| m.message.topic.contains("/evidence/")),
        "inline snapshots are not published apart"
    );
    for m in everything.iter().filter(|m| m.message.topic.ends_with("/status")) {
        assert_eq!(m.content_type.as_deref(), Some("application/json"));
    }
}
