//! Ground projection: where on the ground a point of a drone's image is.
//!
//! **Method.** The camera is a pinhole with the image's full horizontal and vertical fields
//! of view. Its orientation is the platform's (heading, pitch, roll: yaw-pitch-roll, aerospace
//! order) composed with the sensor's relative to the platform (azimuth, elevation, roll, same
//! order), in a local north-east-down frame at the sensor. With every angle zero the camera
//! looks north along the horizon, image right to the east; a nadir camera (elevation -90°,
//! heading 0°) has north at the top of the image. The ray through an image point is
//! intersected with flat ground at `ground_altitude_m` (the take-off or the frame centre's
//! elevation), and the north/east offset becomes latitude and longitude with the WGS84 radii
//! of curvature at the sensor.
//!
//! **Error bounds.** With exact telemetry over truly flat ground the method is exact but for
//! the flat-earth step: the earth drops away by d²/2R (0.08 m at 1 km), which moves a point by
//! that over tan θ (0.9 m at 5° depression), and the local radii are off by under 0.01 % within
//! 10 km. What limits it is the telemetry: an angle error δ moves a point at depression angle θ
//! by about h·δ/sin²θ along the line of sight, a height error Δh by Δh/tan θ; the platform's
//! own position error adds as it is. Each projected point carries a
//! 1-sigma radius from these (first order, numerically): the sensor's `angle_sigma_deg` in both
//! axes of the ray, `altitude_sigma_m`, `position_sigma_m`. Near the horizon the radius grows
//! without bound, so rays flatter than [`MIN_DEPRESSION_DEG`] or longer than [`MAX_RANGE_M`]
//! have no ground point at all. Terrain that is not flat is outside the model: a roof 10 m above
//! the ground seen at 45° lands 10 m too far.

use crate::config::TelemetryConfig;
pub use crate::geometry::{GeoPolygon, LatLon};
use crate::geometry::{Point, Polygon};

/// Rays flatter than this have no ground point: their error would be larger than the answer.
pub const MIN_DEPRESSION_DEG: f64 = 2.0;
/// Nor do points further than this from the sensor.
pub const MAX_RANGE_M: f64 = 10_000.0;
const WGS84_A: f64 = 6_378_137.0;
const WGS84_E2: f64 = 6.694_379_990_14e-3;

/// Where a camera is, which way it looks and what it sees, at one instant.
#[derive(Debug, Clone, PartialEq)]
pub struct Pose {
    pub sensor: LatLon,
    /// Sensor altitude and the ground's, in the same datum (both above sea level, or both
    /// above the take-off point).
    pub altitude_m: f64,
    pub ground_altitude_m: f64,
    pub heading_deg: f64,
    pub pitch_deg: f64,
    pub roll_deg: f64,
    pub sensor_azimuth_deg: f64,
    pub sensor_elevation_deg: f64,
    pub sensor_roll_deg: f64,
    pub hfov_deg: f64,
    pub vfov_deg: f64,
}

/// How far to trust the telemetry (1 sigma), for the uncertainty of projected points.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Sigmas {
    pub angle_deg: f64,
    pub altitude_m: f64,
    pub position_m: f64,
}

impl Sigmas {
    /// The sigmas a camera's telemetry settings give.
    pub fn of(config: &TelemetryConfig) -> Sigmas {
        Sigmas {
            angle_deg: config.angle_sigma_deg,
            altitude_m: config.altitude_sigma_m,
            position_m: config.position_sigma_m,
        }
    }
}

/// A point on the ground and its 1-sigma horizontal uncertainty.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Ground {
    pub at: LatLon,
    /// Metres north and east of the sensor.
    pub north_m: f64,
    pub east_m: f64,
    pub uncertainty_m: f64,
}

type Mat = [[f64; 3]; 3];

