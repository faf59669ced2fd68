//! `direction`: an object moving the wrong way through the zone (wrong-way driving, a cyclist
//! against a one-way street).
//!
//! Headings are degrees clockwise from image-up: 0 is up, 90 right, 180 down, 270 left. Image y
//! grows downwards, so a movement `(dx, dy)` has heading `atan2(dx, −dy)`, taken into `[0, 360)`.
//!
//! Per track, over the `Confirmed` subjects whose ground point (bottom-centre of the box) is in
//! the zone:
//!
//! - Movement is measured in legs of at least `min_travel` (normalized distance): the ground
//!   point where the track was first seen in the zone starts the first leg; once the track is
//!   `min_travel` or more from it, the heading of that leg is the track's heading and the current
//!   point starts the next leg. Jitter smaller than `min_travel` never completes a leg, so a
//!   stationary object has no heading.
//! - A leg is *against* the flow when the angle between its heading and the opposite of the
//!   allowed heading (`heading_deg + 180`) is at most `tolerance_deg`. With the default 45°, a
//!   perpendicular turn is not against.
//! - After an against leg the track holds: a [`Hold`] keyed by the track id, with
//!   `facts.heading_deg` the last leg's heading and one [`ObjectFact`] whose `dwell_s` is the time
//!   since its first against leg in the current run. It keeps holding (also while it stands
//!   still: its last leg was the wrong way) until a leg that is not against, its ground point is
//!   seen outside the zone (which forgets it: coming back starts afresh), or its track is
//!   removed for good.
//! - A frame where the track is `Lost`, or missing from the subjects (filtered out by class,
//!   confidence or size), changes nothing; a hold goes on being reported with the last observed
//!   box.
//!
//! Holds are reported in key order.

use std::collections::HashMap;

use crate::geometry::Point;
use crate::rules::{Facts, Hold, ObjectFact, Primitive, View};
use crate::track::Track;

/// Detects objects moving through the zone against the allowed heading.
pub struct Direction {
    flow: Flow,
    min_travel: f32,
    courses: HashMap<u64, Course>,
}

/// The allowed heading, as what counts against it.
#[derive(Debug, Clone, Copy)]
struct Flow {
    /// The allowed heading plus 180°.
    against_deg: f32,
    tolerance_deg: f32,
}

impl Flow {
    fn is_against(self, heading_deg: f32) -> bool {
        angle_between(heading_deg, self.against_deg) <= self.tolerance_deg
    }
}

/// One object's movement through the zone.
struct Course {
    /// Where the current leg started.
    leg_from: Point,
    /// The heading of the last completed leg.
    heading_deg: Option<f32>,
    /// Since when its legs have been against the flow, if the last one was.
    against_since: Option<f64>,
    /// The track as last seen; its `dwell_s` is filled in when reported.
    last: ObjectFact,
}

impl Direction {
    pub fn new(heading_deg: f32, tolerance_deg: f32, min_travel: f32) -> Self {
        let flow = Flow { against_deg: (heading_deg + 180.0).rem_euclid(360.0), tolerance_deg };
        Direction { flow, min_travel, courses: HashMap::new() }
    }

    fn observe(&mut self, track: &Track, t: f64) {
        let at = track.bbox.bottom_centre();
        let course = self.courses.entry(track.id).or_insert_with(|| Course {
            leg_from: at,
            heading_deg: None,
            against_since: None,
            last: ObjectFact::of(track, 0.0),
        });
        course.last = ObjectFact::of(track, 0.0);
        let (dx, dy) = (at.x - course.leg_from.x, at.y - course.leg_from.y);
        if dx.hypot(dy) < self.min_travel {
            return;
        }
        let heading = heading_of(dx, dy);
        course.leg_from = at;
        course.heading_deg = Some(heading);
        if self.flow.is_against(heading) {
            course.against_since.get_or_insert(t);
        } else {
            course.against_since = None;
        }
    }

    fn holds(&self, t: f64) -> Vec<Hold> {
        let mut holds: Vec<Hold> = self
            .courses
            .iter()
            .filter_map(|(&id, course)| {
                let since = course.against_since?;
                Some(Hold {
                    key: id,
                    objects: vec![ObjectFact { dwell_s: t - since, ..course.last.clone() }],
                    facts: Facts { heading_deg: course.heading_deg, ..Facts::default() },
                })
            })
            .collect();
        holds.sort_unstable_by_key(|hold| hold.key);
        holds
    }
}

