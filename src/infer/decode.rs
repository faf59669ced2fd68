//! Raw detector output tensors to scored candidate boxes, plus class-wise non-maximum
//! suppression.
//!
//! The output layouts understood: YOLOX (raw grid offsets, decoded here), Ultralytics YOLOv5
//! (boxes already in input pixels, with objectness), Ultralytics YOLOv8 / YOLO11 (channels-first,
//! no objectness), end-to-end YOLO rows (YOLOv10, YOLO26: boxes, score and class after NMS),
//! Ultralytics RT-DETR (normalised centre boxes), YOLO-NAS (boxes and scores apart) and the
//! official DETR exports (labels, boxes and scores apart). Boxes stay in model-input pixels;
//! mapping them back to the frame is the letterbox's job.

use std::fmt::Write as _;

use crate::config::ModelFormat;

/// Strides of YOLOX's three detection heads, in the order their anchors appear in the output.
const YOLOX_STRIDES: [usize; 3] = [8, 16, 32];

/// Anchors decoded together in the channels-first layout, so each class row is read as a
/// contiguous run instead of striding across the whole tensor per anchor.
const YOLOV8_BLOCK: usize = 64;

/// Which of a session's outputs a detector reads, by index, found by
/// [`ModelFormat::find_outputs`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outputs {
    /// The first output holds everything.
    One,
    /// yolo_nas: boxes [1, N, 4] and scores [1, N, C].
    BoxesScores { boxes: usize, scores: usize },
    /// detr: `labels` [1, N], `boxes` [1, N, 4] and `scores` [1, N].
    Detr { labels: usize, boxes: usize, scores: usize },
}

/// A detector's output tensors for one image, as [`Outputs`] says where to find them.
pub enum Tensors<'a> {
    One { data: &'a [f32], shape: &'a [usize] },
    BoxesScores { boxes: &'a [f32], scores: &'a [f32] },
    Detr { labels: &'a [i64], boxes: &'a [f32], scores: &'a [f32] },
}

impl ModelFormat {
    /// Finds the outputs this format reads among a model's `(name, shape)` outputs, checking
    /// their shapes for `classes` classes and input W×H: yolo_nas takes the [1, N, 4] output as
    /// boxes and the other as scores; detr takes them by name.
    pub fn find_outputs(
        &self,
        outputs: &[(&str, &[i64])],
        classes: usize,
        input_w: usize,
        input_h: usize,
    ) -> Result<Outputs, String> {
        let fits = |shape: &[i64], expected: &[Dim]| {
            shape.len() == expected.len()
                && shape.iter().zip(expected).all(|(&dim, want)| want.accepts(dim))
        };
        let listed = || {
            let all: Vec<String> =
                outputs.iter().map(|(name, shape)| format!("`{name}` {shape:?}")).collect();
            all.join(", ")
        };
        match self {
            ModelFormat::YoloNas => {
                let boxes_shape = [Dim::Is(1), Dim::Rows, Dim::Is(4)];
                let scores_shape = [Dim::Is(1), Dim::Rows, Dim::Is(classes)];
                let boxes = outputs.iter().position(|(_, shape)| fits(shape, &boxes_shape));
                let scores = (0..outputs.len())
                    .find(|&i| Some(i) != boxes && fits(outputs[i].1, &scores_shape));
                match (boxes, scores) {
                    (Some(boxes), Some(scores)) => Ok(Outputs::BoxesScores { boxes, scores }),
                    _ => Err(format!(
                        "outputs {} do not fit yolo_nas with {classes} classes: expected boxes \
                         {} and scores {}",
                        listed(),
                        describe(&boxes_shape),
                        describe(&scores_shape)
                    )),
                }
            }
            ModelFormat::Detr => {
                let expected: [(&str, &[Dim]); 3] = [
                    ("labels", &[Dim::Is(1), Dim::Rows]),
                    ("boxes", &[Dim::Is(1), Dim::Rows, Dim::Is(4)]),
                    ("scores", &[Dim::Is(1), Dim::Rows]),
                ];
                let found = expected.map(|(name, shape)| {
                    outputs.iter().position(|(n, s)| *n == name && fits(s, shape))
                });
                match found {
                    [Some(labels), Some(boxes), Some(scores)] => {
                        Ok(Outputs::Detr { labels, boxes, scores })
                    }
                    _ => Err(format!(
                        "outputs {} do not fit detr: expected `labels` [1, N], `boxes` \
                         [1, N, 4] and `scores` [1, N]",
                        listed()
                    )),
                }
            }
            _ => {
                let (_, shape) = outputs.first().ok_or("the model has no outputs")?;
                self.check_output_shape(shape, classes, input_w, input_h).map(|()| Outputs::One)
            }
        }
    }

