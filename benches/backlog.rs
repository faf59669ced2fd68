//! The backlog benchmark: `cargo bench --bench backlog`.
//!
//! A node whose broker was away for hours has a backlog in its durable outbox. This measures how
//! fast 10 000 queued incidents (each an incident JSON and, in the second case, its evidence
//! snapshot) drain through cityeye's MQTT sink to a local mosquitto and a subscriber that
//! counts them, against a ceiling measured in the same run: a bare rumqttc client publishing the
//! same messages from memory with the same in-flight window, nothing on disk.
//! Prints a Markdown table for BENCHMARKS.md. Under `cargo test --benches` nothing is measured.

#[path = "../tests/common/mod.rs"]
mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use cityeye::config::Config;
use cityeye::publish::{self, Outbox, Publication};
use cityeye::stats::NodeStats;

const INCIDENTS: usize = 10_000;
/// The size of a vtest.avi evidence snapshot (768x576 JPEG, boxes drawn).
const EVIDENCE_BYTES: usize = 110_000;
const WINDOW: u16 = 16;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        println!("backlog: a benchmark; run it with `cargo bench --bench backlog`");
        return;
    }
    let mut table = String::from(
        "| backlog | messages | MB | cityeye drain s | msg/s | ceiling s | msg/s | cityeye / ceiling |\n|---|---|---|---|---|---|---|---|\n",
    );
    for evidence in [0, EVIDENCE_BYTES] {
        let messages = backlog(evidence);
        let megabytes = messages.iter().map(|p| p.payload.len()).sum::<usize>() as f64 / 1e6;
        let drained = cityeye_drain(&messages);
        let ceiling = bare_client(&messages);
        let label = if evidence > 0 { "incidents + 110 KB evidence" } else { "incidents only" };
        table += &format!(
            "| {INCIDENTS} {label} | {} | {megabytes:.0} | {drained:.2} | {:.0} | {ceiling:.2} | {:.0} | {:.2} |\n",
            messages.len(),
            messages.len() as f64 / drained,
            messages.len() as f64 / ceiling,
            ceiling / drained,
        );
    }
    println!("\n{table}");
}

/// `INCIDENTS` incident messages, each after its evidence when `evidence_bytes` > 0.
fn backlog(evidence_bytes: usize) -> Vec<Publication> {
    let mut messages = Vec::new();
    for n in 0..INCIDENTS {
        let id = format!("01a20000-0000-7000-8000-{n:012}");
        if evidence_bytes > 0 {
            messages.push(Publication::evidence(
                format!("bench/edge/kerb/evidence/{id}"),
                vec![(n % 251) as u8; evidence_bytes],
            ));
        }
        let json = format!(
            r#"{{"schema":"cityeye.incident.v1","id":"{id}","node":"edge","camera":"kerb","algorithm":"illegal_parking","state":"start","detected_at":"2026-11-21T10:00:00.000Z","stream_time_s":{n},"objects":[{{"track_id":{n},"class":"car","confidence":0.81,"bbox":[0.82,0.05,0.12,0.1],"dwell_s":20.0}}],"pad":"{}"}}"#,
            "x".repeat(700)
        );
        messages.push(Publication::incident(
            "bench/edge/kerb/incident/illegal_parking".into(),
            json.into_bytes(),
        ));
    }
    messages
}

