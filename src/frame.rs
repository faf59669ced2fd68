//! A decoded video frame and its pixels, in the layout they arrived in.
//!
//! Decoders produce planar YUV 4:2:0 (I420), and converting a whole frame to BGR costs more CPU
//! than decoding it (about 0.7 ms for 768x576 in GStreamer's converter). Most frames never need
//! it: the detector's letterbox samples the planes it needs straight into its input tensor, and
//! the motion gate reads luma. So a frame keeps the decoder's I420 and converts to packed BGR
//! only when something asks for it (evidence, drawing, crops), once. Stills and synthetic frames
//! are packed BGR from the start.

use std::sync::{Arc, OnceLock};
use std::time::SystemTime;

/// One decoded video frame.
#[derive(Debug, Clone)]
pub struct Frame {
    pub width: usize,
    pub height: usize,
    pub data: Pixels,
    /// Seconds since the camera's first frame, from the stream's own timestamps.
    pub stream_time_s: f64,
    /// Wall-clock time of the frame: arrival time live, start time + stream time in replay.
    pub captured_at: SystemTime,
    /// The stream's metadata (a drone's KLV) that arrived since the previous frame handed on.
    pub metadata: Vec<Metadata>,
}

/// One buffer of a stream's metadata: what reached the template's element named `klv`.
#[derive(Debug, Clone)]
pub struct Metadata {
    /// Presentation time, in the stream time of [`Frame::stream_time_s`]; the time of the
    /// frame it came with when the buffer has none.
    pub pts_s: f64,
    pub data: Vec<u8>,
}

impl Frame {
    /// The frame as packed BGR8 (`width * 3` bytes a row): converted from I420 on first use.
    pub fn bgr(&self) -> &[u8] {
        match self.i420() {
            None => self.data.bytes(),
            Some(planes) => self.data.bgr.get_or_init(|| self.convert_to_bgr(&planes)),
        }
    }

    /// The frame's planes, when it came as I420.
    pub fn i420(&self) -> Option<I420<'_>> {
        let Layout::I420 { y, u, v, colour } = self.data.layout else { return None };
        let bytes = self.data.bytes();
        let (chroma_w, chroma_h) = (self.width.div_ceil(2), self.height.div_ceil(2));
        let plane = |p: Plane, w: usize, h: usize| &bytes[p.offset..p.offset + p.len(w, h)];
        Some(I420 {
            y: plane(y, self.width, self.height),
            y_stride: y.stride,
            u: plane(u, chroma_w, chroma_h),
            v: plane(v, chroma_w, chroma_h),
            uv_stride: u.stride,
            colour,
        })
    }

    /// Bytes the frame holds (a converted BGR copy included).
    pub fn held_bytes(&self) -> usize {
        self.data.bytes().len() + self.data.bgr.get().map_or(0, Vec::len)
    }

    /// The whole frame in BGR, in 16-bit fixed point: a 720p frame in a few milliseconds,
    /// each pair of pixels sharing one chroma computation.
    fn convert_to_bgr(&self, planes: &I420<'_>) -> Vec<u8> {
        let weights = planes.colour.weights().map(|w| w.map(|k| (k * 65536.0).round() as i32));
        let luma_scale = weights[0][0];
        let (w, chroma_w) = (self.width, self.width.div_ceil(2));
        let channel = |v: i32| ((v + 32768) >> 16).clamp(0, 255) as u8;
        let mut bgr = vec![0; w * self.height * 3];
        for (row, out) in bgr.chunks_exact_mut(w * 3).enumerate() {
            let luma = &planes.y[row * planes.y_stride..][..w];
            let chroma = (row / 2) * planes.uv_stride;
            let (u, v) = (&planes.u[chroma..][..chroma_w], &planes.v[chroma..][..chroma_w]);
            let pairs = out.chunks_mut(6).zip(luma.chunks(2)).zip(u.iter().zip(v));
            for ((pixels, luma), (&u, &v)) in pairs {
                let (u, v) = (i32::from(u), i32::from(v));
                let [b, g, r] = weights.map(|[_, wu, wv, c]| wu * u + wv * v + c);
                for (pixel, &y) in pixels.chunks_exact_mut(3).zip(luma) {
                    let l = luma_scale * i32::from(y);
                    pixel.copy_from_slice(&[channel(l + b), channel(l + g), channel(l + r)]);
                }
            }
        }
        bgr
    }
}

