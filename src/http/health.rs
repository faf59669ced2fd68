//! `/healthz`, for a health checker: whether every camera's loop is moving (the test the
//! systemd watchdog makes), with each camera's state and the broker link.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::stats::NodeStats;

/// A camera loop quiet for this long is stuck: `/healthz` answers 503 (the systemd watchdog,
/// at `WatchdogSec=30`, gives up at the same point).
pub const STUCK_AFTER: Duration = Duration::from_secs(15);

/// `200` with the body of [`health`], or `503` while a camera is stuck.
pub async fn healthz(State(stats): State<Arc<NodeStats>>) -> Response {
    let (healthy, body) = health(&stats, STUCK_AFTER);
    let status = if healthy { StatusCode::OK } else { StatusCode::SERVICE_UNAVAILABLE };
    (status, [(header::CONTENT_TYPE, "application/json")], body.to_string()).into_response()
}

/// Healthy unless a camera's loop has not marked itself alive for `stuck_after`; the body
/// says which, with each camera's state and the broker link. A camera whose stream is down is
/// not stuck: it is reconnecting, and its state says `offline`.
pub fn health(stats: &NodeStats, stuck_after: Duration) -> (bool, serde_json::Value) {
    let stuck = stats.stuck_camera(stuck_after);
    let body = serde_json::json!({
        "status": if stuck.is_some() { "stuck" } else { "ok" },
        "stuck_camera": stuck.as_ref().map(|(id, _)| id),
        "mqtt_connected": stats.mqtt_connected(),
        "cameras": stats.camera_states(),
    });
    (stuck.is_none(), body)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::CameraState;

    #[test]
    fn a_stuck_camera_makes_the_node_unhealthy() {
        let stats = NodeStats::new("edge-1", ["a", "b"]);
        stats.camera("a").set_state(&CameraState::Online { width: 768, height: 576 });
        let (healthy, body) = health(&stats, Duration::from_secs(5));
        assert!(healthy, "{body}");
        let expected = serde_json::json!({
            "status": "ok", "stuck_camera": null, "mqtt_connected": false,
            "cameras": {"a": "online", "b": "connecting"},
        });
        assert_eq!(body, expected);

        std::thread::sleep(Duration::from_millis(30));
        stats.camera("a").mark_alive();
        stats.set_mqtt_connected(true);
        let (healthy, body) = health(&stats, Duration::from_millis(20));
        assert!(!healthy);
        assert_eq!((&body["status"], &body["stuck_camera"]), (&"stuck".into(), &"b".into()));
        assert_eq!(body["mqtt_connected"], true);
    }
}
