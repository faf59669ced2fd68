//! `cascade`: a second-stage classifier's verdict on a tracked object, sustained over several
//! frames (a rider without a helmet, a person lying down).
//!
//! Per track, over the `Confirmed` subjects (the classifier judges objects seen in the frame):
//!
//! - A frame *agrees* when the track stands in the zone (its ground point; anywhere without a
//!   zone) and `view.labels` has a verdict for it whose label is one of `labels` and whose score
//!   is at least `min_score`.
//! - Agreeing frames in a row make a streak. A frame where the track is seen and does not agree
//!   (no verdict, another label, too low a score) breaks the streak and ends any hold.
//! - From the `min_frames`-th agreeing frame in a row, the track holds: a [`Hold`] keyed by the
//!   track id with `facts.label` / `facts.score` from the latest verdict and one [`ObjectFact`]
//!   whose `dwell_s` is the time since the streak's first frame. It holds while the streak goes
//!   on.
//! - A frame where the track is `Lost`, or missing from the subjects (filtered out by class,
//!   confidence or size), has no verdict to judge: it neither extends nor breaks the streak, and
//!   a hold goes on being reported with the last box and verdict. Removed tracks are forgotten.
//!
//! Holds are reported in key order.

use std::collections::HashMap;
use std::sync::Arc;

use crate::rules::{Facts, Hold, Label, ObjectFact, Primitive, View};
use crate::track::Track;

/// Detects objects a classifier keeps labelling as one of `labels`.
pub struct Cascade {
    labels: Vec<Arc<str>>,
    min_score: f32,
    min_frames: u32,
    /// Only tracks with a streak going: a broken streak is dropped.
    streaks: HashMap<u64, Streak>,
}

/// One track's run of agreeing frames.
struct Streak {
    since: f64,
    frames: u32,
    verdict: Label,
    /// The track as last seen; its `dwell_s` is filled in when reported.
    last: ObjectFact,
}

impl Cascade {
    pub fn new(labels: Vec<Arc<str>>, min_score: f32, min_frames: u32) -> Self {
        Cascade { labels, min_score, min_frames, streaks: HashMap::new() }
    }

    /// The track's verdict in this frame, if it is one the algorithm looks for.
    fn agreeing<'v>(&self, view: &'v View<'_>, track: &Track) -> Option<&'v Label> {
        // Outside the zone (when there is one) an object does not count, whatever its label.
        let verdict = view.labels.get(&track.id).filter(|_| view.in_zone(track))?;
        (verdict.score >= self.min_score && self.labels.contains(&verdict.label)).then_some(verdict)
    }

    fn extend(&mut self, track: &Track, verdict: &Label, t: f64) {
        let streak = self.streaks.entry(track.id).or_insert_with(|| Streak {
            since: t,
            frames: 0,
            verdict: verdict.clone(),
            last: ObjectFact::of(track, 0.0),
        });
        streak.frames = streak.frames.saturating_add(1);
        streak.verdict = verdict.clone();
        streak.last = ObjectFact::of(track, 0.0);
    }

    fn holds(&self, t: f64) -> Vec<Hold> {
        let mut holds: Vec<Hold> = self
            .streaks
            .iter()
            .filter(|(_, streak)| streak.frames >= self.min_frames)
            .map(|(&id, streak)| Hold {
                key: id,
                objects: vec![ObjectFact { dwell_s: t - streak.since, ..streak.last.clone() }],
                facts: Facts {
                    label: Some(streak.verdict.label.clone()),
                    score: Some(streak.verdict.score),
                    ..Facts::default()
                },
            })
            .collect();
        holds.sort_unstable_by_key(|hold| hold.key);
        holds
    }
}

