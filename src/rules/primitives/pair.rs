//! `pair`: an object of the algorithm's classes (a subject: a person) together with one of its
//! `partner_classes` (a partner: a phone, a cigarette).
//!
//! In a frame a subject is *paired* when it is seen (`Confirmed`) with its ground point
//! (bottom-centre of its box) in the zone (anywhere without one), and a partner is seen whose
//! box overlaps the subject's or lies within `max_gap` of it: the normalized distance between
//! the boxes' nearest edges, 0 when they touch or overlap. The zone does not apply to partners.
//! A track is never its own partner.
//!
//! - Per subject: the condition starts once the subject has been paired in every frame for
//!   `persist_s` seconds (a single unpaired frame before that restarts the wait), and holds
//!   until it has not been paired for `clear_s` (it ends at the first frame at
//!   `t >= last_paired + clear_s`); the partner may change along the way. A frame where the
//!   subject is missing from the view (filtered out for a moment by confidence or size) is an
//!   unpaired frame like any other; only a track removed for good ends it at once.
//! - One [`Hold`] per subject, keyed by its track id, with objects `[subject, partner]`: the
//!   partner closest to it now, both with `dwell_s` = seconds since the pairing started; in a
//!   frame where it is not paired, the pair of the last frame where it was.

use std::collections::HashMap;

use crate::geometry::BBox;
use crate::rules::{Facts, Hold, ObjectFact, Primitive, View};
use crate::track::{Track, TrackState};

use super::presence::Latch;

pub struct Pair {
    max_gap: f32,
    persist_s: f64,
    clear_s: f64,
    /// Subjects paired now, waiting, or holding, by track id.
    pairings: HashMap<u64, Pairing>,
    /// Counts evaluated frames, to tell which subjects the latest one had.
    frame: u64,
}

struct Pairing {
    latch: Latch,
    /// The last `[subject, partner]` seen paired.
    objects: Vec<ObjectFact>,
    /// The last frame the subject was in the view; older entries are forgotten.
    visited: u64,
}

impl Pair {
    pub fn new(max_gap: f32, persist_s: f64, clear_s: f64) -> Self {
        Pair { max_gap, persist_s, clear_s, pairings: HashMap::new(), frame: 0 }
    }

    /// The seen partner nearest `subject` within `max_gap`, if `subject` can be paired now.
    fn partner_for<'a>(
        &self,
        view: &View<'_>,
        subject: &Track,
        partners: &[&'a Track],
    ) -> Option<&'a Track> {
        if subject.state != TrackState::Confirmed || !view.in_zone(subject) {
            return None;
        }
        partners
            .iter()
            .filter(|p| p.id != subject.id)
            .map(|p| (gap(&subject.bbox, &p.bbox), *p))
            .filter(|(g, _)| *g <= self.max_gap)
            .min_by(|a, b| a.0.total_cmp(&b.0))
            .map(|(_, p)| p)
    }
}

impl Primitive for Pair {
    fn evaluate(&mut self, view: &View<'_>) -> Vec<Hold> {
        self.frame += 1;
        let partners: Vec<&Track> = view.partners_seen().collect();
        let mut holds = Vec::new();
        for subject in &view.subjects {
            let partner = self.partner_for(view, subject, &partners);
            if partner.is_none() && !self.pairings.contains_key(&subject.id) {
                continue;
            }
            let (persist_s, clear_s) = (self.persist_s, self.clear_s);
            let pairing = self.pairings.entry(subject.id).or_insert_with(|| Pairing {
                latch: Latch::new(persist_s, clear_s),
                objects: vec![],
                visited: 0,
            });
            pairing.visited = self.frame;
            let holding = pairing.latch.update(view.t, partner.is_some());
            if let (Some(partner), Some(since)) = (partner, pairing.latch.since()) {
                let dwell_s = view.t - since;
                pairing.objects =
                    vec![ObjectFact::of(subject, dwell_s), ObjectFact::of(partner, dwell_s)];
            }
            if holding {
                holds.push(Hold {
                    key: subject.id,
                    objects: pairing.objects.clone(),
                    facts: Facts::default(),
                });
            }
        }
        for id in view.removed {
            self.pairings.remove(id);
        }
        let frame = self.frame;
        for (&id, pairing) in self.pairings.iter_mut().filter(|(_, p)| p.visited != frame) {
            if pairing.latch.update(view.t, false) {
                holds.push(Hold {
                    key: id,
                    objects: pairing.objects.clone(),
                    facts: Facts::default(),
                });
            }
        }
        // Bounded: pairings neither waiting nor holding are dropped.
        self.pairings.retain(|_, p| !p.latch.is_idle());
        holds.sort_unstable_by_key(|h| h.key);
        holds
    }
}

