//! Letterbox preprocessing: a camera frame (I420 or packed BGR8) written straight into a
//! detector's input tensor.
//!
//! Detectors take a fixed input size; the frame is scaled to fit keeping its aspect ratio and the
//! rest is padded with grey 114, the value the YOLO families were trained with, or stretched to
//! fill it (the DETR families). Resampling, padding, colour conversion, channel reordering,
//! scaling, normalisation and the HWC→CHW transpose happen in one pass over the output, so no
//! intermediate image is allocated per frame, and an I420 frame has only the pixels the model
//! sees converted to colour.

use crate::config::{ChannelOrder, Preprocessing, Resize};
use crate::frame::{Frame, I420};

/// Grey the YOLO families pad with, before scaling.
const PAD_VALUE: f32 = 114.0;

/// For each output plane, the byte of a packed BGR pixel it is read from.
fn source_bytes(order: ChannelOrder) -> [usize; 3] {
    match order {
        ChannelOrder::Bgr => [0, 1, 2],
        ChannelOrder::Rgb => [2, 1, 0],
    }
}

/// A model's input: its size, and how pixels become its values: `(pixel * scale - mean) / std`
/// per plane. Padding is grey 114 before that arithmetic.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct InputSpec {
    pub width: usize,
    pub height: usize,
    pub order: ChannelOrder,
    pub scale: f32,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub placement: Resize,
}

impl InputSpec {
    pub fn new(width: usize, height: usize, pre: &Preprocessing) -> InputSpec {
        InputSpec {
            width,
            height,
            order: pre.channels,
            scale: pre.scale.factor(),
            mean: pre.mean,
            std: pre.std,
            placement: pre.resize,
        }
    }

    /// Plane `c`'s value for a 0..255 pixel is `pixel * mul + add`: `(mul, add)`.
    fn affine(&self, c: usize) -> (f32, f32) {
        (self.scale / self.std[c], -self.mean[c] / self.std[c])
    }
}

/// Where the source image landed in the input: maps model-input pixels back to source pixels.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Letterbox {
    pub ratio_x: f32,
    pub ratio_y: f32,
    pub pad_x: f32,
    pub pad_y: f32,
}

impl Letterbox {
    /// The source-image point that a model-input point came from.
    pub fn to_source(self, x: f32, y: f32) -> (f32, f32) {
        ((x - self.pad_x) / self.ratio_x, (y - self.pad_y) / self.ratio_y)
    }
}

/// Letterboxes `frame` into `out` (see [`letterbox_into`]): from its I420 planes when it came
/// as I420, else from packed BGR.
pub fn letterbox_frame(frame: &Frame, spec: &InputSpec, out: &mut [f32]) -> Letterbox {
    match frame.i420() {
        Some(planes) => letterbox_i420_into(&planes, frame.width, frame.height, spec, out),
        None => letterbox_into(frame.bgr(), frame.width, frame.height, spec, out),
    }
}

/// Resizes `src` (packed BGR8, `width * height * 3` bytes, rows contiguous) into `out` as planar
/// NCHW f32 for `spec`, and returns the mapping back to source pixels.
///
/// The scale is r = min(W / width, H / height); the resized image is round(width * r) ×
/// round(height * r), sampled bilinearly with half-pixel centres like OpenCV's `INTER_LINEAR`,
/// placed per `spec.placement` and surrounded by 114. Every value is multiplied by `spec.scale`.
///
/// `out` must hold exactly `3 * spec.width * spec.height` values and `src` at least
/// `width * height * 3` bytes; both are checked by `debug_assert!`. In release builds a wrong-sized
/// `out` is left untouched and a short `src` is treated as empty (all padding), so this never
/// panics.
pub fn letterbox_into(
    src: &[u8],
    width: usize,
    height: usize,
    spec: &InputSpec,
    out: &mut [f32],
) -> Letterbox {
    let src_len = width * height * 3;
    debug_assert!(src.len() >= src_len, "source has {} bytes, need {src_len}", src.len());
    let out_len = 3 * spec.width * spec.height;
    debug_assert_eq!(out.len(), out_len, "output tensor must hold 3 x H x W values");

    let layout =
        if src.len() >= src_len { Layout::new(width, height, spec) } else { Layout::EMPTY };
    let mut sampler = PlaneSampler::new(src, width * 3, (width, height), 3, &layout);
    let source_bytes = source_bytes(spec.order);
    for_each_image_row(out, spec, &layout, |row, images| {
        sampler.blend(row);
        for (c, (image, &byte)) in images.into_iter().zip(&source_bytes).enumerate() {
            sampler.sample(byte, spec.affine(c), image);
        }
    });
    layout.letterbox()
}