    /// Check an output shape (dims as i64, -1 = dynamic) against this format for `classes`
    /// classes and input W×H.
    ///
    /// yolox: [1, N, 5+C] with N = sum over strides 8, 16, 32 of (W/s)*(H/s); yolov5: [1, N, 5+C];
    /// yolov8: [1, 4+C, N]. A dynamic dimension fits anything, so a model with dynamic axes should
    /// be checked again with its first real output shape.
    pub fn check_output_shape(
        &self,
        shape: &[i64],
        classes: usize,
        input_w: usize,
        input_h: usize,
    ) -> Result<(), String> {
        let expected = self.expected_shape(classes, input_w, input_h);
        let fits = shape.len() == expected.len()
            && shape.iter().zip(&expected).all(|(&dim, want)| want.accepts(dim));
        if fits {
            return Ok(());
        }
        let mut reason = format!(
            "output shape {shape:?} does not fit {} with {classes} classes: expected {}",
            self.name(),
            describe(&expected)
        );
        if *self == ModelFormat::Yolox {
            // N depends on the input size, so say which one it was computed for.
            let _ = write!(reason, " for a {input_w}x{input_h} input");
        }
        Err(reason)
    }

    fn expected_shape(&self, classes: usize, input_w: usize, input_h: usize) -> [Dim; 3] {
        match self {
            ModelFormat::Yolox => {
                [Dim::Is(1), Dim::Is(yolox_anchor_count(input_w, input_h)), Dim::Is(5 + classes)]
            }
            ModelFormat::Yolov5 => [Dim::Is(1), Dim::Anchors, Dim::Is(5 + classes)],
            ModelFormat::Yolov8 => [Dim::Is(1), Dim::Is(4 + classes), Dim::Anchors],
            ModelFormat::YoloEnd2End => [Dim::Is(1), Dim::Rows, Dim::Is(6)],
            ModelFormat::Rtdetr => [Dim::Is(1), Dim::Rows, Dim::Is(4 + classes)],
            // Read apart, by find_outputs: their first output is the boxes.
            ModelFormat::YoloNas | ModelFormat::Detr => [Dim::Is(1), Dim::Rows, Dim::Is(4)],
        }
    }
}

/// One expected output dimension: a fixed size, the anchor count N that the format leaves
/// open, or a count of detections, which may be none.
#[derive(Debug, Clone, Copy)]
enum Dim {
    Is(usize),
    Anchors,
    Rows,
}

impl Dim {
    fn accepts(self, dim: i64) -> bool {
        let dynamic = dim == -1;
        dynamic
            || match self {
                Dim::Is(size) => usize::try_from(dim).is_ok_and(|dim| dim == size),
                Dim::Anchors => dim > 0,
                Dim::Rows => dim >= 0,
            }
    }
}

/// An expected shape written like "[1, 84, N]".
fn describe(shape: &[Dim]) -> String {
    let dims: Vec<String> = shape
        .iter()
        .map(|dim| match dim {
            Dim::Is(size) => size.to_string(),
            Dim::Anchors | Dim::Rows => "N".to_string(),
        })
        .collect();
    format!("[{}]", dims.join(", "))
}

/// Anchor points of YOLOX's three grids for a W×H input.
fn yolox_anchor_count(input_w: usize, input_h: usize) -> usize {
    YOLOX_STRIDES.iter().map(|s| (input_w / s) * (input_h / s)).sum()
}

/// A scored box in model-input pixels, before NMS.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Candidate {
    pub x1: f32,
    pub y1: f32,
    pub x2: f32,
    pub y2: f32,
    pub class_id: usize,
    pub score: f32,
}

