//! The outbox at its limits: full by its own cap, on a full disk, on a read-only disk, corrupt.
//! The disks are small tmpfs mounts made by the test (which needs root, as CI runs).

mod common;

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// A tmpfs of `size` (e.g. `"4m"`) mounted on a new temporary folder, unmounted on drop.
struct Tmpfs {
    dir: tempfile::TempDir,
}

impl Tmpfs {
    fn mount(size: &str, read_only: bool) -> Tmpfs {
        let dir = tempfile::tempdir().unwrap();
        let options = format!("size={size}{}", if read_only { ",ro" } else { "" });
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", &options, "tmpfs"])
            .arg(dir.path())
            .status()
            .expect("mount runs");
        assert!(status.success(), "these tests mount a tmpfs and need root, as CI has");
        Tmpfs { dir }
    }

    fn path(&self) -> &Path {
        self.dir.path()
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = Command::new("umount").arg("-l").arg(self.dir.path()).status();
    }
}

/// `kerb_config` with extra `[mqtt]` keys, and `tables` appended.
fn config_with(port: u16, dwell_s: f64, mqtt: &str, tables: &str) -> String {
    let video = format!("file://{}", shared("testdata/vtest.avi").display());
    let config = kerb_config(port, false, &video, dwell_s);
    let config = config.replacen(
        "topic_prefix = \"cityeye\"\n",
        &format!("topic_prefix = \"cityeye\"\n{mqtt}\n"),
        1,
    );
    format!("{config}\n{tables}\n")
}

fn with_data_dir(config: &str, dir: &Path) -> String {
    config.replacen("data_dir = \"data\"", &format!("data_dir = \"{}\"", dir.display()), 1)
}

