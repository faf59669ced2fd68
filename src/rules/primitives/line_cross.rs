//! `line_cross`: an object crossing a line segment (a stop line, a gate, a kerb).
//!
//! The line is the directed segment A→B, `line = [A, B]`, in normalized image coordinates with
//! y growing downwards. A point P's signed distance from it is
//! `d(P) = (B − A) × (P − A) / |B − A|`, with `u × v = u.x·v.y − u.y·v.x`. Because image y
//! grows downwards, `d > 0` is the **right** side of A→B as seen on screen (walking from A to
//! B, the right hand) and `d < 0` the **left**. So for a line drawn left to right,
//! `[[0, 0.5], [1, 0.5]]`, the right side is below it, and for one drawn top to bottom the right
//! side is to its left on screen.
//!
//! - `a_to_b` is a crossing from the left side to the right side, `b_to_a` from right to left;
//!   `direction = any` counts both, `a_to_b` / `b_to_a` only that one.
//! - The tracked point is the box's bottom-centre (its ground point) or its centre (`anchor`).
//! - Hysteresis, so jitter never counts: a track is *firmly* on a side while `|d| ≥ min_travel`
//!   (and `d ≠ 0`); closer to the line it is on neither and nothing changes. Per track we keep
//!   the side it was last firmly on and where it last was firmly there. The track crosses when it
//!   is next firmly on the other side **and** the straight path from that point to the new one
//!   meets the segment between A and B (ends included), not just its infinite extension. The
//!   remembered side moves to the new side either way, so a pass around the end of the segment
//!   does not count later. A track first seen near the line has no side until it is firmly on
//!   one, so its first crossing needs a firm start.
//! - A crossing holds on that frame only: a [`Hold`] keyed `track id × 2 + (0 for a_to_b,
//!   1 for b_to_a)`, with `facts.line`, `facts.direction` (`"a_to_b"` / `"b_to_a"`) and the
//!   object (`dwell_s` 0: a crossing is an instant). The next frame it no longer holds, so the
//!   incident ends.
//! - Only `Confirmed` subjects move a track: `Lost` frames, and frames where it is missing from
//!   the subjects, keep its side. Removed tracks are forgotten. The zone is ignored.
//!
//! Holds are reported in key order.

use std::collections::HashMap;

use crate::config::{Anchor, CrossDirection};
use crate::geometry::Point;
use crate::rules::{Facts, Hold, ObjectFact, Primitive, View};
use crate::track::Track;

/// Counts crossings of a directed line segment.
pub struct LineCross {
    line: [[f32; 2]; 2],
    direction: CrossDirection,
    min_travel: f32,
    anchor: Anchor,
    /// Per track: the side it was last firmly on, and where.
    firm: HashMap<u64, Firm>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Side {
    Left,
    Right,
}

#[derive(Debug, Clone, Copy)]
struct Firm {
    side: Side,
    at: Point,
}

/// Which way a track crossed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Crossing {
    AToB,
    BToA,
}

impl Crossing {
    fn from_side(side: Side) -> Self {
        match side {
            Side::Left => Crossing::AToB,
            Side::Right => Crossing::BToA,
        }
    }

    fn name(self) -> &'static str {
        match self {
            Crossing::AToB => "a_to_b",
            Crossing::BToA => "b_to_a",
        }
    }

    /// Distinguishes the two directions of one track in the hold's key.
    fn key_bit(self) -> u64 {
        match self {
            Crossing::AToB => 0,
            Crossing::BToA => 1,
        }
    }
}

impl LineCross {
    pub fn new(
        line: [[f32; 2]; 2],
        direction: CrossDirection,
        min_travel: f32,
        anchor: Anchor,
    ) -> Self {
        LineCross { line, direction, min_travel, anchor, firm: HashMap::new() }
    }

    fn ends(&self) -> (Point, Point) {
        let [[ax, ay], [bx, by]] = self.line;
        (Point { x: ax, y: ay }, Point { x: bx, y: by })
    }

    fn anchor_of(&self, track: &Track) -> Point {
        match self.anchor {
            Anchor::BottomCentre => track.bbox.bottom_centre(),
            Anchor::Centre => track.bbox.centre(),
        }
    }

    /// Perpendicular distance from the line through A and B, positive on the right of A→B.
    fn signed_distance(&self, p: Point) -> f32 {
        let (a, b) = self.ends();
        let ab = minus(b, a);
        cross(ab, minus(p, a)) / ab.x.hypot(ab.y)
    }