impl Candidate {
    fn from_centre(cx: f32, cy: f32, w: f32, h: f32, class_id: usize, score: f32) -> Candidate {
        let (half_w, half_h) = (w / 2.0, h / 2.0);
        Candidate {
            x1: cx - half_w,
            y1: cy - half_h,
            x2: cx + half_w,
            y2: cy + half_h,
            class_id,
            score,
        }
    }

    fn area(&self) -> f32 {
        (self.x2 - self.x1).max(0.0) * (self.y2 - self.y1).max(0.0)
    }

    /// Intersection over union; 0 for disjoint or empty boxes.
    fn iou(&self, other: &Candidate) -> f32 {
        let ix = self.x2.min(other.x2) - self.x1.max(other.x1);
        let iy = self.y2.min(other.y2) - self.y1.max(other.y1);
        if ix <= 0.0 || iy <= 0.0 {
            return 0.0;
        }
        let inter = ix * iy;
        let union = self.area() + other.area() - inter;
        if union <= 0.0 { 0.0 } else { inter / union }
    }
}

/// Decode one image's output (the whole output tensors in row-major order, shapes already
/// checked) into `out` (cleared first), keeping candidates with score >= min_score.
///
/// yolox: grid decode (cx = (o_x + gx)*s, w = exp(o_w)*s ...), score = objectness * class score,
/// taking the best class per anchor. yolov5: rows [cx, cy, w, h, obj, C scores] in input pixels,
/// score = obj * best class score. yolov8: channels-first [4+C, N]: column n is
/// [cx, cy, w, h, C scores], score = best class score. yolo_end2end: rows
/// [x1, y1, x2, y2, score, class]. rtdetr: rows [cx, cy, w, h, C scores], the box normalised to
/// the input. yolo_nas: box rows [x1, y1, x2, y2] and score rows [C scores]. detr: a label, a box
/// [x1, y1, x2, y2] and a score per detection.
///
/// Scores are taken to be probabilities (≤ 1), which lets an anchor be rejected on its
/// objectness alone. Only the first image of a batch is read; tensors shorter than their shape
/// says yield only the detections they hold, and a class outside the class list is dropped.
pub fn decode(
    format: ModelFormat,
    tensors: Tensors<'_>,
    classes: usize,
    (input_w, input_h): (usize, usize),
    min_score: f32,
    out: &mut Vec<Candidate>,
) {
    out.clear();
    match (format, tensors) {
        (ModelFormat::Yolox, Tensors::One { data, shape }) => {
            let rows = data.chunks_exact(5 + classes).take(axis(shape, 1));
            decode_yolox(rows, input_w, input_h, min_score, out);
        }
        (ModelFormat::Yolov5, Tensors::One { data, shape }) => {
            let rows = data.chunks_exact(5 + classes).take(axis(shape, 1));
            decode_yolov5(rows, min_score, out);
        }
        (ModelFormat::Yolov8, Tensors::One { data, shape }) => {
            decode_yolov8(data, axis(shape, 2), classes, min_score, out)
        }
        (ModelFormat::YoloEnd2End, Tensors::One { data, shape }) => {
            for row in data.chunks_exact(6).take(axis(shape, 1)) {
                let &[x1, y1, x2, y2, score, class] = row else { continue };
                push_corners(out, [x1, y1, x2, y2], class as usize, score, classes, min_score);
            }
        }
        (ModelFormat::Rtdetr, Tensors::One { data, shape }) => {
            let (w, h) = (input_w as f32, input_h as f32);
            for row in data.chunks_exact(4 + classes).take(axis(shape, 1)) {
                let (class_id, score) = best_class(&row[4..]);
                if score >= min_score {
                    let [cx, cy, bw, bh] = [row[0] * w, row[1] * h, row[2] * w, row[3] * h];
                    out.push(Candidate::from_centre(cx, cy, bw, bh, class_id, score));
                }
            }
        }
        (ModelFormat::YoloNas, Tensors::BoxesScores { boxes, scores }) => {
            for (corners, scores) in boxes.chunks_exact(4).zip(scores.chunks_exact(classes)) {
                let (class_id, score) = best_class(scores);
                let corners = [corners[0], corners[1], corners[2], corners[3]];
                push_corners(out, corners, class_id, score, classes, min_score);
            }
        }
        (ModelFormat::Detr, Tensors::Detr { labels, boxes, scores }) => {
            for ((&label, corners), &score) in labels.iter().zip(boxes.chunks_exact(4)).zip(scores)
            {
                let Ok(class_id) = usize::try_from(label) else { continue };
                let corners = [corners[0], corners[1], corners[2], corners[3]];
                push_corners(out, corners, class_id, score, classes, min_score);
            }
        }
        // find_outputs pairs each format with its tensors; another pairing has nothing to read.
        _ => {}
    }
}

