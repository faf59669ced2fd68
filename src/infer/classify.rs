//! Second-stage classifiers: an image classifier run on the crop of one tracked object, for
//! cascade algorithms (a rider without a helmet, an uncovered muck truck, a cook without a hat).
//!
//! A classifier model (`format = "classifier"`) takes one image `[1, 3, H, W]` and gives one
//! score per label `[1, C]`, already through its softmax or sigmoid. The crop is letterboxed to
//! the input keeping its aspect, RGB scaled to 0..1, the usual layout of exported classifiers,
//! unless the model's config sets its preprocessing.

use std::sync::Arc;

use super::letterbox::{InputSpec, letterbox_into};
use super::{ImageSession, InferError, LoadError, ModelSummary, open, output_shape};
use crate::config::{ModelConfig, ModelKind};
use crate::frame::Frame;
use crate::geometry::BBox;

/// A loaded classifier.
pub struct Classifier {
    pub name: String,
    pub summary: ModelSummary,
    labels: Vec<Arc<str>>,
    model: ImageSession,
}

/// Working memory for crops, reused from object to object (the input tensor is the session's).
#[derive(Default)]
pub struct CropScratch {
    crop: Vec<u8>,
}

impl Classifier {
    pub fn load(config: &ModelConfig) -> Result<Classifier, LoadError> {
        if config.format != ModelKind::Classifier {
            return Err(LoadError::NotAClassifier);
        }
        let mut opened = open(config)?;
        let shape = output_shape(&opened.sessions[0])?;
        let classes = std::mem::take(&mut opened.classes);
        let fits = matches!(shape[..], [n, c] if (n == 1 || n == -1) && (c == -1 || c == classes.len() as i64));
        if !fits {
            return Err(LoadError::ClassifierOutput { shape, labels: classes.len() });
        }
        let (width, height) = (opened.width, opened.height);
        let mut classifier = Classifier {
            name: config.name.clone(),
            summary: opened.summary.clone(),
            labels: classes.into_iter().map(Arc::from).collect(),
            model: ImageSession::new(
                opened,
                InputSpec::new(width, height, &config.preprocessing()),
            ),
        };
        // Proves the model runs, and moves ONNX Runtime's first-run set-up to start-up.
        let blank = Frame {
            width: 8,
            height: 8,
            data: vec![0; 8 * 8 * 3].into(),
            stream_time_s: 0.0,
            captured_at: std::time::SystemTime::now(),
            metadata: Vec::new(),
        };
        let whole = BBox { x: 0.0, y: 0.0, w: 1.0, h: 1.0 };
        classifier.classify(&blank, whole, &mut CropScratch::default())?;
        classifier.summary.placement = classifier.model.placement();
        Ok(classifier)
    }

    /// The best label for the object in `bbox` (normalized) of `frame`, with its score.
    pub fn classify(
        &self,
        frame: &Frame,
        bbox: BBox,
        scratch: &mut CropScratch,
    ) -> Result<(Arc<str>, f32), InferError> {
        let (w, h) = crop_into(frame, bbox, &mut scratch.crop).ok_or(InferError::EmptyBox)?;
        let labels = self.labels.len();
        let crop = &scratch.crop;
        let letterbox =
            |spec: &InputSpec, tensor: &mut [f32]| letterbox_into(crop, w, h, spec, tensor);
        let (_, (best, score)) = self.model.run(letterbox, |outputs| {
            let (_, scores) =
                outputs[0].try_extract_tensor::<f32>().map_err(InferError::OutputType)?;
            scores
                .iter()
                .take(labels)
                .copied()
                .enumerate()
                .max_by(|a, b| a.1.total_cmp(&b.1))
                .ok_or(InferError::NoScores)
        })?;
        Ok((self.labels[best].clone(), score))
    }

    pub fn labels(&self) -> impl Iterator<Item = &str> {
        self.labels.iter().map(|l| l.as_ref())
    }
}

/// Copies the pixels of `bbox` out of `frame` as packed BGR; their width and height, or `None`
/// for a box without pixels.
fn crop_into(frame: &Frame, bbox: BBox, crop: &mut Vec<u8>) -> Option<(usize, usize)> {
    let b = bbox.clamped();
    let x1 = (b.x * frame.width as f32).floor() as usize;
    let y1 = (b.y * frame.height as f32).floor() as usize;
    let x2 = ((b.x + b.w) * frame.width as f32).ceil().min(frame.width as f32) as usize;
    let y2 = ((b.y + b.h) * frame.height as f32).ceil().min(frame.height as f32) as usize;
    if x2 <= x1 || y2 <= y1 {
        return None;
    }
    crop.clear();
    for row in frame.bgr().chunks_exact(frame.width * 3).take(y2).skip(y1) {
        crop.extend_from_slice(&row[x1 * 3..x2 * 3]);
    }
    Some((x2 - x1, y2 - y1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn crops_take_the_pixels_of_the_box_and_refuse_empty_boxes() {
        // A 4x2 frame whose pixel (x, y) holds x + 10 y in every channel.
        let data =
            (0..2).flat_map(|y| (0..4).flat_map(move |x| [x + 10 * y; 3])).collect::<Vec<u8>>();
        let frame = Frame {
            width: 4,
            height: 2,
            data: data.into(),
            stream_time_s: 0.0,
            captured_at: std::time::SystemTime::UNIX_EPOCH,
            metadata: Vec::new(),
        };
        let mut crop = Vec::new();
        let right_half = BBox { x: 0.5, y: 0.0, w: 0.5, h: 1.0 };
        assert_eq!(crop_into(&frame, right_half, &mut crop), Some((2, 2)));
        assert_eq!(crop, [2, 2, 2, 3, 3, 3, 12, 12, 12, 13, 13, 13]);
        assert_eq!(crop_into(&frame, BBox { x: 0.5, y: 0.5, w: 0.0, h: 0.5 }, &mut crop), None);
        assert_eq!(crop_into(&frame, BBox { x: 1.2, y: 0.0, w: 0.5, h: 1.0 }, &mut crop), None);
    }
}
