//! `area_ratio`: objects of the algorithm's classes cover a large part of the zone (a flooded
//! road, a pile of rubbish, a crowd filling a square).
//!
//! The ratio in a frame is the fraction of the zone's area (the whole frame without a zone)
//! inside the union of the boxes of the subjects seen in that frame (`Confirmed`; `Lost` tracks
//! are not). A box counts with whatever part of it lies in the zone, wherever its ground point
//! is; overlapping boxes count once.
//!
//! It is measured on a fixed [`GRID`] × [`GRID`] grid of points, the centres of the cells that
//! divide the zone's bounding box: ratio = points inside the zone and inside some box / points
//! inside the zone. So concave zones are measured by their true area, and the error is about
//! one cell (1/64 of the zone's width or height) per box edge.
//!
//! - The condition starts once at least one box covers part of the zone and the ratio has been
//!   at least `min_ratio` in every frame for `persist_s` seconds; before the start, a single
//!   frame below restarts the wait.
//! - Once started, it holds until the ratio has stayed below `min_ratio` for `clear_s` (it ends
//!   at the first frame at `t >= last_at_or_above + clear_s`).
//! - One zone-wide [`Hold`] with key 0 and `facts.ratio` = this frame's ratio, also while below.
//!   Its objects are the subjects whose boxes cover part of the zone now, each with `dwell_s` =
//!   seconds since it started covering in this stay; in a frame with none, the last ones.

use std::collections::HashSet;

use crate::geometry::{BBox, Point, Polygon};
use crate::rules::{Facts, Hold, ObjectFact, Primitive, View};
use crate::track::Track;

use super::presence::{Latch, Occupants};

/// Sample points per side of the zone's bounding box.
const GRID: usize = 64;

pub struct AreaRatio {
    min_ratio: f32,
    occupants: Occupants,
    latch: Latch,
    /// The objects reported when no box covers the zone during the `clear_s` grace.
    last: Vec<ObjectFact>,
}

impl AreaRatio {
    pub fn new(min_ratio: f32, persist_s: f64, clear_s: f64) -> Self {
        AreaRatio {
            min_ratio,
            occupants: Occupants::default(),
            latch: Latch::new(persist_s, clear_s),
            last: vec![],
        }
    }
}

impl Primitive for AreaRatio {
    fn evaluate(&mut self, view: &View<'_>) -> Vec<Hold> {
        let boxes: Vec<&Track> = view.seen().collect();
        let coverage = coverage(view.zone, &boxes);
        let covering: HashSet<u64> = coverage.covering.iter().copied().collect();
        let objects = self.occupants.observe(view.t, &view.subjects, |t| covering.contains(&t.id));
        // Requiring a box keeps `min_ratio = 0` from holding over an empty zone.
        let condition = !objects.is_empty() && coverage.ratio >= self.min_ratio;
        if !self.latch.update(view.t, condition) {
            self.last.clear();
            return vec![];
        }
        if !objects.is_empty() {
            self.last = objects;
        }
        let facts = Facts { ratio: Some(coverage.ratio), ..Facts::default() };
        vec![Hold { key: 0, objects: self.last.clone(), facts }]
    }
}

/// How much of a zone some boxes cover.
#[derive(Debug, PartialEq)]
struct Coverage {
    /// Covered fraction of the zone's area, 0 to 1.
    ratio: f32,
    /// Track ids of the boxes covering some of it.
    covering: Vec<u64>,
}

/// The fraction of `zone` (the unit square without one) that the union of the `tracks`' boxes
/// covers, sampled at the cell centres of a [`GRID`] × [`GRID`] grid over its bounding box.
fn coverage(zone: Option<&Polygon>, tracks: &[&Track]) -> Coverage {
    let [x0, y0, x1, y1] = zone.map_or([0.0, 0.0, 1.0, 1.0], bounds);
    let step = |lo: f32, hi: f32, i: usize| lo + (i as f32 + 0.5) * (hi - lo) / GRID as f32;
    let mut covers = vec![false; tracks.len()];
    let (mut inside, mut covered) = (0usize, 0usize);
    for row in 0..GRID {
        for col in 0..GRID {
            let p = Point { x: step(x0, x1, col), y: step(y0, y1, row) };
            if zone.is_some_and(|z| !z.contains(p)) {
                continue;
            }
            inside += 1;
            let mut hit = false;
            for (track, covers) in tracks.iter().zip(covers.iter_mut()) {
                if box_contains(&track.bbox, p) {
                    *covers = true;
                    hit = true;
                }
            }
            covered += usize::from(hit);
        }
    }
    let ratio = if inside == 0 { 0.0 } else { covered as f32 / inside as f32 };
    let covering = tracks.iter().zip(covers).filter(|(_, c)| *c).map(|(t, _)| t.id).collect();
    Coverage { ratio, covering }
}

/// `[min_x, min_y, max_x, max_y]` of a polygon.
fn bounds(zone: &Polygon) -> [f32; 4] {
    zone.points().iter().fold(
        [f32::INFINITY, f32::INFINITY, f32::NEG_INFINITY, f32::NEG_INFINITY],
        |[x0, y0, x1, y1], p| [x0.min(p.x), y0.min(p.y), x1.max(p.x), y1.max(p.y)],
    )
}