/// Dimension `index` of a shape, 0 when it has none.
fn axis(shape: &[usize], index: usize) -> usize {
    shape.get(index).copied().unwrap_or(0)
}

/// Adds a corner box when its class is known and its score reaches `min_score`.
fn push_corners(
    out: &mut Vec<Candidate>,
    [x1, y1, x2, y2]: [f32; 4],
    class_id: usize,
    score: f32,
    classes: usize,
    min_score: f32,
) {
    if class_id < classes && score >= min_score {
        out.push(Candidate { x1, y1, x2, y2, class_id, score });
    }
}

/// YOLOX rows are offsets from their anchor's grid cell, in units of the stride.
fn decode_yolox<'a>(
    mut rows: impl Iterator<Item = &'a [f32]>,
    input_w: usize,
    input_h: usize,
    min_score: f32,
    out: &mut Vec<Candidate>,
) {
    for stride in YOLOX_STRIDES {
        let grid_w = input_w / stride;
        let cells = grid_w * (input_h / stride);
        let s = stride as f32;
        for (cell, row) in rows.by_ref().take(cells).enumerate() {
            let &[ox, oy, ow, oh, objectness, ref class_scores @ ..] = row else {
                continue;
            };
            let Some((class_id, score)) = objectness_score(objectness, class_scores, min_score)
            else {
                continue;
            };
            let (gx, gy) = ((cell % grid_w) as f32, (cell / grid_w) as f32);
            out.push(Candidate::from_centre(
                (ox + gx) * s,
                (oy + gy) * s,
                ow.exp() * s,
                oh.exp() * s,
                class_id,
                score,
            ));
        }
    }
}

/// YOLOv5 rows already hold the box in input pixels.
fn decode_yolov5<'a>(
    rows: impl Iterator<Item = &'a [f32]>,
    min_score: f32,
    out: &mut Vec<Candidate>,
) {
    for row in rows {
        let &[cx, cy, w, h, objectness, ref class_scores @ ..] = row else {
            continue;
        };
        if let Some((class_id, score)) = objectness_score(objectness, class_scores, min_score) {
            out.push(Candidate::from_centre(cx, cy, w, h, class_id, score));
        }
    }
}

/// YOLOv8 is channels-first: channel c of anchor n is at `c * anchors + n`. Anchors are taken in
/// blocks so the best-class search walks each class row contiguously.
fn decode_yolov8(
    data: &[f32],
    anchors: usize,
    classes: usize,
    min_score: f32,
    out: &mut Vec<Candidate>,
) {
    let Some(data) = data.get(..(4 + classes) * anchors) else {
        return;
    };
    if anchors == 0 {
        return;
    }
    let (boxes, class_rows) = data.split_at(4 * anchors);
    let [cx, cy, w, h] = box_rows(boxes, anchors);
    for start in (0..anchors).step_by(YOLOV8_BLOCK) {
        let block = start..(start + YOLOV8_BLOCK).min(anchors);
        let mut best_score = [f32::NEG_INFINITY; YOLOV8_BLOCK];
        let mut best_class = [0usize; YOLOV8_BLOCK];
        for (class_id, row) in class_rows.chunks_exact(anchors).enumerate() {
            let scores = best_score.iter_mut().zip(best_class.iter_mut());
            for ((best, best_id), &score) in scores.zip(&row[block.clone()]) {
                if score > *best {
                    *best = score;
                    *best_id = class_id;
                }
            }
        }
        let bests = best_score.iter().zip(&best_class);
        for (n, (&score, &class_id)) in block.zip(bests) {
            if score >= min_score {
                out.push(Candidate::from_centre(cx[n], cy[n], w[n], h[n], class_id, score));
            }
        }
    }
}