/// Seconds for cityeye's sink to deliver `messages`, queued in a fresh durable outbox.
fn cityeye_drain(messages: &[Publication]) -> f64 {
    let broker = common::Mosquitto::start();
    let data = tempfile::tempdir().unwrap();
    let mut outbox = Outbox::open(data.path(), 4 << 30).unwrap();
    let filling = Instant::now();
    for pair in messages.chunk_by(|a, _| a.topic.contains("/evidence/")) {
        outbox.push(pair.to_vec());
    }
    eprintln!(
        "queued {} messages on disk in {:.1} s",
        messages.len(),
        filling.elapsed().as_secs_f64()
    );
    let text = format!(
        "[node]\nid = \"edge\"\n[mqtt]\nurl = \"mqtt://127.0.0.1:{}\"\ntopic_prefix = \"bench\"\n",
        broker.port
    );
    let config = Config::parse(&text, &data.path().join("bench.toml")).unwrap();
    let settings = publish::link::Settings::load(&config.mqtt, "edge").unwrap();
    let subscriber = Counter::connect(broker.port);
    let stop = Arc::new(AtomicBool::new(false));
    let (_tx, rx) = tokio::sync::mpsc::channel(1);
    let runtime = tokio::runtime::Runtime::new().unwrap();
    let started = Instant::now();
    let sink = {
        let stop = stop.clone();
        runtime.spawn(async move {
            publish::mqtt_sink(
                &config,
                settings,
                outbox,
                Arc::new(NodeStats::new("edge", [])),
                rx,
                stop,
            )
            .await
        })
    };
    let seconds = subscriber.wait_for(messages.len(), started);
    stop.store(true, Ordering::Relaxed);
    drop(_tx);
    runtime.block_on(sink).unwrap().unwrap();
    seconds
}

/// Seconds for a bare client to deliver `messages` from memory with the same window.
fn bare_client(messages: &[Publication]) -> f64 {
    let broker = common::Mosquitto::start();
    let subscriber = Counter::connect(broker.port);
    let mut options = rumqttc::MqttOptions::new("bench-ceiling", "127.0.0.1", broker.port);
    options.set_max_packet_size(16 << 20, 16 << 20).set_inflight(WINDOW);
    let (client, mut connection) = rumqttc::Client::new(options, 64);
    let messages_owned = messages.to_vec();
    let started = Instant::now();
    let publisher = std::thread::spawn(move || {
        for p in messages_owned {
            client.publish(p.topic, rumqttc::QoS::AtLeastOnce, false, p.payload).unwrap();
        }
        client
    });
    let driver = std::thread::spawn(move || {
        for event in connection.iter() {
            if event.is_err() {
                break;
            }
        }
    });
    let seconds = subscriber.wait_for(messages.len(), started);
    let client = publisher.join().unwrap();
    let _ = client.disconnect();
    let _ = driver.join();
    seconds
}

/// A subscriber that only counts the incident and evidence messages it receives (QoS 0, so
/// the broker's per-client queue limit for QoS 1 cannot hold it back).
struct Counter {
    received: Arc<AtomicUsize>,
    _client: rumqttc::Client,
}

impl Counter {
    fn connect(port: u16) -> Counter {
        let mut options = rumqttc::MqttOptions::new("bench-counter", "127.0.0.1", port);
        options.set_max_packet_size(16 << 20, 16 << 20);
        let (client, mut connection) = rumqttc::Client::new(options, 64);
        client.subscribe("bench/+/kerb/#", rumqttc::QoS::AtMostOnce).unwrap();
        let received = Arc::new(AtomicUsize::new(0));
        let (counted, subscribed) = (received.clone(), std::sync::mpsc::channel());
        std::thread::spawn(move || {
            for event in connection.iter() {
                match event {
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::SubAck(_))) => {
                        let _ = subscribed.0.send(());
                    }
                    Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(_))) => {
                        counted.fetch_add(1, Ordering::Relaxed);
                    }
                    Ok(_) => {}
                    Err(_) => return,
                }
            }
        });
        subscribed.1.recv_timeout(Duration::from_secs(10)).expect("subscribed");
        Counter { received, _client: client }
    }

    /// Seconds from `started` until `count` messages have arrived.
    fn wait_for(&self, count: usize, started: Instant) -> f64 {
        let deadline = started + Duration::from_secs(600);
        while self.received.load(Ordering::Relaxed) < count {
            assert!(Instant::now() < deadline, "the backlog did not drain within 10 minutes");
            std::thread::sleep(Duration::from_millis(5));
        }
        started.elapsed().as_secs_f64()
    }
}
