//! One node per data dir: two `cityeye run` on one `node.data_dir` once both ran, knocked each
//! other off the broker and reported every incident twice. The second now stops at once, naming
//! the first; the lock goes with the first's process, also when it is killed outright.

mod common;

use std::path::Path;
use std::time::{Duration, Instant};

use common::*;

/// Waits up to `timeout` for `path` to hold `pid`, as a node that took the lock writes it.
fn holds_lock(path: &Path, pid: u32, timeout: Duration) -> bool {
    let until = Instant::now() + timeout;
    while Instant::now() < until {
        if std::fs::read_to_string(path).is_ok_and(|t| t.trim() == pid.to_string()) {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}

#[test]
fn a_second_node_on_a_data_dir_stops_at_once_naming_the_first_until_it_dies() {
    let broker = Mosquitto::start();
    let video = format!("file://{}", shared("testdata/vtest.avi").display());
    let text = kerb_config(broker.port, false, &video, 5.0);
    let (dir, config) = write_config(&text);
    let data_dir = dir.path().join("data");
    let lock = data_dir.join("cityeye.lock");
    let mut first = Appliance::run(&config);
    assert!(holds_lock(&lock, first.pid(), Duration::from_secs(20)), "{}", first.log());

    // The same config under another name: the same data dir (and client id), its own log.
    let again = dir.path().join("again.toml");
    std::fs::write(&again, &text).unwrap();
    let started = Instant::now();
    let mut second = Appliance::run(&again);
    let status = second.wait_exit(Duration::from_secs(10)).expect("the second node stops itself");
    let took = started.elapsed();
    assert_eq!(status.code(), Some(1), "{}", second.log());
    let expected = format!(
        "error: node.data_dir: another cityeye (PID {}) is running on {}",
        first.pid(),
        data_dir.display()
    );
    assert!(second.log().contains(&expected), "{}", second.log());
    assert!(took < Duration::from_secs(5), "stopped after {took:?}");
    assert!(first.is_running(), "the first node runs on:\n{}", first.log());

    // SIGKILL leaves the lock file behind with the dead PID in it; the lock itself is gone.
    first.kill();
    let mut third = Appliance::run(&again);
    assert!(holds_lock(&lock, third.pid(), Duration::from_secs(20)), "{}", third.log());
    let connected = || third.log().contains("connected to the MQTT broker");
    let until = Instant::now() + Duration::from_secs(30);
    while !connected() && Instant::now() < until {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(connected(), "{}", third.log());
    assert!(third.is_running(), "{}", third.log());
}