/// The cx, cy, w and h channels of a channels-first box block.
fn box_rows(boxes: &[f32], anchors: usize) -> [&[f32]; 4] {
    let (cx, rest) = boxes.split_at(anchors);
    let (cy, rest) = rest.split_at(anchors);
    let (w, h) = rest.split_at(anchors);
    [cx, cy, w, h]
}

/// Objectness times the best class score, with the best class, if it reaches `min_score`.
/// Class scores are at most 1, so low objectness rejects without scanning the classes.
fn objectness_score(objectness: f32, class_scores: &[f32], min_score: f32) -> Option<(usize, f32)> {
    if objectness < min_score {
        return None;
    }
    let (class_id, best) = best_class(class_scores);
    let score = objectness * best;
    (score >= min_score).then_some((class_id, score))
}

/// Index and value of the highest score; the first wins a tie.
fn best_class(scores: &[f32]) -> (usize, f32) {
    scores.iter().enumerate().fold((0, f32::NEG_INFINITY), |best, (class_id, &score)| {
        if score > best.1 { (class_id, score) } else { best }
    })
}

/// Non-maximum suppression in place, best score first: a box is dropped when its IoU with a
/// kept box of the same class exceeds `iou`, or with a kept box of another class exceeds
/// `cross_class_iou` (> drops; == keeps). The second threshold is high: it only removes the same
/// object given a second label (a van scored as both car and truck) and keeps overlapping objects
/// of different classes, such as a rider on a bicycle. Keeps order by descending score.
pub fn nms(cands: &mut Vec<Candidate>, iou: f32, cross_class_iou: f32) {
    cands.sort_by(|a, b| b.score.total_cmp(&a.score));
    // Survivors are compacted into the front of the vector as they are found.
    let mut kept = 0;
    for next in 0..cands.len() {
        let candidate = cands[next];
        let suppressed = cands[..kept].iter().any(|k| {
            let limit = if k.class_id == candidate.class_id { iou } else { cross_class_iou };
            k.iou(&candidate) > limit
        });
        if !suppressed {
            cands[kept] = candidate;
            kept += 1;
        }
    }
    cands.truncate(kept);
}

#[cfg(test)]
mod tests {
    use super::*;

    const CLASSES: usize = 2;

    fn assert_close(actual: &Candidate, expected: &Candidate) {
        let coords = |c: &Candidate| [c.x1, c.y1, c.x2, c.y2, c.score];
        let close = coords(actual).iter().zip(coords(expected)).all(|(a, e)| (a - e).abs() < 1e-4);
        assert!(close && actual.class_id == expected.class_id, "{actual:?} != {expected:?}");
    }

    fn cand(x1: f32, y1: f32, x2: f32, y2: f32, class_id: usize, score: f32) -> Candidate {
        Candidate { x1, y1, x2, y2, class_id, score }
    }

    #[test]
    fn yolox_shape_check() {
        let yolox = ModelFormat::Yolox;
        assert_eq!(yolox.check_output_shape(&[1, 3549, 85], 80, 416, 416), Ok(()));
        assert_eq!(yolox.check_output_shape(&[-1, -1, 85], 80, 416, 416), Ok(()));
        assert_eq!(yolox.check_output_shape(&[1, 8400, 85], 80, 640, 640), Ok(()));

        let wrong_n = yolox.check_output_shape(&[1, 8400, 85], 80, 416, 416).unwrap_err();
        assert!(wrong_n.contains("expected [1, 3549, 85] for a 416x416 input"), "{wrong_n}");
        let wrong_classes = yolox.check_output_shape(&[1, 3549, 85], 3, 416, 416).unwrap_err();
        assert!(wrong_classes.contains("expected [1, 3549, 8]"), "{wrong_classes}");
    }

    #[test]
    fn yolov5_shape_check() {
        let yolov5 = ModelFormat::Yolov5;
        assert_eq!(yolov5.check_output_shape(&[1, 25200, 85], 80, 640, 640), Ok(()));
        assert_eq!(yolov5.check_output_shape(&[1, -1, 85], 80, 640, 640), Ok(()));

        let transposed = yolov5.check_output_shape(&[1, 85, 25200], 80, 640, 640).unwrap_err();
        assert!(transposed.contains("expected [1, N, 85]"), "{transposed}");
        let missing_batch = yolov5.check_output_shape(&[25200, 85], 80, 640, 640).unwrap_err();
        assert!(missing_batch.contains("expected [1, N, 85]"), "{missing_batch}");
    }

