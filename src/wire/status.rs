//! `cityeye.status.v1` (`schemas/status.v1.json`): the node's and each camera's state, as
//! retained on the status topics.

use std::time::SystemTime;

use serde::Serialize;

use super::rfc3339_millis;

/// What a camera is doing, as reported on its status topic.
#[derive(Debug, Clone, PartialEq)]
pub enum CameraState {
    Connecting,
    Online {
        width: usize,
        height: usize,
    },
    Offline {
        reason: String,
        retry_in_s: u64,
    },
    /// A patrolled camera between its visits: closed on purpose, next opened about then.
    Standby {
        next_visit_at: SystemTime,
    },
}

/// The node status's `config`: which config file version the node runs and how the last
/// reload went.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ConfigReport {
    /// SHA-256 of the config file's text the node runs.
    pub sha256: String,
    /// When the node started running it (UTC, RFC 3339).
    pub applied_at: String,
    /// Sections changed in the file that apply only at the next restart.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub restart_needed: Vec<String>,
    /// The last reload's mistakes, when it was refused: the node keeps running `sha256`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<String>,
    /// Where each model of the config runs.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<ModelReport>,
}

/// Where a model runs: the device its config asks for, and the execution providers ONNX Runtime
/// actually gave its nodes (a provider that cannot take a node leaves it to the CPU).
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ModelReport {
    pub name: String,
    /// `cpu`, `openvino`, `cuda` or `tensorrt`, as configured.
    pub device: String,
    /// The execution provider that ran most of its nodes in its first run.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub provider: Option<String>,
    /// How many nodes each provider ran (a subgraph an accelerator compiled counts as one).
    pub nodes: std::collections::BTreeMap<String, usize>,
}

/// `cityeye.status.v1`: the node's or a camera's state, as retained on the status topics.
#[derive(Debug, Serialize)]
struct StatusPayload<'a> {
    schema: &'static str,
    node: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    camera: Option<&'a str>,
    state: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    retry_in_s: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    width: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    height: Option<usize>,
    #[serde(skip_serializing_if = "Option::is_none")]
    telemetry: Option<&'a str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    next_visit_at: Option<String>,
    at: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    config: Option<&'a ConfigReport>,
    /// Node only: where a corrupt outbox found at the start was set aside.
    #[serde(skip_serializing_if = "Option::is_none")]
    outbox_recovered_from: Option<&'a str>,
}

impl<'a> StatusPayload<'a> {
    /// A status in `state` since `at`, with nothing else said.
    fn new(node: &'a str, state: &'static str, at: SystemTime) -> Self {
        StatusPayload {
            schema: "cityeye.status.v1",
            node,
            camera: None,
            state,
            reason: None,
            retry_in_s: None,
            width: None,
            height: None,
            telemetry: None,
            next_visit_at: None,
            at: rfc3339_millis(at),
            config: None,
            outbox_recovered_from: None,
        }
    }
}

/// The node's status. `at` is when the state began: for `online` (and for the last will that
/// stands for its end) when the node opened its current connection to the broker, the same in
/// every status that connection carries; for a clean stop's `offline`, the stop.
pub fn node_status(
    node: &str,
    online: bool,
    at: SystemTime,
    config: Option<&ConfigReport>,
    outbox_recovered_from: Option<&str>,
) -> Vec<u8> {
    let state = if online { "online" } else { "offline" };
    let payload =
        StatusPayload { config, outbox_recovered_from, ..StatusPayload::new(node, state, at) };
    serde_json::to_vec(&payload).expect("status serializes")
}

pub fn camera_status(
    node: &str,
    camera: &str,
    state: &CameraState,
    telemetry: Option<&'static str>,
    at: SystemTime,
) -> Vec<u8> {
    let mut payload =
        StatusPayload { camera: Some(camera), ..StatusPayload::new(node, "connecting", at) };
    match state {
        CameraState::Connecting => {}
        CameraState::Online { width, height } => {
            payload.state = "online";
            (payload.width, payload.height) = (Some(*width), Some(*height));
            payload.telemetry = telemetry;
        }
        CameraState::Offline { reason, retry_in_s } => {
            payload.state = "offline";
            (payload.reason, payload.retry_in_s) = (Some(reason.as_str()), Some(*retry_in_s));
        }
        CameraState::Standby { next_visit_at } => {
            payload.state = "standby";
            payload.next_visit_at = Some(rfc3339_millis(*next_visit_at));
        }
    }
    serde_json::to_vec(&payload).expect("status serializes")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn node_status_says_where_each_model_runs() {
        let report = ConfigReport {
            models: vec![ModelReport {
                name: "coco".into(),
                device: "openvino".into(),
                provider: Some("OpenVINOExecutionProvider".into()),
                nodes: [("OpenVINOExecutionProvider".to_string(), 1)].into(),
            }],
            ..ConfigReport::default()
        };
        let at = SystemTime::UNIX_EPOCH;
        let body: serde_json::Value =
            serde_json::from_slice(&node_status("n", true, at, Some(&report), None)).unwrap();
        assert_eq!(
            body["config"]["models"],
            serde_json::json!([{"name": "coco", "device": "openvino",
                "provider": "OpenVINOExecutionProvider",
                "nodes": {"OpenVINOExecutionProvider": 1}}])
        );
    }

    #[test]
    fn node_status_is_timed_when_its_state_began() {
        let began = SystemTime::UNIX_EPOCH + std::time::Duration::from_millis(1_795_000_000_120);
        let body: serde_json::Value =
            serde_json::from_slice(&node_status("n", true, began, None, None)).unwrap();
        assert_eq!(body["state"], "online");
        assert_eq!(body["at"], "2026-11-18T11:06:40.120Z");
    }

    #[test]
    fn camera_status_says_why_it_is_offline() {
        let state = CameraState::Offline { reason: "refused".into(), retry_in_s: 4 };
        let body: serde_json::Value =
            serde_json::from_slice(&camera_status("n", "c", &state, None, SystemTime::UNIX_EPOCH))
                .unwrap();
        assert_eq!(body["state"], "offline");
        assert_eq!(body["reason"], "refused");
        assert_eq!(body["retry_in_s"], 4);
        assert_eq!(body["camera"], "c");
    }
}
