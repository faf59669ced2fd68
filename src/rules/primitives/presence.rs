//! `presence`: something of the algorithm's classes is in the zone.
//!
//! A subject *is present* in a frame when it is seen in that frame (`Confirmed`; a `Lost` track
//! is not) and its ground point (bottom-centre of its box) lies in the zone, or anywhere when
//! there is no zone.
//!
//! - The condition starts once at least one subject has been present in every frame for
//!   `persist_s` seconds (first frame with someone present at `t0`: it holds from the first
//!   frame at `t >= t0 + persist_s`). Who is present may change along the way; before the start,
//!   a single frame with nobody present restarts the wait.
//! - Once started, it holds until nobody has been present for `clear_s` (it ends at the first
//!   frame at `t >= last_present + clear_s`); a shorter gap does not interrupt it.
//! - One zone-wide [`Hold`] with key 0. Its objects are the subjects present now, each with
//!   `dwell_s` = seconds since it was first present in this stay (a track briefly `Lost` keeps
//!   its time, one seen outside the zone or gone from the view starts over); in a frame with
//!   nobody present, the objects of the last frame with someone.
//!
//! This file also holds the two helpers the other zone-wide primitives and `pair` share:
//! [`Latch`] (the `persist_s` / `clear_s` timing) and [`Occupants`] (per-track time inside).

use std::collections::HashMap;

use crate::rules::{Facts, Hold, ObjectFact, Primitive, View};
use crate::track::{Track, TrackState};

/// Slack on time comparisons: stream times are sums of rounded frame intervals, and that
/// rounding must not cost a frame. Far below any frame interval.
const TIME_EPSILON_S: f64 = 1e-6;

pub struct Presence {
    occupants: Occupants,
    latch: Latch,
    /// The objects reported while nobody is present during the `clear_s` grace.
    last: Vec<ObjectFact>,
}

impl Presence {
    pub fn new(persist_s: f64, clear_s: f64) -> Self {
        Presence {
            occupants: Occupants::default(),
            latch: Latch::new(persist_s, clear_s),
            last: vec![],
        }
    }
}

impl Primitive for Presence {
    fn evaluate(&mut self, view: &View<'_>) -> Vec<Hold> {
        let present = self.occupants.observe(view.t, &view.subjects, |t| view.in_zone(t));
        if !self.latch.update(view.t, !present.is_empty()) {
            self.last.clear();
            return vec![];
        }
        if !present.is_empty() {
            self.last = present;
        }
        vec![Hold { key: 0, objects: self.last.clone(), facts: Facts::default() }]
    }
}

/// Condition timing with hysteresis: a condition counts once it has been true in every frame
/// for `persist_s`, and keeps counting until it has been false for `clear_s`.
///
/// Before it counts, one false frame restarts the wait: a flicker is not "continuously".
/// While it counts, the run's start ([`Latch::since`]) survives gaps shorter than `clear_s`.
#[derive(Debug, Clone)]
pub(super) struct Latch {
    persist_s: f64,
    clear_s: f64,
    /// Start of the current run of true frames; kept across gaps while holding.
    since: Option<f64>,
    /// The last time the condition was true.
    last_true: f64,
    holding: bool,
}

impl Latch {
    pub(super) fn new(persist_s: f64, clear_s: f64) -> Self {
        Latch { persist_s, clear_s, since: None, last_true: f64::NEG_INFINITY, holding: false }
    }

    /// Feeds whether the condition is true at `t`; returns whether it holds now.
    pub(super) fn update(&mut self, t: f64, condition: bool) -> bool {
        if condition {
            let since = *self.since.get_or_insert(t);
            self.last_true = t;
            self.holding |= t - since + TIME_EPSILON_S >= self.persist_s;
        } else if !self.holding || t - self.last_true + TIME_EPSILON_S >= self.clear_s {
            self.since = None;
            self.holding = false;
        }
        self.holding
    }

    /// When the current run started: the held condition's start, or the wait's.
    pub(super) fn since(&self) -> Option<f64> {
        self.since
    }

