//! `[[patrols]]`: more cameras than the box analyses at once, visited in turn (轮询巡检). A
//! patrol keeps at most `slots` of its cameras open, analyses each for `visit_s` seconds of
//! its frames, closes it and opens the next, round-robin.

use serde::Deserialize;

#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct PatrolConfig {
    pub id: String,
    /// Camera ids, or globs over them (`kerb-*`), in the order of their turns (a glob's
    /// cameras in config order).
    pub cameras: Vec<String>,
    /// Cameras open at once.
    pub slots: usize,
    /// Seconds of each camera's frames analysed per visit.
    pub visit_s: f64,
}

/// The most analysed frames a second an algorithm of a patrolled camera may need: the camera is
/// watched only during its visits, so only slow events (what stays for minutes) can be seen.
pub const PATROL_FPS: f64 = 1.0;

impl PatrolConfig {
    /// Whether `pattern`, one of `cameras`, names `camera`: its id, or a glob matching it. A
    /// pattern that is no glob matches only itself.
    pub fn names(pattern: &str, camera: &str) -> bool {
        pattern == camera || glob::Pattern::new(pattern).is_ok_and(|p| p.matches(camera))
    }

    /// The ids of `cameras` this patrol visits, in the order of their turns, each once.
    pub fn members<'a>(&self, cameras: impl Iterator<Item = &'a str> + Clone) -> Vec<&'a str> {
        let mut members: Vec<&str> = Vec::new();
        for pattern in &self.cameras {
            for id in cameras.clone().filter(|id| Self::names(pattern, id)) {
                if !members.contains(&id) {
                    members.push(id);
                }
            }
        }
        members
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cameras_are_named_by_id_or_glob_in_turn_order_once() {
        let patrol = PatrolConfig {
            id: "district-7".into(),
            cameras: vec!["kerb-2".into(), "kerb-*".into(), "gate".into()],
            slots: 2,
            visit_s: 10.0,
        };
        let ids = ["kerb-1", "gate", "kerb-2", "yard", "kerb-3"];
        assert_eq!(patrol.members(ids.iter().copied()), ["kerb-2", "kerb-1", "kerb-3", "gate"]);
        assert!(PatrolConfig::names("kerb-[12]", "kerb-1"));
        assert!(!PatrolConfig::names("kerb-[12]", "kerb-3"));
        assert!(PatrolConfig::names("kerb-[", "kerb-["), "no glob: the id itself");
    }
}
