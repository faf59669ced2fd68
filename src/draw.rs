//! Drawing what the analysis saw on its frames: zones, lines, boxes and text, on RGB pictures.
//!
//! One place for every picture cityeye makes: the evidence snapshot of an incident, the
//! `cityeye preview` JPEG and the frames of `replay --annotate`. Coordinates are normalized
//! (as everywhere downstream of inference) except for text and filled boxes, placed in pixels.
//! Text uses the 8x8 bitmap font of the `font8x8` crate, scaled up by whole pixels: there is no
//! font file to ship or find. It covers ASCII; other characters (a zone named in Chinese) are
//! drawn as `?`.

use image::{Rgb, RgbImage};

use crate::frame::Frame;
use crate::geometry::{BBox, Point, Polygon};

/// Zones and lines.
pub const YELLOW: Rgb<u8> = Rgb([255, 220, 0]);
/// Tracked objects.
pub const GREEN: Rgb<u8> = Rgb([0, 200, 0]);
/// The objects of an incident.
pub const RED: Rgb<u8> = Rgb([230, 20, 20]);
pub const WHITE: Rgb<u8> = Rgb([255, 255, 255]);
pub const BLACK: Rgb<u8> = Rgb([0, 0, 0]);

/// Glyph cells of the bitmap font, in pixels before scaling.
const GLYPH: u32 = 8;

/// `image` as a JPEG of `quality` (1–100): evidence snapshots, and the smaller copies made when
/// one does not fit the broker.
pub fn jpeg(image: &RgbImage, quality: u8) -> Result<Vec<u8>, image::ImageError> {
    let mut jpeg = Vec::new();
    image::codecs::jpeg::JpegEncoder::new_with_quality(std::io::Cursor::new(&mut jpeg), quality)
        .encode_image(image)?;
    Ok(jpeg)
}

/// A frame (packed BGR) as an RGB picture to draw on.
pub fn picture(frame: &Frame) -> Result<RgbImage, String> {
    let mut rgb = frame.bgr().to_vec();
    for pixel in rgb.chunks_exact_mut(3) {
        pixel.swap(0, 2);
    }
    RgbImage::from_raw(frame.width as u32, frame.height as u32, rgb)
        .ok_or_else(|| "the frame's size does not match its data".to_string())
}

/// A line width that reads at the picture's size: 2 pixels at 768x576, 5 at 1920x1080.
pub fn stroke(image: &RgbImage) -> i32 {
    (image.width().max(image.height()) / 400).max(1) as i32 + 1
}

/// A text size that reads at the picture's size: glyphs of 16 pixels at 576 lines, 24 at 1080.
pub fn text_scale(image: &RgbImage) -> u32 {
    (image.height() / 288).max(1)
}

/// A zone's outline.
pub fn polygon(image: &mut RgbImage, zone: &Polygon, colour: Rgb<u8>, thick: i32) {
    let pts = zone.points();
    for (i, a) in pts.iter().enumerate() {
        line(image, *a, pts[(i + 1) % pts.len()], colour, thick);
    }
}

/// A box's outline.
pub fn rect(image: &mut RgbImage, b: &BBox, colour: Rgb<u8>, thick: i32) {
    let corners = [
        Point { x: b.x, y: b.y },
        Point { x: b.x + b.w, y: b.y },
        Point { x: b.x + b.w, y: b.y + b.h },
        Point { x: b.x, y: b.y + b.h },
    ];
    for i in 0..4 {
        line(image, corners[i], corners[(i + 1) % 4], colour, thick.max(1));
    }
}

/// A line between normalized points, `thick` pixels wide (a square brush stepped along it).
pub fn line(image: &mut RgbImage, a: Point, b: Point, colour: Rgb<u8>, thick: i32) {
    let (w, h) = (image.width() as f32, image.height() as f32);
    let (x0, y0, x1, y1) = (a.x * (w - 1.0), a.y * (h - 1.0), b.x * (w - 1.0), b.y * (h - 1.0));
    let steps = (x1 - x0).abs().max((y1 - y0).abs()).ceil().max(1.0) as i32;
    let half = thick / 2;
    for s in 0..=steps {
        let f = s as f32 / steps as f32;
        let (cx, cy) = ((x0 + (x1 - x0) * f).round() as i32, (y0 + (y1 - y0) * f).round() as i32);
        for dy in -half..thick - half {
            for dx in -half..thick - half {
                put(image, cx + dx, cy + dy, colour);
            }
        }
    }
}

/// The pixel position of a normalized point.
pub fn pixel(image: &RgbImage, p: Point) -> (i32, i32) {
    let x = p.x * (image.width() as f32 - 1.0);
    let y = p.y * (image.height() as f32 - 1.0);
    (x.round() as i32, y.round() as i32)
}

