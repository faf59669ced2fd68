//! `[[models]]`: the ONNX models a node loads, what their outputs look like and what their
//! classes are called.

use std::collections::BTreeMap;
use std::path::PathBuf;

use serde::{Deserialize, Deserializer};

/// What a model file is: a detector of one of the families cityeye decodes, or an image classifier
/// (the second stage of cascade algorithms).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ModelKind {
    Detector(ModelFormat),
    Classifier,
}

impl ModelKind {
    /// A config's `format`: a [`ModelFormat`]'s name or `classifier`.
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
    /// NMS-free or NMS-inside exports: one output [1, N, 6] of (x1, y1, x2, y2, score, class)
    /// in input pixels (YOLOv10, YOLO26).
    YoloEnd2End,
    /// The official DETR-family exports (RT-DETRv2, D-FINE, DEIM): inputs `images` and
    /// `orig_target_sizes`, outputs `labels`, `boxes` and `scores`.
    Detr,
    /// Ultralytics' RT-DETR export: [1, N, 4 + C], normalised cx, cy, w, h then class scores.
    Rtdetr,
    /// YOLO-NAS: boxes [1, N, 4] (x1, y1, x2, y2, input pixels) and scores [1, N, C].
    YoloNas,
}

/// Every format, for messages and tests.
pub const MODEL_FORMATS: [ModelFormat; 7] = [
    ModelFormat::Yolox,
    ModelFormat::Yolov5,
    ModelFormat::Yolov8,
    ModelFormat::YoloEnd2End,
    ModelFormat::Detr,
    ModelFormat::Rtdetr,
    ModelFormat::YoloNas,
];

impl ModelFormat {
    /// A format's name, or an alias naming the family: `yolo11` has YOLOv8's layout, `yolov10`
    /// and `yolo26` are `yolo_end2end`, `rtdetrv2`, `d_fine` and `deim` are `detr`.
    pub fn parse(s: &str) -> Option<ModelFormat> {
        match s {
            "yolox" => Some(ModelFormat::Yolox),
            "yolov5" => Some(ModelFormat::Yolov5),
            "yolov8" | "yolo11" => Some(ModelFormat::Yolov8),
            "yolo_end2end" | "yolov10" | "yolo26" => Some(ModelFormat::YoloEnd2End),
            "detr" | "rtdetrv2" | "d_fine" | "deim" => Some(ModelFormat::Detr),
            "rtdetr" => Some(ModelFormat::Rtdetr),
            "yolo_nas" => Some(ModelFormat::YoloNas),
            _ => None,
        }
    }

    pub fn name(&self) -> &'static str {
        match self {
            ModelFormat::Yolox => "yolox",
            ModelFormat::Yolov5 => "yolov5",
            ModelFormat::Yolov8 => "yolov8",
            ModelFormat::YoloEnd2End => "yolo_end2end",
            ModelFormat::Detr => "detr",
            ModelFormat::Rtdetr => "rtdetr",
            ModelFormat::YoloNas => "yolo_nas",
        }
    }

    /// How the family's official export wants its pixels: YOLOX raw BGR at the top-left;
    /// Ultralytics and YOLO-NAS RGB in 0..1, letterboxed centred; the DETR families (and
    /// Ultralytics' RT-DETR) RGB in 0..1, stretched to the input.
    pub fn preprocessing(&self) -> Preprocessing {
        let (channels, scale, resize) = match self {
            ModelFormat::Yolox => (ChannelOrder::Bgr, PixelScale::Raw, Resize::LetterboxTopLeft),
            ModelFormat::Yolov5
            | ModelFormat::Yolov8
            | ModelFormat::YoloEnd2End
            | ModelFormat::YoloNas => {
                (ChannelOrder::Rgb, PixelScale::Unit, Resize::LetterboxCentre)
            }
            ModelFormat::Detr | ModelFormat::Rtdetr => {
                (ChannelOrder::Rgb, PixelScale::Unit, Resize::Stretch)
            }
        };
        Preprocessing { channels, scale, mean: [0.0; 3], std: [1.0; 3], resize }
    }
}

/// The order of the model's three input planes.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ChannelOrder {
    Bgr,
    Rgb,
}

/// What a pixel's 0..255 value is multiplied by: `raw` 1, `unit` 1/255.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PixelScale {
    Raw,
    Unit,
}

impl PixelScale {
    pub fn factor(self) -> f32 {
        match self {
            PixelScale::Raw => 1.0,
            PixelScale::Unit => 1.0 / 255.0,
        }
    }
}

/// How the frame is fitted to the model's input: scaled keeping its aspect and padded (the
/// image at the top-left or centred), or stretched to fill it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Resize {
    LetterboxTopLeft,
    LetterboxCentre,
    Stretch,
}

/// A model's input preprocessing: each plane's value is `(pixel * scale - mean) / std`, per
/// plane in the model's channel order.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Preprocessing {
    pub channels: ChannelOrder,
    pub scale: PixelScale,
    pub mean: [f32; 3],
    pub std: [f32; 3],
    pub resize: Resize,
}

/// Where ONNX Runtime runs a model: its execution provider.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Device {
    #[default]
    Cpu,
    Openvino,
    Cuda,
    Tensorrt,
}

impl Device {
    pub fn name(self) -> &'static str {
        match self {
            Device::Cpu => "cpu",
            Device::Openvino => "openvino",
            Device::Cuda => "cuda",
            Device::Tensorrt => "tensorrt",
        }
    }
}