fn mul(a: &Mat, b: &Mat) -> Mat {
    let mut m = [[0.0; 3]; 3];
    for (i, row) in m.iter_mut().enumerate() {
        for (j, v) in row.iter_mut().enumerate() {
            *v = (0..3).map(|k| a[i][k] * b[k][j]).sum();
        }
    }
    m
}

fn apply(m: &Mat, v: [f64; 3]) -> [f64; 3] {
    [0, 1, 2].map(|i| m[i][0] * v[0] + m[i][1] * v[1] + m[i][2] * v[2])
}

fn transpose(m: &Mat) -> Mat {
    [0, 1, 2].map(|i| [m[0][i], m[1][i], m[2][i]])
}

/// Yaw, then pitch, then roll (degrees): body axes (forward, right, down) to the parent's.
fn rotation(yaw: f64, pitch: f64, roll: f64) -> Mat {
    let (sy, cy) = yaw.to_radians().sin_cos();
    let (sp, cp) = pitch.to_radians().sin_cos();
    let (sr, cr) = roll.to_radians().sin_cos();
    let z = [[cy, -sy, 0.0], [sy, cy, 0.0], [0.0, 0.0, 1.0]];
    let y = [[cp, 0.0, sp], [0.0, 1.0, 0.0], [-sp, 0.0, cp]];
    let x = [[1.0, 0.0, 0.0], [0.0, cr, -sr], [0.0, sr, cr]];
    mul(&mul(&z, &y), &x)
}

impl Pose {
    /// Camera axes (line of sight, image right, image down) to north-east-down.
    fn camera_to_ned(&self) -> Mat {
        let platform = rotation(self.heading_deg, self.pitch_deg, self.roll_deg);
        let sensor =
            rotation(self.sensor_azimuth_deg, self.sensor_elevation_deg, self.sensor_roll_deg);
        mul(&platform, &sensor)
    }

    fn height_m(&self) -> f64 {
        self.altitude_m - self.ground_altitude_m
    }

    fn half_tangents(&self) -> (f64, f64) {
        ((self.hfov_deg.to_radians() / 2.0).tan(), (self.vfov_deg.to_radians() / 2.0).tan())
    }

    /// The ray through a normalized image point (0..1, top-left origin), north-east-down.
    fn ray(&self, p: Point) -> [f64; 3] {
        let (tx, ty) = self.half_tangents();
        let camera = [1.0, (2.0 * f64::from(p.x) - 1.0) * tx, (2.0 * f64::from(p.y) - 1.0) * ty];
        apply(&self.camera_to_ned(), camera)
    }

    /// Metres north and east of the sensor where `ray` meets the ground, if it does usefully.
    fn hit(&self, ray: [f64; 3]) -> Option<(f64, f64)> {
        let h = self.height_m();
        let horizontal = ray[0].hypot(ray[1]);
        let depression = ray[2].atan2(horizontal).to_degrees();
        if h <= 0.0 || depression < MIN_DEPRESSION_DEG {
            return None;
        }
        let t = h / ray[2];
        let (n, e) = (t * ray[0], t * ray[1]);
        (n.hypot(e).hypot(h) <= MAX_RANGE_M).then_some((n, e))
    }

    /// The ground point seen at a normalized image point, with its uncertainty; `None` above
    /// the horizon, too near it, or beyond [`MAX_RANGE_M`].
    pub fn ground(&self, p: Point, sigmas: &Sigmas) -> Option<Ground> {
        let ray = self.ray(p);
        let (n, e) = self.hit(ray)?;
        // First-order propagation, by finite differences: the ray tilted by one sigma about
        // two axes square to it, and the height moved by one sigma.
        let [a, b] = perpendiculars(ray);
        let delta = sigmas.angle_deg.to_radians();
        let mut variance = sigmas.position_m.powi(2);
        for axis in [a, b] {
            let tilted = [0, 1, 2].map(|i| ray[i] + axis[i] * delta * norm(ray));
            // A point one sigma from losing the ground has no useful position.
            let (tn, te) = self.hit(tilted)?;
            variance += (tn - n).powi(2) + (te - e).powi(2);
        }
        let scale = (self.height_m() + sigmas.altitude_m) / self.height_m();
        variance += (n * scale - n).powi(2) + (e * scale - e).powi(2);
        Some(Ground {
            at: offset(self.sensor, n, e),
            north_m: n,
            east_m: e,
            uncertainty_m: variance.sqrt(),
        })
    }