/// Distance between the nearest edges of two boxes; 0 when they touch or overlap.
fn gap(a: &BBox, b: &BBox) -> f32 {
    let dx = (a.x.max(b.x) - (a.x + a.w).min(b.x + b.w)).max(0.0);
    let dy = (a.y.max(b.y) - (a.y + a.h).min(b.y + b.h)).max(0.0);
    dx.hypot(dy)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Polygon;
    use crate::rules::primitives::testing::{Frame, evaluate, lost, rect, track};

    fn person(id: u64, x: f32) -> Track {
        track(id, "person", x, 0.3, 0.1, 0.3)
    }

    /// A phone whose left edge is `dx` right of the person at `x`'s right edge (negative: held
    /// in front of it).
    fn phone(id: u64, x: f32, dx: f32) -> Track {
        track(id, "phone", x + 0.1 + dx, 0.4, 0.03, 0.05)
    }

    /// Runs 10 frames a second from t = 0, the subjects and partners of frame `i` given by
    /// `frame(i)`; returns each frame's holds.
    fn run_frames(
        p: &mut Pair,
        zone: Option<&Polygon>,
        frames: usize,
        frame: impl Fn(usize) -> (Vec<Track>, Vec<Track>),
    ) -> Vec<Vec<Hold>> {
        (0..frames)
            .map(|i| {
                let (subjects, partners) = frame(i);
                let f = Frame {
                    t: i as f64 / 10.0,
                    subjects: &subjects,
                    partners: &partners,
                    removed: &[],
                    labels: Default::default(),
                };
                evaluate(p, zone, &f)
            })
            .collect()
    }

    fn ids(hold: &Hold) -> Vec<u64> {
        hold.objects.iter().map(|o| o.track_id).collect()
    }

    #[test]
    fn gap_is_zero_for_overlap_and_edge_distance_otherwise() {
        let a = BBox { x: 0.1, y: 0.1, w: 0.2, h: 0.2 };
        assert_eq!(gap(&a, &BBox { x: 0.2, y: 0.2, w: 0.2, h: 0.2 }), 0.0);
        assert!((gap(&a, &BBox { x: 0.35, y: 0.15, w: 0.1, h: 0.1 }) - 0.05).abs() < 1e-6);
        // Diagonal: 0.03 right and 0.04 below the corner.
        assert!((gap(&a, &BBox { x: 0.33, y: 0.34, w: 0.1, h: 0.1 }) - 0.05).abs() < 1e-6);
    }

    #[test]
    fn overlapping_pair_fires_at_persist_s() {
        let mut p = Pair::new(0.02, 1.0, 2.0);
        let results =
            run_frames(&mut p, None, 15, |_| (vec![person(1, 0.3)], vec![phone(9, 0.3, -0.05)]));
        assert!(results[..10].iter().all(Vec::is_empty), "a frame early");
        assert!(results[10..].iter().all(|h| h.len() == 1));
        let hold = &results[10][0];
        assert_eq!(hold.key, 1);
        assert_eq!(ids(hold), vec![1, 9]);
        assert!(hold.objects.iter().all(|o| (o.dwell_s - 1.0).abs() < 1e-9));
        assert_eq!(hold.facts, Facts::default());
    }

    #[test]
    fn within_max_gap_pairs_beyond_it_never() {
        let mut near = Pair::new(0.05, 0.5, 1.0);
        let results =
            run_frames(&mut near, None, 6, |_| (vec![person(1, 0.3)], vec![phone(9, 0.3, 0.04)]));
        assert_eq!(results[5].len(), 1);
        let mut far = Pair::new(0.05, 0.5, 1.0);
        let results =
            run_frames(&mut far, None, 50, |_| (vec![person(1, 0.3)], vec![phone(9, 0.3, 0.06)]));
        assert!(results.iter().all(Vec::is_empty));
    }

    #[test]
    fn two_people_with_a_phone_each_hold_separately() {
        let mut p = Pair::new(0.02, 0.5, 1.0);
        let results = run_frames(&mut p, None, 6, |_| {
            (vec![person(1, 0.1), person(2, 0.6)], vec![phone(11, 0.1, -0.02), phone(12, 0.6, 0.0)])
        });
        let holds = &results[5];
        assert_eq!(holds.len(), 2);
        let pairs: Vec<(u64, Vec<u64>)> = holds.iter().map(|h| (h.key, ids(h))).collect();
        assert_eq!(pairs, vec![(1, vec![1, 11]), (2, vec![2, 12])]);
    }

    #[test]
    fn closest_partner_is_reported() {
        let mut p = Pair::new(0.1, 0.0, 1.0);
        let subjects = [person(1, 0.3)];
        let partners = [phone(8, 0.3, 0.05), phone(9, 0.3, 0.01), phone(7, 0.3, 0.08)];
        let f = Frame {
            t: 0.0,
            subjects: &subjects,
            partners: &partners,
            removed: &[],
            labels: Default::default(),
        };
        assert_eq!(ids(&evaluate(&mut p, None, &f)[0]), vec![1, 9]);
    }

    #[test]
    fn brief_separation_keeps_it_longer_ends_it() {
        let mut p = Pair::new(0.02, 0.5, 1.0);
        // Together until 1.0, apart 1.1 to 1.9 (0.9 s), together to 3.0, apart from 3.1.
        let results = run_frames(&mut p, None, 50, |i| {
            let dx = if (11..20).contains(&i) || i > 30 { 0.3 } else { 0.0 };
            (vec![person(1, 0.3)], vec![phone(9, 0.3, dx)])
        });
        assert!(results[5..=30].iter().all(|h| h.len() == 1 && h[0].key == 1));
        // In the gap: the last pair, the pairing's time frozen there.
        assert!((results[15][0].objects[1].dwell_s - 1.0).abs() < 1e-9);
        assert_eq!(results[15][0].objects[1].bbox, phone(9, 0.3, 0.0).bbox);
        // After it, the pairing's time runs on from its start.
        assert!((results[30][0].objects[0].dwell_s - 3.0).abs() < 1e-9);
        // Last paired at 3.0: held to 3.9, over at 4.0.
        assert_eq!(results[39].len(), 1);
        assert!(results[40..].iter().all(Vec::is_empty));
    }

    #[test]
    fn zone_applies_to_the_subject_only() {
        let zone = rect(0.0, 0.0, 0.5, 1.0);
        let mut p = Pair::new(0.02, 0.0, 0.0);
        // Subject's ground point at 0.45, inside; the phone sticks out past 0.5.
        let inside = run_frames(&mut p, Some(&zone), 1, |_| {
            (vec![person(1, 0.4)], vec![phone(9, 0.4, 0.0)])
        });
        assert_eq!(inside[0].len(), 1);
        // Subject's ground point at 0.55, outside.
        let outside = run_frames(&mut p, Some(&zone), 1, |_| {
            (vec![person(1, 0.5)], vec![phone(9, 0.5, 0.0)])
        });
        assert!(outside[0].is_empty());
    }

    #[test]
    fn lost_subjects_and_partners_do_not_pair_and_state_is_forgotten() {
        let mut p = Pair::new(0.02, 0.0, 1.0);
        let results = run_frames(&mut p, None, 3, |i| match i {
            0 => (vec![lost(person(1, 0.3))], vec![phone(9, 0.3, 0.0)]),
            1 => (vec![person(1, 0.3)], vec![lost(phone(9, 0.3, 0.0))]),
            _ => (vec![person(2, 0.6)], vec![phone(9, 0.3, 0.0)]),
        });
        assert!(results.iter().all(Vec::is_empty));
        assert!(p.pairings.is_empty());
    }

    #[test]
    fn a_subject_missing_for_a_moment_keeps_it_and_a_removed_one_ends_it() {
        let mut p = Pair::new(0.02, 0.0, 1.0);
        // Paired, then filtered out of the view for 0.5 s, then back: one unbroken hold.
        let results = run_frames(&mut p, None, 20, |i| {
            let subjects = if (5..10).contains(&i) { vec![] } else { vec![person(1, 0.3)] };
            (subjects, vec![phone(9, 0.3, 0.0)])
        });
        assert!(results.iter().all(|holds| holds.len() == 1), "{results:?}");
        assert_eq!(ids(&results[7][0]), [1, 9], "reported as last paired");
        // Removed for good: over at once, and forgotten.
        let subjects: [Track; 0] = [];
        let partners = [phone(9, 0.3, 0.0)];
        let frame = Frame {
            t: 2.0,
            subjects: &subjects,
            partners: &partners,
            removed: &[1],
            labels: Default::default(),
        };
        assert!(evaluate(&mut p, None, &frame).is_empty());
        assert!(p.pairings.is_empty());
    }
}