    /// The side `p` is firmly on, if it is at least `min_travel` from the line.
    fn firm_side(&self, p: Point) -> Option<Side> {
        let d = self.signed_distance(p);
        // `d != 0` keeps a zero `min_travel` from putting points on the line on a side; a NaN
        // (a degenerate line) is on no side.
        if d.abs() < self.min_travel || d == 0.0 || d.is_nan() {
            None
        } else if d > 0.0 {
            Some(Side::Right)
        } else {
            Some(Side::Left)
        }
    }

    /// Whether the straight path `from` → `to`, whose ends are on opposite sides of the line,
    /// meets it between A and B: A and B are not both strictly on one side of the path.
    fn passes_between_ends(&self, from: Point, to: Point) -> bool {
        let (a, b) = self.ends();
        let path = minus(to, from);
        cross(path, minus(a, from)) * cross(path, minus(b, from)) <= 0.0
    }

    /// Moves the track to where it is now; the way it crossed the segment, if it did.
    fn step(&mut self, track: &Track) -> Option<Crossing> {
        let at = self.anchor_of(track);
        let side = self.firm_side(at)?;
        let before = self.firm.insert(track.id, Firm { side, at })?;
        (before.side != side && self.passes_between_ends(before.at, at))
            .then(|| Crossing::from_side(before.side))
    }

    fn counts(&self, crossing: Crossing) -> bool {
        match self.direction {
            CrossDirection::Any => true,
            CrossDirection::AToB => crossing == Crossing::AToB,
            CrossDirection::BToA => crossing == Crossing::BToA,
        }
    }

    fn hold(&self, track: &Track, crossing: Crossing) -> Hold {
        Hold {
            key: track.id * 2 + crossing.key_bit(),
            objects: vec![ObjectFact::of(track, 0.0)],
            facts: Facts {
                line: Some(self.line),
                direction: Some(crossing.name()),
                ..Facts::default()
            },
        }
    }
}

impl Primitive for LineCross {
    fn evaluate(&mut self, view: &View<'_>) -> Vec<Hold> {
        let mut holds = Vec::new();
        for track in view.seen() {
            if let Some(crossing) = self.step(track)
                && self.counts(crossing)
            {
                holds.push(self.hold(track, crossing));
            }
        }
        for id in view.removed {
            self.firm.remove(id);
        }
        holds.sort_unstable_by_key(|hold| hold.key);
        holds
    }
}

fn minus(a: Point, b: Point) -> Point {
    Point { x: a.x - b.x, y: a.y - b.y }
}

