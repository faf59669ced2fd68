//! Where text is on a vehicle crop, from the text detector's probability map (DB
//! post-processing as PaddleOCR does it): the map thresholded, each connected region's
//! minimum-area rectangle, scored by the region's mean probability and grown back to the text's
//! full size (DB's maps shrink text by design), then cut out of the crop upright.

use crate::infer::ocr::TextMap;

/// A pixel is text above this probability (PaddleOCR's `det_db_thresh`).
const PIXEL_THRESHOLD: f32 = 0.3;
/// A region is text when its mean probability is above this (`det_db_box_thresh`).
const REGION_THRESHOLD: f32 = 0.6;
/// How far the rectangle grows: area × ratio / perimeter on each side (`det_db_unclip_ratio`).
/// PaddleOCR grows by 1.5 for lines of text; a plate's region is the whole plate, and a cut
/// this tight gives the recognizer larger characters: 10 of the 11 labelled CCPD plates read
/// exactly at 0.9, 8 at 1.5 (BENCHMARKS.md).
const UNCLIP_RATIO: f32 = 0.9;
/// Regions with a shorter side than this (map pixels) are specks.
const MIN_SIDE: f32 = 3.0;

/// A rotated rectangle in crop pixels: its centre, its long side along `angle` (radians) and its
/// short side across it.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TextBox {
    pub centre: (f32, f32),
    pub length: f32,
    pub thickness: f32,
    pub angle: f32,
    /// The region's mean text probability.
    pub score: f32,
}

impl TextBox {
    /// The rectangle's axis-aligned bounds, `[x0, y0, x1, y1]`.
    pub fn bounds(&self) -> [f32; 4] {
        let (sin, cos) = self.angle.sin_cos();
        let (hl, ht) = (self.length / 2.0, self.thickness / 2.0);
        let half_w = (hl * cos).abs() + (ht * sin).abs();
        let half_h = (hl * sin).abs() + (ht * cos).abs();
        let (cx, cy) = self.centre;
        [cx - half_w, cy - half_h, cx + half_w, cy + half_h]
    }
}

/// The text regions of `map`, in the pixels of the image the map was made from, likeliest
/// first.
pub fn text_boxes(map: &TextMap) -> Vec<TextBox> {
    let mut boxes: Vec<TextBox> = regions(map)
        .into_iter()
        .filter_map(|region| {
            let score =
                region.iter().map(|&i| map.probability[i]).sum::<f32>() / region.len() as f32;
            if score < REGION_THRESHOLD {
                return None;
            }
            let points: Vec<(f32, f32)> =
                region.iter().map(|&i| ((i % map.width) as f32, (i / map.width) as f32)).collect();
            let rect = min_area_rect(&points)?;
            if rect.thickness < MIN_SIDE {
                return None;
            }
            Some(to_source(unclip(rect), map, score))
        })
        .collect();
    boxes.sort_by(|a, b| b.score.total_cmp(&a.score));
    boxes
}

/// The connected (8-neighbour) regions of pixels above [`PIXEL_THRESHOLD`], as pixel indices.
fn regions(map: &TextMap) -> Vec<Vec<usize>> {
    let (w, h) = (map.width, map.height);
    let mut seen = vec![false; w * h];
    let mut regions = Vec::new();
    for start in 0..w * h {
        if seen[start] || map.probability[start] <= PIXEL_THRESHOLD {
            continue;
        }
        seen[start] = true;
        let mut region = vec![start];
        let mut next = 0;
        while next < region.len() {
            let (x, y) = (region[next] % w, region[next] / w);
            next += 1;
            for ny in y.saturating_sub(1)..=(y + 1).min(h - 1) {
                for nx in x.saturating_sub(1)..=(x + 1).min(w - 1) {
                    let n = ny * w + nx;
                    if !seen[n] && map.probability[n] > PIXEL_THRESHOLD {
                        seen[n] = true;
                        region.push(n);
                    }
                }
            }
        }
        regions.push(region);
    }
    regions
}