    /// Where a ground point north/east of the sensor appears in the image (normalized, may be
    /// outside 0..1); `None` when it is behind the camera.
    fn image_point(&self, north_m: f64, east_m: f64) -> Option<Point> {
        let camera = apply(&transpose(&self.camera_to_ned()), [north_m, east_m, self.height_m()]);
        if camera[0] <= 0.0 {
            return None;
        }
        let (tx, ty) = self.half_tangents();
        let x = (camera[1] / camera[0] / tx + 1.0) / 2.0;
        let y = (camera[2] / camera[0] / ty + 1.0) / 2.0;
        Some(Point { x: x as f32, y: y as f32 })
    }

    /// A geo-fence as the image sees it now: the ground polygon clipped to what lies in front
    /// of the camera, projected into the image and clipped to the frame. Flat ground maps to
    /// the image by a projective transform, so a point of the frame is inside this polygon
    /// exactly when its ground point is inside the fence. Empty (containing nothing) when the
    /// fence is out of view.
    pub fn fence_in_image(&self, fence: &GeoPolygon) -> Polygon {
        let local: Vec<(f64, f64)> = fence.0.iter().map(|p| metres(self.sensor, *p)).collect();
        // Keep the part at least a metre in front of the image plane, so that every kept
        // point projects to finite coordinates.
        let forward = apply(&self.camera_to_ned(), [1.0, 0.0, 0.0]);
        let h = self.height_m();
        let depth = |(n, e): (f64, f64)| forward[0] * n + forward[1] * e + forward[2] * h - 1.0;
        let lerp =
            |a: (f64, f64), b: (f64, f64), t: f64| (a.0 + t * (b.0 - a.0), a.1 + t * (b.1 - a.1));
        let clipped = clip(&local, depth, lerp);
        let image = clipped.into_iter().filter_map(|(n, e)| self.image_point(n, e)).collect();
        Polygon::new(within_frame(image))
    }
}

/// The part of a polygon inside the frame (0..1 both ways): what rules measure areas of and
/// snapshots draw.
fn within_frame(points: Vec<Point>) -> Vec<Point> {
    let lerp = |a: Point, b: Point, t: f64| {
        let t = t as f32;
        Point { x: a.x + t * (b.x - a.x), y: a.y + t * (b.y - a.y) }
    };
    let edges: [fn(Point) -> f64; 4] = [
        |p| f64::from(p.x),
        |p| 1.0 - f64::from(p.x),
        |p| f64::from(p.y),
        |p| 1.0 - f64::from(p.y),
    ];
    edges.into_iter().fold(points, |points, inside| clip(&points, inside, lerp))
}

/// The part of a closed polygon where `inside`, a linear function of the point, is not
/// negative (Sutherland-Hodgman, one half-plane); `lerp(a, b, t)` is the point `t` of the way
/// from `a` to `b`.
fn clip<P: Copy>(points: &[P], inside: impl Fn(P) -> f64, lerp: impl Fn(P, P, f64) -> P) -> Vec<P> {
    let mut out = Vec::with_capacity(points.len() + 2);
    for (i, &a) in points.iter().enumerate() {
        let b = points[(i + 1) % points.len()];
        let (da, db) = (inside(a), inside(b));
        if da >= 0.0 {
            out.push(a);
        }
        if (da >= 0.0) != (db >= 0.0) {
            out.push(lerp(a, b, da / (da - db)));
        }
    }
    out
}