    #[test]
    fn yolov8_shape_check() {
        let yolov8 = ModelFormat::Yolov8;
        assert_eq!(yolov8.check_output_shape(&[1, 84, 8400], 80, 640, 640), Ok(()));
        assert_eq!(yolov8.check_output_shape(&[1, 84, -1], 80, 640, 640), Ok(()));

        assert_eq!(
            yolov8.check_output_shape(&[1, 3549, 85], 80, 416, 416),
            Err("output shape [1, 3549, 85] does not fit yolov8 with 80 classes: expected [1, 84, N]"
                .to_string())
        );
        let transposed = yolov8.check_output_shape(&[1, 8400, 84], 80, 640, 640).unwrap_err();
        assert!(transposed.contains("expected [1, 84, N]"), "{transposed}");
        let wrong_classes = yolov8.check_output_shape(&[1, 84, 8400], 2, 640, 640).unwrap_err();
        assert!(wrong_classes.contains("expected [1, 6, N]"), "{wrong_classes}");
    }

    #[test]
    fn yolox_decodes_grid_offsets_at_the_right_anchor() {
        // 64x64 input: grids 8x8 (stride 8), 4x4 (stride 16), 2x2 (stride 32) = 84 anchors.
        let (w, h) = (64, 64);
        let anchors = yolox_anchor_count(w, h);
        assert_eq!(anchors, 84);
        let row_len = 5 + CLASSES;
        let mut data = vec![0.0; anchors * row_len];
        let mut set_row = |anchor: usize, values: [f32; 7]| {
            data[anchor * row_len..][..row_len].copy_from_slice(&values);
        };
        // Stride 16, grid x 3, y 1: after the 64 stride-8 anchors, row 1 of the 4-wide grid.
        let ln2 = 2.0f32.ln();
        set_row(64 + 4 + 3, [0.5, 0.25, ln2, 0.0, 0.8, 0.1, 0.9]);
        // A strong anchor whose best product (0.9 * 0.3) stays under the threshold.
        set_row(10, [0.0, 0.0, 0.0, 0.0, 0.9, 0.3, 0.2]);

        let mut out = vec![cand(0.0, 0.0, 0.0, 0.0, 0, 0.0)];
        let tensors = Tensors::One { data: &data, shape: &[1, anchors, row_len] };
        decode(ModelFormat::Yolox, tensors, CLASSES, (w, h), 0.35, &mut out);

        // cx = (0.5 + 3) * 16 = 56, cy = (0.25 + 1) * 16 = 20, w = 2 * 16 = 32, h = 16.
        assert_eq!(out.len(), 1, "{out:?}");
        assert_close(&out[0], &cand(40.0, 12.0, 72.0, 28.0, 1, 0.8 * 0.9));
    }

    #[test]
    fn yolox_uses_the_last_stride_for_the_last_anchors() {
        let (w, h) = (64, 64);
        let row_len = 5 + CLASSES;
        let mut data = vec![0.0; 84 * row_len];
        // The last anchor is stride 32, grid (1, 1).
        data[83 * row_len..].copy_from_slice(&[0.0, 0.0, 0.0, 0.0, 1.0, 0.0, 1.0]);
        let mut out = Vec::new();
        let tensors = Tensors::One { data: &data, shape: &[1, 84, row_len] };
        decode(ModelFormat::Yolox, tensors, CLASSES, (w, h), 0.5, &mut out);
        assert_eq!(out, [cand(16.0, 16.0, 48.0, 48.0, 1, 1.0)]);
    }

    #[test]
    fn yolov5_decodes_rows_in_input_pixels() {
        let data = [
            [10.0, 20.0, 4.0, 6.0, 0.9, 0.2, 0.8],
            [50.0, 50.0, 10.0, 10.0, 0.5, 0.6, 0.1],
            [0.0, 0.0, 0.0, 0.0, 0.0, 1.0, 1.0],
        ]
        .concat();
        let mut out = Vec::new();
        let tensors = Tensors::One { data: &data, shape: &[1, 3, 7] };
        decode(ModelFormat::Yolov5, tensors, CLASSES, (64, 64), 0.35, &mut out);
        assert_eq!(out, [cand(8.0, 17.0, 12.0, 23.0, 1, 0.9 * 0.8)]);
    }