/// [`letterbox_into`] from I420 planes: luma and chroma are each sampled bilinearly at the
/// output pixel, and only then converted to colour (bilinear sampling commutes with the linear
/// conversion, up to clamping).
fn letterbox_i420_into(
    planes: &I420<'_>,
    width: usize,
    height: usize,
    spec: &InputSpec,
    out: &mut [f32],
) -> Letterbox {
    let layout = Layout::new(width, height, spec);
    let chroma = (width.div_ceil(2), height.div_ceil(2));
    let mut luma = PlaneSampler::new(planes.y, planes.y_stride, (width, height), 1, &layout);
    let mut u = PlaneSampler::new(planes.u, planes.uv_stride, chroma, 1, &layout);
    let mut v = PlaneSampler::new(planes.v, planes.uv_stride, chroma, 1, &layout);
    let weights = planes.colour.weights();
    let source_bytes = source_bytes(spec.order);
    // One resized row of each plane at a time.
    let (mut y_row, mut u_row, mut v_row) =
        (vec![0.0; layout.width], vec![0.0; layout.width], vec![0.0; layout.width]);
    for_each_image_row(out, spec, &layout, |row, images| {
        for (plane, resized) in
            [(&mut luma, &mut y_row), (&mut u, &mut u_row), (&mut v, &mut v_row)]
        {
            plane.blend(row);
            plane.sample(0, (1.0, 0.0), resized);
        }
        for (plane, (image, &channel)) in images.into_iter().zip(&source_bytes).enumerate() {
            let [wy, wu, wv, c] = weights[channel];
            let (mul, add) = spec.affine(plane);
            let samples = y_row.iter().zip(&u_row).zip(&v_row);
            for (value, ((&y, &u), &v)) in image.iter_mut().zip(samples) {
                *value = (wy * y + wu * u + wv * v + c).clamp(0.0, 255.0) * mul + add;
            }
        }
    });
    layout.letterbox()
}

/// The resized image's size and position inside the input, in whole pixels.
struct Layout {
    ratio_x: f32,
    ratio_y: f32,
    width: usize,
    height: usize,
    left: usize,
    top: usize,
}

impl Layout {
    /// Nothing to draw: the whole input is padding.
    const EMPTY: Layout =
        Layout { ratio_x: 1.0, ratio_y: 1.0, width: 0, height: 0, left: 0, top: 0 };

    fn new(src_width: usize, src_height: usize, spec: &InputSpec) -> Layout {
        if src_width == 0 || src_height == 0 {
            return Layout::EMPTY;
        }
        if spec.placement == Resize::Stretch {
            return Layout {
                ratio_x: (spec.width as f64 / src_width as f64) as f32,
                ratio_y: (spec.height as f64 / src_height as f64) as f32,
                width: spec.width,
                height: spec.height,
                left: 0,
                top: 0,
            };
        }
        // f64 and ties-to-even match Ultralytics' Python arithmetic exactly.
        let ratio =
            (spec.width as f64 / src_width as f64).min(spec.height as f64 / src_height as f64);
        let resized =
            |len: usize, limit: usize| ((len as f64 * ratio).round_ties_even() as usize).min(limit);
        let width = resized(src_width, spec.width);
        let height = resized(src_height, spec.height);
        let (left, top) = match spec.placement {
            Resize::LetterboxTopLeft | Resize::Stretch => (0, 0),
            // Odd padding puts the extra pixel on the right/bottom, as Ultralytics does.
            Resize::LetterboxCentre => ((spec.width - width) / 2, (spec.height - height) / 2),
        };
        let ratio = ratio as f32;
        Layout { ratio_x: ratio, ratio_y: ratio, width, height, left, top }
    }

    /// The resized-image row drawn on input row `y`, if any.
    fn image_row(&self, y: usize) -> Option<usize> {
        y.checked_sub(self.top).filter(|&row| row < self.height)
    }