impl Primitive for Cascade {
    fn evaluate(&mut self, view: &View<'_>) -> Vec<Hold> {
        for track in view.seen() {
            match self.agreeing(view, track) {
                Some(verdict) => self.extend(track, verdict, view.t),
                None => {
                    self.streaks.remove(&track.id);
                }
            }
        }
        for id in view.removed {
            self.streaks.remove(id);
        }
        self.holds(view.t)
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;
    use crate::rules::primitives::testing::{Frame, evaluate, lost, track};

    /// Frames are 0.2 s apart.
    const DT: f64 = 0.2;

    fn no_helmet() -> Cascade {
        Cascade::new(vec![Arc::from("no_helmet"), Arc::from("helmet_unclear")], 0.5, 3)
    }

    fn rider(id: u64) -> Track {
        track(id, "motorcycle", 0.4, 0.4, 0.1, 0.2)
    }

    /// Runs one frame: `subjects`, and the classifier's `(track, label, score)` verdicts.
    fn frame(
        cascade: &mut Cascade,
        i: usize,
        subjects: &[Track],
        verdicts: &[(u64, &str, f32)],
    ) -> Vec<Hold> {
        let labels: HashMap<u64, Label> = verdicts
            .iter()
            .map(|&(id, label, score)| (id, Label { label: Arc::from(label), score }))
            .collect();
        evaluate(cascade, None, &Frame { labels, ..Frame::at(i as f64 * DT, subjects) })
    }

    /// One frame's verdict on track 1: label and score, or none.
    type Verdict = Option<(&'static str, f32)>;

    /// The frames in which track 1 held, over frames whose verdict for it is `verdicts(i)`.
    fn held_frames(
        cascade: &mut Cascade,
        frames: usize,
        verdicts: impl Fn(usize) -> Verdict,
    ) -> Vec<usize> {
        let subjects = [rider(1)];
        (0..frames)
            .filter(|&i| {
                let verdict: Vec<_> = verdicts(i).map(|(l, s)| (1, l, s)).into_iter().collect();
                !frame(cascade, i, &subjects, &verdict).is_empty()
            })
            .collect()
    }

    #[test]
    fn holds_from_exactly_the_min_frames_th_agreeing_frame_with_the_latest_verdict() {
        let mut cascade = no_helmet();
        let subjects = [rider(7)];
        let scores = [0.6, 0.7, 0.8, 0.55, 0.9];
        let mut held = Vec::new();
        for (i, score) in scores.into_iter().enumerate() {
            // The label changes between two of the accepted ones: still one streak.
            let label = if i == 3 { "helmet_unclear" } else { "no_helmet" };
            held.push(frame(&mut cascade, i, &subjects, &[(7, label, score)]));
        }
        assert!(held[..2].iter().all(Vec::is_empty), "{held:?}");
        let third = &held[2];
        assert_eq!(third.len(), 1);
        assert_eq!(third[0].key, 7);
        assert_eq!(third[0].facts.label.as_deref(), Some("no_helmet"));
        assert_eq!(third[0].facts.score, Some(0.8));
        assert_eq!(third[0].objects[0].track_id, 7);
        assert!((third[0].objects[0].dwell_s - 0.4).abs() < 1e-9, "streak since frame 0");
        assert_eq!(held[3][0].facts.label.as_deref(), Some("helmet_unclear"));
        assert_eq!(held[4][0].facts.score, Some(0.9));
    }

    #[test]
    fn a_broken_streak_ends_the_hold_and_restarts_the_count() {
        let mut cascade = no_helmet();
        // Agreeing everywhere but frames 2 and 7, which have no verdict.
        let held =
            held_frames(&mut cascade, 12, |i| (i != 2 && i != 7).then_some(("no_helmet", 0.9)));
        assert_eq!(held, [5, 6, 10, 11]);
    }

    #[test]
    fn a_wrong_label_or_low_score_never_holds_and_breaks_the_streak() {
        let cases: [(&str, Verdict, Vec<usize>); 5] = [
            ("helmet", Some(("helmet", 0.99)), vec![]),
            ("low score", Some(("no_helmet", 0.49)), vec![]),
            ("at min_score", Some(("no_helmet", 0.5)), vec![2, 3, 4, 5]),
            ("no verdict", None, vec![]),
            ("other label case", Some(("No_Helmet", 0.9)), vec![]),
        ];
        for (name, verdict, expected) in cases {
            let mut cascade = no_helmet();
            assert_eq!(held_frames(&mut cascade, 6, |_| verdict), expected, "{name}");
        }
        // Alternating with a wrong label: never three in a row.
        let mut cascade = no_helmet();
        let held = held_frames(&mut cascade, 12, |i| {
            Some(if i % 3 == 2 { ("helmet", 0.9) } else { ("no_helmet", 0.9) })
        });
        assert!(held.is_empty(), "{:?}", held);
    }

    #[test]
    fn lost_or_filtered_frames_neither_extend_nor_break_the_streak() {
        let mut cascade = no_helmet();
        let seen = [rider(1)];
        let hidden = [lost(rider(1))];
        let verdict = [(1, "no_helmet", 0.9)];
        assert!(frame(&mut cascade, 0, &seen, &verdict).is_empty());
        // A verdict for a lost track is not the classifier judging it: it does not count.
        assert!(frame(&mut cascade, 1, &hidden, &verdict).is_empty());
        assert!(frame(&mut cascade, 2, &[], &verdict).is_empty());
        assert!(frame(&mut cascade, 3, &seen, &verdict).is_empty(), "two agreeing frames");
        let third = frame(&mut cascade, 4, &seen, &verdict);
        assert_eq!(third.len(), 1);
        assert!((third[0].objects[0].dwell_s - 0.8).abs() < 1e-9, "streak since frame 0");
        assert_eq!(frame(&mut cascade, 5, &hidden, &[]).len(), 1, "lost keeps holding");
        assert_eq!(frame(&mut cascade, 6, &[], &[]).len(), 1, "filtered out keeps holding");
    }

    #[test]
    fn tracks_streak_independently_and_removed_ones_are_forgotten() {
        let mut cascade = no_helmet();
        let both = [rider(2), rider(1)];
        let mut held = Vec::new();
        for i in 0..4 {
            // Track 2 starts agreeing a frame late.
            let verdicts: &[(u64, &str, f32)] = if i == 0 {
                &[(1, "no_helmet", 0.9)]
            } else {
                &[(1, "no_helmet", 0.9), (2, "no_helmet", 0.9)]
            };
            let keys: Vec<u64> =
                frame(&mut cascade, i, &both, verdicts).iter().map(|h| h.key).collect();
            held.push(keys);
        }
        assert_eq!(held, [vec![], vec![], vec![1], vec![1, 2]]);
        let removed = Frame { removed: &[1, 2], ..Frame::at(1.0, &[]) };
        assert!(evaluate(&mut cascade, None, &removed).is_empty());
        assert!(cascade.streaks.is_empty());
    }
}
