//! Geometry shared by every stage: boxes, points and zone polygons in the image, and WGS84
//! positions and geo-fences on the ground (drone cameras).
//!
//! Everything downstream of inference works in *normalized* image coordinates: `x` and `y` in
//! `[0, 1]`, origin at the top-left corner. Zones in the config, boxes in the incident payload and
//! the tracker all use the same space, so a camera's resolution never leaks into the rules.

use std::sync::Arc;

use serde::{Deserialize, Serialize};

/// A point in normalized image coordinates.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Point {
    pub x: f32,
    pub y: f32,
}

/// An axis-aligned box: top-left corner plus width and height, normalized.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BBox {
    pub x: f32,
    pub y: f32,
    pub w: f32,
    pub h: f32,
}

impl BBox {
    pub fn from_corners(x1: f32, y1: f32, x2: f32, y2: f32) -> Self {
        BBox { x: x1, y: y1, w: x2 - x1, h: y2 - y1 }
    }

    pub fn area(&self) -> f32 {
        self.w.max(0.0) * self.h.max(0.0)
    }

    pub fn centre(&self) -> Point {
        Point { x: self.x + self.w / 2.0, y: self.y + self.h / 2.0 }
    }

    /// Where an object stands on the ground: the middle of the box's bottom edge.
    pub fn bottom_centre(&self) -> Point {
        Point { x: self.x + self.w / 2.0, y: self.y + self.h }
    }

    /// Intersection over union; 0 for disjoint or empty boxes.
    pub fn iou(&self, other: &BBox) -> f32 {
        let ix = (self.x + self.w).min(other.x + other.w) - self.x.max(other.x);
        let iy = (self.y + self.h).min(other.y + other.h) - self.y.max(other.y);
        if ix <= 0.0 || iy <= 0.0 {
            return 0.0;
        }
        let inter = ix * iy;
        let union = self.area() + other.area() - inter;
        if union <= 0.0 { 0.0 } else { inter / union }
    }

    /// The box clipped to the unit square.
    pub fn clamped(&self) -> BBox {
        let x1 = self.x.clamp(0.0, 1.0);
        let y1 = self.y.clamp(0.0, 1.0);
        let x2 = (self.x + self.w).clamp(0.0, 1.0);
        let y2 = (self.y + self.h).clamp(0.0, 1.0);
        BBox::from_corners(x1, y1, x2, y2)
    }
}

/// A closed polygon in normalized coordinates (a zone). Validated by the config to have at least
/// three points, all inside the unit square; empty, it contains nothing.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Polygon {
    points: Vec<Point>,
}

impl Polygon {
    pub fn new(points: Vec<Point>) -> Self {
        Polygon { points }
    }

    pub fn points(&self) -> &[Point] {
        &self.points
    }

    /// Even-odd ray casting; points on the boundary may fall either way.
    pub fn contains(&self, p: Point) -> bool {
        let mut inside = false;
        let n = self.points.len();
        for i in 0..n {
            let a = self.points[i];
            let b = self.points[(i + n - 1) % n];
            if (a.y > p.y) != (b.y > p.y) {
                let x_cross = a.x + (p.y - a.y) / (b.y - a.y) * (b.x - a.x);
                if p.x < x_cross {
                    inside = !inside;
                }
            }
        }
        inside
    }
}

/// One object found by a detector in one frame.
#[derive(Debug, Clone, PartialEq)]
pub struct Detection {
    pub bbox: BBox,
    /// Canonical class name, e.g. `car`.
    pub class: Arc<str>,
    pub confidence: f32,
}

/// A WGS84 position, degrees.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LatLon {
    pub lat: f64,
    pub lon: f64,
}

/// A geo-fence: a polygon of WGS84 positions, at least three, checked by the config.
#[derive(Debug, Clone, PartialEq)]
pub struct GeoPolygon(pub Vec<LatLon>);

impl GeoPolygon {
    /// Whether a position is inside (even-odd rule on latitude and longitude, which is exact
    /// enough for fences of a few kilometres).
    pub fn contains(&self, p: LatLon) -> bool {
        let pts = &self.0;
        let mut inside = false;
        for i in 0..pts.len() {
            let (a, b) = (pts[i], pts[(i + pts.len() - 1) % pts.len()]);
            if (a.lat > p.lat) != (b.lat > p.lat) {
                let lon = a.lon + (p.lat - a.lat) / (b.lat - a.lat) * (b.lon - a.lon);
                if p.lon < lon {
                    inside = !inside;
                }
            }
        }
        inside
    }
}

