//! `[[models]]`: the ONNX models a node loads, what their outputs look like and what their
//! classes are called.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

/// What a model file is: a detector of one of the YOLO families, or an image classifier
/// (the second stage of cascade algorithms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    Detector(ModelFormat),
    Classifier,
}

impl ModelKind {
    /// A config's `format`: `yolox`, `yolov5`, `yolov8`, `yolo11` or `classifier`.
    pub fn parse(text: &str) -> Option<ModelKind> {
        match text {
            "classifier" => Some(ModelKind::Classifier),
            other => ModelFormat::parse(other).map(ModelKind::Detector),
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            ModelKind::Detector(format) => format.name(),
            ModelKind::Classifier => "classifier",
        }
    }
}

/// A detector's output layout. How each is decoded is the infer stage's business
/// (`src/infer/decode.rs`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelFormat {
    Yolox,
    Yolov5,
    Yolov8,
}

impl ModelFormat {
    /// "yolox" | "yolov5" | "yolov8" | "yolo11" (YOLO11 has YOLOv8's layout).
    pub fn parse(s: &str) -> Option<ModelFormat> {
        match s {
            "yolox" => Some(ModelFormat::Yolox),
            "yolov5" => Some(ModelFormat::Yolov5),
            "yolov8" | "yolo11" => Some(ModelFormat::Yolov8),
            _ => None,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            ModelFormat::Yolox => "yolox",
            ModelFormat::Yolov5 => "yolov5",
            ModelFormat::Yolov8 => "yolov8",
        }
    }
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub name: String,
    pub path: PathBuf,
    /// `yolox`, `yolov5`, `yolov8`/`yolo11` for detectors; `classifier` for the second stage of
    /// cascade algorithms.
    #[serde(deserialize_with = "model_format")]
    pub format: ModelKind,
    pub classes: ClassList,
    /// Renames the model's classes to canonical names, e.g. `{ "garbage_pile" = "garbage" }`:
    /// algorithms look for canonical names (COCO's where COCO has the class).
    #[serde(default)]
    pub class_map: BTreeMap<String, String>,
    /// `[width, height]`; taken from the model when absent and the model's input is fixed.
    pub input_size: Option<[usize; 2]>,
    #[serde(default = "default_confidence")]
    pub confidence: f32,
    #[serde(default = "default_nms_iou")]
    pub nms_iou: f32,
    /// Boxes of different classes overlapping more than this are one object with two labels:
    /// the lower-scoring one is dropped. 1 keeps them all (pure class-wise NMS).
    #[serde(default = "default_cross_class_iou")]
    pub cross_class_iou: f32,
    /// ONNX Runtime intra-op threads. One leaves the other core to GStreamer's decoders, which
    /// measured more frames/s on a 2-core box than two inference threads.
    #[serde(default = "default_threads")]
    pub threads: usize,
    /// Sessions of the model run side by side, so cameras sharing it (and one camera's next
    /// frame) need not wait for each other; one per `threads` cores when absent.
    pub sessions: Option<usize>,
    /// Expected SHA-256 of the model file; a mismatch (wrong or corrupt file) is a config error.
    pub sha256: Option<String>,
}

/// A model's class names: a file with one name per line, or an inline array.
#[derive(Debug, Clone, Deserialize, PartialEq)]
#[serde(untagged, expecting = "a class file path or a list of class names")]
pub enum ClassList {
    Inline(Vec<String>),
    File(PathBuf),
}

impl ModelConfig {
    /// How many sessions of the model to run: `sessions`, or as many as the cores hold at
    /// `threads` each.
    pub fn session_count(&self) -> usize {
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        self.sessions.unwrap_or((cores / self.threads.max(1)).max(1))
    }
}

impl ModelConfig {
    /// The class names after `class_map`, in the model's class order.
    pub fn canonical_class_names(&self) -> Result<Vec<String>, String> {
        Ok(self
            .class_names()?
            .into_iter()
            .map(|c| self.class_map.get(&c).cloned().unwrap_or(c))
            .collect())
    }

    /// The class names, from the inline list or the class file (one per line, blank lines and
    /// `#` comments ignored).
    pub fn class_names(&self) -> Result<Vec<String>, String> {
        match &self.classes {
            ClassList::Inline(names) => Ok(names.clone()),
            ClassList::File(path) => std::fs::read_to_string(path)
                .map(|text| {
                    text.lines()
                        .map(str::trim)
                        .filter(|l| !l.is_empty() && !l.starts_with('#'))
                        .map(String::from)
                        .collect()
                })
                .map_err(|e| format!("cannot read class file {}: {e}", path.display())),
        }
    }
}

fn default_confidence() -> f32 {
    0.35
}
fn default_nms_iou() -> f32 {
    0.45
}
fn default_cross_class_iou() -> f32 {
    0.8
}
fn default_threads() -> usize {
    1
}

fn model_format<'de, D: Deserializer<'de>>(d: D) -> Result<ModelKind, D::Error> {
    let text = String::deserialize(d)?;
    ModelKind::parse(&text).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "unknown model format `{text}`; expected yolox, yolov5, yolov8, yolo11 or classifier"
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parse_and_name() {
        assert_eq!(ModelFormat::parse("yolox"), Some(ModelFormat::Yolox));
        assert_eq!(ModelFormat::parse("yolov5"), Some(ModelFormat::Yolov5));
        assert_eq!(ModelFormat::parse("yolov8"), Some(ModelFormat::Yolov8));
        assert_eq!(ModelFormat::parse("yolo11"), Some(ModelFormat::Yolov8));
        assert_eq!(ModelFormat::parse("yolov7"), None);
        for format in [ModelFormat::Yolox, ModelFormat::Yolov5, ModelFormat::Yolov8] {
            assert_eq!(ModelFormat::parse(format.name()), Some(format));
        }
    }
}