fn box_contains(b: &BBox, p: Point) -> bool {
    p.x >= b.x && p.x < b.x + b.w && p.y >= b.y && p.y < b.y + b.h
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::rules::primitives::testing::{lost, rect, run, track};

    /// Grid error allowed on a ratio: one cell per box edge, on each axis.
    const TOLERANCE: f32 = 2.0 / GRID as f32;

    fn blob(id: u64, x1: f32, y1: f32, x2: f32, y2: f32) -> Track {
        track(id, "water", x1, y1, x2 - x1, y2 - y1)
    }

    fn ratio_of(zone: Option<&Polygon>, tracks: &[Track]) -> f32 {
        coverage(zone, &tracks.iter().collect::<Vec<_>>()).ratio
    }

    fn assert_near(actual: f32, expected: f32) {
        assert!((actual - expected).abs() <= TOLERANCE, "{actual} vs {expected}");
    }

    /// An L: the unit square without its top-right quarter, area 0.75.
    fn l_zone() -> Polygon {
        Polygon::new(
            [(0.0, 0.0), (0.5, 0.0), (0.5, 0.5), (1.0, 0.5), (1.0, 1.0), (0.0, 1.0)]
                .into_iter()
                .map(|(x, y)| Point { x, y })
                .collect(),
        )
    }

    #[test]
    fn box_over_half_a_rectangular_zone_is_half() {
        let zone = rect(0.2, 0.2, 0.6, 0.6);
        assert_near(ratio_of(Some(&zone), &[blob(1, 0.1, 0.1, 0.4, 0.7)]), 0.5);
        // Without a zone: the whole frame.
        assert_near(ratio_of(None, &[blob(1, 0.0, 0.0, 1.0, 0.25)]), 0.25);
    }

    #[test]
    fn overlapping_boxes_count_once() {
        let zone = rect(0.0, 0.0, 1.0, 1.0);
        // 0.0..0.5 and 0.25..0.75 wide, full height: the union is three quarters, not one.
        let both = [blob(1, 0.0, 0.0, 0.5, 1.0), blob(2, 0.25, 0.0, 0.75, 1.0)];
        let c = coverage(Some(&zone), &both.iter().collect::<Vec<_>>());
        assert_near(c.ratio, 0.75);
        assert_eq!(c.covering, vec![1, 2]);
        // The same box twice is the box once.
        assert_near(ratio_of(Some(&zone), &[both[0].clone(), both[0].clone()]), 0.5);
    }

    #[test]
    fn box_outside_the_zone_covers_nothing() {
        let zone = rect(0.0, 0.0, 0.4, 0.4);
        let c = coverage(Some(&zone), &[&blob(1, 0.5, 0.5, 0.9, 0.9)]);
        assert_eq!(c, Coverage { ratio: 0.0, covering: vec![] });
    }

    #[test]
    fn concave_zone_is_measured_by_its_own_area() {
        let zone = l_zone();
        // The bottom half is two thirds of the L, the notch is none of it, the top-left third.
        assert_near(ratio_of(Some(&zone), &[blob(1, 0.0, 0.5, 1.0, 1.0)]), 2.0 / 3.0);
        assert_eq!(ratio_of(Some(&zone), &[blob(1, 0.5, 0.0, 1.0, 0.5)]), 0.0);
        assert_near(ratio_of(Some(&zone), &[blob(1, 0.0, 0.0, 0.5, 0.5)]), 1.0 / 3.0);
        // A box over the whole frame covers all of it, however the zone is shaped.
        assert_eq!(ratio_of(Some(&zone), &[blob(1, 0.0, 0.0, 1.0, 1.0)]), 1.0);
    }

    #[test]
    fn fires_at_persist_s_above_min_ratio_only() {
        let zone = rect(0.0, 0.5, 1.0, 1.0);
        let mut a = AreaRatio::new(0.5, 2.0, 5.0);
        // Covers 60% of the zone.
        let results =
            run(&mut a, Some(&zone), 0.0, 10.0, 22, |_| vec![blob(4, 0.0, 0.5, 0.6, 1.0)]);
        assert!(results[..20].iter().all(|(_, h)| h.is_empty()), "a frame early");
        let (t, holds) = &results[20];
        assert_eq!(*t, 2.0);
        assert_eq!(holds.len(), 1);
        assert_eq!(holds[0].key, 0);
        assert_near(holds[0].facts.ratio.unwrap(), 0.6);
        assert_eq!(holds[0].objects.len(), 1);
        assert_eq!(holds[0].objects[0].track_id, 4);
        assert!((holds[0].objects[0].dwell_s - 2.0).abs() < 1e-9);
        // 40%, even with a lost box over all of it: never.
        let mut a = AreaRatio::new(0.5, 2.0, 5.0);
        let results = run(&mut a, Some(&zone), 0.0, 10.0, 50, |_| {
            vec![blob(4, 0.0, 0.5, 0.4, 1.0), lost(blob(5, 0.0, 0.0, 1.0, 1.0))]
        });
        assert!(results.iter().all(|(_, h)| h.is_empty()));
    }

    #[test]
    fn short_dip_keeps_it_a_long_one_ends_it_and_ratio_follows() {
        let mut a = AreaRatio::new(0.5, 0.0, 1.0);
        // 80% until 1.0, 30% from 1.1 to 1.9, 80% to 3.0, 30% from 3.1.
        let results = run(&mut a, None, 0.0, 10.0, 50, |i| {
            let right = if (11..20).contains(&i) || i > 30 { 0.3 } else { 0.8 };
            vec![blob(1, 0.0, 0.0, right, 1.0)]
        });
        let ratios: Vec<Option<f32>> =
            results.iter().map(|(_, h)| h.first().and_then(|h| h.facts.ratio)).collect();
        assert_near(ratios[0].unwrap(), 0.8);
        assert_near(ratios[15].unwrap(), 0.3);
        assert_near(ratios[25].unwrap(), 0.8);
        assert_near(ratios[39].unwrap(), 0.3);
        assert!(ratios[40..].iter().all(Option::is_none));
    }
}