    fn letterbox(&self) -> Letterbox {
        Letterbox {
            ratio_x: self.ratio_x,
            ratio_y: self.ratio_y,
            pad_x: self.left as f32,
            pad_y: self.top as f32,
        }
    }
}

/// The three output planes, or `None` if `out` is not exactly three non-empty planes.
/// Walks the input tensor `out` (three planes of `spec`'s size) row by row: padding rows are
/// filled with the pad value; for each row that holds the image, `fill` gets the source row it
/// resizes and each plane's span of the image, the padding either side already filled. A tensor
/// of the wrong size is left alone.
fn for_each_image_row(
    out: &mut [f32],
    spec: &InputSpec,
    layout: &Layout,
    mut fill: impl FnMut(usize, [&mut [f32]; 3]),
) {
    let plane = spec.width * spec.height;
    if plane == 0 || out.len() != 3 * plane {
        return;
    }
    let pads = [0, 1, 2].map(|c| {
        let (mul, add) = spec.affine(c);
        PAD_VALUE * mul + add
    });
    let (p0, rest) = out.split_at_mut(plane);
    let (p1, p2) = rest.split_at_mut(plane);
    let rows = p0
        .chunks_exact_mut(spec.width)
        .zip(p1.chunks_exact_mut(spec.width))
        .zip(p2.chunks_exact_mut(spec.width));
    for (y, ((r0, r1), r2)) in rows.enumerate() {
        let dst = [r0, r1, r2];
        let Some(row) = layout.image_row(y) else {
            dst.into_iter().zip(pads).for_each(|(plane_row, pad)| plane_row.fill(pad));
            continue;
        };
        let mut pads = pads.into_iter();
        fill(
            row,
            dst.map(|plane_row| {
                let pad = pads.next().unwrap_or(PAD_VALUE);
                let (left, rest) = plane_row.split_at_mut(layout.left);
                let (image, right) = rest.split_at_mut(layout.width);
                left.fill(pad);
                right.fill(pad);
                image
            }),
        );
    }
}

/// Where one output pixel samples along one axis: two neighbouring source pixels and the weight
/// of the second.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Tap {
    near: usize,
    far: usize,
    weight: f32,
}

/// OpenCV `INTER_LINEAR` sampling of output index `dst`: half-pixel centres, clamped to the edge
/// pixel outside the source.
fn tap(dst: usize, src_len: usize, scale: f64) -> Tap {
    let pos = (dst as f64 + 0.5) * scale - 0.5;
    let floor = pos.floor();
    if floor < 0.0 {
        return Tap { near: 0, far: 0, weight: 0.0 };
    }
    let near = floor as usize;
    if near + 1 >= src_len {
        let last = src_len - 1;
        return Tap { near: last, far: last, weight: 0.0 };
    }
    Tap { near, far: near + 1, weight: (pos - floor) as f32 }
}

/// Taps for every output column, with indices already turned into byte offsets within a row
/// of `pixel_bytes`-byte pixels.
fn column_taps(src_width: usize, dst_width: usize, pixel_bytes: usize) -> Vec<Tap> {
    let scale = src_width as f64 / dst_width as f64;
    (0..dst_width)
        .map(|x| {
            let t = tap(x, src_width, scale);
            Tap { near: t.near * pixel_bytes, far: t.far * pixel_bytes, ..t }
        })
        .collect()
}

/// Bilinear sampling of one image plane (`channels` interleaved bytes a pixel) into the
/// resized image's rows: each row is first blended between its two source rows in one
/// contiguous pass the compiler vectorizes, then sampled at each column.
struct PlaneSampler<'a> {
    plane: &'a [u8],
    stride: usize,
    row_bytes: usize,
    height: usize,
    columns: Vec<Tap>,
    row_scale: f64,
    blended: Vec<f32>,
}

impl<'a> PlaneSampler<'a> {
    fn new(
        plane: &'a [u8],
        stride: usize,
        (width, height): (usize, usize),
        channels: usize,
        layout: &Layout,
    ) -> Self {
        PlaneSampler {
            plane,
            stride,
            row_bytes: width * channels,
            height,
            columns: column_taps(width, layout.width, channels),
            row_scale: height as f64 / layout.height.max(1) as f64,
            blended: Vec::with_capacity(width * channels),
        }
    }