/// What happens when the configured device cannot run the model (or only some of its nodes):
/// `refuse` makes it a load error; `cpu` runs what the device does not take on the CPU, and
/// `check` and the status say so.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Fallback {
    Cpu,
    #[default]
    Refuse,
}

/// Arithmetic precision asked of an accelerator: OpenVINO's `precision`, TensorRT's FP16.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Precision {
    #[default]
    Fp32,
    Fp16,
}

/// OpenVINO's target: the CPU, the integrated GPU or the NPU.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, Default)]
#[serde(rename_all = "UPPERCASE")]
pub enum OpenvinoDevice {
    #[default]
    Cpu,
    Gpu,
    Npu,
}

#[derive(Debug, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct ModelConfig {
    pub name: String,
    pub path: PathBuf,
    /// A detector's [`ModelFormat`] (`yolox`, `yolov5`, `yolov8`, `yolo_end2end`, `detr`,
    /// `rtdetr`, `yolo_nas` or an alias); `classifier` for the second stage of cascade algorithms.
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
    /// Input planes `bgr` or `rgb`; the format's default when absent.
    pub channels: Option<ChannelOrder>,
    /// Pixel values `raw` (0..255) or `unit` (0..1); the format's default when absent.
    pub scale: Option<PixelScale>,
    /// Subtracted from each plane after `scale`, in the model's channel order.
    pub mean: Option<[f32; 3]>,
    /// Divides each plane after `mean`, in the model's channel order.
    pub std: Option<[f32; 3]>,
    /// `letterbox_top_left`, `letterbox_centre` or `stretch`; the format's default when absent.
    pub resize: Option<Resize>,
    /// The execution provider: `cpu`, `openvino`, `cuda` or `tensorrt`.
    #[serde(default)]
    pub device: Device,
    /// OpenVINO's target device: `CPU`, `GPU` or `NPU`.
    #[serde(default)]
    pub openvino_device: OpenvinoDevice,
    /// `fp32` or `fp16`: OpenVINO's inference precision, TensorRT's FP16 mode.
    #[serde(default)]
    pub precision: Precision,
    /// The GPU CUDA and TensorRT run on.
    #[serde(default)]
    pub device_id: u32,
    /// Frames of the cameras sharing the model run together, up to this many, when the model's
    /// batch dimension is dynamic; 1 runs each frame alone.
    #[serde(default = "default_max_batch")]
    pub max_batch: usize,
    /// How long a batch waits to fill, in milliseconds.
    #[serde(default = "default_batch_wait_ms")]
    pub batch_wait_ms: u64,
    /// What a device that cannot run the model (or some of its nodes) does: `refuse` or `cpu`.
    #[serde(default)]
    pub fallback: Fallback,
    /// Where TensorRT keeps the engines it builds: `<data_dir>/tensorrt/<model name>`, set when
    /// the config loads.
    #[serde(skip)]
    pub engine_cache: PathBuf,
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
    /// The device and its options, as `check` shows them: "cpu", "openvino GPU fp16, fallback
    /// cpu", "cuda 0, fallback refuse".
    pub fn describe_device(&self) -> String {
        let precision = match self.precision {
            Precision::Fp32 => "fp32",
            Precision::Fp16 => "fp16",
        };
        let options = match self.device {
            Device::Cpu => return "cpu".to_string(),
            Device::Openvino => format!("{:?} {precision}", self.openvino_device).to_uppercase(),
            Device::Cuda => format!("{}", self.device_id),
            Device::Tensorrt => {
                format!(
                    "{} {precision}, engines in {}",
                    self.device_id,
                    self.engine_cache.display()
                )
            }
        };
        let fallback = match self.fallback {
            Fallback::Cpu => "cpu",
            Fallback::Refuse => "refuse",
        };
        format!("{} {options}, fallback {fallback}", self.device.name())
    }

    /// The preprocessing the model gets: its format's, with what the config sets instead.
    pub fn preprocessing(&self) -> Preprocessing {
        let defaults = match self.format {
            ModelKind::Detector(format) => format.preprocessing(),
            // Exported classifiers usually take RGB in 0..1, letterboxed centred.
            ModelKind::Classifier => ModelFormat::Yolov8.preprocessing(),
        };
        Preprocessing {
            channels: self.channels.unwrap_or(defaults.channels),
            scale: self.scale.unwrap_or(defaults.scale),
            mean: self.mean.unwrap_or(defaults.mean),
            std: self.std.unwrap_or(defaults.std),
            resize: self.resize.unwrap_or(defaults.resize),
        }
    }

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
fn default_max_batch() -> usize {
    1
}
fn default_batch_wait_ms() -> u64 {
    5
}

fn model_format<'de, D: Deserializer<'de>>(d: D) -> Result<ModelKind, D::Error> {
    let text = String::deserialize(d)?;
    ModelKind::parse(&text).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "unknown model format `{text}`; expected {}, or classifier",
            MODEL_FORMATS.map(|f| f.name()).join(", ")
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
        assert_eq!(ModelFormat::parse("yolov10"), Some(ModelFormat::YoloEnd2End));
        assert_eq!(ModelFormat::parse("d_fine"), Some(ModelFormat::Detr));
        assert_eq!(ModelFormat::parse("yolov7"), None);
        for format in MODEL_FORMATS {
            assert_eq!(ModelFormat::parse(format.name()), Some(format));
        }
    }
}