impl Primitive for Direction {
    fn evaluate(&mut self, view: &View<'_>) -> Vec<Hold> {
        for track in view.seen() {
            if view.in_zone(track) {
                self.observe(track, view.t);
            } else {
                self.courses.remove(&track.id);
            }
        }
        for id in view.removed {
            self.courses.remove(id);
        }
        self.holds(view.t)
    }
}

/// Heading of a movement in image coordinates (y down), degrees clockwise from up, in
/// `[0, 360)`.
fn heading_of(dx: f32, dy: f32) -> f32 {
    dx.atan2(-dy).to_degrees().rem_euclid(360.0)
}

/// The smaller angle between two headings, 0 to 180 degrees.
fn angle_between(a_deg: f32, b_deg: f32) -> f32 {
    let d = (a_deg - b_deg).rem_euclid(360.0);
    d.min(360.0 - d)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::geometry::Polygon;
    use crate::rules::primitives::testing::{Frame, evaluate, lost, rect, run, track};

    const FPS: f64 = 5.0;
    /// Coordinates below are multiples of 1/64, exact in f32, so legs end exactly on a frame.
    const STEP: f32 = 1.0 / 64.0;
    const MIN_TRAVEL: f32 = 1.0 / 16.0;

    /// A one-way street running up the image, x 0.25 to 0.75.
    fn street() -> Polygon {
        rect(0.25, 0.0, 0.75, 1.0)
    }

    /// Traffic must go up the image.
    fn one_way_up(tolerance_deg: f32) -> Direction {
        Direction::new(0.0, tolerance_deg, MIN_TRAVEL)
    }

    /// A car (0.125 × 0.125 box) with its ground point at (`x`, `y`).
    fn car(id: u64, x: f32, y: f32) -> Track {
        track(id, "car", x - 0.0625, y - 0.125, 0.125, 0.125)
    }

    fn hold_frames(out: &[(f64, Vec<Hold>)]) -> Vec<usize> {
        out.iter().enumerate().filter(|(_, (_, holds))| !holds.is_empty()).map(|(i, _)| i).collect()
    }

    #[test]
    fn headings_are_clockwise_from_image_up() {
        let cases = [
            ((0.0, -1.0), 0.0),
            ((1.0, -1.0), 45.0),
            ((1.0, 0.0), 90.0),
            ((0.0, 1.0), 180.0),
            ((-1.0, 0.0), 270.0),
            ((-1.0, -1.0), 315.0),
        ];
        for ((dx, dy), expected) in cases {
            let heading = heading_of(dx, dy);
            assert!((heading - expected).abs() < 1e-4, "({dx}, {dy}): {heading}");
        }
        assert_eq!(angle_between(350.0, 10.0), 20.0);
        assert_eq!(angle_between(0.0, 180.0), 180.0);
    }

    #[test]
    fn a_car_driving_the_allowed_way_never_holds() {
        let mut direction = one_way_up(45.0);
        let out = run(&mut direction, Some(&street()), 0.0, FPS, 60, |i| {
            vec![car(1, 0.5, 0.96875 - STEP * i as f32)]
        });
        assert!(hold_frames(&out).is_empty(), "{:?}", hold_frames(&out));
        assert_eq!(direction.courses[&1].heading_deg, Some(0.0), "it did measure a heading");
    }

    #[test]
    fn a_car_driving_the_wrong_way_holds_once_it_has_travelled_min_travel() {
        let mut direction = one_way_up(45.0);
        let out = run(&mut direction, Some(&street()), 0.0, FPS, 40, |i| {
            vec![car(3, 0.5, 0.25 + STEP * i as f32)]
        });
        // Four steps of 1/64 make 1/16: the first leg ends on frame 4.
        assert_eq!(hold_frames(&out), (4..40).collect::<Vec<_>>());
        let (t, holds) = &out[4];
        assert_eq!(holds.len(), 1);
        assert_eq!(holds[0].key, 3);
        assert_eq!(holds[0].facts.heading_deg, Some(180.0));
        assert_eq!(holds[0].objects[0].track_id, 3);
        assert_eq!(holds[0].objects[0].dwell_s, 0.0);
        assert_eq!(*t, 0.8);
        let later = &out[39].1[0].objects[0];
        assert!((later.dwell_s - 7.0).abs() < 1e-9, "against since 0.8 s: {later:?}");
    }

    #[test]
    fn only_headings_within_tolerance_of_the_wrong_way_hold() {
        // (dx, dy) a frame, and the heading held at the end, if any.
        let cases = [
            ("down, 26.6° to the right", (STEP, 2.0 * STEP), Some(153.43)),
            ("down, 26.6° to the left", (-STEP, 2.0 * STEP), Some(206.57)),
            ("up, 26.6° to the right", (STEP, -2.0 * STEP), None),
            ("right", (STEP, 0.0), None),
            ("left", (-STEP, 0.0), None),
        ];
        for (name, (dx, dy), expected) in cases {
            let mut direction = one_way_up(45.0);
            let out = run(&mut direction, None, 0.0, FPS, 20, |i| {
                vec![car(1, 0.375 + dx * i as f32, 0.375 + dy * i as f32)]
            });
            let held = out.last().unwrap().1.first().and_then(|h| h.facts.heading_deg);
            match (held, expected) {
                (None, None) => {}
                (Some(h), Some(e)) => assert!((h - e).abs() < 0.01, "{name}: {h}"),
                _ => panic!("{name}: held {held:?}, expected {expected:?}"),
            }
        }
    }

    #[test]
    fn turning_with_the_flow_or_across_it_ends_the_hold() {
        let mut direction = one_way_up(45.0);
        let out = run(&mut direction, Some(&street()), 0.0, FPS, 24, |i| {
            // Down for 8 frames, then right: that leg completes on frame 12.
            let (x, y) = match i {
                0..=8 => (0.375, 0.25 + STEP * i as f32),
                _ => (0.375 + STEP * (i - 8) as f32, 0.375),
            };
            vec![car(1, x, y)]
        });
        assert_eq!(hold_frames(&out), (4..12).collect::<Vec<_>>());
    }

    #[test]
    fn stationary_jitter_never_holds_even_when_any_heading_would_count() {
        // Tolerance 180: every measured heading is against, so only never measuring one passes.
        let mut direction = one_way_up(180.0);
        let out = run(&mut direction, Some(&street()), 0.0, FPS, 100, |i| {
            let jitter = if i % 2 == 0 { 0.02 } else { -0.02 };
            vec![car(1, 0.5 + jitter, 0.5 - jitter)]
        });
        assert!(hold_frames(&out).is_empty(), "{:?}", hold_frames(&out));
        assert_eq!(direction.courses[&1].heading_deg, None);
    }

    #[test]
    fn a_wrong_way_car_that_stops_keeps_holding_until_it_leaves_the_zone() {
        let mut direction = one_way_up(45.0);
        let zone = street();
        let out = run(&mut direction, Some(&zone), 0.0, FPS, 20, |i| {
            vec![car(1, 0.5, 0.25 + STEP * i.min(8) as f32)]
        });
        assert_eq!(hold_frames(&out), (4..20).collect::<Vec<_>>());
        let outside = [car(1, 0.875, 0.375)];
        assert!(evaluate(&mut direction, Some(&zone), &Frame::at(4.0, &outside)).is_empty());
        assert!(direction.courses.is_empty(), "left the zone: forgotten");
    }

    #[test]
    fn lost_frames_keep_the_hold_until_removed() {
        let mut direction = one_way_up(45.0);
        let zone = street();
        let out = run(&mut direction, Some(&zone), 0.0, FPS, 20, |i| match i {
            0..=5 => vec![car(1, 0.5, 0.25 + STEP * i as f32)],
            // A lost prediction outside the zone, then missing: neither ends it.
            6..=9 => vec![lost(car(1, 0.875, 0.5))],
            10..=12 => vec![],
            _ => vec![car(1, 0.5, 0.25 + STEP * i as f32)],
        });
        assert_eq!(hold_frames(&out), (4..20).collect::<Vec<_>>());
        let removed = Frame { removed: &[1], ..Frame::at(4.0, &[]) };
        assert!(evaluate(&mut direction, Some(&zone), &removed).is_empty());
        assert!(direction.courses.is_empty(), "removed tracks are forgotten");
    }
}