    /// Blends the two source rows that resized row `row` falls between.
    fn blend(&mut self, row: usize) {
        let t = tap(row, self.height, self.row_scale);
        let source_row = |index: usize| &self.plane[index * self.stride..][..self.row_bytes];
        let rows = source_row(t.near).iter().zip(source_row(t.far));
        self.blended.clear();
        self.blended.extend(rows.map(|(&a, &b)| lerp(f32::from(a), f32::from(b), t.weight)));
    }

    /// Channel `byte` of the blended row at each column, as `value * mul + add`.
    fn sample(&self, byte: usize, (mul, add): (f32, f32), out: &mut [f32]) {
        let blended = &self.blended;
        for (value, t) in out.iter_mut().zip(&self.columns) {
            *value = lerp(blended[t.near + byte], blended[t.far + byte], t.weight) * mul + add;
        }
    }
}

fn lerp(a: f32, b: f32, t: f32) -> f32 {
    a + (b - a) * t
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(width: usize, height: usize, order: ChannelOrder, placement: Resize) -> InputSpec {
        InputSpec { width, height, order, scale: 1.0, mean: [0.0; 3], std: [1.0; 3], placement }
    }

    fn same_ratio(ratio: f32, pad_x: f32, pad_y: f32) -> Letterbox {
        Letterbox { ratio_x: ratio, ratio_y: ratio, pad_x, pad_y }
    }

    /// Packed BGR8 image where every channel of a pixel holds the same grey value.
    fn grey(values: &[u8]) -> Vec<u8> {
        values.iter().flat_map(|&v| [v, v, v]).collect()
    }

    /// Row `y` of output plane `c`.
    fn row(out: &[f32], spec: &InputSpec, c: usize, y: usize) -> Vec<f32> {
        let start = (c * spec.height + y) * spec.width;
        out[start..start + spec.width].to_vec()
    }

    fn run(src: &[u8], width: usize, height: usize, spec: &InputSpec) -> (Vec<f32>, Letterbox) {
        let mut out = vec![f32::NAN; 3 * spec.width * spec.height];
        let letterbox = letterbox_into(src, width, height, spec, &mut out);
        (out, letterbox)
    }

    #[test]
    fn top_left_puts_image_at_top_and_pads_below() {
        let src = grey(&[10, 20, 30, 40, 50, 60, 70, 80]);
        let spec = spec(4, 4, ChannelOrder::Bgr, Resize::LetterboxTopLeft);
        let (out, letterbox) = run(&src, 4, 2, &spec);
        assert_eq!(letterbox, same_ratio(1.0, 0.0, 0.0));
        for c in 0..3 {
            assert_eq!(row(&out, &spec, c, 0), [10.0, 20.0, 30.0, 40.0]);
            assert_eq!(row(&out, &spec, c, 1), [50.0, 60.0, 70.0, 80.0]);
            assert_eq!(row(&out, &spec, c, 2), [114.0; 4]);
            assert_eq!(row(&out, &spec, c, 3), [114.0; 4]);
        }
    }

    #[test]
    fn centre_pads_equally_on_both_sides() {
        let src = grey(&[10, 20, 30, 40, 50, 60, 70, 80]);
        let spec = spec(4, 4, ChannelOrder::Bgr, Resize::LetterboxCentre);
        let (out, letterbox) = run(&src, 4, 2, &spec);
        assert_eq!(letterbox, same_ratio(1.0, 0.0, 1.0));
        assert_eq!(row(&out, &spec, 0, 0), [114.0; 4]);
        assert_eq!(row(&out, &spec, 0, 1), [10.0, 20.0, 30.0, 40.0]);
        assert_eq!(row(&out, &spec, 0, 2), [50.0, 60.0, 70.0, 80.0]);
        assert_eq!(row(&out, &spec, 0, 3), [114.0; 4]);
    }

    #[test]
    fn centre_puts_odd_padding_pixel_after_the_image() {
        // A 1x4 column into 4x4: 3 columns of padding, 1 on the left and 2 on the right.
        let src = grey(&[10, 20, 30, 40]);
        let spec = spec(4, 4, ChannelOrder::Bgr, Resize::LetterboxCentre);
        let (out, letterbox) = run(&src, 1, 4, &spec);
        assert_eq!(letterbox, same_ratio(1.0, 1.0, 0.0));
        assert_eq!(row(&out, &spec, 1, 2), [114.0, 30.0, 114.0, 114.0]);
    }

    #[test]
    fn channel_order_selects_planes() {
        let src: Vec<u8> = [10, 20, 30].repeat(4);
        let bgr = spec(2, 2, ChannelOrder::Bgr, Resize::LetterboxTopLeft);
        let (out, _) = run(&src, 2, 2, &bgr);
        assert_eq!(out, [[10.0; 4], [20.0; 4], [30.0; 4]].concat());

        let rgb = spec(2, 2, ChannelOrder::Rgb, Resize::LetterboxTopLeft);
        let (out, _) = run(&src, 2, 2, &rgb);
        assert_eq!(out, [[30.0; 4], [20.0; 4], [10.0; 4]].concat());
    }

    #[test]
    fn scale_applies_to_pixels_and_padding() {
        let src = grey(&[255, 0]);
        let spec = InputSpec {
            scale: 1.0 / 255.0,
            ..spec(2, 2, ChannelOrder::Rgb, Resize::LetterboxTopLeft)
        };
        let (out, _) = run(&src, 2, 1, &spec);
        let expected = [1.0, 0.0, 114.0 / 255.0, 114.0 / 255.0];
        let actual = [row(&out, &spec, 2, 0), row(&out, &spec, 2, 1)].concat();
        let close = actual.iter().zip(expected).all(|(a, e)| (a - e).abs() < 1e-6);
        assert!(close, "{actual:?}");
    }

    #[test]
    fn normalisation_applies_per_plane_to_pixels_and_padding() {
        let src = grey(&[255, 0]);
        let spec = InputSpec {
            scale: 1.0 / 255.0,
            mean: [0.5, 0.0, 1.0],
            std: [0.5, 1.0, 2.0],
            ..spec(2, 2, ChannelOrder::Rgb, Resize::LetterboxTopLeft)
        };
        let (out, _) = run(&src, 2, 1, &spec);
        let pad = 114.0 / 255.0;
        let expected = [
            [1.0, -1.0, (pad - 0.5) / 0.5, (pad - 0.5) / 0.5],
            [1.0, 0.0, pad, pad],
            [0.0, -0.5, (pad - 1.0) / 2.0, (pad - 1.0) / 2.0],
        ];
        for (c, expected) in expected.iter().enumerate() {
            let actual = [row(&out, &spec, c, 0), row(&out, &spec, c, 1)].concat();
            let close = actual.iter().zip(expected).all(|(a, e)| (a - e).abs() < 1e-6);
            assert!(close, "plane {c}: {actual:?}");
        }
    }

    #[test]
    fn stretch_fills_the_input_and_maps_each_axis_back() {
        // 4x2 stretched to 2x2: half the width, the height kept; no padding anywhere.
        let src = grey(&[0, 20, 40, 60, 100, 120, 140, 160]);
        let spec = spec(2, 2, ChannelOrder::Bgr, Resize::Stretch);
        let (out, letterbox) = run(&src, 4, 2, &spec);
        assert_eq!(letterbox, Letterbox { ratio_x: 0.5, ratio_y: 1.0, pad_x: 0.0, pad_y: 0.0 });
        assert_eq!(row(&out, &spec, 0, 0), [10.0, 50.0]);
        assert_eq!(row(&out, &spec, 0, 1), [110.0, 150.0]);
        assert_eq!(letterbox.to_source(1.0, 2.0), (2.0, 2.0));
    }

    #[test]
    fn to_source_inverts_the_placement() {
        // 20x10 into 8x8 centred: r = 0.4, resized 8x4, 2 rows of padding on top.
        let src = vec![0; 20 * 10 * 3];
        let spec = spec(8, 8, ChannelOrder::Rgb, Resize::LetterboxCentre);
        let (_, letterbox) = run(&src, 20, 10, &spec);
        assert_eq!(letterbox, same_ratio(0.4, 0.0, 2.0));

        let (sx, sy) = (15.0, 7.5);
        let input =
            (sx * letterbox.ratio_x + letterbox.pad_x, sy * letterbox.ratio_y + letterbox.pad_y);
        assert_eq!(input, (6.0, 5.0));
        let (bx, by) = letterbox.to_source(input.0, input.1);
        assert!((bx - sx).abs() < 1e-4 && (by - sy).abs() < 1e-4, "got ({bx}, {by})");
    }

    #[test]
    fn bilinear_upscale_interpolates_like_opencv() {
        // A 2x1 gradient doubled: half-pixel centres sample at -0.25, 0.25, 0.75, 1.25.
        let src = grey(&[0, 100]);
        let spec = spec(4, 2, ChannelOrder::Bgr, Resize::LetterboxTopLeft);
        let (out, letterbox) = run(&src, 2, 1, &spec);
        assert_eq!(letterbox, same_ratio(2.0, 0.0, 0.0));
        for y in 0..2 {
            assert_eq!(row(&out, &spec, 0, y), [0.0, 25.0, 75.0, 100.0]);
        }
    }

    #[test]
    fn downscale_keeps_aspect_and_averages_neighbours() {
        // 4x2 into 2x2: r = 0.5, resized 2x1; each output samples the middle of a source pixel
        // pair and row pair.
        let src = grey(&[0, 20, 40, 60, 100, 120, 140, 160]);
        let spec = spec(2, 2, ChannelOrder::Bgr, Resize::LetterboxTopLeft);
        let (out, letterbox) = run(&src, 4, 2, &spec);
        assert_eq!(letterbox, same_ratio(0.5, 0.0, 0.0));
        assert_eq!(row(&out, &spec, 0, 0), [60.0, 100.0]);
        assert_eq!(row(&out, &spec, 0, 1), [114.0; 2]);
    }

    #[test]
    fn i420_frames_letterbox_like_their_bgr_conversion() {
        use crate::frame::{Colour, Pixels, Plane};
        // A 64x48 frame with luma and chroma gradients, rows padded to 72 and 40 bytes.
        let (w, h, stride, chroma_stride) = (64, 48, 72, 40);
        let luma = (0..h).flat_map(|y| (0..stride).map(move |x| (16 + 2 * x + y) as u8));
        let chroma =
            |k: usize| (0..h / 2).flat_map(move |y| (0..40).map(move |x| (64 + k * x + y) as u8));
        let bytes: Vec<u8> = luma.chain(chroma(2)).chain(chroma(3)).collect();
        let planes = [
            Plane { offset: 0, stride },
            Plane { offset: stride * h, stride: chroma_stride },
            Plane { offset: stride * h + chroma_stride * h / 2, stride: chroma_stride },
        ];
        let frame = Frame {
            width: w,
            height: h,
            data: Pixels::i420(std::sync::Arc::new(bytes), planes, Colour::BT601),
            stream_time_s: 0.0,
            captured_at: std::time::SystemTime::UNIX_EPOCH,
            metadata: Vec::new(),
        };
        for order in [ChannelOrder::Bgr, ChannelOrder::Rgb] {
            let spec = spec(40, 40, order, Resize::LetterboxCentre);
            let mut from_planes = vec![f32::NAN; 3 * 40 * 40];
            let from_planes_box = letterbox_frame(&frame, &spec, &mut from_planes);
            let (from_bgr, from_bgr_box) = run(frame.bgr(), w, h, &spec);
            assert_eq!(from_planes_box, from_bgr_box);
            let diffs: Vec<f32> =
                from_planes.iter().zip(&from_bgr).map(|(a, b)| (a - b).abs()).collect();
            let mean = diffs.iter().sum::<f32>() / diffs.len() as f32;
            let max = diffs.iter().copied().fold(0.0, f32::max);
            // Only rounding (the BGR copy is whole numbers) and clamping differ.
            assert!(mean < 0.6 && max < 3.0, "{order:?}: mean {mean}, max {max}");
        }
    }

    #[test]
    fn empty_source_gives_all_padding() {
        let spec = spec(2, 2, ChannelOrder::Bgr, Resize::LetterboxCentre);
        let (out, letterbox) = run(&[], 0, 0, &spec);
        assert_eq!(out, [114.0; 12]);
        assert_eq!(letterbox, same_ratio(1.0, 0.0, 0.0));
    }
}
