//! Inference: ONNX detectors run by ONNX Runtime; a frame in, [`Detection`]s out.
//!
//! One [`Detector`] per configured model, shared by every camera that uses it. Loading checks
//! that the model's input and output shapes fit its `format` and its class list, so a wrong
//! model is a clear error at start-up, never a camera that silently sees nothing.
//!
//! ONNX Runtime is loaded at run time (`ort`'s `load-dynamic`): from `ORT_DYLIB_PATH` when set,
//! else from where `scripts/setup` or the package installs it.

pub mod classify;
pub mod decode;
pub mod inspect;
pub mod letterbox;

use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};

use ort::session::Session;
use ort::value::{TensorRef, ValueType};

pub use classify::Classifier;
use decode::{Candidate, decode, nms};
use letterbox::{ChannelOrder, InputSpec, Letterbox, Placement, letterbox_frame};

use crate::config::{ModelConfig, ModelFormat, ModelKind, sha256_hex};
use crate::frame::Frame;
use crate::geometry::{BBox, Detection};

/// Where cityeye looks for ONNX Runtime when `ORT_DYLIB_PATH` is not set: the package's
/// location first, then `scripts/setup`'s.
const ORT_LIBRARY_PLACES: [&str; 2] =
    ["/usr/lib/cityeye/libonnxruntime.so", "/usr/local/lib/cityeye/libonnxruntime.so"];

/// A model that cannot be used, and which config key is to blame.
#[derive(Debug, Clone, PartialEq)]
pub struct LoadError {
    /// Key within the model's config table: `path`, `format`, `classes`, `input_size`, `sha256`.
    pub key: &'static str,
    pub message: String,
}

impl fmt::Display for LoadError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.key, self.message)
    }
}

fn load_error(key: &'static str, message: impl Into<String>) -> LoadError {
    LoadError { key, message: message.into() }
}

/// What `cityeye check` shows about a loaded model.
#[derive(Debug, Clone)]
pub struct ModelSummary {
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub classes: usize,
    pub sha256: String,
}

/// A loaded detector: its session, how to feed it and how to read its output.
pub struct Detector {
    pub name: String,
    pub summary: ModelSummary,
    format: ModelFormat,
    classes: Vec<Arc<str>>,
    confidence: f32,
    nms_iou: f32,
    cross_class_iou: f32,
    model: ImageSession,
}

/// A session with one image input: pixels are letterboxed into its tensor, it runs, and the
/// caller reads its first output. Shared by detectors and classifiers.
struct ImageSession {
    // `Session::run` takes `&mut self`: each call takes a session no other call is using, or
    // waits its turn when all are busy.
    sessions: Vec<Mutex<Session>>,
    /// Where the next call starts looking, so calls spread over the sessions.
    next: AtomicUsize,
    input_name: String,
    input: InputSpec,
}

impl ImageSession {
    /// Has `letterbox` write an image into `tensor` for the model's input, runs the model and
    /// hands its first output (shape, data) to `read`; returns where the image landed in the
    /// input, and what `read` made of the output.
    fn run<R>(
        &self,
        letterbox: impl FnOnce(&InputSpec, &mut [f32]) -> Letterbox,
        tensor: &mut Vec<f32>,
        read: impl FnOnce(&[i64], &[f32]) -> Result<R, String>,
    ) -> Result<(Letterbox, R), String> {
        let (w, h) = (self.input.width, self.input.height);
        tensor.resize(3 * w * h, 0.0);
        let letterbox = letterbox(&self.input, tensor);
        let input = TensorRef::from_array_view(([1usize, 3, h, w], &tensor[..]))
            .map_err(|e| format!("cannot make the input tensor: {e}"))?;
        let mut session = self.free_session();
        let outputs = session
            .run(ort::inputs![self.input_name.as_str() => input])
            .map_err(|e| format!("inference failed: {e}"))?;
        let (shape, data) = outputs[0]
            .try_extract_tensor::<f32>()
            .map_err(|e| format!("unexpected output: {e}"))?;
        Ok((letterbox, read(shape, data)?))
    }

    fn new(sessions: Vec<Session>, input_name: String, input: InputSpec) -> Self {
        ImageSession {
            sessions: sessions.into_iter().map(Mutex::new).collect(),
            next: AtomicUsize::new(0),
            input_name,
            input,
        }
    }

    /// A session nobody is running, or when all are busy the one whose turn it is.
    fn free_session(&self) -> MutexGuard<'_, Session> {
        let start = self.next.fetch_add(1, Ordering::Relaxed);
        let n = self.sessions.len();
        (0..n)
            .find_map(|i| self.sessions[(start + i) % n].try_lock().ok())
            .unwrap_or_else(|| self.sessions[start % n].lock().unwrap_or_else(|e| e.into_inner()))
    }
}

