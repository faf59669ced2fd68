//! Talking to systemd (`Type=notify`): readiness, status, stopping and the watchdog.
//!
//! The protocol is a datagram to the socket in `NOTIFY_SOCKET` (see `sd_notify(3)`); without that
//! variable (not under systemd) every call does nothing. The watchdog is fed only while every
//! camera's loop is alive — each camera marks itself alive as it pulls frames, waits for a
//! stream or backs off — so a camera stuck inside GStreamer or ONNX Runtime stops the pings and
//! systemd restarts the node after `WatchdogSec`.

use std::os::unix::net::UnixDatagram;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::stats::NodeStats;

/// The service manager's notification socket, if there is one.
pub struct Notifier {
    socket: Option<(UnixDatagram, std::os::unix::net::SocketAddr)>,
    watchdog: Option<Duration>,
}

impl Notifier {
    /// Reads `NOTIFY_SOCKET`, `WATCHDOG_USEC` and `WATCHDOG_PID` (systemd sets them).
    pub fn from_env() -> Notifier {
        let socket = std::env::var_os("NOTIFY_SOCKET").and_then(|path| {
            let address = socket_address(path.to_str()?)?;
            Some((UnixDatagram::unbound().ok()?, address))
        });
        let for_us =
            std::env::var("WATCHDOG_PID").map_or(true, |pid| pid.parse() == Ok(std::process::id()));
        let watchdog = std::env::var("WATCHDOG_USEC")
            .ok()
            .and_then(|usec| usec.parse().ok())
            .filter(|usec| *usec > 0 && for_us)
            .map(Duration::from_micros);
        Notifier { socket, watchdog }
    }

    /// The watchdog timeout systemd enforces (`WatchdogSec=`), when it is on.
    pub fn watchdog(&self) -> Option<Duration> {
        self.watchdog.filter(|_| self.socket.is_some())
    }

    pub fn ready(&self, status: &str) {
        self.send(&format!("READY=1\nSTATUS={status}"));
    }

    pub fn stopping(&self) {
        self.send("STOPPING=1");
    }

    fn send(&self, message: &str) {
        if let Some((socket, address)) = &self.socket
            && let Err(e) = socket.send_to_addr(message.as_bytes(), address)
        {
            tracing::warn!("cannot notify systemd: {e}");
        }
    }
}

/// `NOTIFY_SOCKET` is a path, or an abstract name when it starts with `@`.
fn socket_address(text: &str) -> Option<std::os::unix::net::SocketAddr> {
    use std::os::linux::net::SocketAddrExt;
    match text.strip_prefix('@') {
        Some(name) => std::os::unix::net::SocketAddr::from_abstract_name(name).ok(),
        None => std::os::unix::net::SocketAddr::from_pathname(text).ok(),
    }
}

/// Feeds systemd's watchdog every half timeout while every camera is alive, until `stop`.
pub async fn feed_watchdog(notifier: Arc<Notifier>, stats: Arc<NodeStats>, stop: Arc<AtomicBool>) {
    let Some(timeout) = notifier.watchdog() else { return };
    let mut every = tokio::time::interval(timeout / 2);
    let mut stuck_before = false;
    while !stop.load(Ordering::Relaxed) {
        every.tick().await;
        match stats.stuck_camera(timeout / 2) {
            None => {
                notifier.send("WATCHDOG=1");
                stuck_before = false;
            }
            Some((camera, for_s)) if !stuck_before => {
                tracing::error!(
                    camera,
                    "the camera's loop has not moved for {:.0} s; no longer feeding the \
                     systemd watchdog, which restarts the node",
                    for_s.as_secs_f64()
                );
                stuck_before = true;
            }
            Some(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn notify_socket_addresses() {
        assert!(socket_address("/run/systemd/notify").unwrap().as_pathname().is_some());
        use std::os::linux::net::SocketAddrExt;
        let abstract_name = socket_address("@cityeye-test").unwrap();
        assert_eq!(abstract_name.as_abstract_name(), Some(&b"cityeye-test"[..]));
    }
}