    #[test]
    fn yolov8_decodes_channels_first_columns() {
        // 70 anchors spans two decode blocks; the kept box is in the second.
        let anchors = 70;
        let mut data = vec![0.0; (4 + CLASSES) * anchors];
        let mut set_column = |n: usize, values: [f32; 6]| {
            for (channel, value) in values.into_iter().enumerate() {
                data[channel * anchors + n] = value;
            }
        };
        set_column(66, [30.0, 40.0, 10.0, 20.0, 0.1, 0.7]);
        set_column(1, [5.0, 5.0, 2.0, 2.0, 0.2, 0.3]);
        let mut out = Vec::new();
        let tensors = Tensors::One { data: &data, shape: &[1, 4 + CLASSES, anchors] };
        decode(ModelFormat::Yolov8, tensors, CLASSES, (64, 64), 0.35, &mut out);
        assert_eq!(out, [cand(25.0, 30.0, 35.0, 50.0, 1, 0.7)]);
    }

    #[test]
    fn end2end_rows_are_corners_with_score_and_class() {
        let data = [
            [1.0, 2.0, 11.0, 12.0, 0.9, 1.0],
            [5.0, 5.0, 6.0, 6.0, 0.2, 0.0],
            [0.0, 0.0, 9.0, 9.0, 0.8, 7.0],
        ]
        .concat();
        let mut out = Vec::new();
        let tensors = Tensors::One { data: &data, shape: &[1, 3, 6] };
        decode(ModelFormat::YoloEnd2End, tensors, CLASSES, (64, 64), 0.35, &mut out);
        assert_eq!(out, [cand(1.0, 2.0, 11.0, 12.0, 1, 0.9)], "low score and class 7 dropped");
    }

    #[test]
    fn rtdetr_boxes_are_normalised_centres() {
        let data = [[0.5, 0.25, 0.25, 0.5, 0.1, 0.6], [0.1, 0.1, 0.1, 0.1, 0.3, 0.2]].concat();
        let mut out = Vec::new();
        let tensors = Tensors::One { data: &data, shape: &[1, 2, 4 + CLASSES] };
        decode(ModelFormat::Rtdetr, tensors, CLASSES, (64, 32), 0.35, &mut out);
        assert_eq!(out, [cand(24.0, 0.0, 40.0, 16.0, 1, 0.6)]);
    }

    #[test]
    fn yolo_nas_pairs_box_rows_with_score_rows() {
        let boxes = [[1.0, 2.0, 3.0, 4.0], [10.0, 20.0, 30.0, 40.0]].concat();
        let scores = [[0.1, 0.2], [0.7, 0.4]].concat();
        let mut out = Vec::new();
        let tensors = Tensors::BoxesScores { boxes: &boxes, scores: &scores };
        decode(ModelFormat::YoloNas, tensors, CLASSES, (64, 64), 0.35, &mut out);
        assert_eq!(out, [cand(10.0, 20.0, 30.0, 40.0, 0, 0.7)]);
    }

    #[test]
    fn detr_reads_labels_boxes_and_scores_apart() {
        let labels = [1, 0, -1];
        let boxes = [[1.0, 2.0, 3.0, 4.0], [5.0, 6.0, 7.0, 8.0], [0.0, 0.0, 1.0, 1.0]].concat();
        let scores = [0.9, 0.1, 0.9];
        let mut out = Vec::new();
        let tensors = Tensors::Detr { labels: &labels, boxes: &boxes, scores: &scores };
        decode(ModelFormat::Detr, tensors, CLASSES, (64, 64), 0.35, &mut out);
        assert_eq!(out, [cand(1.0, 2.0, 3.0, 4.0, 1, 0.9)], "low score and label -1 dropped");
    }

