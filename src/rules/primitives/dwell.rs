//! `dwell`: an object standing still in the zone for a while (a parked vehicle, a left object).
//!
//! Per track, over the `Confirmed` subjects:
//!
//! - An object counts while its ground point (bottom-centre of its box) is in the zone. Its box
//!   centre when it first counts is where it *settled*; it is *still* while its centre stays
//!   within `max_motion` × max(w, h) of that point, and its still-time is the time since it
//!   settled. Moving further settles it again at the new place and restarts the still-time.
//! - On the first frame its still-time reaches `dwell_s` (not a frame earlier) it holds: a
//!   [`Hold`] keyed by the track id with one [`ObjectFact`] whose `dwell_s` is the still-time.
//! - Once holding it keeps holding, even if it moves again within the zone (the incident is about
//!   the vehicle being there), until its ground point is seen outside the zone or its track is
//!   removed for good.
//! - A frame where the track is `Lost`, or missing from the subjects (filtered out by class,
//!   confidence or size), changes nothing: a parked car hidden behind a passing bus, or detected
//!   weakly for a moment, is still parked. Its still-time runs on and a hold goes on being
//!   reported with the last observed box.
//!
//! `loiter` is the same watch without stillness (`max_motion` unbounded): an object in the zone
//! for `dwell_s`, moving or not; it holds until seen outside the zone or removed, and coming back
//! starts the count afresh.
//!
//! Holds are reported in key order.

use std::collections::HashMap;

use crate::geometry::Point;
use crate::rules::{Facts, Hold, ObjectFact, Primitive, View};
use crate::track::Track;

/// Stream times are f64 seconds from timestamps: `(1.1 + 3.0) - 1.1` is a hair under 3, which
/// must not delay a 3 s dwell by a frame. A microsecond is far below any frame interval.
const TIME_EPSILON_S: f64 = 1e-6;

/// Detects objects standing still in the zone for `dwell_s` seconds (or, as `loiter`, simply
/// staying there).
pub struct Dwell {
    dwell_s: f64,
    max_motion: f32,
    by_place: bool,
    watches: HashMap<u64, Watch>,
}

/// One object in the zone: where and since when it has been still.
struct Watch {
    settled_at: Point,
    still_since: f64,
    holding: bool,
    /// The track as last seen; its `dwell_s` is filled in when reported.
    last: ObjectFact,
}

impl Dwell {
    pub fn new(dwell_s: f64, max_motion: f32) -> Self {
        Dwell { dwell_s, max_motion, by_place: true, watches: HashMap::new() }
    }

    /// `loiter`: in the zone for `dwell_s`, moving or not. A person is not a place: the next one
    /// standing where the last one stood is someone else.
    pub fn loiter(dwell_s: f64) -> Self {
        Dwell { dwell_s, max_motion: f32::INFINITY, by_place: false, watches: HashMap::new() }
    }

    fn observe(&mut self, track: &Track, t: f64) {
        let centre = track.bbox.centre();
        let watch = self.watches.entry(track.id).or_insert_with(|| Watch {
            settled_at: centre,
            still_since: t,
            holding: false,
            last: ObjectFact::of(track, 0.0),
        });
        let allowed = self.max_motion * track.bbox.w.max(track.bbox.h);
        if distance(centre, watch.settled_at) > allowed {
            watch.settled_at = centre;
            watch.still_since = t;
        }
        watch.last = ObjectFact::of(track, 0.0);
        if t - watch.still_since >= self.dwell_s - TIME_EPSILON_S {
            watch.holding = true;
        }
    }

    fn holds(&self, t: f64) -> Vec<Hold> {
        let mut holds: Vec<Hold> = self
            .watches
            .iter()
            .filter(|(_, watch)| watch.holding)
            .map(|(&id, watch)| Hold {
                key: id,
                objects: vec![ObjectFact { dwell_s: t - watch.still_since, ..watch.last.clone() }],
                facts: Facts::default(),
            })
            .collect();
        holds.sort_unstable_by_key(|hold| hold.key);
        holds
    }
}

