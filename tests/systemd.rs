//! The node under systemd (`Type=notify`): it says when it is ready, feeds the watchdog while its
//! cameras run, and says when it is stopping. The test plays systemd's part: it binds the
//! notification socket and passes `NOTIFY_SOCKET` and `WATCHDOG_USEC` as systemd does.

mod common;

use std::os::unix::net::UnixDatagram;
use std::time::{Duration, Instant};

use common::*;

/// Notifications received within `timeout`, until `done` holds.
fn receive_until(
    socket: &UnixDatagram,
    timeout: Duration,
    got: &mut Vec<String>,
    done: impl Fn(&[String]) -> bool,
) {
    let until = Instant::now() + timeout;
    let mut buffer = [0u8; 4096];
    while !done(got) && Instant::now() < until {
        if let Ok(n) = socket.recv(&mut buffer) {
            got.push(String::from_utf8_lossy(&buffer[..n]).into_owned());
        }
    }
}

#[test]
fn the_node_notifies_readiness_feeds_the_watchdog_and_says_when_it_stops() {
    let broker = Mosquitto::start();
    let video = format!("file://{}", shared("testdata/vtest.avi").display());
    let (dir, config) = write_config(&kerb_config(broker.port, false, &video, 30.0));
    let path = dir.path().join("notify.sock");
    let socket = UnixDatagram::bind(&path).unwrap();
    socket.set_read_timeout(Some(Duration::from_millis(200))).unwrap();
    let env = [("NOTIFY_SOCKET", path.to_str().unwrap()), ("WATCHDOG_USEC", "2000000")];
    let mut appliance = Appliance::run_with_env(&config, &env);

    let mut got = Vec::new();
    let pings = |got: &[String]| got.iter().filter(|m| *m == "WATCHDOG=1").count();
    receive_until(&socket, Duration::from_secs(30), &mut got, |g| pings(g) >= 3);
    let ready = got.iter().position(|m| m.starts_with("READY=1\nSTATUS="));
    assert!(ready.is_some(), "READY=1 first: {got:?}\n{}", appliance.log());
    assert!(pings(&got) >= 3, "the watchdog is fed every second: {got:?}");

    assert!(appliance.stop());
    receive_until(&socket, Duration::from_secs(2), &mut got, |g| {
        g.iter().any(|m| m == "STOPPING=1")
    });
    assert!(got.iter().any(|m| m == "STOPPING=1"), "{got:?}");
}