fn norm(v: [f64; 3]) -> f64 {
    (v[0] * v[0] + v[1] * v[1] + v[2] * v[2]).sqrt()
}

/// Two unit vectors square to `v` and to each other.
fn perpendiculars(v: [f64; 3]) -> [[f64; 3]; 2] {
    let n = norm(v);
    let u = v.map(|c| c / n);
    let helper = if u[2].abs() < 0.9 { [0.0, 0.0, 1.0] } else { [1.0, 0.0, 0.0] };
    let cross = |a: [f64; 3], b: [f64; 3]| {
        [a[1] * b[2] - a[2] * b[1], a[2] * b[0] - a[0] * b[2], a[0] * b[1] - a[1] * b[0]]
    };
    let a = cross(u, helper);
    let a = a.map(|c| c / norm(a));
    [a, cross(u, a)]
}

/// Meridian and prime-vertical radii of curvature at a latitude, metres.
fn radii(lat_deg: f64) -> (f64, f64) {
    let s = lat_deg.to_radians().sin();
    let w = 1.0 - WGS84_E2 * s * s;
    (WGS84_A * (1.0 - WGS84_E2) / w.powf(1.5), WGS84_A / w.sqrt())
}

/// The position `north_m` and `east_m` from `origin` (local tangent plane).
pub fn offset(origin: LatLon, north_m: f64, east_m: f64) -> LatLon {
    let (m, n) = radii(origin.lat);
    LatLon {
        lat: origin.lat + (north_m / m).to_degrees(),
        lon: origin.lon + (east_m / (n * origin.lat.to_radians().cos())).to_degrees(),
    }
}

/// Metres north and east of `origin` to `to` (local tangent plane; the inverse of [`offset`]).
pub fn metres(origin: LatLon, to: LatLon) -> (f64, f64) {
    let (m, n) = radii(origin.lat);
    (
        (to.lat - origin.lat).to_radians() * m,
        (to.lon - origin.lon).to_radians() * n * origin.lat.to_radians().cos(),
    )
}