impl Primitive for Dwell {
    fn evaluate(&mut self, view: &View<'_>) -> Vec<Hold> {
        for track in view.seen() {
            if view.in_zone(track) {
                self.observe(track, view.t);
            } else {
                self.watches.remove(&track.id);
            }
        }
        for id in view.removed {
            self.watches.remove(id);
        }
        self.holds(view.t)
    }

    /// A parked vehicle whose track id switches is still the same parked vehicle.
    fn cools_down_by_place(&self) -> bool {
        self.by_place
    }
}

fn distance(a: Point, b: Point) -> f32 {
    (a.x - b.x).hypot(a.y - b.y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Polygon;
    use crate::rules::primitives::testing::{Frame, evaluate, lost, rect, run, track};

    const FPS: f64 = 5.0;

    fn kerb() -> Polygon {
        rect(0.5, 0.0, 1.0, 0.5)
    }

    /// A parked car: 0.1 × 0.1 box, ground point (0.75, 0.3), inside the kerb zone.
    fn parked(id: u64) -> Track {
        track(id, "car", 0.7, 0.2, 0.1, 0.1)
    }

    /// The times at which anything held.
    fn hold_times(out: &[(f64, Vec<Hold>)]) -> Vec<f64> {
        out.iter().filter(|(_, holds)| !holds.is_empty()).map(|(t, _)| *t).collect()
    }

    fn keys(holds: &[Hold]) -> Vec<u64> {
        holds.iter().map(|h| h.key).collect()
    }

    #[test]
    fn parked_car_holds_from_exactly_dwell_s_not_a_frame_early() {
        let mut dwell = Dwell::new(10.0, 0.15);
        let out = run(&mut dwell, Some(&kerb()), 0.0, FPS, 100, |_| vec![parked(1)]);
        let times = hold_times(&out);
        assert_eq!(times.first(), Some(&10.0), "nothing at 9.8 s, held from 10 s");
        assert_eq!(times.len(), 50, "held every frame from 10.0 to 19.8 s");
        let (_, first) = &out[50];
        assert_eq!(keys(first), vec![1]);
        assert_eq!(first[0].objects.len(), 1);
        assert_eq!(first[0].objects[0].track_id, 1);
        assert!((first[0].objects[0].dwell_s - 10.0).abs() < 1e-9);
        assert_eq!(first[0].facts, Facts::default());
        let (_, last) = out.last().unwrap();
        assert!((last[0].objects[0].dwell_s - 19.8).abs() < 1e-9);
    }

    #[test]
    fn dwell_is_not_delayed_by_inexact_stream_times() {
        let mut dwell = Dwell::new(3.0, 0.15);
        // From 1.1 s at 10 fps: frame 30 is at 4.1 s, and 4.1 - 1.1 is 2.9999999999999996.
        let out = run(&mut dwell, Some(&kerb()), 1.1, 10.0, 40, |_| vec![parked(1)]);
        let first = hold_times(&out)[0];
        assert!((first - 4.1).abs() < 1e-9, "first held at {first}");
    }

    #[test]
    fn moving_car_or_car_outside_the_zone_never_holds() {
        let mut dwell = Dwell::new(5.0, 0.15);
        let out = run(&mut dwell, Some(&kerb()), 0.0, FPS, 100, |i| {
            // 0.01 a frame: 0.02 after two frames, beyond 0.15 × 0.1.
            let moving = track(1, "car", 0.5 + (i % 40) as f32 * 0.01, 0.2, 0.1, 0.1);
            let outside = track(3, "car", 0.1, 0.7, 0.1, 0.1);
            vec![moving, outside]
        });
        assert!(hold_times(&out).is_empty(), "{out:?}");
    }

    #[test]
    fn jitter_within_max_motion_still_counts_as_parked() {
        let mut dwell = Dwell::new(5.0, 0.15);
        let out = run(&mut dwell, Some(&kerb()), 0.0, FPS, 50, |i| {
            // Peak to peak 0.01, under max_motion (0.15) × box size (0.1).
            let jitter = if i % 2 == 0 { 0.005 } else { -0.005 };
            vec![track(1, "truck", 0.7 + jitter, 0.2, 0.1, 0.1)]
        });
        assert_eq!(hold_times(&out).first(), Some(&5.0));
    }

    #[test]
    fn leaving_the_zone_ends_the_hold_and_returning_starts_over() {
        let mut dwell = Dwell::new(2.0, 0.15);
        let zone = kerb();
        let out = run(&mut dwell, Some(&zone), 0.0, FPS, 11, |_| vec![parked(4)]);
        assert_eq!(keys(&out[10].1), vec![4], "held at 2 s");
        let away = [track(4, "car", 0.1, 0.8, 0.1, 0.1)];
        assert!(evaluate(&mut dwell, Some(&zone), &Frame::at(2.2, &away)).is_empty());
        assert!(dwell.watches.is_empty(), "left the zone: forgotten");
        let back = run(&mut dwell, Some(&zone), 2.4, FPS, 11, |_| vec![parked(4)]);
        let times = hold_times(&back);
        assert_eq!(times.len(), 1);
        assert!((times[0] - 4.4).abs() < 1e-9, "a fresh 2 s from 2.4 s: {times:?}");
    }

    #[test]
    fn lost_track_keeps_holding_until_removed_for_good() {
        let mut dwell = Dwell::new(2.0, 0.15);
        let zone = kerb();
        run(&mut dwell, Some(&zone), 0.0, FPS, 11, |_| vec![parked(4)]);
        let hidden = run(&mut dwell, Some(&zone), 2.2, FPS, 10, |_| vec![lost(parked(4))]);
        assert!(hidden.iter().all(|(_, holds)| keys(holds) == vec![4]), "{hidden:?}");
        let still = &hidden.last().unwrap().1[0].objects[0];
        assert!((still.dwell_s - 4.0).abs() < 1e-9, "the still-time ran on: {still:?}");
        let removed = Frame { removed: &[4], ..Frame::at(4.2, &[]) };
        assert!(evaluate(&mut dwell, Some(&zone), &removed).is_empty());
        assert!(dwell.watches.is_empty(), "removed tracks are forgotten");
    }

    #[test]
    fn lost_frames_before_the_dwell_do_not_restart_it() {
        let mut dwell = Dwell::new(2.0, 0.15);
        let out = run(&mut dwell, Some(&kerb()), 0.0, FPS, 15, |i| {
            // Lost from 0.4 to 1.4 s with a drifting predicted box that must not count.
            if (2..=7).contains(&i) {
                vec![lost(track(4, "car", 0.6 + 0.02 * i as f32, 0.2, 0.1, 0.1))]
            } else {
                vec![parked(4)]
            }
        });
        assert_eq!(hold_times(&out).first(), Some(&2.0));
    }

    #[test]
    fn a_weak_frame_neither_ends_the_hold_nor_restarts_the_dwell() {
        let mut dwell = Dwell::new(2.0, 0.15);
        // At 1.0 s the car is filtered out by confidence: missing from the subjects.
        let out = run(&mut dwell, Some(&kerb()), 0.0, FPS, 11, |i| {
            if i == 5 { vec![] } else { vec![parked(4)] }
        });
        assert_eq!(hold_times(&out), vec![2.0], "the dwell ran on through the weak frame");
        let later = run(&mut dwell, Some(&kerb()), 2.2, FPS, 3, |_| vec![]);
        assert!(later.iter().all(|(_, holds)| keys(holds) == vec![4]), "{later:?}");
    }

    #[test]
    fn a_holding_car_that_shifts_in_the_zone_keeps_holding_with_a_fresh_still_time() {
        let mut dwell = Dwell::new(2.0, 0.15);
        let out = run(&mut dwell, Some(&kerb()), 0.0, FPS, 16, |i| {
            // Parked, then at 2.4 s moves 0.1 along the kerb and stays.
            if i < 12 { vec![parked(2)] } else { vec![track(2, "car", 0.8, 0.2, 0.1, 0.1)] }
        });
        assert_eq!(hold_times(&out).len(), 6, "held from 2.0 to 3.0 s without a break");
        let dwelt: Vec<f64> =
            out[10..].iter().map(|(_, holds)| holds[0].objects[0].dwell_s).collect();
        let expected = [2.0, 2.2, 0.0, 0.2, 0.4, 0.6];
        assert!(dwelt.iter().zip(expected).all(|(d, e)| (d - e).abs() < 1e-9), "{dwelt:?}");
    }

    #[test]
    fn two_cars_hold_separately_in_key_order() {
        let mut dwell = Dwell::new(2.0, 0.15);
        let out = run(&mut dwell, Some(&kerb()), 0.0, FPS, 11, |_| {
            vec![track(9, "car", 0.85, 0.3, 0.1, 0.1), track(1, "car", 0.55, 0.1, 0.1, 0.1)]
        });
        assert_eq!(keys(&out[10].1), vec![1, 9]);
        assert!(dwell.cools_down_by_place());
    }
}

/// `loiter`: the same watch without stillness.
#[cfg(test)]
mod loiter_tests {
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
        let mut loiter = Dwell::loiter(30.0);
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
        let mut loiter = Dwell::loiter(3.0);
        // From 1.1 s at 10 fps: frame 30 is at 4.1 s, and 4.1 - 1.1 is 2.9999999999999996.
        let out = run(&mut loiter, Some(&plaza()), 1.1, 10.0, 40, |_| vec![person_at(3, 0.5, 0.5)]);
        let first = hold_times(&out)[0];
        assert!((first - 4.1).abs() < 1e-9, "first held at {first}");
    }

    #[test]
    fn person_passing_through_never_holds() {
        let mut loiter = Dwell::loiter(10.0);
        // Across the plaza, left to right, in 15 s; under 10 s of it inside.
        let out = run(&mut loiter, Some(&plaza()), 0.0, FPS, 75, |i| {
            vec![person_at(3, 0.05 + 0.0125 * i as f32, 0.5)]
        });
        assert!(hold_times(&out).is_empty(), "{out:?}");
        assert!(loiter.watches.is_empty(), "gone out the other side: forgotten");
    }

    #[test]
    fn leaving_and_returning_restarts_the_count() {
        let mut loiter = Dwell::loiter(10.0);
        // In for 8 s, out for 2 s, back in from 10 s.
        let out = run(&mut loiter, Some(&plaza()), 0.0, FPS, 150, |i| {
            let outside = (40..50).contains(&i);
            vec![if outside { person_at(3, 0.9, 0.5) } else { person_at(3, 0.5, 0.5) }]
        });
        assert_eq!(hold_times(&out).first(), Some(&20.0), "10 s from the return at 10 s");
    }

    #[test]
    fn leaving_ends_the_hold() {
        let mut loiter = Dwell::loiter(2.0);
        let zone = plaza();
        let out = run(&mut loiter, Some(&zone), 0.0, FPS, 11, |_| vec![person_at(3, 0.5, 0.5)]);
        assert_eq!(out[10].1.len(), 1);
        let away = [person_at(3, 0.9, 0.5)];
        assert!(evaluate(&mut loiter, Some(&zone), &Frame::at(2.2, &away)).is_empty());
    }

    #[test]
    fn lost_or_missing_frames_keep_the_count_and_the_hold_until_removed() {
        let mut loiter = Dwell::loiter(2.0);
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
        assert!(loiter.watches.is_empty(), "removed tracks are forgotten");
    }
}