/// Per-camera working memory, reused from frame to frame.
#[derive(Default)]
pub struct Scratch {
    tensor: Vec<f32>,
    candidates: Vec<Candidate>,
}

/// What every model has once ONNX Runtime has it: the session, its image input and the facts
/// `cityeye check` shows.
struct Opened {
    /// `ModelConfig::session_count` of them, the same model each.
    sessions: Vec<Session>,
    input_name: String,
    width: usize,
    height: usize,
    classes: Vec<String>,
    summary: ModelSummary,
}

/// Reads a model file (checking its SHA-256 when pinned), starts its session and checks its
/// single image input against `input_size`.
fn open(config: &ModelConfig) -> Result<Opened, LoadError> {
    let classes = config.canonical_class_names().map_err(|e| load_error("classes", e))?;
    let bytes = std::fs::read(&config.path)
        .map_err(|e| load_error("path", format!("cannot read {}: {e}", config.path.display())))?;
    let sha256 = sha256_hex(&bytes);
    if let Some(expected) = &config.sha256
        && !expected.eq_ignore_ascii_case(&sha256)
    {
        return Err(load_error(
            "sha256",
            format!("{} has SHA-256 {sha256}, expected {expected}", config.path.display()),
        ));
    }
    let environment = runtime().map_err(|e| load_error("path", e))?;
    let cannot_load = |e: String| {
        load_error("path", format!("ONNX Runtime cannot load {}: {e}", config.path.display()))
    };
    // Builder errors carry the builder, which is not Send: keep only their text.
    let sessions = (0..config.session_count())
        .map(|_| {
            Session::builder(environment)
                .map_err(|e| cannot_load(e.to_string()))?
                .with_intra_threads(config.threads)
                .map_err(|e| cannot_load(e.to_string()))?
                .commit_from_memory(&bytes)
                .map_err(|e| cannot_load(e.to_string()))
        })
        .collect::<Result<Vec<_>, _>>()?;
    let session = &sessions[0];
    let (input_name, width, height) = check_input(session, config.input_size)?;
    let summary = ModelSummary {
        inputs: session.inputs().iter().map(|o| describe(o.name(), o.dtype())).collect(),
        outputs: session.outputs().iter().map(|o| describe(o.name(), o.dtype())).collect(),
        classes: classes.len(),
        sha256,
    };
    Ok(Opened { sessions, input_name, width, height, classes, summary })
}

/// The declared shape of a session's first output.
fn output_shape(session: &Session) -> Result<Vec<i64>, LoadError> {
    let output = session.outputs().first().ok_or_else(|| load_error("path", "no outputs"))?;
    Ok(tensor_shape(output.dtype()).unwrap_or_default())
}

impl Detector {
    pub fn load(config: &ModelConfig) -> Result<Detector, LoadError> {
        let ModelKind::Detector(format) = config.format else {
            return Err(load_error("format", "a classifier cannot be a camera's detector"));
        };
        let Opened { sessions, input_name, width, height, classes, summary } = open(config)?;
        let shape = output_shape(&sessions[0])?;
        format.check_output_shape(&shape, classes.len(), width, height).map_err(|e| {
            load_error("format", format!("{e} (the class list has {} names)", classes.len()))
        })?;
        let detector = Detector {
            name: config.name.clone(),
            summary,
            format,
            classes: classes.into_iter().map(Arc::from).collect(),
            confidence: config.confidence,
            nms_iou: config.nms_iou,
            cross_class_iou: config.cross_class_iou,
            model: ImageSession::new(sessions, input_name, input_spec(format, width, height)),
        };
        detector.warm_up().map_err(|e| load_error("path", e))?;
        Ok(detector)
    }

    /// One inference on a blank frame, so ONNX Runtime's first-run set-up happens at start-up
    /// and not on a camera's first frame; also proves the model actually runs.
    fn warm_up(&self) -> Result<(), String> {
        let blank = Frame {
            width: self.model.input.width,
            height: self.model.input.height,
            data: vec![0; self.model.input.width * self.model.input.height * 3].into(),
            stream_time_s: 0.0,
            captured_at: std::time::SystemTime::now(),
            metadata: Vec::new(),
        };
        // Calls rotate over the sessions: each gets its own first run.
        for _ in &self.model.sessions {
            self.detect(&blank, &mut Scratch::default())?;
        }
        Ok(())
    }

