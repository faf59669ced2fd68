//! `count`: at least `min_count` objects of the algorithm's classes in the zone.
//!
//! The count in a frame is the number of subjects seen in that frame (`Confirmed`; a `Lost`
//! track does not count) whose ground point (bottom-centre of its box) lies in the zone, or
//! anywhere when there is no zone.
//!
//! - The condition starts once the count has been at least `min_count` in every frame for
//!   `persist_s` seconds; before the start, a single frame below restarts the wait.
//! - Once started, it holds until the count has stayed below `min_count` for `clear_s` (it ends
//!   at the first frame at `t >= last_at_or_above + clear_s`); a shorter dip does not
//!   interrupt it.
//! - One zone-wide [`Hold`] with key 0 and `facts.count` = the count in this frame, also during
//!   a dip. Its objects are the subjects counted now, each with `dwell_s` = seconds since it
//!   entered the zone in this stay; in a frame with none counted, the last ones counted.

use crate::rules::{Facts, Hold, ObjectFact, Primitive, View};

use super::presence::{Latch, Occupants};

pub struct Count {
    min_count: usize,
    occupants: Occupants,
    latch: Latch,
    /// The objects reported when none is counted during the `clear_s` grace.
    last: Vec<ObjectFact>,
}

impl Count {
    pub fn new(min_count: usize, persist_s: f64, clear_s: f64) -> Self {
        Count {
            min_count,
            occupants: Occupants::default(),
            latch: Latch::new(persist_s, clear_s),
            last: vec![],
        }
    }
}

impl Primitive for Count {
    fn evaluate(&mut self, view: &View<'_>) -> Vec<Hold> {
        let counted = self.occupants.observe(view.t, &view.subjects, |t| view.in_zone(t));
        let count = counted.len();
        if !self.latch.update(view.t, count >= self.min_count) {
            self.last.clear();
            return vec![];
        }
        if !counted.is_empty() {
            self.last = counted;
        }
        let facts = Facts { count: Some(count), ..Facts::default() };
        vec![Hold { key: 0, objects: self.last.clone(), facts }]
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::primitives::testing::{lost, rect, run, track};
    use crate::track::Track;

    /// `n` people standing side by side in the middle of the frame, ids 1..=n.
    fn people(n: usize) -> Vec<Track> {
        (0..n)
            .map(|i| track(i as u64 + 1, "person", 0.1 + 0.05 * i as f32, 0.4, 0.04, 0.2))
            .collect()
    }

    fn counts(results: &[(f64, Vec<Hold>)]) -> Vec<Option<usize>> {
        results.iter().map(|(_, h)| h.first().and_then(|h| h.facts.count)).collect()
    }

    #[test]
    fn fires_with_exactly_min_count_at_persist_s() {
        let mut c = Count::new(3, 2.0, 5.0);
        let results = run(&mut c, None, 0.0, 10.0, 22, |_| people(3));
        assert!(results[..20].iter().all(|(_, h)| h.is_empty()), "a frame early");
        let (t, holds) = &results[20];
        assert_eq!(*t, 2.0);
        assert_eq!(holds.len(), 1);
        assert_eq!(holds[0].key, 0);
        assert_eq!(holds[0].facts.count, Some(3));
        let ids: Vec<u64> = holds[0].objects.iter().map(|o| o.track_id).collect();
        assert_eq!(ids, vec![1, 2, 3]);
        assert!(holds[0].objects.iter().all(|o| (o.dwell_s - 2.0).abs() < 1e-9));
    }

    #[test]
    fn one_short_never_fires() {
        let mut c = Count::new(3, 1.0, 5.0);
        let results = run(&mut c, None, 0.0, 10.0, 100, |_| people(2));
        assert!(results.iter().all(|(_, h)| h.is_empty()));
        // Nor do a third person's lost track or a third person outside the zone make up for it.
        let zone = rect(0.0, 0.0, 0.3, 1.0);
        let mut c = Count::new(3, 1.0, 5.0);
        let results = run(&mut c, Some(&zone), 0.0, 10.0, 100, |_| {
            let mut p = people(2);
            p.push(lost(track(3, "person", 0.2, 0.4, 0.04, 0.2)));
            p.push(track(4, "person", 0.5, 0.4, 0.04, 0.2));
            p
        });
        assert!(results.iter().all(|(_, h)| h.is_empty()));
    }

    #[test]
    fn dip_shorter_than_clear_s_keeps_it_and_count_follows() {
        let mut c = Count::new(3, 1.0, 1.0);
        // Three until 2.0, two from 2.1 to 2.9, none at 2.5, three again from 3.0.
        let results = run(&mut c, None, 0.0, 10.0, 40, |i| match i {
            25 => vec![],
            21..30 => people(2),
            _ => people(3),
        });
        let counts = counts(&results);
        assert!(counts[..10].iter().all(Option::is_none));
        assert!(counts[10..=20].iter().all(|c| *c == Some(3)));
        assert_eq!(counts[21], Some(2));
        assert_eq!(counts[25], Some(0));
        assert_eq!(counts[29], Some(2));
        assert!(counts[30..].iter().all(|c| *c == Some(3)));
        // During the dip the objects are the ones counted; with none, the last ones counted.
        assert_eq!(results[24].1[0].objects.len(), 2);
        assert_eq!(results[25].1[0].objects.len(), 2);
    }

    #[test]
    fn dip_of_clear_s_ends_it() {
        let mut c = Count::new(2, 0.5, 1.0);
        // Two until 1.0, one after: held up to 1.9, over from 2.0.
        let results =
            run(&mut c, None, 0.0, 10.0, 30, |i| if i <= 10 { people(2) } else { people(1) });
        let counts = counts(&results);
        assert_eq!(counts[4], None);
        assert_eq!(counts[5], Some(2));
        assert_eq!(counts[19], Some(1));
        assert!(counts[20..].iter().all(Option::is_none));
    }
}