/// A frame's pixels: the bytes as they arrived (shared, never copied) and how they are laid out.
#[derive(Clone)]
pub struct Pixels {
    bytes: Arc<dyn AsRef<[u8]> + Send + Sync>,
    layout: Layout,
    /// The packed BGR conversion of an I420 frame, once asked for.
    bgr: OnceLock<Vec<u8>>,
}

impl Pixels {
    /// I420 planes within `bytes` (a decoder's buffer), with the colours they encode.
    pub fn i420(
        bytes: Arc<dyn AsRef<[u8]> + Send + Sync>,
        [y, u, v]: [Plane; 3],
        colour: Colour,
    ) -> Self {
        Pixels { bytes, layout: Layout::I420 { y, u, v, colour }, bgr: OnceLock::new() }
    }

    fn bytes(&self) -> &[u8] {
        (*self.bytes).as_ref()
    }
}

/// Packed BGR8, `width * 3` bytes a row.
impl From<Vec<u8>> for Pixels {
    fn from(data: Vec<u8>) -> Self {
        Pixels { bytes: Arc::new(data), layout: Layout::Bgr, bgr: OnceLock::new() }
    }
}

impl std::fmt::Debug for Pixels {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Pixels({:?}, {} bytes)", self.layout, self.bytes().len())
    }
}

#[derive(Debug, Clone, Copy)]
enum Layout {
    Bgr,
    I420 { y: Plane, u: Plane, v: Plane, colour: Colour },
}

/// Where one plane starts in a buffer, and its bytes a row.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Plane {
    pub offset: usize,
    pub stride: usize,
}

impl Plane {
    /// Bytes of a `width` x `height` plane: the last row needs no padding.
    pub fn len(self, width: usize, height: usize) -> usize {
        if height == 0 { 0 } else { (height - 1) * self.stride + width }
    }
}

/// An I420 frame's planes: luma at full size, the two chroma planes at half width and height
/// (rounded up).
#[derive(Clone, Copy)]
pub struct I420<'a> {
    pub y: &'a [u8],
    pub y_stride: usize,
    pub u: &'a [u8],
    pub v: &'a [u8],
    pub uv_stride: usize,
    pub colour: Colour,
}

/// How YUV values encode colour: the matrix's luma weights of red and blue, and the range.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Colour {
    kr: f32,
    kb: f32,
    full_range: bool,
}

impl Colour {
    /// Standard definition video (ITU-R BT.601), limited range: what a stream that says
    /// nothing is taken to be.
    pub const BT601: Colour = Colour { kr: 0.299, kb: 0.114, full_range: false };
    /// High definition video (ITU-R BT.709).
    pub const BT709: Colour = Colour { kr: 0.2126, kb: 0.0722, full_range: false };
    /// Ultra high definition video (ITU-R BT.2020).
    pub const BT2020: Colour = Colour { kr: 0.2627, kb: 0.0593, full_range: false };

    /// The same matrix over the full 0..255 range (JPEG-style cameras).
    pub fn full_range(self) -> Colour {
        Colour { full_range: true, ..self }
    }

    /// The grey level (0..255) of a luma value: what each of blue, green and red comes to
    /// with neutral chroma.
    pub fn grey(self, y: f32) -> f32 {
        let (scale, black) = self.luma_scale_and_black();
        (scale * (y - black)).clamp(0.0, 255.0)
    }

    /// Limited range puts black at 16 and white at 235.
    fn luma_scale_and_black(self) -> (f32, f32) {
        if self.full_range { (1.0, 0.0) } else { (255.0 / 219.0, 16.0) }
    }