fn wait_for(timeout: Duration, mut done: impl FnMut() -> bool) -> bool {
    let until = Instant::now() + timeout;
    while Instant::now() < until {
        if done() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    done()
}

#[test]
fn a_full_outbox_drops_evidence_before_incidents_and_says_so_on_the_stats_topic() {
    let port = free_port(); // the broker is away while the two incidents happen
    // Two snapshots of vtest (about 110 KB each) do not fit in 150 KiB; the incidents do.
    let text = config_with(port, 5.0, "stats_interval_s = 1", "[outbox]\nmax_bytes = \"150 KiB\"");
    let (dir, config) = write_config(&text);
    let data_dir = dir.path().join("data");
    let appliance = Appliance::run(&config);
    assert!(
        wait_for(Duration::from_secs(40), || committed_incidents(&data_dir).len() >= 2),
        "two parked vehicles while the broker is away:\n{}",
        appliance.log()
    );
    let committed = committed_incidents(&data_dir);
    assert!(appliance.log().contains("evidence dropped"), "{}", appliance.log());

    let _broker = Mosquitto::start_on(port);
    let subscriber = Subscriber::connect(port, "cityeye/#");
    let reported_drop = |m: &[Message]| {
        m.iter().any(|m| {
            m.topic == "cityeye/edge-test/stats" && m.json()["outbox"]["evidence_dropped"] == 1
        })
    };
    let delivered = |m: &[Message]| incidents(m, "start").len() >= 2 && reported_drop(m);
    let messages = subscriber.wait_until(Duration::from_secs(40), delivered);
    assert!(delivered(&messages), "{}", appliance.log());

    let starts = incidents(&messages, "start");
    let ids: Vec<String> = starts.iter().map(|i| i.json()["id"].as_str().unwrap().into()).collect();
    assert_eq!(ids[..2], committed[..2], "both incidents, in order");
    let evidence_of = |i: &Message| {
        let topic = i.json()["evidence"]["topic"].as_str().unwrap().to_string();
        messages.iter().any(|m| m.topic == topic)
    };
    assert!(!evidence_of(starts[0]), "the older incident's evidence was dropped");
    assert!(evidence_of(starts[1]), "the newer incident's evidence fits and arrives");
    let stats = messages.iter().rfind(|m| m.topic == "cityeye/edge-test/stats").unwrap();
    assert_matches_schema("schemas/stats.v1.json", &stats.json());
    let outbox = &stats.json()["outbox"];
    assert!(outbox["evidence_dropped_bytes"].as_u64().unwrap() > 50_000, "{outbox}");
    assert_eq!(outbox["max_bytes"], 150 * 1024);
    let camera = &stats.json()["cameras"]["kerb"];
    assert_eq!(camera["state"], "online");
    assert!(camera["frames_analysed"].as_u64().unwrap() > 0, "{camera}");
    assert_eq!(stats.json()["incidents"]["illegal_parking"], 2);
}

#[test]
fn a_read_only_data_dir_stops_the_node_at_start_with_a_clear_error() {
    let disk = Tmpfs::mount("1m", true);
    let broker = Mosquitto::start();
    let (_dir, config) =
        write_config(&with_data_dir(&config_with(broker.port, 5.0, "", ""), disk.path()));
    let mut appliance = Appliance::run(&config);
    let status = appliance.wait_exit(Duration::from_secs(20)).expect("the node stops by itself");
    assert!(!status.success());
    let log = appliance.log();
    assert!(log.contains("node.data_dir") && log.contains("Read-only file system"), "{log}");
}

#[test]
fn a_full_disk_at_run_time_is_loud_and_loses_nothing() {
    let disk = Tmpfs::mount("8m", false);
    let broker = Mosquitto::start();
    let subscriber = Subscriber::connect(broker.port, "cityeye/#");
    let text =
        with_data_dir(&config_with(broker.port, 5.0, "stats_interval_s = 1", ""), disk.path());
    let (_dir, config) = write_config(&text);
    let appliance = Appliance::run(&config);
    assert!(
        wait_for(Duration::from_secs(30), || appliance.log().contains("online")),
        "{}",
        appliance.log()
    );
    // Fill the disk before the parked vehicles reach their dwell.
    let _ = std::fs::write(disk.path().join("filler"), vec![0u8; 16 << 20]);

    let delivered = |m: &[Message]| {
        incidents(m, "start").len() >= 2
            && m.iter().any(|m| {
                m.topic.ends_with("/stats") && m.json()["outbox"]["store_errors"].as_u64() > Some(0)
            })
    };
    let messages = subscriber.wait_until(Duration::from_secs(40), delivered);
    assert!(delivered(&messages), "{}", appliance.log());
    assert!(appliance.log().contains("the outbox cannot write to disk"), "{}", appliance.log());

    let mut appliance = appliance;
    assert!(appliance.wait_exit(Duration::from_secs(1)).is_none(), "the node keeps running");
    assert!(!appliance.log().contains("panicked"), "{}", appliance.log());
}

/// A corrupt outbox file once stopped the node at every start while `check` passed, until
/// systemd gave up. Now `check` names it (exit 2), and `run` sets it aside under a dated name,
/// starts a fresh one, delivers, and says so in its log, its status and its metrics.
#[test]
fn a_corrupt_outbox_fails_check_and_run_sets_it_aside_and_delivers() {
    let broker = Mosquitto::start();
    let subscriber = Subscriber::connect(broker.port, "cityeye/#");
    let (dir, config) = write_config(&config_with(broker.port, 5.0, "", ""));
    let data_dir = dir.path().join("data");
    std::fs::create_dir_all(&data_dir).unwrap();
    let outbox = data_dir.join("outbox.sqlite");
    let garbage = b"power cut mid-write \x00\xff".repeat(400);
    std::fs::write(&outbox, &garbage).unwrap();

    let check = Command::new(env!("CARGO_BIN_EXE_cityeye"))
        .args(["check", "--config"])
        .arg(&config)
        .output()
        .expect("check runs");
    let stderr = String::from_utf8_lossy(&check.stderr);
    assert_eq!(check.status.code(), Some(2), "{stderr}");
    let named = format!(
        "error: {}: node.data_dir: {}: the outbox is corrupt: file is not a database",
        config.display(),
        outbox.display()
    );
    assert!(stderr.contains(&named), "{stderr}");
    assert_eq!(std::fs::read(&outbox).unwrap(), garbage, "check changes nothing");

    let appliance = Appliance::run(&config);
    let recovered = |m: &Message| {
        m.topic == "cityeye/edge-test/status" && m.json()["outbox_recovered_from"].is_string()
    };
    let delivered = |m: &[Message]| !incidents(m, "start").is_empty() && m.iter().any(recovered);
    let messages = subscriber.wait_until(Duration::from_secs(60), delivered);
    assert!(delivered(&messages), "{}", appliance.log());

    let aside: Vec<_> = std::fs::read_dir(&data_dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("outbox.sqlite.corrupt-"))
        .collect();
    assert_eq!(aside.len(), 1, "{aside:?}");
    assert_eq!(std::fs::read(&aside[0]).unwrap(), garbage, "kept as it was, for recovery");
    let status = messages.iter().find(|m| recovered(m)).unwrap().json();
    assert_matches_schema("schemas/status.v1.json", &status);
    assert_eq!(status["outbox_recovered_from"], aside[0].display().to_string());
    let log = appliance.log();
    assert!(log.contains("ERROR") && log.contains("is corrupt"), "{log}");

    let port = appliance.http_port().expect("the node logs its HTTP port");
    let metrics = ureq::get(format!("http://127.0.0.1:{port}/metrics"))
        .call()
        .expect("/metrics answers")
        .into_body()
        .read_to_string()
        .unwrap();
    assert!(metrics.lines().any(|l| l == "cityeye_outbox_recovered_total 1"), "{metrics}");
}
