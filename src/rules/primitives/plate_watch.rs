//! `plate_watch`: a vehicle whose plate is on the watch list is in view.
//!
//! A subject matches once its track's plate (voted over its readings, see `crate::plates`)
//! matches one of the `watch` patterns, and it is in the zone (anywhere without one). Each
//! matching vehicle is its own [`Hold`], keyed by its track, from the first frame it matches
//! until its track ends; a track briefly `Lost` keeps it. The facts' `label` is the plate.

use std::collections::HashMap;

use crate::config::plate_matches;
use crate::rules::{Facts, Hold, ObjectFact, Primitive, View};

pub struct PlateWatch {
    watch: Vec<String>,
    /// When each matching track first matched.
    since: HashMap<u64, f64>,
}

impl PlateWatch {
    pub fn new(watch: Vec<String>) -> Self {
        PlateWatch { watch, since: HashMap::new() }
    }
}

impl Primitive for PlateWatch {
    fn evaluate(&mut self, view: &View<'_>) -> Vec<Hold> {
        let mut holds = Vec::new();
        let mut matching = HashMap::new();
        for track in &view.subjects {
            let Some(plate) = &track.plate else { continue };
            let watched = self.watch.iter().any(|p| plate_matches(p, &plate.text));
            if !watched || !view.in_zone(track) {
                continue;
            }
            let since = self.since.get(&track.id).copied().unwrap_or(view.t);
            matching.insert(track.id, since);
            let facts = Facts { label: Some(plate.text.clone()), ..Facts::default() };
            let objects = vec![ObjectFact::of(track, view.t - since)];
            holds.push(Hold { key: track.id, objects, facts });
        }
        self.since = matching;
        holds
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::rules::primitives::testing::{Frame, evaluate, track};
    use crate::track::Plate;

    fn with_plate(mut t: crate::track::Track, text: &str) -> crate::track::Track {
        t.plate = Some(Plate { text: Arc::from(text), confidence: 0.95, reads: 2, picture: None });
        t
    }

    #[test]
    fn a_watched_plate_holds_while_its_vehicle_is_tracked() {
        let mut watch = PlateWatch::new(vec!["皖ACJ21?".into()]);
        let watched = with_plate(track(1, "car", 0.4, 0.4, 0.1, 0.1), "皖ACJ218");
        let other = with_plate(track(2, "car", 0.1, 0.4, 0.1, 0.1), "苏E9E0A5");
        let unread = track(3, "car", 0.7, 0.4, 0.1, 0.1);
        let tracks = [watched.clone(), other, unread];
        let holds = evaluate(&mut watch, None, &Frame::at(10.0, &tracks));
        assert_eq!(holds.len(), 1);
        assert_eq!(holds[0].key, 1);
        assert_eq!(holds[0].facts.label.as_deref(), Some("皖ACJ218"));
        let holds = evaluate(&mut watch, None, &Frame::at(12.5, &tracks));
        assert_eq!(holds[0].objects[0].dwell_s, 2.5);
        assert!(evaluate(&mut watch, None, &Frame::at(13.0, &[])).is_empty());
    }
}