/// The first pair of edges (by index: edge `i` runs from point `i` to the next) of a closed
/// polygon that cross each other, if any. A zone whose outline crosses itself has no clear
/// inside: an installer meant something else. Edges that share a point do not count.
pub fn self_crossing(points: &[[f64; 2]]) -> Option<(usize, usize)> {
    let n = points.len();
    let edge = |i: usize| (points[i], points[(i + 1) % n]);
    (0..n).find_map(|i| {
        // Not the edge itself, nor its neighbours, which meet it at a shared point.
        let later = (i + 2..n).filter(|&j| !(i == 0 && j == n - 1));
        later.into_iter().find(|&j| segments_cross(edge(i), edge(j))).map(|j| (i, j))
    })
}

/// Whether two segments intersect, touching included.
fn segments_cross((a, b): ([f64; 2], [f64; 2]), (c, d): ([f64; 2], [f64; 2])) -> bool {
    let side = |p: [f64; 2], q: [f64; 2], r: [f64; 2]| {
        ((q[0] - p[0]) * (r[1] - p[1]) - (q[1] - p[1]) * (r[0] - p[0])).signum()
    };
    let within = |p: [f64; 2], q: [f64; 2], r: [f64; 2]| {
        r[0] >= p[0].min(q[0])
            && r[0] <= p[0].max(q[0])
            && r[1] >= p[1].min(q[1])
            && r[1] <= p[1].max(q[1])
    };
    let (d1, d2, d3, d4) = (side(c, d, a), side(c, d, b), side(a, b, c), side(a, b, d));
    if d1 * d2 < 0.0 && d3 * d4 < 0.0 {
        return true;
    }
    (d1 == 0.0 && within(c, d, a))
        || (d2 == 0.0 && within(c, d, b))
        || (d3 == 0.0 && within(a, b, c))
        || (d4 == 0.0 && within(a, b, d))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_polygon_crossing_itself_is_found_and_a_plain_one_is_not() {
        let square = [[0.0, 0.0], [1.0, 0.0], [1.0, 1.0], [0.0, 1.0]];
        assert_eq!(self_crossing(&square), None);
        let bow_tie = [[0.0, 0.0], [1.0, 1.0], [1.0, 0.0], [0.0, 1.0]];
        assert_eq!(self_crossing(&bow_tie), Some((0, 2)));
        let concave = [[0.0, 0.0], [1.0, 0.0], [0.5, 0.5], [1.0, 1.0], [0.0, 1.0]];
        assert_eq!(self_crossing(&concave), None);
    }

    fn square(x1: f32, y1: f32, x2: f32, y2: f32) -> Polygon {
        Polygon::new(vec![
            Point { x: x1, y: y1 },
            Point { x: x2, y: y1 },
            Point { x: x2, y: y2 },
            Point { x: x1, y: y2 },
        ])
    }

    #[test]
    fn iou_of_identical_disjoint_and_half_overlapping_boxes() {
        let a = BBox { x: 0.1, y: 0.1, w: 0.2, h: 0.2 };
        assert!((a.iou(&a) - 1.0).abs() < 1e-6);
        assert_eq!(a.iou(&BBox { x: 0.5, y: 0.5, w: 0.1, h: 0.1 }), 0.0);
        let b = BBox { x: 0.2, y: 0.1, w: 0.2, h: 0.2 };
        assert!((a.iou(&b) - 1.0 / 3.0).abs() < 1e-6);
    }

    #[test]
    fn polygon_contains_inside_points_only() {
        let zone = square(0.8, 0.0, 1.0, 0.25);
        assert!(zone.contains(Point { x: 0.9, y: 0.1 }));
        assert!(!zone.contains(Point { x: 0.7, y: 0.1 }));
        assert!(!zone.contains(Point { x: 0.9, y: 0.3 }));
    }

    #[test]
    fn concave_polygon_excludes_its_notch() {
        // An L shape: the top-right quarter is the notch.
        let l = Polygon::new(vec![
            Point { x: 0.0, y: 0.0 },
            Point { x: 0.5, y: 0.0 },
            Point { x: 0.5, y: 0.5 },
            Point { x: 1.0, y: 0.5 },
            Point { x: 1.0, y: 1.0 },
            Point { x: 0.0, y: 1.0 },
        ]);
        assert!(l.contains(Point { x: 0.25, y: 0.25 }));
        assert!(l.contains(Point { x: 0.75, y: 0.75 }));
        assert!(!l.contains(Point { x: 0.75, y: 0.25 }));
    }

    #[test]
    fn clamped_box_stays_in_unit_square() {
        let b = BBox { x: -0.1, y: 0.9, w: 0.3, h: 0.3 }.clamped();
        assert_eq!((b.x, b.y), (0.0, 0.9));
        assert!((b.w - 0.2).abs() < 1e-6 && (b.h - 0.1).abs() < 1e-6, "{b:?}");
    }
}
