//! `loiter`: an object staying in the zone for a while, moving or not (a person hanging about).
//!
//! Per track, over the `Confirmed` subjects:
//!
//! - An object is in the zone while its ground point (bottom-centre of its box) is; its time in
//!   the zone runs from the first frame it was seen there.
//! - On the first frame that time reaches `dwell_s` (not a frame earlier) it holds: a [`Hold`]
//!   keyed by the track id with one [`ObjectFact`] whose `dwell_s` is the time in the zone.
//! - It holds until its ground point is seen outside the zone or its track is removed for good.
//!   Seen outside, it is forgotten: coming back starts the count again.
//! - A frame where the track is `Lost`, or missing from the subjects (filtered out by class,
//!   confidence or size), changes nothing: its time runs on and a hold goes on being reported
//!   with the last observed box.
//!
//! Holds are reported in key order.

use std::collections::HashMap;

use crate::rules::{Facts, Hold, ObjectFact, Primitive, View};
use crate::track::Track;

/// Stream times are f64 seconds from timestamps: `(1.1 + 3.0) - 1.1` is a hair under 3, which
/// must not delay a 3 s dwell by a frame. A microsecond is far below any frame interval.
const TIME_EPSILON_S: f64 = 1e-6;

/// Detects objects staying in the zone for `dwell_s` seconds.
pub struct Loiter {
    dwell_s: f64,
    visits: HashMap<u64, Visit>,
}

/// One object's stay in the zone.
struct Visit {
    entered: f64,
    holding: bool,
    /// The track as last seen; its `dwell_s` is filled in when reported.
    last: ObjectFact,
}

impl Loiter {
    pub fn new(dwell_s: f64) -> Self {
        Loiter { dwell_s, visits: HashMap::new() }
    }

    fn observe(&mut self, track: &Track, t: f64) {
        let visit = self.visits.entry(track.id).or_insert_with(|| Visit {
            entered: t,
            holding: false,
            last: ObjectFact::of(track, 0.0),
        });
        visit.last = ObjectFact::of(track, 0.0);
        if t - visit.entered >= self.dwell_s - TIME_EPSILON_S {
            visit.holding = true;
        }
    }

    fn holds(&self, t: f64) -> Vec<Hold> {
        let mut holds: Vec<Hold> = self
            .visits
            .iter()
            .filter(|(_, visit)| visit.holding)
            .map(|(&id, visit)| Hold {
                key: id,
                objects: vec![ObjectFact { dwell_s: t - visit.entered, ..visit.last.clone() }],
                facts: Facts::default(),
            })
            .collect();
        holds.sort_unstable_by_key(|hold| hold.key);
        holds
    }
}