    #[test]
    fn outputs_are_found_by_shape_and_name() {
        let nas: [(&str, &[i64]); 2] = [("scores", &[1, 8400, 80]), ("boxes", &[1, 8400, 4])];
        assert_eq!(
            ModelFormat::YoloNas.find_outputs(&nas, 80, 640, 640),
            Ok(Outputs::BoxesScores { boxes: 1, scores: 0 })
        );
        let wrong = ModelFormat::YoloNas.find_outputs(&nas, 2, 640, 640).unwrap_err();
        assert!(wrong.contains("expected boxes [1, N, 4] and scores [1, N, 2]"), "{wrong}");

        let detr: [(&str, &[i64]); 3] =
            [("scores", &[1, 300]), ("labels", &[1, 300]), ("boxes", &[1, 300, 4])];
        assert_eq!(
            ModelFormat::Detr.find_outputs(&detr, 80, 640, 640),
            Ok(Outputs::Detr { labels: 1, boxes: 2, scores: 0 })
        );
        let renamed: [(&str, &[i64]); 3] =
            [("logits", &[1, 300]), ("labels", &[1, 300]), ("boxes", &[1, 300, 4])];
        let wrong = ModelFormat::Detr.find_outputs(&renamed, 80, 640, 640).unwrap_err();
        assert!(
            wrong.contains("`logits` [1, 300]") && wrong.contains("`scores` [1, N]"),
            "{wrong}"
        );

        let end2end: [(&str, &[i64]); 1] = [("output0", &[1, 300, 6])];
        assert_eq!(ModelFormat::YoloEnd2End.find_outputs(&end2end, 80, 640, 640), Ok(Outputs::One));
        let none_kept: [(&str, &[i64]); 1] = [("output0", &[1, 0, 6])];
        assert_eq!(
            ModelFormat::YoloEnd2End.find_outputs(&none_kept, 80, 640, 640),
            Ok(Outputs::One)
        );
        let rtdetr = ModelFormat::Rtdetr.check_output_shape(&[1, 300, 85], 80, 640, 640);
        assert!(rtdetr.unwrap_err().contains("expected [1, N, 84]"));
    }

    #[test]
    fn nms_keeps_the_best_of_overlapping_same_class_boxes() {
        let mut cands = vec![
            cand(1.0, 1.0, 11.0, 11.0, 0, 0.6),
            cand(0.0, 0.0, 10.0, 10.0, 0, 0.9),
            cand(50.0, 50.0, 60.0, 60.0, 0, 0.5),
        ];
        nms(&mut cands, 0.45, 0.8);
        assert_eq!(
            cands,
            [cand(0.0, 0.0, 10.0, 10.0, 0, 0.9), cand(50.0, 50.0, 60.0, 60.0, 0, 0.5)]
        );
    }

    #[test]
    fn nms_keeps_overlapping_boxes_of_different_classes() {
        // A rider on a bicycle: IoU 0.6, above the same-class limit, below the cross-class one.
        let mut cands = vec![cand(0.0, 0.0, 10.0, 10.0, 0, 0.7), cand(0.0, 0.0, 10.0, 6.0, 1, 0.8)];
        nms(&mut cands, 0.45, 0.8);
        assert_eq!(cands, [cand(0.0, 0.0, 10.0, 6.0, 1, 0.8), cand(0.0, 0.0, 10.0, 10.0, 0, 0.7)]);
    }

    #[test]
    fn nms_drops_a_second_label_on_the_same_object() {
        // A van scored as truck and as car on nearly the same box.
        let mut cands =
            vec![cand(0.0, 0.0, 10.0, 10.0, 2, 0.64), cand(0.0, 0.0, 10.0, 9.5, 7, 0.75)];
        nms(&mut cands, 0.45, 0.8);
        assert_eq!(cands, [cand(0.0, 0.0, 10.0, 9.5, 7, 0.75)]);
    }

    #[test]
    fn nms_keeps_a_box_at_exactly_the_threshold() {
        // The second box is half of the first: IoU exactly 0.5.
        let boxes = [cand(0.0, 0.0, 4.0, 1.0, 0, 0.9), cand(0.0, 0.0, 2.0, 1.0, 0, 0.8)];
        assert_eq!(boxes[0].iou(&boxes[1]), 0.5);

        let mut at_threshold = boxes.to_vec();
        nms(&mut at_threshold, 0.5, 1.0);
        assert_eq!(at_threshold, boxes);

        let mut below_threshold = boxes.to_vec();
        nms(&mut below_threshold, 0.49, 1.0);
        assert_eq!(below_threshold, boxes[..1]);
    }
}