/// The smallest rectangle holding every pixel of `points` (pixel centres, so each pixel's
/// square is counted by growing the result half a pixel): rotating calipers on the convex
/// hull. `None` for fewer than three distinct points.
fn min_area_rect(points: &[(f32, f32)]) -> Option<TextBox> {
    let hull = convex_hull(points);
    if hull.len() < 3 {
        return None;
    }
    let mut best: Option<(f32, TextBox)> = None;
    for i in 0..hull.len() {
        let (a, b) = (hull[i], hull[(i + 1) % hull.len()]);
        let angle = (b.1 - a.1).atan2(b.0 - a.0);
        let (sin, cos) = angle.sin_cos();
        let (mut u0, mut u1, mut v0, mut v1) = (f32::MAX, f32::MIN, f32::MAX, f32::MIN);
        for &(x, y) in &hull {
            let u = x * cos + y * sin;
            let v = -x * sin + y * cos;
            (u0, u1, v0, v1) = (u0.min(u), u1.max(u), v0.min(v), v1.max(v));
        }
        let area = (u1 - u0 + 1.0) * (v1 - v0 + 1.0);
        if best.as_ref().is_none_or(|(a, _)| area < *a) {
            let (u, v) = ((u0 + u1) / 2.0, (v0 + v1) / 2.0);
            let centre = (u * cos - v * sin, u * sin + v * cos);
            let (along, across) = (u1 - u0 + 1.0, v1 - v0 + 1.0);
            let rect = if along >= across {
                TextBox { centre, length: along, thickness: across, angle, score: 0.0 }
            } else {
                let angle = angle + std::f32::consts::FRAC_PI_2;
                TextBox { centre, length: across, thickness: along, angle, score: 0.0 }
            };
            best = Some((area, rect));
        }
    }
    best.map(|(_, mut rect)| {
        // Reading direction: left to right, never upside down.
        let (sin, cos) = rect.angle.sin_cos();
        rect.angle = sin.atan2(cos);
        if cos < 0.0 {
            rect.angle += std::f32::consts::PI;
            rect.angle = rect.angle.sin().atan2(rect.angle.cos());
        }
        rect
    })
}

/// Andrew's monotone chain: the hull's corners, counter-clockwise, without repeats.
fn convex_hull(points: &[(f32, f32)]) -> Vec<(f32, f32)> {
    let mut sorted = points.to_vec();
    sorted.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    sorted.dedup();
    if sorted.len() < 3 {
        return sorted;
    }
    let cross = |o: (f32, f32), a: (f32, f32), b: (f32, f32)| {
        (a.0 - o.0) * (b.1 - o.1) - (a.1 - o.1) * (b.0 - o.0)
    };
    let mut hull: Vec<(f32, f32)> = Vec::with_capacity(2 * sorted.len());
    for pass in [sorted.clone(), sorted.iter().rev().copied().collect()] {
        let start = hull.len();
        for p in pass {
            while hull.len() >= start + 2
                && cross(hull[hull.len() - 2], hull[hull.len() - 1], p) <= 0.0
            {
                hull.pop();
            }
            hull.push(p);
        }
        hull.pop();
    }
    hull
}

/// DB's maps hold a shrunk text kernel: grown back by area × ratio / perimeter on each side.
fn unclip(rect: TextBox) -> TextBox {
    let area = rect.length * rect.thickness;
    let d = area * UNCLIP_RATIO / (2.0 * (rect.length + rect.thickness));
    TextBox { length: rect.length + 2.0 * d, thickness: rect.thickness + 2.0 * d, ..rect }
}

/// From map pixels to the source image's.
fn to_source(rect: TextBox, map: &TextMap, score: f32) -> TextBox {
    let l = map.letterbox;
    let centre = l.to_source(rect.centre.0 + 0.5, rect.centre.1 + 0.5);
    let (sin, cos) = rect.angle.sin_cos();
    // The ratio is the same both ways for a letterbox; kept general.
    let along = (cos / l.ratio_x).hypot(sin / l.ratio_y);
    let across = (sin / l.ratio_x).hypot(cos / l.ratio_y);
    TextBox {
        centre,
        length: rect.length * along,
        thickness: rect.thickness * across,
        angle: rect.angle,
        score,
    }
}

/// The pixels of `rect` cut out of a packed BGR image and turned upright (bilinear), with
/// their width and height.
pub fn cut_upright(
    bgr: &[u8],
    width: usize,
    height: usize,
    rect: &TextBox,
) -> (Vec<u8>, usize, usize) {
    let (w, h) = (rect.length.round().max(1.0) as usize, rect.thickness.round().max(1.0) as usize);
    let (sin, cos) = rect.angle.sin_cos();
    let mut out = Vec::with_capacity(w * h * 3);
    for j in 0..h {
        let v = j as f32 + 0.5 - h as f32 / 2.0;
        for i in 0..w {
            let u = i as f32 + 0.5 - w as f32 / 2.0;
            let x = rect.centre.0 + u * cos - v * sin - 0.5;
            let y = rect.centre.1 + u * sin + v * cos - 0.5;
            out.extend(sample(bgr, width, height, x, y));
        }
    }
    (out, w, h)
}

