//! The topic names: `{prefix}/{node}/…`, one place for every publisher and subscriber.

/// The node's topic names.
#[derive(Debug, Clone)]
pub struct Topics {
    base: String,
}

impl Topics {
    pub fn new(prefix: &str, node: &str) -> Self {
        Topics { base: format!("{prefix}/{node}") }
    }

    pub fn incident(&self, camera: &str, algorithm: &str) -> String {
        format!("{}/{camera}/incident/{algorithm}", self.base)
    }

    pub fn evidence(&self, camera: &str, incident_id: &str) -> String {
        format!("{}/{camera}/evidence/{incident_id}", self.base)
    }

    /// Where the picture of the plate of an incident's object (its track) goes.
    pub fn plate(&self, camera: &str, incident_id: &str, track_id: u64) -> String {
        format!("{}/plate/{track_id}", self.evidence(camera, incident_id))
    }

    pub fn clip(&self, camera: &str, incident_id: &str) -> String {
        format!("{}/clip", self.evidence(camera, incident_id))
    }

    /// Where an operator's verdict on an incident comes in: the node subscribes, never
    /// publishes.
    pub fn verdict(&self, camera: &str, incident_id: &str) -> String {
        format!("{}/{camera}/verdict/{incident_id}", self.base)
    }

    /// Every camera's verdict topics, for the node's subscription.
    pub fn verdicts(&self) -> String {
        format!("{}/+/verdict/+", self.base)
    }

    /// The camera and incident id of a verdict topic of this node.
    pub fn parse_verdict<'t>(&self, topic: &'t str) -> Option<(&'t str, &'t str)> {
        let rest = topic.strip_prefix(self.base.as_str())?.strip_prefix('/')?;
        match rest.split('/').collect::<Vec<_>>()[..] {
            [camera, "verdict", id] if !camera.is_empty() && !id.is_empty() => Some((camera, id)),
            _ => None,
        }
    }

    pub fn node_status(&self) -> String {
        format!("{}/status", self.base)
    }

    pub fn camera_status(&self, camera: &str) -> String {
        format!("{}/{camera}/status", self.base)
    }

    /// `{prefix}/{node}`: every topic of the node is under it.
    pub fn base(&self) -> &str {
        &self.base
    }

    pub fn stats(&self) -> String {
        format!("{}/stats", self.base)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn topics_follow_the_contract() {
        let t = Topics::new("cityeye", "edge-0001");
        assert_eq!(
            t.incident("gate-east", "illegal_parking"),
            "cityeye/edge-0001/gate-east/incident/illegal_parking"
        );
        assert_eq!(t.evidence("gate-east", "X"), "cityeye/edge-0001/gate-east/evidence/X");
        assert_eq!(t.clip("gate-east", "X"), "cityeye/edge-0001/gate-east/evidence/X/clip");
        assert_eq!(t.node_status(), "cityeye/edge-0001/status");
        assert_eq!(t.camera_status("gate-east"), "cityeye/edge-0001/gate-east/status");
        assert_eq!(t.verdict("gate-east", "X"), "cityeye/edge-0001/gate-east/verdict/X");
        assert_eq!(t.verdicts(), "cityeye/edge-0001/+/verdict/+");
        assert_eq!(t.parse_verdict(&t.verdict("gate-east", "X")), Some(("gate-east", "X")));
        for other in [
            "cityeye/edge-0002/gate/verdict/X",
            "cityeye/edge-0001/gate/verdict/X/y",
            "cityeye/edge-0001//verdict/X",
        ] {
            assert_eq!(t.parse_verdict(other), None, "{other}");
        }
    }
}
