//! Motion gating for fixed cameras: a frame that shows no change inside the camera's zones since
//! the detector last ran does not need the detector, since the objects there are where they
//! were. The analysis then hands the tracker the previous detections again, so stationary
//! objects (a parked vehicle on its way to its dwell time) stay tracked.
//!
//! The test is cheap next to inference: the frame is reduced to a small grey grid (block means
//! of a subsample of pixels), and a grid cell inside a zone (or within `MARGIN` of one) whose
//! brightness moved by more than `CELL_CHANGE` since the last detector run counts as motion.
//! The reference is the frame the detector last ran on, not the previous frame, so slow changes
//! add up until they count. The detector also runs at least every `REFRESH_S` seconds of stream
//! time whatever the grid says, which bounds how long a missed change can go unseen.

use crate::frame::Frame;
use crate::geometry::{Point, Polygon};

/// Grid size: about 10×10-pixel cells on a 768×576 frame, 24×18 on 1080p.
const GRID_W: usize = 80;
const GRID_H: usize = 60;
/// Zones grow by this fraction of the frame: an object entering a zone moves next to it first.
const MARGIN: f32 = 0.03;
/// A cell whose mean grey level moved by more than this (of 255) has changed.
const CELL_CHANGE: u8 = 25;
/// At least this many changed cells are motion: a single cell is sensor noise or compression.
const MIN_CELLS: usize = 2;
/// The detector runs at least this often (stream seconds).
pub const REFRESH_S: f64 = 5.0;

/// One camera's motion gate.
pub struct MotionGate {
    /// Grid cells that count, row by row.
    mask: Vec<bool>,
    /// Each grid row's span of cells that count (`None`: none do): only they are read.
    spans: Vec<Option<(usize, usize)>>,
    /// The grid of the frame the detector last ran on.
    reference: Option<Vec<u8>>,
    grid: Vec<u8>,
    /// Per cell: the sum of the grey levels read and their count.
    sums: Vec<(u32, u32)>,
    last_run_s: f64,
}

impl MotionGate {
    /// A gate watching `zones`; the whole frame when there are none.
    pub fn new(zones: &[&Polygon]) -> Self {
        let mut mask = vec![zones.is_empty(); GRID_W * GRID_H];
        let (mx, my) = (margin_cells(GRID_W), margin_cells(GRID_H));
        for gy in 0..GRID_H {
            for gx in 0..GRID_W {
                let centre = Point {
                    x: (gx as f32 + 0.5) / GRID_W as f32,
                    y: (gy as f32 + 0.5) / GRID_H as f32,
                };
                if !zones.iter().any(|z| z.contains(centre)) {
                    continue;
                }
                // Dilate by the margin.
                for y in gy.saturating_sub(my)..(gy + my + 1).min(GRID_H) {
                    for x in gx.saturating_sub(mx)..(gx + mx + 1).min(GRID_W) {
                        mask[y * GRID_W + x] = true;
                    }
                }
            }
        }
        let spans = mask
            .chunks_exact(GRID_W)
            .map(|row| {
                let first = row.iter().position(|&inside| inside)?;
                let last = row.iter().rposition(|&inside| inside)?;
                Some((first, last + 1))
            })
            .collect();
        MotionGate {
            mask,
            spans,
            reference: None,
            grid: vec![0; GRID_W * GRID_H],
            sums: vec![(0, 0); GRID_W * GRID_H],
            last_run_s: 0.0,
        }
    }

    /// Whether the detector must run on `frame`; if so, the frame becomes the reference.
    pub fn must_detect(&mut self, frame: &Frame) -> bool {
        grey_grid(frame, &self.spans, &mut self.sums, &mut self.grid);
        let due = frame.stream_time_s - self.last_run_s >= REFRESH_S;
        let moved = match &self.reference {
            None => true,
            Some(reference) => {
                let changed = self
                    .grid
                    .iter()
                    .zip(reference)
                    .zip(&self.mask)
                    .filter(|((now, then), inside)| **inside && now.abs_diff(**then) > CELL_CHANGE)
                    .count();
                changed >= MIN_CELLS
            }
        };
        if moved || due {
            self.reference = Some(self.grid.clone());
            self.last_run_s = frame.stream_time_s;
        }
        moved || due
    }
}

fn margin_cells(cells: usize) -> usize {
    (MARGIN * cells as f32).ceil() as usize
}