/// Ground distance between two nearby positions, metres.
pub fn distance_m(a: LatLon, b: LatLon) -> f64 {
    let (n, e) = metres(a, b);
    n.hypot(e)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SHANGHAI: LatLon = LatLon { lat: 31.2304, lon: 121.4737 };
    const EXACT: Sigmas = Sigmas { angle_deg: 0.0, altitude_m: 0.0, position_m: 0.0 };

    fn pose(heading: f64, elevation: f64, height: f64) -> Pose {
        Pose {
            sensor: SHANGHAI,
            altitude_m: 20.0 + height,
            ground_altitude_m: 20.0,
            heading_deg: heading,
            pitch_deg: 0.0,
            roll_deg: 0.0,
            sensor_azimuth_deg: 0.0,
            sensor_elevation_deg: elevation,
            sensor_roll_deg: 0.0,
            hfov_deg: 60.0,
            vfov_deg: 40.0,
        }
    }

    fn at(x: f32, y: f32) -> Point {
        Point { x, y }
    }

    fn assert_ne_m(g: Ground, north: f64, east: f64) {
        let ok = (g.north_m - north).abs() < 1e-6 && (g.east_m - east).abs() < 1e-6;
        assert!(ok, "({}, {}) vs ({north}, {east})", g.north_m, g.east_m);
    }

    #[test]
    fn nadir_camera_sees_its_own_foot_at_the_centre_and_north_at_the_top() {
        let p = pose(0.0, -90.0, 100.0);
        assert_ne_m(p.ground(at(0.5, 0.5), &EXACT).unwrap(), 0.0, 0.0);
        // Half the field of view: 100 m · tan 30° = 57.735 m east, 100 m · tan 20° north.
        assert_ne_m(p.ground(at(1.0, 0.5), &EXACT).unwrap(), 0.0, 100.0 / 3f64.sqrt());
        assert_ne_m(p.ground(at(0.5, 0.0), &EXACT).unwrap(), 100.0 * 20f64.to_radians().tan(), 0.0);
    }

    #[test]
    fn oblique_camera_looks_ahead_by_height_over_tan_depression() {
        let p = pose(0.0, -45.0, 100.0);
        assert_ne_m(p.ground(at(0.5, 0.5), &EXACT).unwrap(), 100.0, 0.0);
        // The top edge is 20° above the centre: depression 25°.
        let top = p.ground(at(0.5, 0.0), &EXACT).unwrap();
        assert_ne_m(top, 100.0 / 25f64.to_radians().tan(), 0.0);
        // The bottom edge: depression 65°.
        let bottom = p.ground(at(0.5, 1.0), &EXACT).unwrap();
        assert_ne_m(bottom, 100.0 / 65f64.to_radians().tan(), 0.0);
    }

    #[test]
    fn a_known_heading_turns_the_view_and_gimbal_azimuth_adds_to_it() {
        assert_ne_m(pose(90.0, -45.0, 100.0).ground(at(0.5, 0.5), &EXACT).unwrap(), 0.0, 100.0);
        let mut p = pose(90.0, -45.0, 100.0);
        p.sensor_azimuth_deg = 90.0; // heading east, gimbal turned right: looking south
        assert_ne_m(p.ground(at(0.5, 0.5), &EXACT).unwrap(), -100.0, 0.0);
        // Heading 30°, 50 m height, -30° elevation: 86.60 m ahead, along 30°.
        let g = pose(30.0, -30.0, 50.0).ground(at(0.5, 0.5), &EXACT).unwrap();
        let ahead = 50.0 / 30f64.to_radians().tan();
        assert_ne_m(g, ahead * 30f64.to_radians().cos(), ahead * 30f64.to_radians().sin());
    }

    #[test]
    fn platform_pitch_and_roll_tilt_the_camera() {
        let mut p = pose(0.0, -45.0, 100.0);
        p.pitch_deg = -15.0; // nose down 15°: the line of sight dips to 60°
        assert_ne_m(p.ground(at(0.5, 0.5), &EXACT).unwrap(), 100.0 / 60f64.to_radians().tan(), 0.0);
        let mut p = pose(0.0, -90.0, 100.0);
        p.roll_deg = 10.0; // right wing down: a nadir camera looks 10° to the left (west)
        assert_ne_m(
            p.ground(at(0.5, 0.5), &EXACT).unwrap(),
            0.0,
            -100.0 * 10f64.to_radians().tan(),
        );
    }

    #[test]
    fn no_ground_above_or_near_the_horizon() {
        let p = pose(0.0, 0.0, 100.0);
        assert!(p.ground(at(0.5, 0.5), &EXACT).is_none(), "level");
        assert!(p.ground(at(0.5, 0.0), &EXACT).is_none(), "above");
        assert!(p.ground(at(0.5, 1.0), &EXACT).is_some(), "20° down");
    }

    #[test]
    fn lat_lon_offsets_match_the_textbook_degree_lengths() {
        // At 45°: a degree of latitude is 111 132.95 m, of longitude 78 846.84 m (WGS84).
        let origin = LatLon { lat: 45.0, lon: 7.0 };
        let north = offset(origin, 111_132.95, 0.0);
        assert!((north.lat - 46.0).abs() < 5e-3, "{north:?}"); // the radius changes over 1°
        let small = offset(origin, 1_111.329_5, 788.468_4);
        assert!((small.lat - 45.01).abs() < 1e-6 && (small.lon - 7.01).abs() < 1e-6, "{small:?}");
        let (n, e) = metres(origin, small);
        assert!((n - 1_111.329_5).abs() < 1e-6 && (e - 788.468_4).abs() < 1e-6);
    }

    #[test]
    fn uncertainty_grows_towards_the_horizon_as_h_delta_over_sin_squared() {
        let sigmas = Sigmas { angle_deg: 1.0, altitude_m: 0.0, position_m: 0.0 };
        let nadir = pose(0.0, -90.0, 100.0).ground(at(0.5, 0.5), &sigmas).unwrap();
        let oblique = pose(0.0, -30.0, 100.0).ground(at(0.5, 0.5), &sigmas).unwrap();
        let d = 1f64.to_radians();
        // Nadir: 100 m · 1° in each of two directions, √2 · 1.745 m.
        assert!((nadir.uncertainty_m - 2f64.sqrt() * 100.0 * d).abs() < 0.01, "{nadir:?}");
        // 30° down: along the line of sight h·δ/sin²30° = 6.98 m, across it the slant range
        // 200 m · δ = 3.49 m; finite differences, so within 5 %.
        let expected = (100.0 * d / 0.25f64).hypot(200.0 * d);
        assert!((oblique.uncertainty_m / expected - 1.0).abs() < 0.05, "{oblique:?} {expected}");
        let with_position = Sigmas { angle_deg: 0.0, altitude_m: 0.0, position_m: 5.0 };
        let g = pose(0.0, -90.0, 100.0).ground(at(0.5, 0.5), &with_position).unwrap();
        assert!((g.uncertainty_m - 5.0).abs() < 1e-9);
    }

    #[test]
    fn geo_polygons_contain_inside_positions_only() {
        let square = GeoPolygon(vec![
            offset(SHANGHAI, -10.0, -10.0),
            offset(SHANGHAI, -10.0, 10.0),
            offset(SHANGHAI, 10.0, 10.0),
            offset(SHANGHAI, 10.0, -10.0),
        ]);
        assert!(square.contains(SHANGHAI));
        assert!(!square.contains(offset(SHANGHAI, 0.0, 11.0)));
        assert!(!square.contains(offset(SHANGHAI, -11.0, 0.0)));
    }

    /// The projected fence holds exactly the image points whose ground points the fence holds,
    /// also when part of it lies behind the camera.
    #[test]
    fn a_fence_in_the_image_agrees_with_the_fence_on_the_ground() {
        let fence = GeoPolygon(vec![
            offset(SHANGHAI, -50.0, -30.0),
            offset(SHANGHAI, 60.0, -30.0),
            offset(SHANGHAI, 60.0, 10.0),
            offset(SHANGHAI, 140.0, 40.0),
            offset(SHANGHAI, 20.0, 40.0),
        ]);
        for (heading, elevation) in [(0.0, -90.0), (0.0, -45.0), (20.0, -30.0), (200.0, -60.0)] {
            let p = pose(heading, elevation, 80.0);
            let image = p.fence_in_image(&fence);
            let in_frame = |v: f32| (-1e-5..=1.0 + 1e-5).contains(&v);
            assert!(image.points().iter().all(|q| in_frame(q.x) && in_frame(q.y)), "{image:?}");
            let (mut inside, mut outside) = (0, 0);
            for i in 0..40 {
                for j in 0..40 {
                    let pt = at((i as f32 + 0.5) / 40.0, (j as f32 + 0.5) / 40.0);
                    let Some(g) = p.ground(pt, &EXACT) else { continue };
                    let on_ground = fence.contains(g.at);
                    assert_eq!(image.contains(pt), on_ground, "{heading} {elevation} {pt:?}");
                    if on_ground { inside += 1 } else { outside += 1 }
                }
            }
            assert!(inside > 0, "the fence is seen at {heading}");
            assert!(outside > 0);
        }
        let behind = pose(180.0, -20.0, 80.0).fence_in_image(&GeoPolygon(vec![
            offset(SHANGHAI, 100.0, 0.0),
            offset(SHANGHAI, 110.0, 0.0),
            offset(SHANGHAI, 110.0, 10.0),
        ]));
        assert!(behind.points().is_empty());
    }
}