/// A filled rectangle in pixels, clipped to the picture.
pub fn fill(image: &mut RgbImage, x: i32, y: i32, w: u32, h: u32, colour: Rgb<u8>) {
    let (x0, y0) = (x.max(0), y.max(0));
    let x1 = (x + w as i32).min(image.width() as i32);
    let y1 = (y + h as i32).min(image.height() as i32);
    for py in y0..y1 {
        for px in x0..x1 {
            image.put_pixel(px as u32, py as u32, colour);
        }
    }
}

/// The size in pixels of `text` at `scale`.
pub fn text_size(text: &str, scale: u32) -> (u32, u32) {
    (text.chars().count() as u32 * GLYPH * scale, GLYPH * scale)
}

/// `text` with its top-left corner at pixel (`x`, `y`), each font pixel `scale` pixels square.
pub fn text(image: &mut RgbImage, x: i32, y: i32, text: &str, colour: Rgb<u8>, scale: u32) {
    let scale = scale.max(1) as i32;
    for (i, c) in text.chars().enumerate() {
        let glyph =
            font8x8::legacy::BASIC_LEGACY[if c.is_ascii() { c as usize } else { '?' as usize }];
        let left = x + i as i32 * GLYPH as i32 * scale;
        for (row, bits) in glyph.iter().enumerate() {
            for col in 0..GLYPH as i32 {
                // Bit 0 is the leftmost pixel of the row.
                if bits & (1 << col) != 0 {
                    let (px, py) = (left + col * scale, y + row as i32 * scale);
                    for dy in 0..scale {
                        for dx in 0..scale {
                            put(image, px + dx, py + dy, colour);
                        }
                    }
                }
            }
        }
    }
}

/// `text` on a filled background with a margin, its top-left corner at pixel (`x`, `y`), moved
/// left and up as needed to stay inside the picture. Returns its height.
pub fn label(
    image: &mut RgbImage,
    x: i32,
    y: i32,
    content: &str,
    fg: Rgb<u8>,
    bg: Rgb<u8>,
    scale: u32,
) -> u32 {
    let margin = scale as i32 * 2;
    let (w, h) = text_size(content, scale);
    let (w, h) = (w + 2 * margin as u32, h + 2 * margin as u32);
    let x = x.min(image.width() as i32 - w as i32).max(0);
    let y = y.min(image.height() as i32 - h as i32).max(0);
    fill(image, x, y, w, h, bg);
    text(image, x + margin, y + margin, content, fg, scale);
    h
}

fn put(image: &mut RgbImage, x: i32, y: i32, colour: Rgb<u8>) {
    if x >= 0 && y >= 0 && (x as u32) < image.width() && (y as u32) < image.height() {
        image.put_pixel(x as u32, y as u32, colour);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_sets_the_glyph_pixels_of_the_font() {
        let mut image = RgbImage::new(40, 20);
        text(&mut image, 2, 2, "I", WHITE, 2);
        // font8x8's `I` is a vertical bar (columns 2..=3 of the 8x8 cell) with serifs.
        let lit = |x, y| image.get_pixel(x, y) == &WHITE;
        assert!(lit(2 + 3 * 2, 2 + 3 * 2), "the bar's middle");
        assert!(!lit(2 + 7 * 2, 2 + 3 * 2), "right of the bar");
        assert!(!lit(30, 10), "after the only glyph");
        assert_eq!(text_size("Ab?", 2), (48, 16));
    }

    #[test]
    fn characters_outside_ascii_are_drawn_as_a_question_mark() {
        let (mut zh, mut q) = (RgbImage::new(16, 16), RgbImage::new(16, 16));
        text(&mut zh, 0, 0, "禁", WHITE, 1);
        text(&mut q, 0, 0, "?", WHITE, 1);
        assert_eq!(zh, q);
        assert!(q.pixels().any(|p| p == &WHITE));
    }

    #[test]
    fn labels_stay_inside_the_picture() {
        let mut image = RgbImage::new(100, 50);
        let h = label(&mut image, 95, 45, "zone", BLACK, YELLOW, 1);
        assert_eq!(h, 12);
        // Moved left and up: its background ends at the picture's corner.
        assert_eq!(image.get_pixel(99, 49), &YELLOW);
        assert_eq!(image.get_pixel(100 - 36, 50 - 12), &YELLOW);
        assert_eq!(image.get_pixel(100 - 37, 50 - 13), &Rgb([0, 0, 0]));
    }

    #[test]
    fn lines_are_drawn_between_normalized_points_and_clipped() {
        let mut image = RgbImage::new(11, 11);
        line(&mut image, Point { x: 0.0, y: 0.5 }, Point { x: 1.0, y: 0.5 }, RED, 3);
        assert!((0..11).all(|x| image.get_pixel(x, 5) == &RED && image.get_pixel(x, 4) == &RED));
        assert_eq!(image.get_pixel(5, 2), &Rgb([0, 0, 0]));
    }
}
