//! `cityeye tail`: a node's incidents and status as a person reads them, one line each, from its
//! broker — what an installer watches on a laptop while someone walks through a zone.
//!
//! It connects like the node (same broker, TLS files and credentials) but as its own client,
//! over MQTT 3.1.1, which every broker the node can use also speaks, and only subscribes.

use std::time::Duration;

use std::path::Path;
use std::process::ExitCode;

use super::load_config;
use crate::config::Config;
use crate::publish::link::Settings;
use crate::wire::{IncidentPayload, Topics};

/// Prints the node's messages until the connection fails for good or the process is stopped.
pub fn run(config: &Config, with_stats: bool) -> Result<(), String> {
    let settings = Settings::load(&config.mqtt, &config.node.id).map_err(|e| e.to_string())?;
    let client_id = format!("cityeye-tail-{}-{}", config.node.id, std::process::id());
    let (client, mut connection) =
        rumqttc::Client::new(settings.subscriber_options(&client_id), 64);
    let topics = Topics::new(&config.mqtt.topic_prefix, &config.node.id);
    let base = topics.base();
    eprintln!("tail: {} ({base}/#)", settings.describe());
    for event in connection.iter() {
        match event {
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::ConnAck(_))) => {
                // After every (re)connect: the session is clean, the subscription is not kept.
                client
                    .subscribe(format!("{base}/#"), rumqttc::QoS::AtLeastOnce)
                    .map_err(|e| format!("cannot subscribe: {e}"))?;
            }
            Ok(rumqttc::Event::Incoming(rumqttc::Packet::Publish(p))) => {
                if let Some(line) = describe(&topics, &p.topic, &p.payload, with_stats) {
                    println!("{line}");
                }
            }
            Ok(_) => {}
            Err(e) => {
                eprintln!("tail: {e}; retrying in 2 s");
                std::thread::sleep(Duration::from_secs(2));
            }
        }
    }
    Ok(())
}

/// One line for a message on the node's topics; evidence (binary) and, unless asked for, the
/// stats are left out.
fn describe(topics: &Topics, topic: &str, payload: &[u8], with_stats: bool) -> Option<String> {
    let json: serde_json::Value = serde_json::from_slice(payload).ok()?;
    if topic.contains("/incident/") {
        let incident: IncidentPayload = serde_json::from_value(json).ok()?;
        return Some(incident_line(&incident));
    }
    let at = json["at"].as_str().map(time_of_day).unwrap_or_default();
    if topic == topics.stats() {
        return with_stats.then(|| format!("{at}  stats  {json}"));
    }
    let state = json["state"].as_str()?;
    let line = match json["camera"].as_str() {
        None => format!("{at}  node {} {state}", json["node"].as_str()?),
        Some(camera) => {
            let mut line = format!("{at}  {camera}  {state}");
            if let (Some(w), Some(h)) = (json["width"].as_u64(), json["height"].as_u64()) {
                line += &format!(" {w}x{h}");
            }
            if let Some(reason) = json["reason"].as_str() {
                line += &format!(": {reason}, retrying in {} s", json["retry_in_s"]);
            }
            line
        }
    };
    Some(line)
}

/// `19:56:37  kerb  START  illegal_parking 机动车违停 (warning) in no-parking: car #3 0.78 20 s  id …`
fn incident_line(i: &IncidentPayload) -> String {
    let state = serde_json::to_value(i.state).ok();
    let state = state.as_ref().and_then(|s| s.as_str()).unwrap_or("?").to_uppercase();
    let mut line = format!(
        "{}  {}  {state:<6} {} {} ({})",
        time_of_day(&i.detected_at),
        i.camera,
        i.algorithm,
        i.name_zh,
        i.severity
    );
    if let Some(zone) = &i.zone {
        line += &format!(" in {zone}");
    }
    let objects: Vec<String> = i
        .objects
        .iter()
        .map(|o| format!("{} #{} {:.2} {:.0} s", o.class, o.track_id, o.confidence, o.dwell_s))
        .collect();
    if !objects.is_empty() {
        line += &format!(": {}", objects.join(", "));
    }
    if let Some(count) = i.facts.count {
        line += &format!(", count {count}");
    }
    if let Some(direction) = &i.facts.direction {
        line += &format!(", {direction}");
    }
    line + &format!("  id {}", i.id)
}

/// `2026-11-21T19:56:37.111Z` → `19:56:37` (UTC, as in the payload).
fn time_of_day(rfc3339: &str) -> String {
    rfc3339.get(11..19).unwrap_or(rfc3339).to_string()
}

/// `cityeye tail`: prints the node's messages from its broker until stopped.
pub fn tail(path: &Path, with_stats: bool) -> ExitCode {
    let config = match load_config(path) {
        Ok(config) => config,
        Err(code) => return code,
    };
    match run(&config, with_stats) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_read_like_a_log() {
        let topics = Topics::new("cityeye", "edge-1");
        let incident = r#"{"schema":"cityeye.incident.v1","id":"01a1","node":"edge-1","camera":"kerb",
            "algorithm":"illegal_parking","category":"street_order","name_zh":"机动车违停",
            "name_en":"Illegal parking","severity":"warning","state":"start","zone":"no-parking",
            "detected_at":"2026-11-21T19:56:37.111Z","stream_time_s":20.0,
            "objects":[{"track_id":3,"class":"car","confidence":0.78,"bbox":[0.9,0.1,0.05,0.07],"dwell_s":20.0}],
            "model":{"name":"coco","sha256":"d39b"}}"#
            .as_bytes();
        let line =
            describe(&topics, "cityeye/edge-1/kerb/incident/illegal_parking", incident, false);
        assert_eq!(
            line.unwrap(),
            "19:56:37  kerb  START  illegal_parking 机动车违停 (warning) in no-parking: car #3 0.78 20 s  id 01a1"
        );
        let offline =
            br#"{"schema":"cityeye.status.v1","node":"edge-1","camera":"gate","state":"offline",
            "reason":"connection refused","retry_in_s":4,"at":"2026-11-21T19:56:20.375Z"}"#;
        assert_eq!(
            describe(&topics, "cityeye/edge-1/gate/status", offline, false).unwrap(),
            "19:56:20  gate  offline: connection refused, retrying in 4 s"
        );
        let stats = br#"{"schema":"cityeye.stats.v1","at":"2026-11-21T19:56:20.375Z"}"#;
        assert!(describe(&topics, "cityeye/edge-1/stats", stats, false).is_none());
        assert!(describe(&topics, "cityeye/edge-1/stats", stats, true).is_some());
        assert!(
            describe(&topics, "cityeye/edge-1/kerb/evidence/01a1", &[0xff, 0xd8], false).is_none()
        );
    }
}