/// The frame's mean grey level per grid cell within `spans`, from every other pixel of every
/// other row; 0 elsewhere. An I420 frame's luma is its grey, read without conversion.
fn grey_grid(
    frame: &Frame,
    spans: &[Option<(usize, usize)>],
    sums: &mut [(u32, u32)],
    grid: &mut [u8],
) {
    let (w, h) = (frame.width, frame.height);
    let planes = frame.i420();
    sums.fill((0, 0));
    for y in (0..h).step_by(2) {
        let gy = y * GRID_H / h;
        let Some((first, end)) = spans[gy] else { continue };
        // The pixels whose cells are first..end, from an even column like every row's.
        let from = (first * w).div_ceil(GRID_W);
        let to = (end * w).div_ceil(GRID_W).min(w);
        let columns = (from + from % 2..to).step_by(2);
        let mut add = |x: usize, grey: u8| {
            let cell = &mut sums[gy * GRID_W + x * GRID_W / w];
            cell.0 += u32::from(grey);
            cell.1 += 1;
        };
        match &planes {
            Some(planes) => {
                let row = &planes.y[y * planes.y_stride..][..w];
                columns.for_each(|x| add(x, row[x]));
            }
            None => {
                let row = &frame.bgr()[y * w * 3..(y + 1) * w * 3];
                for x in columns {
                    let p = &row[x * 3..x * 3 + 3];
                    // Green carries most of the luminance, blue least.
                    let grey = (u16::from(p[0]) + 5 * u16::from(p[1]) + 2 * u16::from(p[2])) / 8;
                    add(x, grey as u8);
                }
            }
        }
    }
    // Limited-range luma spans 16..235: stretched, a change means the same as in BGR.
    let grey = |mean: u32| match &planes {
        Some(planes) => planes.colour.grey(mean as f32) as u8,
        None => mean as u8,
    };
    for (g, (sum, n)) in grid.iter_mut().zip(sums.iter()) {
        *g = sum.checked_div(*n).map_or(0, grey);
    }
}

#[cfg(test)]
mod tests {
    use std::time::SystemTime;

    use super::*;

    /// A grey 320×240 frame at stream time `t` with a white square at (x, y), in pixels.
    fn frame(t: f64, square: Option<(usize, usize)>) -> Frame {
        let (width, height) = (320, 240);
        let mut data = vec![90u8; width * height * 3];
        if let Some((sx, sy)) = square {
            for y in sy..sy + 20 {
                for x in sx..sx + 20 {
                    data[(y * width + x) * 3..(y * width + x) * 3 + 3].fill(250);
                }
            }
        }
        let captured_at = SystemTime::now();
        Frame {
            width,
            height,
            data: data.into(),
            stream_time_s: t,
            captured_at,
            metadata: Vec::new(),
        }
    }

    fn top_right() -> Polygon {
        Polygon::new(
            [(0.8, 0.0), (1.0, 0.0), (1.0, 0.25), (0.8, 0.25)]
                .map(|(x, y)| Point { x, y })
                .to_vec(),
        )
    }

    #[test]
    fn motion_inside_a_zone_runs_the_detector_and_motion_elsewhere_does_not() {
        let zone = top_right();
        let mut gate = MotionGate::new(&[&zone]);
        assert!(gate.must_detect(&frame(0.0, None)), "the first frame always runs");
        assert!(!gate.must_detect(&frame(0.2, None)), "nothing changed");
        assert!(!gate.must_detect(&frame(0.4, Some((20, 180)))), "bottom left is outside");
        assert!(gate.must_detect(&frame(0.6, Some((280, 20)))), "top right is inside");
        assert!(!gate.must_detect(&frame(0.8, Some((280, 20)))), "it stays: no change");
    }

    #[test]
    fn the_margin_catches_what_is_about_to_enter() {
        let zone = top_right();
        let mut gate = MotionGate::new(&[&zone]);
        gate.must_detect(&frame(0.0, None));
        // Left of the zone's edge at x = 256 px, within the margin.
        assert!(gate.must_detect(&frame(0.2, Some((230, 30)))));
    }

    #[test]
    fn the_detector_runs_every_refresh_interval_regardless() {
        let mut gate = MotionGate::new(&[]);
        assert!(gate.must_detect(&frame(0.0, None)));
        assert!(!gate.must_detect(&frame(REFRESH_S - 0.1, None)));
        assert!(gate.must_detect(&frame(REFRESH_S, None)));
    }

    #[test]
    fn without_zones_the_whole_frame_counts() {
        let mut gate = MotionGate::new(&[]);
        gate.must_detect(&frame(0.0, None));
        assert!(gate.must_detect(&frame(0.2, Some((20, 180)))));
    }
}