/// The bilinear BGR value at `(x, y)` (pixel centres at integers), edges repeated.
fn sample(bgr: &[u8], width: usize, height: usize, x: f32, y: f32) -> [u8; 3] {
    let x = x.clamp(0.0, (width - 1) as f32);
    let y = y.clamp(0.0, (height - 1) as f32);
    let (x0, y0) = (x.floor() as usize, y.floor() as usize);
    let (x1, y1) = ((x0 + 1).min(width - 1), (y0 + 1).min(height - 1));
    let (fx, fy) = (x - x0 as f32, y - y0 as f32);
    let at = |x: usize, y: usize, c: usize| f32::from(bgr[(y * width + x) * 3 + c]);
    std::array::from_fn(|c| {
        let top = at(x0, y0, c) * (1.0 - fx) + at(x1, y0, c) * fx;
        let bottom = at(x0, y1, c) * (1.0 - fx) + at(x1, y1, c) * fx;
        (top * (1.0 - fy) + bottom * fy).round() as u8
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::infer::letterbox::Letterbox;

    fn map(width: usize, height: usize, lit: impl Fn(usize, usize) -> bool) -> TextMap {
        let probability = (0..width * height)
            .map(|i| if lit(i % width, i / width) { 0.9 } else { 0.0 })
            .collect();
        let letterbox = Letterbox { ratio_x: 0.5, ratio_y: 0.5, pad_x: 0.0, pad_y: 0.0 };
        TextMap { width, height, probability, letterbox }
    }

    #[test]
    fn an_upright_region_becomes_its_grown_rectangle_in_source_pixels() {
        // A 20 x 4 kernel at x 10..30, y 8..12 of the map; the source is twice the map.
        let boxes = text_boxes(&map(40, 20, |x, y| (10..30).contains(&x) && (8..12).contains(&y)));
        assert_eq!(boxes.len(), 1);
        let b = boxes[0];
        assert!((b.centre.0 - 40.0).abs() < 0.01 && (b.centre.1 - 20.0).abs() < 0.01, "{b:?}");
        // Grown by 20 * 4 * 0.9 / 48 = 1.5 map pixels a side, then doubled.
        assert!((b.length - 46.0).abs() < 0.01 && (b.thickness - 14.0).abs() < 0.01, "{b:?}");
        assert_eq!(b.bounds(), [17.0, 13.0, 63.0, 27.0]);
        assert!(b.angle.abs() < 1e-4);
        assert!((b.score - 0.9).abs() < 1e-6);
    }

    #[test]
    fn a_tilted_region_keeps_its_slant_and_reads_left_to_right() {
        // A band rising 1 pixel in 4 to the right.
        let boxes = text_boxes(&map(60, 40, |x, y| {
            let centre = 25.0 - x as f32 / 4.0;
            (10..50).contains(&x) && (y as f32 - centre).abs() < 2.5
        }));
        assert_eq!(boxes.len(), 1);
        let b = boxes[0];
        let slope = b.angle.tan();
        assert!((slope + 0.25).abs() < 0.03, "{b:?}");
        assert!(b.length > 3.0 * b.thickness, "{b:?}");
    }

    #[test]
    fn specks_and_faint_regions_are_not_text() {
        assert!(text_boxes(&map(20, 20, |x, y| x == 5 && y == 5)).is_empty());
        let mut faint = map(40, 20, |x, y| (10..30).contains(&x) && (8..12).contains(&y));
        for p in &mut faint.probability {
            *p *= 0.6;
        }
        assert!(text_boxes(&faint).is_empty());
    }

    #[test]
    fn cutting_upright_samples_the_rectangle() {
        // A 4 x 2 image whose right half is white.
        let bgr: Vec<u8> =
            (0..8).flat_map(|i| if i % 4 >= 2 { [255; 3] } else { [0; 3] }).collect();
        let rect =
            TextBox { centre: (3.0, 1.0), length: 2.0, thickness: 2.0, angle: 0.0, score: 1.0 };
        let (cut, w, h) = cut_upright(&bgr, 4, 2, &rect);
        assert_eq!((w, h), (2, 2));
        assert!(cut.iter().all(|&v| v == 255), "{cut:?}");
    }
}