    /// Detections in one frame, boxes normalized to the frame, best first.
    pub fn detect(&self, frame: &Frame, scratch: &mut Scratch) -> Result<Vec<Detection>, String> {
        let (w, h) = (self.model.input.width, self.model.input.height);
        let candidates = &mut scratch.candidates;
        let (letterbox, ()) = self.model.run(
            |spec, tensor| letterbox_frame(frame, spec, tensor),
            &mut scratch.tensor,
            |shape, data| {
                // Load checked the declared shape; a dynamic one is only known now.
                self.format
                    .check_output_shape(shape, self.classes.len(), w, h)
                    .map_err(|e| format!("unexpected output: {e}"))?;
                let dims: Vec<usize> = shape.iter().map(|d| *d as usize).collect();
                let classes = self.classes.len();
                decode(self.format, data, &dims, classes, w, h, self.confidence, candidates);
                Ok(())
            },
        )?;
        nms(&mut scratch.candidates, self.nms_iou, self.cross_class_iou);
        let (fw, fh) = (frame.width as f32, frame.height as f32);
        Ok(scratch
            .candidates
            .iter()
            .map(|c| {
                let (x1, y1) = letterbox.to_source(c.x1, c.y1);
                let (x2, y2) = letterbox.to_source(c.x2, c.y2);
                Detection {
                    bbox: BBox::from_corners(x1 / fw, y1 / fh, x2 / fw, y2 / fh).clamped(),
                    class: self.classes[c.class_id].clone(),
                    confidence: c.score,
                }
            })
            .collect())
    }

    /// The model's score threshold: detections below it are never reported.
    pub fn confidence(&self) -> f32 {
        self.confidence
    }

    /// How many frames the model can run at once.
    pub fn sessions(&self) -> usize {
        self.model.sessions.len()
    }
}

/// How each family wants its pixels: YOLOX raw BGR at the top-left; Ultralytics RGB in 0..1,
/// centred.
pub fn input_spec(format: ModelFormat, width: usize, height: usize) -> InputSpec {
    match format {
        ModelFormat::Yolox => InputSpec {
            width,
            height,
            order: ChannelOrder::Bgr,
            scale: 1.0,
            placement: Placement::TopLeft,
        },
        ModelFormat::Yolov5 | ModelFormat::Yolov8 => InputSpec {
            width,
            height,
            order: ChannelOrder::Rgb,
            scale: 1.0 / 255.0,
            placement: Placement::Centre,
        },
    }
}

/// The single image input `[1, 3, H, W]`: its name and size, reconciled with `input_size`.
fn check_input(
    session: &Session,
    configured: Option<[usize; 2]>,
) -> Result<(String, usize, usize), LoadError> {
    let [input] = session.inputs() else {
        return Err(load_error(
            "path",
            format!("expected one image input, the model has {}", session.inputs().len()),
        ));
    };
    let shape = tensor_shape(input.dtype()).unwrap_or_default();
    let bad_shape = || {
        load_error(
            "format",
            format!("input `{}` has shape {shape:?}; expected [1, 3, height, width]", input.name()),
        )
    };
    let [n, c, h, w] = shape[..] else { return Err(bad_shape()) };
    if !(n == 1 || n == -1) || c != 3 {
        return Err(bad_shape());
    }
    let model_size = (w > 0 && h > 0).then_some([w as usize, h as usize]);
    let [width, height] = match (configured, model_size) {
        (Some(cfg), Some(model)) if cfg != model => {
            return Err(load_error(
                "input_size",
                format!("is {cfg:?} but the model takes [{}, {}]", model[0], model[1]),
            ));
        }
        (Some(size), _) | (None, Some(size)) => size,
        (None, None) => {
            return Err(load_error("input_size", "the model's input size is dynamic: set it"));
        }
    };
    Ok((input.name().to_string(), width, height))
}

fn tensor_shape(dtype: &ValueType) -> Option<Vec<i64>> {
    dtype.tensor_shape().map(|s| s.iter().copied().collect())
}

fn describe(name: &str, dtype: &ValueType) -> String {
    format!("{name}: {dtype}")
}

/// The process-wide ONNX Runtime environment, loaded once.
fn runtime() -> Result<&'static ort::environment::Environment, String> {
    static RUNTIME: OnceLock<Result<ort::environment::Environment, String>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let library = find_onnxruntime()?;
            ort::init_from(&library)
                .map_err(|e| format!("cannot load ONNX Runtime from {}: {e}", library.display()))?
                .with_name("cityeye")
                .build()
                .map_err(|e| format!("cannot start ONNX Runtime: {e}"))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Checked here because `ort` panics when the library is missing.
fn find_onnxruntime() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH") {
        let path = PathBuf::from(path);
        return if path.is_file() {
            Ok(path)
        } else {
            Err(format!("ORT_DYLIB_PATH names {}, which does not exist", path.display()))
        };
    }
    ORT_LIBRARY_PLACES.iter().map(PathBuf::from).find(|p| p.is_file()).ok_or_else(|| {
        format!(
            "ONNX Runtime library not found in {}; run scripts/setup or set ORT_DYLIB_PATH",
            ORT_LIBRARY_PLACES.join(" or ")
        )
    })
}
