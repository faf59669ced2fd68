//! `absence`: something that needs attending (a partner: a fire, a spill) is in the zone and
//! nobody of the algorithm's classes (a subject: a person) is.
//!
//! In a frame the condition is true when at least one partner has its ground point (bottom-centre
//! of its box) in the zone and no subject has; no zone means the whole frame. A briefly unseen
//! (`Lost`) track still counts as there, on either side: a flame behind smoke is still burning,
//! a cook behind a door is still in the kitchen. A track gone from the view is gone.
//!
//! - It starts once the condition has been true in every frame for `persist_s` seconds; a
//!   single frame where it is false restarts the wait.
//! - It ends in the first frame where it is false: a subject has appeared in the zone, or no
//!   partner is seen there.
//! - One zone-wide [`Hold`] with key 0; its objects are the partners in the zone, each with
//!   `dwell_s` = seconds since it was first seen there in this stay.

use crate::rules::{Facts, Hold, ObjectFact, Primitive, View};

use super::presence::{Latch, Occupants};

pub struct Absence {
    /// Time in the zone per partner.
    partners: Occupants,
    /// The partners as last seen, reported while they are briefly unseen.
    last_seen: Vec<ObjectFact>,
    latch: Latch,
}

impl Absence {
    pub fn new(persist_s: f64) -> Self {
        // No grace: the incident is about nobody being there, so anyone arriving ends it.
        Absence {
            partners: Occupants::default(),
            last_seen: Vec::new(),
            latch: Latch::new(persist_s, 0.0),
        }
    }
}

impl Primitive for Absence {
    fn evaluate(&mut self, view: &View<'_>) -> Vec<Hold> {
        let seen = self.partners.observe(view.t, &view.partners, |t| view.in_zone(t));
        if !seen.is_empty() {
            self.last_seen = seen;
        }
        let needs_attending = view.partners.iter().any(|t| view.in_zone(t));
        let attended = view.subjects.iter().any(|t| view.in_zone(t));
        let holds = self.latch.update(view.t, needs_attending && !attended);
        if !holds || self.last_seen.is_empty() {
            return vec![];
        }
        vec![Hold { key: 0, objects: self.last_seen.clone(), facts: Facts::default() }]
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::geometry::Polygon;
    use crate::rules::primitives::testing::{Frame, evaluate, lost, rect, track};
    use crate::track::Track;

    fn flame() -> Track {
        track(10, "fire", 0.4, 0.4, 0.1, 0.1)
    }

    fn person() -> Track {
        track(1, "person", 0.2, 0.3, 0.1, 0.3)
    }

    /// Runs 10 frames a second from t = 0, the subjects and partners of frame `i` given by
    /// `frame(i)`; returns each frame's time and holds.
    fn run_frames(
        a: &mut Absence,
        zone: Option<&Polygon>,
        frames: usize,
        frame: impl Fn(usize) -> (Vec<Track>, Vec<Track>),
    ) -> Vec<(f64, Vec<Hold>)> {
        (0..frames)
            .map(|i| {
                let t = i as f64 / 10.0;
                let (subjects, partners) = frame(i);
                let f = Frame {
                    t,
                    subjects: &subjects,
                    partners: &partners,
                    removed: &[],
                    labels: HashMap::new(),
                };
                (t, evaluate(a, zone, &f))
            })
            .collect()
    }

    fn holding(results: &[(f64, Vec<Hold>)]) -> Vec<bool> {
        results.iter().map(|(_, h)| !h.is_empty()).collect()
    }

    #[test]
    fn unattended_flame_fires_at_exactly_persist_s() {
        let mut a = Absence::new(3.0);
        let results = run_frames(&mut a, None, 35, |_| (vec![], vec![flame()]));
        let held = holding(&results);
        assert!(!held[29], "a frame early");
        assert!(held[30..].iter().all(|h| *h));
        let hold = &results[30].1[0];
        assert_eq!(hold.key, 0);
        assert_eq!(hold.facts, Facts::default());
        assert_eq!(hold.objects.len(), 1);
        assert_eq!(hold.objects[0].track_id, 10);
        assert!((hold.objects[0].dwell_s - 3.0).abs() < 1e-9);
    }

    #[test]
    fn a_person_present_prevents_it() {
        let mut a = Absence::new(1.0);
        let results = run_frames(&mut a, None, 50, |_| (vec![person()], vec![flame()]));
        assert!(holding(&results).iter().all(|h| !h));
    }

    #[test]
    fn a_person_outside_the_zone_does_not_prevent_it_but_one_briefly_unseen_inside_does() {
        let zone = rect(0.3, 0.3, 0.7, 0.7);
        // Ground point (0.25, 0.6): left of the zone.
        let mut a = Absence::new(1.0);
        let results = run_frames(&mut a, Some(&zone), 11, |_| (vec![person()], vec![flame()]));
        assert_eq!(holding(&results).iter().position(|h| *h), Some(10));
        let mut a = Absence::new(1.0);
        let inside = track(1, "person", 0.35, 0.3, 0.1, 0.3);
        let results =
            run_frames(&mut a, Some(&zone), 30, |_| (vec![lost(inside.clone())], vec![flame()]));
        assert!(holding(&results).iter().all(|h| !h), "the cook is still in the kitchen");
    }

    #[test]
    fn a_person_appearing_ends_it_at_once() {
        let mut a = Absence::new(1.0);
        let results = run_frames(&mut a, None, 30, |i| {
            let people = if i >= 15 { vec![person()] } else { vec![] };
            (people, vec![flame()])
        });
        let held = holding(&results);
        assert!(held[10..15].iter().all(|h| *h));
        assert!(held[15..].iter().all(|h| !h));
    }

    #[test]
    fn a_flicker_restarts_the_wait_and_the_flame_going_ends_it() {
        let mut a = Absence::new(1.0);
        // Flame from 0.0, not seen at 0.5, seen again 0.6 to 2.9, gone from 3.0.
        let results = run_frames(&mut a, None, 40, |i| {
            let flames = if i == 5 || i >= 30 { vec![] } else { vec![flame()] };
            (vec![], flames)
        });
        let held = holding(&results);
        assert_eq!(held.iter().position(|h| *h), Some(16));
        assert!(held[16..30].iter().all(|h| *h));
        assert!(held[30..].iter().all(|h| !h));
    }

    #[test]
    fn no_flame_never_fires() {
        let mut a = Absence::new(0.5);
        let results = run_frames(&mut a, None, 50, |_| (vec![], vec![]));
        assert!(holding(&results).iter().all(|h| !h));
    }

    #[test]
    fn a_flame_briefly_unseen_keeps_burning_and_is_reported_as_last_seen() {
        let mut a = Absence::new(1.0);
        // Seen for 2 s, then unseen (lost) for 1 s: the incident goes on.
        let results = run_frames(&mut a, None, 30, |i| {
            let flame = if i < 20 { flame() } else { lost(flame()) };
            (vec![], vec![flame])
        });
        let held = holding(&results);
        assert_eq!(held.iter().position(|h| *h), Some(10));
        assert!(held[10..].iter().all(|h| *h));
        let last = &results[29].1[0].objects;
        assert_eq!(last.len(), 1);
        assert_eq!(last[0].track_id, 10);
    }
}
