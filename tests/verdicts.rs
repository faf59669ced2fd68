//! Operators' verdicts over a real broker: the city platform calls one of the shared footage's
//! two parked vehicles a false alarm, the node ends that incident and suppresses the place, and
//! after a restart on the same data dir that vehicle raises nothing while the other one does.

mod common;

use std::time::Duration;

use common::*;

#[test]
fn a_false_positive_silences_that_vehicle_across_a_restart_and_the_other_still_raises() {
    let broker = Mosquitto::start();
    let subscriber = Subscriber::connect(broker.port, "cityeye/#");
    let video = format!("file://{}", shared("testdata/vtest.avi").display());
    let text = kerb_config(broker.port, false, &video, 5.0)
        .replace("topic_prefix = \"cityeye\"", "topic_prefix = \"cityeye\"\nstats_interval_s = 2");
    let (dir, config) = write_config(&text);
    let mut node = Appliance::run(&config);

    let messages =
        subscriber.wait_until(Duration::from_secs(60), |m| incidents(m, "start").len() >= 2);
    let starts = incidents(&messages, "start");
    assert!(starts.len() >= 2, "two parked vehicles expected:\n{}", node.log());
    let (judged, other) = (starts[0].json(), starts[1].json());
    let id = judged["id"].as_str().unwrap().to_string();
    let (judged_box, other_box) = (first_box(&judged), first_box(&other));
    assert!(iou(&judged_box, &other_box) < 0.5, "two vehicles, two places");

    // Malformed verdicts, and one for an incident the node never raised, are logged and ignored.
    let topic = |incident: &str| format!("cityeye/edge-test/kerb/verdict/{incident}");
    publish(broker.port, &topic(&id), b"{\"verdict\": \"maybe\", \"by\": \"x\"}");
    publish(broker.port, &topic(&id), b"not json at all");
    let stranger = "01a1ffae-a177-7f4d-85bd-000000000009";
    publish(broker.port, &topic(stranger), br#"{"verdict": "false_positive", "by": "x"}"#);
    let verdict = br#"{"verdict": "false_positive", "by": "dispatch-7", "note": "parked legally"}"#;
    publish(broker.port, &topic(&id), verdict);

    let ended = |m: &[Message]| {
        incidents(m, "end").into_iter().find(|e| e.json()["id"] == id.as_str()).map(|e| e.json())
    };
    let messages = subscriber.wait_until(Duration::from_secs(20), |m| ended(m).is_some());
    let end = ended(&messages).unwrap_or_else(|| panic!("no end for {id}:\n{}", node.log()));
    assert_eq!(end["reason"], "false_positive");
    assert_matches_schema("schemas/incident.v1.json", &end);
    assert!(node.is_running(), "bad verdicts do not stop the node");
    let log = node.log();
    assert!(log.contains("verdict ignored: not a verdict"), "{log}");
    assert!(log.contains(&format!("verdict ignored: no incident {stranger}")), "{log}");
    let stats = subscriber.wait_until(Duration::from_secs(10), |m| {
        m.iter().any(|m| m.topic == "cityeye/edge-test/stats" && m.json()["suppressions"] == 1)
    });
    let stats = stats.iter().rfind(|m| m.topic == "cityeye/edge-test/stats").unwrap().json();
    assert_eq!(stats["verdicts"]["false_positive"], 1, "{stats}");
    assert_matches_schema("schemas/stats.v1.json", &stats);
    assert!(node.stop());

    // Journaled, and listed by the command line.
    let data = dir.path().join("data");
    let journal = std::fs::read_to_string(data.join("verdicts.jsonl")).unwrap();
    let entry: serde_json::Value = serde_json::from_str(journal.lines().next().unwrap()).unwrap();
    assert_eq!(
        (entry["by"].as_str(), entry["incident_id"].as_str()),
        (Some("dispatch-7"), Some(id.as_str()))
    );
    assert_eq!(entry["verdict"], "false_positive");
    assert!(entry["at"].as_str().is_some());
    let listed = std::process::Command::new(env!("CARGO_BIN_EXE_cityeye"))
        .args(["suppressions", "list", "--config"])
        .arg(&config)
        .output()
        .unwrap();
    let listed = String::from_utf8(listed.stdout).unwrap();
    assert!(
        listed.contains(&format!("(incident {id})")) && listed.contains("illegal_parking"),
        "{listed}"
    );
    assert!(listed.contains("by dispatch-7: parked legally"), "{listed}");

    // Restarted on the same data dir, the node raises the other vehicle again, never this one.
    let seen_before = subscriber.messages().len();
    let node = Appliance::run(&config);
    let new_starts = |m: &[Message]| -> Vec<serde_json::Value> {
        incidents(&m[seen_before..], "start").into_iter().map(|s| s.json()).collect()
    };
    let messages = subscriber.wait_until(Duration::from_secs(60), |m| {
        new_starts(m).iter().any(|s| iou(&first_box(s), &other_box) >= 0.5)
    });
    assert!(
        new_starts(&messages).iter().any(|s| iou(&first_box(s), &other_box) >= 0.5),
        "the other vehicle raises an incident again:\n{}",
        node.log()
    );
    // Well past the dwell time the judged vehicle needs: still nothing for it.
    std::thread::sleep(Duration::from_secs(10));
    let messages = subscriber.wait_until(Duration::from_secs(5), |m| {
        m[seen_before..].iter().any(|m| {
            m.topic == "cityeye/edge-test/stats"
                && m.json()["cameras"]["kerb"]["incidents_suppressed"].as_u64() >= Some(1)
        })
    });
    let silenced: Vec<_> = new_starts(&messages)
        .into_iter()
        .filter(|s| iou(&first_box(s), &judged_box) >= 0.5)
        .collect();
    assert!(silenced.is_empty(), "the judged vehicle raised {silenced:?}");
    let stats = messages.iter().rfind(|m| m.topic == "cityeye/edge-test/stats").unwrap().json();
    assert_eq!(stats["suppressions"], 1, "{stats}");
    let held_back = stats["cameras"]["kerb"]["incidents_suppressed"].as_u64();
    assert!(held_back >= Some(1), "{stats}");
}