impl Primitive for Loiter {
    fn evaluate(&mut self, view: &View<'_>) -> Vec<Hold> {
        for track in view.seen() {
            if view.in_zone(track) {
                self.observe(track, view.t);
            } else {
                self.visits.remove(&track.id);
            }
        }
        for id in view.removed {
            self.visits.remove(id);
        }
        self.holds(view.t)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Polygon;
    use crate::rules::primitives::testing::{Frame, evaluate, lost, rect, run, track};

    const FPS: f64 = 5.0;

    fn plaza() -> Polygon {
        rect(0.2, 0.2, 0.8, 0.8)
    }

    /// A person (0.05 × 0.2 box) standing with their feet at (`x`, `y`).
    fn person_at(id: u64, x: f32, y: f32) -> Track {
        track(id, "person", x - 0.025, y - 0.2, 0.05, 0.2)
    }

    /// A person walking circles of radius 0.2 around the plaza's centre, once every 12 s.
    fn walking_around(i: usize) -> Track {
        let angle = i as f32 / FPS as f32 * std::f32::consts::TAU / 12.0;
        person_at(7, 0.5 + 0.2 * angle.cos(), 0.5 + 0.2 * angle.sin())
    }

    fn hold_times(out: &[(f64, Vec<Hold>)]) -> Vec<f64> {
        out.iter().filter(|(_, holds)| !holds.is_empty()).map(|(t, _)| *t).collect()
    }

    #[test]
    fn person_walking_around_in_the_zone_holds_from_exactly_dwell_s() {
        let mut loiter = Loiter::new(30.0);
        let out = run(&mut loiter, Some(&plaza()), 0.0, FPS, 300, |i| vec![walking_around(i)]);
        let times = hold_times(&out);
        assert_eq!(times.first(), Some(&30.0), "nothing at 29.8 s");
        assert_eq!(times.len(), 150, "held every frame from 30.0 to 59.8 s");
        let first = &out[150].1;
        assert_eq!(first.len(), 1);
        assert_eq!(first[0].key, 7);
        assert_eq!(first[0].objects[0].track_id, 7);
        assert!((first[0].objects[0].dwell_s - 30.0).abs() < 1e-9);
        assert_eq!(first[0].objects[0].bbox, walking_around(150).bbox, "the current box");
        let last = &out[299].1[0].objects[0];
        assert!((last.dwell_s - 59.8).abs() < 1e-9);
    }

    #[test]
    fn the_count_is_not_delayed_by_inexact_stream_times() {
        let mut loiter = Loiter::new(3.0);
        // From 1.1 s at 10 fps: frame 30 is at 4.1 s, and 4.1 - 1.1 is 2.9999999999999996.
        let out = run(&mut loiter, Some(&plaza()), 1.1, 10.0, 40, |_| vec![person_at(3, 0.5, 0.5)]);
        let first = hold_times(&out)[0];
        assert!((first - 4.1).abs() < 1e-9, "first held at {first}");
    }

    #[test]
    fn person_passing_through_never_holds() {
        let mut loiter = Loiter::new(10.0);
        // Across the plaza, left to right, in 15 s; under 10 s of it inside.
        let out = run(&mut loiter, Some(&plaza()), 0.0, FPS, 75, |i| {
            vec![person_at(3, 0.05 + 0.0125 * i as f32, 0.5)]
        });
        assert!(hold_times(&out).is_empty(), "{out:?}");
        assert!(loiter.visits.is_empty(), "gone out the other side: forgotten");
    }

    #[test]
    fn leaving_and_returning_restarts_the_count() {
        let mut loiter = Loiter::new(10.0);
        // In for 8 s, out for 2 s, back in from 10 s.
        let out = run(&mut loiter, Some(&plaza()), 0.0, FPS, 150, |i| {
            let outside = (40..50).contains(&i);
            vec![if outside { person_at(3, 0.9, 0.5) } else { person_at(3, 0.5, 0.5) }]
        });
        assert_eq!(hold_times(&out).first(), Some(&20.0), "10 s from the return at 10 s");
    }

    #[test]
    fn leaving_ends_the_hold() {
        let mut loiter = Loiter::new(2.0);
        let zone = plaza();
        let out = run(&mut loiter, Some(&zone), 0.0, FPS, 11, |_| vec![person_at(3, 0.5, 0.5)]);
        assert_eq!(out[10].1.len(), 1);
        let away = [person_at(3, 0.9, 0.5)];
        assert!(evaluate(&mut loiter, Some(&zone), &Frame::at(2.2, &away)).is_empty());
    }

    #[test]
    fn lost_or_missing_frames_keep_the_count_and_the_hold_until_removed() {
        let mut loiter = Loiter::new(2.0);
        let zone = plaza();
        let out = run(&mut loiter, Some(&zone), 0.0, FPS, 20, |i| match i {
            // Lost, with a predicted box outside the zone that must not count as leaving.
            3..=5 => vec![lost(person_at(3, 0.9, 0.5))],
            // Filtered out (a weak detection).
            6 | 12 => vec![],
            _ => vec![person_at(3, 0.5, 0.5)],
        });
        let times = hold_times(&out);
        assert_eq!(times.len(), 10, "held from 2.0 s through 3.8 s: {times:?}");
        assert_eq!(times[0], 2.0);
        let removed = Frame { removed: &[3], ..Frame::at(4.0, &[]) };
        assert!(evaluate(&mut loiter, Some(&zone), &removed).is_empty());
        assert!(loiter.visits.is_empty(), "removed tracks are forgotten");
    }
}