    /// Neither holding nor waiting: nothing worth remembering.
    pub(super) fn is_idle(&self) -> bool {
        self.since.is_none()
    }
}

/// Per-track time inside something (a zone, a covered area), for [`ObjectFact::dwell_s`].
///
/// Remembers only the tracks in the latest view that were inside when last seen, so its size is
/// bounded by the view's.
#[derive(Debug, Default)]
pub(super) struct Occupants {
    since: HashMap<u64, f64>,
}

impl Occupants {
    /// Of `tracks`, those seen at `t` that `inside` accepts, each with the seconds it has been
    /// inside without a break. A `Lost` track keeps its time (an occlusion is not leaving) but
    /// is not reported; a track seen outside, or no longer in `tracks`, is forgotten.
    pub(super) fn observe(
        &mut self,
        t: f64,
        tracks: &[&Track],
        inside: impl Fn(&Track) -> bool,
    ) -> Vec<ObjectFact> {
        let mut next = HashMap::with_capacity(tracks.len());
        let mut present = Vec::new();
        for track in tracks {
            let known = self.since.get(&track.id).copied();
            match track.state {
                TrackState::Confirmed if inside(track) => {
                    let since = known.unwrap_or(t);
                    next.insert(track.id, since);
                    present.push(ObjectFact::of(track, t - since));
                }
                TrackState::Lost => {
                    if let Some(since) = known {
                        next.insert(track.id, since);
                    }
                }
                _ => {}
            }
        }
        self.since = next;
        present
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::primitives::testing::{Frame, evaluate, lost, rect, run, track};

    /// A person standing with its ground point at (0.5, 0.5).
    fn person(id: u64) -> Track {
        track(id, "person", 0.45, 0.3, 0.1, 0.2)
    }

    /// Times of the frames in which anything holds.
    fn holding_times(results: &[(f64, Vec<Hold>)]) -> Vec<f64> {
        results.iter().filter(|(_, h)| !h.is_empty()).map(|(t, _)| *t).collect()
    }

    #[test]
    fn fires_exactly_at_persist_s_with_dwell_times() {
        let mut p = Presence::new(2.0, 5.0);
        let results = run(&mut p, None, 10.0, 10.0, 25, |_| vec![person(1)]);
        assert!(results[19].1.is_empty(), "a frame early at {}", results[19].0);
        let (t, holds) = &results[20];
        assert_eq!(*t, 12.0);
        assert_eq!(holds.len(), 1);
        assert_eq!(holds[0].key, 0);
        assert_eq!(holds[0].facts, Facts::default());
        assert_eq!(holds[0].objects.len(), 1);
        assert_eq!(holds[0].objects[0].track_id, 1);
        assert!((holds[0].objects[0].dwell_s - 2.0).abs() < 1e-9);
        assert_eq!(holding_times(&results).len(), 5);
    }

    #[test]
    fn one_empty_frame_before_the_start_restarts_the_wait() {
        let mut p = Presence::new(2.0, 5.0);
        // Frame 15 (t = 1.5) is empty: the wait restarts at 1.6 and ends at 3.6.
        let results =
            run(&mut p, None, 0.0, 10.0, 40, |i| if i == 15 { vec![] } else { vec![person(1)] });
        let times = holding_times(&results);
        assert!((times[0] - 3.6).abs() < 1e-9, "{times:?}");
        assert_eq!(times.len(), 4);
        // The person's own time in the zone started over too.
        assert!((results[36].1[0].objects[0].dwell_s - 2.0).abs() < 1e-9);
    }

    #[test]
    fn gap_shorter_than_clear_s_keeps_holding_with_the_last_objects() {
        let mut p = Presence::new(1.0, 1.0);
        // Present 0.0..=2.0, nobody 2.1..=2.9 (0.9 s after the last sighting), back at 3.0.
        let results = run(&mut p, None, 0.0, 10.0, 40, |i| {
            if (21..30).contains(&i) { vec![] } else { vec![person(7)] }
        });
        assert_eq!(holding_times(&results).first(), Some(&1.0));
        for (t, holds) in &results[10..] {
            assert_eq!(holds.len(), 1, "t = {t}");
            assert_eq!(holds[0].objects[0].track_id, 7, "t = {t}");
        }
        // In the gap the objects are the last frame's, dwell included.
        assert!((results[25].1[0].objects[0].dwell_s - 2.0).abs() < 1e-9);
    }

    #[test]
    fn gap_of_clear_s_ends_it() {
        let mut p = Presence::new(1.0, 1.0);
        // Last seen at 2.0: still held at 2.9, over at 3.0, and a return needs persist_s again.
        let results = run(&mut p, None, 0.0, 10.0, 60, |i| {
            if (21..40).contains(&i) { vec![] } else { vec![person(7)] }
        });
        assert_eq!(results[29].1.len(), 1);
        assert!(results[30].1.is_empty());
        let times = holding_times(&results);
        assert_eq!(times.iter().find(|t| **t > 2.95).copied(), Some(5.0));
    }

    #[test]
    fn objects_outside_the_zone_do_not_count() {
        let zone = rect(0.0, 0.0, 0.4, 0.4);
        let mut p = Presence::new(0.5, 1.0);
        // A box overlapping the zone whose ground point (0.3, 0.5) is outside it, and one inside.
        let outside = track(1, "person", 0.25, 0.3, 0.1, 0.2);
        let inside = track(2, "person", 0.1, 0.1, 0.1, 0.2);
        let results = run(&mut p, Some(&zone), 0.0, 10.0, 20, |_| vec![outside.clone()]);
        assert!(holding_times(&results).is_empty());
        let results =
            run(&mut p, Some(&zone), 2.0, 10.0, 6, |_| vec![outside.clone(), inside.clone()]);
        assert_eq!(holding_times(&results), vec![2.5]);
        let ids: Vec<u64> = results[5].1[0].objects.iter().map(|o| o.track_id).collect();
        assert_eq!(ids, vec![2]);
    }

    #[test]
    fn lost_tracks_are_not_present() {
        let mut p = Presence::new(0.5, 1.0);
        let results = run(&mut p, None, 0.0, 10.0, 20, |_| vec![lost(person(1))]);
        assert!(holding_times(&results).is_empty());
        // A lost track does not fill a gap either: last seen at 1.0, over at 2.0.
        let mut p = Presence::new(0.5, 1.0);
        let results = run(&mut p, None, 0.0, 10.0, 30, |i| {
            if i <= 10 { vec![person(1)] } else { vec![lost(person(1))] }
        });
        assert_eq!(holding_times(&results).first(), Some(&0.5));
        assert_eq!(holding_times(&results).last(), Some(&1.9));
    }

    #[test]
    fn briefly_lost_track_keeps_its_dwell_time() {
        let mut p = Presence::new(0.0, 1.0);
        let seen = [person(3)];
        let occluded = [lost(person(3))];
        evaluate(&mut p, None, &Frame::at(0.0, &seen));
        evaluate(&mut p, None, &Frame::at(0.1, &occluded));
        let holds = evaluate(&mut p, None, &Frame::at(0.2, &seen));
        assert!((holds[0].objects[0].dwell_s - 0.2).abs() < 1e-9);
        // Gone from the view: forgotten, so it starts over when it comes back.
        evaluate(&mut p, None, &Frame::at(0.3, &[]));
        let holds = evaluate(&mut p, None, &Frame::at(0.4, &seen));
        assert_eq!(holds[0].objects[0].dwell_s, 0.0);
    }

    #[test]
    fn latch_waits_holds_through_short_gaps_and_clears() {
        let mut latch = Latch::new(1.0, 0.5);
        assert!(!latch.update(0.0, true));
        assert_eq!(latch.since(), Some(0.0));
        assert!(latch.update(1.0, true));
        assert!(latch.update(1.4, false));
        assert!(latch.update(1.45, true));
        assert_eq!(latch.since(), Some(0.0), "a short gap keeps the run's start");
        assert!(!latch.update(1.95, false));
        assert!(latch.is_idle());
    }
}