/// The z component of the 2-D cross product: positive when `v` turns clockwise from `u` on
/// screen (y down).
fn cross(u: Point, v: Point) -> f32 {
    u.x * v.y - u.y * v.x
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::primitives::testing::{Frame, evaluate, lost, run, track};

    const FPS: f64 = 5.0;
    /// Drawn left to right: its right side is below it.
    const ACROSS: [[f32; 2]; 2] = [[0.25, 0.5], [0.75, 0.5]];
    /// Coordinates below are multiples of 1/32, exact in f32, so firmness is exact to the frame.
    const MIN_TRAVEL: f32 = 1.0 / 16.0;
    const STEP: f32 = 1.0 / 32.0;

    /// A car (0.125 × 0.125 box) with its ground point at (`x`, `y`).
    fn car(id: u64, x: f32, y: f32) -> Track {
        track(id, "car", x - 0.0625, y - 0.125, 0.125, 0.125)
    }

    fn line_cross(line: [[f32; 2]; 2], direction: CrossDirection) -> LineCross {
        LineCross::new(line, direction, MIN_TRAVEL, Anchor::BottomCentre)
    }

    /// (frame, key, direction) of each crossing expected.
    type Expected = &'static [(usize, u64, &'static str)];

    /// (frame, key, direction) of every hold.
    fn crossings(out: &[(f64, Vec<Hold>)]) -> Vec<(usize, u64, &'static str)> {
        let mut found = Vec::new();
        for (frame, (_, holds)) in out.iter().enumerate() {
            for hold in holds {
                found.push((frame, hold.key, hold.facts.direction.unwrap()));
            }
        }
        found
    }

    /// Ground y moving down (`+1`) or up (`-1`) through y = 0.5, one STEP a frame from 0.25 or
    /// 0.75: firmly across (1/16 past the line) on frame 10.
    fn vertical_pass(sign: f32, i: usize) -> f32 {
        0.5 - sign * 0.25 + sign * STEP * i as f32
    }

    #[test]
    fn crossings_by_line_orientation_direction_filter_and_path() {
        type Line = [[f32; 2]; 2];
        type Path = fn(usize) -> (f32, f32);
        let down: Path = |i| (0.5, vertical_pass(1.0, i));
        let up: Path = |i| (0.5, vertical_pass(-1.0, i));
        let leftwards: Path = |i| (vertical_pass(-1.0, i), 0.5);
        let down_past_b: Path = |i| (0.875, vertical_pass(1.0, i));
        let down_before_a: Path = |i| (0.125, vertical_pass(1.0, i));
        let down_through_b: Path = |i| (0.75, vertical_pass(1.0, i));
        let reversed = [ACROSS[1], ACROSS[0]];
        let pointing_down = [[0.5, 0.25], [0.5, 0.75]];
        let cases: [(&str, Line, CrossDirection, Path, Expected); 12] = [
            ("down across, any", ACROSS, CrossDirection::Any, down, &[(10, 2, "a_to_b")]),
            ("up across, any", ACROSS, CrossDirection::Any, up, &[(10, 3, "b_to_a")]),
            ("down, reversed line", reversed, CrossDirection::Any, down, &[(10, 3, "b_to_a")]),
            // Facing down the screen the right hand points left: right to left is a_to_b.
            (
                "leftwards, line pointing down",
                pointing_down,
                CrossDirection::Any,
                leftwards,
                &[(10, 2, "a_to_b")],
            ),
            ("down, a_to_b only", ACROSS, CrossDirection::AToB, down, &[(10, 2, "a_to_b")]),
            ("up, a_to_b only", ACROSS, CrossDirection::AToB, up, &[]),
            ("up, b_to_a only", ACROSS, CrossDirection::BToA, up, &[(10, 3, "b_to_a")]),
            ("down, b_to_a only", ACROSS, CrossDirection::BToA, down, &[]),
            ("down past B's end", ACROSS, CrossDirection::Any, down_past_b, &[]),
            ("down before A's end", ACROSS, CrossDirection::Any, down_before_a, &[]),
            (
                "down through B itself",
                ACROSS,
                CrossDirection::Any,
                down_through_b,
                &[(10, 2, "a_to_b")],
            ),
            ("down, line pointing down", pointing_down, CrossDirection::Any, down, &[]),
        ];
        for (name, line, direction, path, expected) in cases {
            let mut primitive = line_cross(line, direction);
            let out = run(&mut primitive, None, 0.0, FPS, 17, |i| {
                let (x, y) = path(i);
                vec![car(1, x, y)]
            });
            assert_eq!(crossings(&out), expected, "{name}");
        }
    }

    #[test]
    fn a_crossing_reports_the_line_direction_and_object_on_that_frame_only() {
        let mut primitive = line_cross(ACROSS, CrossDirection::Any);
        let out =
            run(&mut primitive, None, 0.0, FPS, 17, |i| vec![car(5, 0.5, vertical_pass(1.0, i))]);
        assert!(out[9].1.is_empty(), "over the line but not yet by min_travel");
        let (t, holds) = &out[10];
        assert_eq!(*t, 2.0);
        assert_eq!(holds.len(), 1);
        assert_eq!(holds[0].key, 10);
        assert_eq!(holds[0].facts.line, Some(ACROSS));
        assert_eq!(holds[0].facts.direction, Some("a_to_b"));
        assert_eq!(holds[0].objects.len(), 1);
        assert_eq!(holds[0].objects[0].track_id, 5);
        assert_eq!(holds[0].objects[0].bbox, car(5, 0.5, 0.5625).bbox);
        assert!(out[11..].iter().all(|(_, holds)| holds.is_empty()), "one frame only");
    }

    #[test]
    fn a_direction_filter_counts_each_crossing_its_way() {
        // Down, back up, down again: frames 10, 30 and 50 are firmly across.
        let there_and_back = |i: usize| {
            let leg = i / 20;
            let sign = if leg.is_multiple_of(2) { 1.0 } else { -1.0 };
            car(1, 0.5, vertical_pass(sign, i % 20))
        };
        let cases: [(CrossDirection, Expected); 3] = [
            (CrossDirection::Any, &[(10, 2, "a_to_b"), (30, 3, "b_to_a"), (50, 2, "a_to_b")]),
            (CrossDirection::AToB, &[(10, 2, "a_to_b"), (50, 2, "a_to_b")]),
            (CrossDirection::BToA, &[(30, 3, "b_to_a")]),
        ];
        for (direction, expected) in cases {
            let mut primitive = line_cross(ACROSS, direction);
            let out = run(&mut primitive, None, 0.0, FPS, 60, |i| vec![there_and_back(i)]);
            assert_eq!(crossings(&out), expected, "{direction:?}");
        }
    }

    #[test]
    fn jitter_across_the_line_within_min_travel_counts_nothing() {
        let mut primitive = line_cross(ACROSS, CrossDirection::Any);
        // Firmly above at first, then 1/32 either side of the line for 10 s.
        let out = run(&mut primitive, None, 0.0, FPS, 51, |i| {
            let y = match i {
                0 => 0.375,
                _ if i % 2 == 0 => 0.5 - STEP,
                _ => 0.5 + STEP,
            };
            vec![car(1, 0.5, y)]
        });
        assert!(crossings(&out).is_empty(), "{:?}", crossings(&out));
    }

    #[test]
    fn a_real_crossing_then_jitter_counts_once() {
        let mut primitive = line_cross(ACROSS, CrossDirection::Any);
        let out = run(&mut primitive, None, 0.0, FPS, 60, |i| {
            let y = match i {
                0..=10 => vertical_pass(1.0, i),
                _ if i % 2 == 0 => 0.5 - STEP,
                _ => 0.5 + STEP,
            };
            vec![car(1, 0.5, y)]
        });
        assert_eq!(crossings(&out), [(10, 2, "a_to_b")]);
    }

    #[test]
    fn lost_and_missing_frames_keep_the_side() {
        let mut primitive = line_cross(ACROSS, CrossDirection::Any);
        let out = run(&mut primitive, None, 0.0, FPS, 20, |i| match i {
            0..=3 => vec![car(1, 0.5, 0.375)],
            // Lost with a box below the line (a prediction), then missing: neither counts.
            4..=8 => vec![lost(car(1, 0.5, 0.625))],
            9..=11 => vec![],
            _ => vec![car(1, 0.5, 0.625)],
        });
        assert_eq!(crossings(&out), [(12, 2, "a_to_b")], "counted when seen across");
    }

    #[test]
    fn removed_tracks_are_forgotten() {
        let mut primitive = line_cross(ACROSS, CrossDirection::Any);
        let above = [car(1, 0.5, 0.375)];
        evaluate(&mut primitive, None, &Frame::at(0.0, &above));
        assert_eq!(primitive.firm.len(), 1);
        let removed = Frame { removed: &[1], ..Frame::at(0.2, &[]) };
        assert!(evaluate(&mut primitive, None, &removed).is_empty());
        assert!(primitive.firm.is_empty());
    }

    #[test]
    fn the_anchor_decides_which_point_crosses() {
        // A tall box (0.25) whose bottom goes from 0.375 to 0.625: its centre stops at 0.5.
        let tall = |i: usize| track(1, "person", 0.45, 0.125 + STEP * i as f32, 0.1, 0.25);
        let cases: [(Anchor, Expected); 2] =
            [(Anchor::BottomCentre, &[(6, 2, "a_to_b")]), (Anchor::Centre, &[])];
        for (anchor, expected) in cases {
            let mut primitive = LineCross::new(ACROSS, CrossDirection::Any, MIN_TRAVEL, anchor);
            let out = run(&mut primitive, None, 0.0, FPS, 9, |i| vec![tall(i)]);
            assert_eq!(crossings(&out), expected, "{anchor:?}");
        }
    }

    #[test]
    fn tracks_cross_independently_and_holds_come_in_key_order() {
        let mut primitive = line_cross(ACROSS, CrossDirection::Any);
        let out = run(&mut primitive, None, 0.0, FPS, 11, |i| {
            vec![car(4, 0.625, vertical_pass(1.0, i)), car(2, 0.375, vertical_pass(-1.0, i))]
        });
        assert_eq!(crossings(&out), [(10, 5, "b_to_a"), (10, 8, "a_to_b")]);
    }

    #[test]
    fn the_zone_is_ignored() {
        let zone = crate::rules::primitives::testing::rect(0.0, 0.0, 0.1, 0.1);
        let mut primitive = line_cross(ACROSS, CrossDirection::Any);
        let out = run(&mut primitive, Some(&zone), 0.0, FPS, 11, |i| {
            vec![car(1, 0.5, vertical_pass(1.0, i))]
        });
        assert_eq!(crossings(&out), [(10, 2, "a_to_b")]);
    }
}