    /// For blue, green and red: the weights of Y, U and V, and a constant.
    pub fn weights(self) -> [[f32; 4]; 3] {
        let (scale, black) = self.luma_scale_and_black();
        let chroma = if self.full_range { 1.0 } else { 255.0 / 224.0 };
        let (kr, kb) = (self.kr, self.kb);
        let kg = 1.0 - kr - kb;
        let (bu, rv) = (chroma * 2.0 * (1.0 - kb), chroma * 2.0 * (1.0 - kr));
        let (gu, gv) = (chroma * 2.0 * kb * (1.0 - kb) / kg, chroma * 2.0 * kr * (1.0 - kr) / kg);
        let luma = -scale * black;
        [
            [scale, bu, 0.0, luma - 128.0 * bu],
            [scale, -gu, -gv, luma + 128.0 * (gu + gv)],
            [scale, 0.0, rv, luma - 128.0 * rv],
        ]
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `width` x `height` I420 frame whose planes hold `yuv` everywhere; rows padded to 8.
    pub(crate) fn i420_frame(width: usize, height: usize, yuv: [u8; 3], colour: Colour) -> Frame {
        let stride = width.next_multiple_of(8);
        let chroma_stride = width.div_ceil(2).next_multiple_of(8);
        let luma = stride * height;
        let chroma = chroma_stride * height.div_ceil(2);
        let mut bytes = vec![yuv[0]; luma];
        bytes.extend(std::iter::repeat_n(yuv[1], chroma));
        bytes.extend(std::iter::repeat_n(yuv[2], chroma));
        let planes = [
            Plane { offset: 0, stride },
            Plane { offset: luma, stride: chroma_stride },
            Plane { offset: luma + chroma, stride: chroma_stride },
        ];
        Frame {
            width,
            height,
            data: Pixels::i420(Arc::new(bytes), planes, colour),
            stream_time_s: 0.0,
            captured_at: SystemTime::UNIX_EPOCH,
            metadata: Vec::new(),
        }
    }

    #[test]
    fn reference_colours_convert_like_the_standards_say() {
        // Limited-range BT.601 75 % bars and extremes, as GStreamer's videotestsrc makes them.
        let cases = [
            ([16, 128, 128], [0, 0, 0]),
            ([235, 128, 128], [255, 255, 255]),
            ([81, 90, 240], [0, 0, 255]),
            ([145, 54, 34], [0, 255, 0]),
            ([41, 240, 110], [255, 0, 0]),
        ];
        for (yuv, bgr) in cases {
            let frame = i420_frame(3, 3, yuv, Colour::BT601);
            for pixel in frame.bgr().chunks_exact(3) {
                for (got, want) in pixel.iter().zip(bgr) {
                    assert!(got.abs_diff(want) <= 2, "{yuv:?}: {pixel:?}, want {bgr:?}");
                }
            }
        }
        // The same red differs by matrix: BT.709 red is Y 63, U 102, V 240.
        let frame = i420_frame(2, 2, [63, 102, 240], Colour::BT709);
        assert!(frame.bgr()[..3].iter().zip([0, 0, 255]).all(|(g, w)| g.abs_diff(w) <= 2));
        let frame = i420_frame(2, 2, [128, 128, 128], Colour::BT601.full_range());
        assert_eq!(frame.bgr()[..3], [128, 128, 128]);
    }

    #[test]
    fn planes_skip_row_padding_and_odd_sizes_round_chroma_up() {
        let frame = i420_frame(5, 3, [16, 128, 128], Colour::BT601);
        let planes = frame.i420().unwrap();
        assert_eq!((planes.y_stride, planes.uv_stride), (8, 8));
        assert_eq!((planes.y.len(), planes.u.len(), planes.v.len()), (2 * 8 + 5, 8 + 3, 8 + 3));
        assert_eq!(frame.bgr().len(), 5 * 3 * 3);
        assert_eq!(frame.held_bytes(), (8 * 3 + 2 * 8 * 2) + 5 * 3 * 3);
    }
}
