//! Inference: ONNX detectors run by ONNX Runtime; a frame in, [`Detection`]s out.
//!
//! One [`Detector`] per configured model, shared by every camera that uses it. Loading checks
//! that the model's input and output shapes fit its `format` and its class list, so a wrong
//! model is a clear error at start-up, never a camera that silently sees nothing.
//!
//! ONNX Runtime is loaded at run time (`ort`'s `load-dynamic`): from `ORT_DYLIB_PATH` when set,
//! else from where `scripts/setup` or the package installs it. Each model runs on its
//! configured execution provider ([`device`]), and its frames may run in batches (`batch.rs`).

mod batch;
pub mod classify;
pub mod decode;
pub mod device;
pub mod inspect;
pub mod letterbox;
pub mod ocr;

use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, OnceLock};
use std::time::Duration;

use ort::session::{Session, SessionOutputs};
use ort::value::{TensorElementType, TensorRef, ValueType};

use batch::Batcher;
pub use classify::Classifier;
use decode::{Candidate, Outputs, Tensors, decode, nms};
pub use device::DeviceError;
use letterbox::{InputSpec, Letterbox, letterbox_frame};

use crate::config::{ModelConfig, ModelFormat, ModelKind, sha256_hex};
use crate::frame::Frame;
use crate::geometry::{BBox, Detection};

/// Where cityeye looks for ONNX Runtime when `ORT_DYLIB_PATH` is not set: the package's
/// location first, then `scripts/setup`'s.
const ORT_LIBRARY_PLACES: [&str; 2] =
    ["/usr/lib/cityeye/libonnxruntime.so", "/usr/local/lib/cityeye/libonnxruntime.so"];

/// Why ONNX Runtime itself cannot be had: its library is missing, does not load or does not
/// start. Clone, because the first attempt's outcome stands for the whole process.
#[derive(Debug, Clone, thiserror::Error)]
pub enum RuntimeError {
    /// `ORT_DYLIB_PATH` names a file that is not there.
    #[error("ORT_DYLIB_PATH names {}, which does not exist", .0.display())]
    DylibPathMissing(PathBuf),
    /// None of [`ORT_LIBRARY_PLACES`] holds the library.
    #[error(
        "ONNX Runtime library not found in {}; run scripts/setup or set ORT_DYLIB_PATH",
        ORT_LIBRARY_PLACES.join(" or ")
    )]
    NotInstalled,
    /// The library is there but cannot be loaded (not a library, a version `ort` cannot use).
    #[error("cannot load ONNX Runtime from {}: {source}", library.display())]
    Load { library: PathBuf, source: Arc<ort::LoadDynamicError> },
    /// The library loaded but its environment did not start.
    #[error("cannot start ONNX Runtime: {0}")]
    Start(#[source] Arc<ort::Error>),
}

/// Why a model cannot be used, found when it loads (or when `cityeye models inspect` reads it).
/// `Display` is the reason; [`LoadError::key`] names the key of the model's config table to
/// blame, which the config's error report puts the reason under.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// The class list cannot be had (its file, or its names).
    #[error("{0}")]
    Classes(String),
    /// The model file cannot be read.
    #[error("cannot read {}: {source}", path.display())]
    Unreadable { path: PathBuf, source: std::io::Error },
    /// The file is not the one `sha256` pins.
    #[error("{} has SHA-256 {actual}, expected {expected}", path.display())]
    Sha256Mismatch { path: PathBuf, actual: String, expected: String },
    #[error(transparent)]
    Runtime(#[from] RuntimeError),
    /// The configured device cannot be had.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// The configured device cannot run the whole model and `fallback` refuses the CPU for
    /// the rest (or the provider failed to compile it).
    #[error(
        "device {device} cannot run all of {} (set fallback = \"cpu\" to run what it cannot \
         take on the CPU): {source}",
        path.display()
    )]
    DeviceRefused { device: &'static str, path: PathBuf, source: ort::Error },
    /// ONNX Runtime does not take the file as a model (or its session options).
    #[error("ONNX Runtime cannot load {}: {source}", path.display())]
    Session { path: PathBuf, source: ort::Error },
    #[error("no outputs")]
    NoOutputs,
    /// Models take one image (and detr models the image's size); this one has other inputs.
    #[error("expected {expected}, the model has {actual}")]
    Inputs { expected: &'static str, actual: String },
    /// The input is not an image `[1, 3, H, W]`.
    #[error("input `{name}` has shape {shape:?}; expected [1, 3, height, width]")]
    InputShape { name: String, shape: Vec<i64> },
    /// `input_size` says one size, the model another.
    #[error("is {configured:?} but the model takes [{}, {}]", model[0], model[1])]
    InputSizeMismatch { configured: [usize; 2], model: [usize; 2] },
    /// `max_batch` asks for batches of a model that takes one image at a time.
    #[error(
        "is {max_batch} but the model's batch dimension is fixed at {batch}: batching needs a dynamic one"
    )]
    FixedBatch { max_batch: usize, batch: i64 },
    /// The model takes any size and `input_size` does not choose one.
    #[error("the model's input size is dynamic: set it")]
    DynamicInputSize,
    #[error("a classifier cannot be a camera's detector")]
    ClassifierAsDetector,
    #[error("not a classifier")]
    NotAClassifier,
    /// A plate text model's output is not what plate reading runs (`reason` says what).
    #[error("{}: {reason}", path.display())]
    Ocr { path: PathBuf, reason: String },
    /// A detector's declared output does not fit its `format` and class count; `reason` is
    /// [`ModelFormat::check_output_shape`]'s.
    #[error("{reason} (the class list has {classes} names)")]
    DetectorOutput { reason: String, classes: usize },
    /// A classifier's output is not one score per label.
    #[error(
        "output shape {shape:?} does not fit a classifier of {labels} labels: expected [1, {labels}]"
    )]
    ClassifierOutput { shape: Vec<i64>, labels: usize },
    /// The model loaded but failed its first run, on a blank image.
    #[error(transparent)]
    WarmUp(#[from] InferError),
}

impl LoadError {
    /// The key within the model's config table to blame: `path`, `format`, `classes`,
    /// `input_size` or `sha256`.
    pub fn key(&self) -> &'static str {
        match self {
            LoadError::Classes(_) | LoadError::ClassifierOutput { .. } => "classes",
            LoadError::Sha256Mismatch { .. } => "sha256",
            LoadError::InputShape { .. }
            | LoadError::ClassifierAsDetector
            | LoadError::NotAClassifier
            | LoadError::DetectorOutput { .. } => "format",
            LoadError::InputSizeMismatch { .. } | LoadError::DynamicInputSize => "input_size",
            LoadError::Device(_) | LoadError::DeviceRefused { .. } => "device",
            LoadError::FixedBatch { .. } => "max_batch",
            LoadError::Unreadable { .. }
            | LoadError::Runtime(_)
            | LoadError::Session { .. }
            | LoadError::NoOutputs
            | LoadError::Inputs { .. }
            | LoadError::Ocr { .. }
            | LoadError::WarmUp(_) => "path",
        }
    }
}

/// Why a loaded model could not be run on a frame (a detector) or on an object's crop (a
/// classifier). The camera logs it and goes on with its next frame.
#[derive(Debug, thiserror::Error)]
pub enum InferError {
    /// The letterboxed pixels could not be made into ONNX Runtime's input tensor.
    #[error("cannot make the input tensor: {0}")]
    InputTensor(#[source] ort::Error),
    /// ONNX Runtime's session run failed.
    #[error("inference failed: {0}")]
    Run(#[source] ort::Error),
    /// An output is not a tensor of the type its format says (`f32`, detr's labels `i64`).
    #[error("unexpected output: {0}")]
    OutputType(#[source] ort::Error),
    /// A detector's output, whose shape a dynamic axis left open until now, does not fit its
    /// format; the reason is [`ModelFormat::check_output_shape`]'s.
    #[error("unexpected output: {0}")]
    OutputShape(String),
    #[error("the classifier gave no scores")]
    NoScores,
    /// The batch this frame ran in failed; the reason is the batch's.
    #[error("{0}")]
    Batch(String),
    /// The object's box holds no pixel of the frame.
    #[error("the box is empty")]
    EmptyBox,
}

/// What `cityeye check` (and the node's status) shows about a loaded model.
#[derive(Debug, Clone)]
pub struct ModelSummary {
    pub inputs: Vec<String>,
    pub outputs: Vec<String>,
    pub classes: usize,
    pub sha256: String,
    /// The execution providers that ran the model's nodes in its first run, with how many
    /// each ran, the busiest first (see [`device::placement`]).
    pub placement: Vec<(String, usize)>,
}

/// A loaded detector: its session, how to feed it and how to read its output.
pub struct Detector {
    pub name: String,
    pub summary: ModelSummary,
    format: ModelFormat,
    outputs: Outputs,
    classes: Vec<Arc<str>>,
    confidence: f32,
    nms_iou: f32,
    cross_class_iou: f32,
    model: ImageSession,
    /// Gathers the frames of the cameras sharing the model into batches (`max_batch` > 1).
    batcher: Option<Batcher<Result<Vec<Candidate>, String>>>,
}

/// A session with one image input: pixels are letterboxed into its tensor, it runs, and the
/// caller reads its outputs. Shared by detectors and classifiers.
struct ImageSession {
    // `Session::run` takes `&mut self`: each call takes a session no other call is using, or
    // waits its turn when all are busy. Each session keeps the input tensor its calls fill:
    // the 2 MB of a 416x416 input once per session, not once per camera.
    sessions: Vec<Mutex<Held>>,
    /// Where the next call starts looking, so calls spread over the sessions.
    next: AtomicUsize,
    input_name: String,
    /// detr's `orig_target_sizes`: given the input's own size, so boxes come back in input
    /// pixels like every other family's.
    sizes_input: Option<String>,
    input: InputSpec,
}

/// A session and the input tensor of its calls.
struct Held {
    session: Session,
    tensor: Vec<f32>,
}

impl ImageSession {
    /// Has `letterbox` write an image into the input tensor of a free session, runs the model
    /// and hands its outputs to `read`; returns where the image landed in the input, and what
    /// `read` made of the outputs.
    fn run<R>(
        &self,
        letterbox: impl FnOnce(&InputSpec, &mut [f32]) -> Letterbox,
        read: impl FnOnce(&SessionOutputs<'_>) -> Result<R, InferError>,
    ) -> Result<(Letterbox, R), InferError> {
        let (w, h) = (self.input.width, self.input.height);
        let mut held = self.free_session();
        let Held { session, tensor } = &mut *held;
        tensor.resize(3 * w * h, 0.0);
        let letterbox = letterbox(&self.input, tensor);
        Ok((letterbox, self.infer(session, tensor, 1, read)?))
    }

    /// Runs `images` letterboxed images, back to back in `batch`, on a free session.
    fn run_batch<R>(
        &self,
        batch: &[f32],
        images: usize,
        read: impl FnOnce(&SessionOutputs<'_>) -> Result<R, InferError>,
    ) -> Result<R, InferError> {
        let mut held = self.free_session();
        self.infer(&mut held.session, batch, images, read)
    }

    /// Runs `images` letterboxed images, back to back in `batch`, on `session`, and hands the
    /// outputs to `read`.
    fn infer<R>(
        &self,
        session: &mut Session,
        batch: &[f32],
        images: usize,
        read: impl FnOnce(&SessionOutputs<'_>) -> Result<R, InferError>,
    ) -> Result<R, InferError> {
        let (w, h) = (self.input.width, self.input.height);
        let input = TensorRef::from_array_view(([images, 3, h, w], batch))
            .map_err(InferError::InputTensor)?;
        let mut inputs = ort::inputs![self.input_name.as_str() => input];
        let sizes = [w as i64, h as i64].repeat(images);
        if let Some(name) = &self.sizes_input {
            let sizes = TensorRef::from_array_view(([images, 2], &sizes[..]))
                .map_err(InferError::InputTensor)?;
            inputs.push((name.as_str().into(), sizes.into()));
        }
        let outputs = session.run(inputs).map_err(InferError::Run)?;
        read(&outputs)
    }

    fn new(opened: Opened, input: InputSpec) -> Self {
        ImageSession {
            sessions: opened
                .sessions
                .into_iter()
                .map(|session| Mutex::new(Held { session, tensor: Vec::new() }))
                .collect(),
            next: AtomicUsize::new(0),
            input_name: opened.input_name,
            sizes_input: opened.sizes_input,
            input,
        }
    }

    /// Where the first session's profiled first runs put the model's nodes; call once, after
    /// the warm-up.
    fn placement(&self) -> Vec<(String, usize)> {
        device::placement(&mut self.sessions[0].lock().unwrap_or_else(|e| e.into_inner()).session)
    }

    /// A session nobody is running, or when all are busy the one whose turn it is.
    fn free_session(&self) -> MutexGuard<'_, Held> {
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
    /// A frame's input tensor on its way to a batch; unbatched calls fill their session's.
    tensor: Vec<f32>,
    candidates: Vec<Candidate>,
}

/// What every model has once ONNX Runtime has it: the session, its image input and the facts
/// `cityeye check` shows.
struct Opened {
    /// `ModelConfig::session_count` of them, the same model each.
    sessions: Vec<Session>,
    input_name: String,
    sizes_input: Option<String>,
    /// The image input's batch dimension is dynamic.
    dynamic_batch: bool,
    width: usize,
    height: usize,
    classes: Vec<String>,
    summary: ModelSummary,
}

/// Reads a model file (checking its SHA-256 when pinned), starts its session and checks its
/// single image input against `input_size`.
fn open(config: &ModelConfig) -> Result<Opened, LoadError> {
    let classes = config.canonical_class_names().map_err(LoadError::Classes)?;
    let path = &config.path;
    let bytes = std::fs::read(path)
        .map_err(|source| LoadError::Unreadable { path: path.clone(), source })?;
    let sha256 = sha256_hex(&bytes);
    if let Some(expected) = &config.sha256
        && !expected.eq_ignore_ascii_case(&sha256)
    {
        let (actual, expected) = (sha256, expected.clone());
        return Err(LoadError::Sha256Mismatch { path: path.clone(), actual, expected });
    }
    let environment = runtime()?;
    let cannot_load = |source| LoadError::Session { path: path.clone(), source };
    let sessions = (0..config.session_count())
        .map(|i| {
            let builder = Session::builder(environment)
                .map_err(cannot_load)?
                .with_intra_threads(config.threads)
                // Builder errors carry the builder, which is not Send: keep the error alone.
                .map_err(|e| cannot_load(e.into()))?;
            // The first session's first runs are profiled, to learn where its nodes ran.
            let builder = if i == 0 {
                builder
                    .with_profiling(device::profile_prefix())
                    .map_err(|e| cannot_load(e.into()))?
            } else {
                builder
            };
            let committed =
                device::configure(builder, environment, config)?.commit_from_memory(&bytes);
            committed.map_err(|source| match config.device {
                crate::config::Device::Cpu => cannot_load(source),
                device => {
                    LoadError::DeviceRefused { device: device.name(), path: path.clone(), source }
                }
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let session = &sessions[0];
    let takes_sizes = config.format == ModelKind::Detector(ModelFormat::Detr);
    let (input_name, sizes_input, batch, width, height) =
        check_inputs(session, takes_sizes, config.input_size)?;
    let summary = ModelSummary {
        inputs: session.inputs().iter().map(|o| describe(o.name(), o.dtype())).collect(),
        outputs: session.outputs().iter().map(|o| describe(o.name(), o.dtype())).collect(),
        classes: classes.len(),
        sha256,
        placement: Vec::new(),
    };
    let dynamic_batch = batch == -1;
    Ok(Opened { sessions, input_name, sizes_input, dynamic_batch, width, height, classes, summary })
}

/// The declared shape of a session's first output.
fn output_shape(session: &Session) -> Result<Vec<i64>, LoadError> {
    let output = session.outputs().first().ok_or(LoadError::NoOutputs)?;
    Ok(tensor_shape(output.dtype()).unwrap_or_default())
}

impl Detector {
    pub fn load(config: &ModelConfig) -> Result<Detector, LoadError> {
        let ModelKind::Detector(format) = config.format else {
            return Err(LoadError::ClassifierAsDetector);
        };
        let mut opened = open(config)?;
        let shapes: Vec<(String, Vec<i64>)> = opened.sessions[0]
            .outputs()
            .iter()
            .map(|o| (o.name().to_string(), tensor_shape(o.dtype()).unwrap_or_default()))
            .collect();
        let named: Vec<(&str, &[i64])> =
            shapes.iter().map(|(name, shape)| (name.as_str(), &shape[..])).collect();
        let (width, height) = (opened.width, opened.height);
        let classes = std::mem::take(&mut opened.classes);
        let outputs = format
            .find_outputs(&named, classes.len(), width, height)
            .map_err(|reason| LoadError::DetectorOutput { reason, classes: classes.len() })?;
        if config.max_batch > 1 && !opened.dynamic_batch {
            return Err(LoadError::FixedBatch { max_batch: config.max_batch, batch: 1 });
        }
        let batcher = (config.max_batch > 1)
            .then(|| Batcher::new(config.max_batch, Duration::from_millis(config.batch_wait_ms)));
        let mut detector = Detector {
            name: config.name.clone(),
            summary: opened.summary.clone(),
            format,
            outputs,
            classes: classes.into_iter().map(Arc::from).collect(),
            confidence: config.confidence,
            nms_iou: config.nms_iou,
            cross_class_iou: config.cross_class_iou,
            model: ImageSession::new(
                opened,
                InputSpec::new(width, height, &config.preprocessing()),
            ),
            batcher,
        };
        detector.warm_up()?;
        detector.summary.placement = detector.model.placement();
        Ok(detector)
    }

    /// One inference on a blank frame, so ONNX Runtime's first-run set-up happens at start-up
    /// and not on a camera's first frame; also proves the model actually runs.
    fn warm_up(&self) -> Result<(), InferError> {
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
    pub fn detect(
        &self,
        frame: &Frame,
        scratch: &mut Scratch,
    ) -> Result<Vec<Detection>, InferError> {
        let letterbox = match &self.batcher {
            None => {
                let candidates = &mut scratch.candidates;
                let (letterbox, ()) = self.model.run(
                    |spec, tensor| letterbox_frame(frame, spec, tensor),
                    |outputs| self.decode_image(outputs, 0, 1, candidates),
                )?;
                letterbox
            }
            Some(batcher) => {
                let spec = &self.model.input;
                scratch.tensor.resize(3 * spec.width * spec.height, 0.0);
                let letterbox = letterbox_frame(frame, spec, &mut scratch.tensor);
                let tensor = std::mem::take(&mut scratch.tensor);
                let (tensor, candidates) = batcher.submit(tensor, |batch| self.run_batch(batch));
                scratch.tensor = tensor;
                scratch.candidates = candidates.map_err(InferError::Batch)?;
                letterbox
            }
        };
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

    /// Runs a batch of letterboxed frames; each frame's candidates, or why the batch failed.
    fn run_batch(&self, batch: &[&[f32]]) -> Vec<Result<Vec<Candidate>, String>> {
        let images = batch.len();
        let decoded = self.model.run_batch(&batch.concat(), images, |outputs| {
            (0..images)
                .map(|image| {
                    let mut candidates = Vec::new();
                    self.decode_image(outputs, image, images, &mut candidates).map(|()| candidates)
                })
                .collect::<Result<Vec<_>, _>>()
        });
        match decoded {
            Ok(all) => all.into_iter().map(Ok).collect(),
            Err(e) => vec![Err(e.to_string()); images],
        }
    }

    /// Decodes image `image` of a batch of `images` from the model's outputs into `candidates`.
    fn decode_image(
        &self,
        outputs: &SessionOutputs<'_>,
        image: usize,
        images: usize,
        candidates: &mut Vec<Candidate>,
    ) -> Result<(), InferError> {
        let (w, h) = (self.model.input.width, self.model.input.height);
        let classes = self.classes.len();
        // The image's share of an output whose first dimension is the batch.
        fn share<T>(data: &[T], image: usize, images: usize) -> &[T] {
            let per_image = data.len() / images;
            &data[image * per_image..][..per_image]
        }
        let f32s = |i: usize| {
            let (shape, data) =
                outputs[i].try_extract_tensor::<f32>().map_err(InferError::OutputType)?;
            Ok::<_, InferError>((shape, share(data, image, images)))
        };
        let dims: Vec<usize>;
        let tensors = match self.outputs {
            Outputs::One => {
                let (shape, data) = f32s(0)?;
                // Load checked the declared shape; a dynamic one is only known now.
                let mut one: Vec<i64> = shape.to_vec();
                if let Some(batch) = one.first_mut() {
                    *batch = 1;
                }
                self.format
                    .check_output_shape(&one, classes, w, h)
                    .map_err(InferError::OutputShape)?;
                dims = one.iter().map(|d| *d as usize).collect();
                Tensors::One { data, shape: &dims }
            }
            // Decoding pairs rows up to the shortest tensor: no shape can mislead it.
            Outputs::BoxesScores { boxes, scores } => {
                Tensors::BoxesScores { boxes: f32s(boxes)?.1, scores: f32s(scores)?.1 }
            }
            Outputs::Detr { labels, boxes, scores } => {
                let (_, labels) =
                    outputs[labels].try_extract_tensor::<i64>().map_err(InferError::OutputType)?;
                let labels = share(labels, image, images);
                Tensors::Detr { labels, boxes: f32s(boxes)?.1, scores: f32s(scores)?.1 }
            }
        };
        decode(self.format, tensors, classes, (w, h), self.confidence, candidates);
        Ok(())
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

/// The image input `[1, 3, H, W]`: its name, batch dimension (1, or -1 when dynamic) and size,
/// reconciled with `input_size`; with
/// `takes_sizes` (detr) also the `orig_target_sizes` input, int64 `[1, 2]`, by name.
fn check_inputs(
    session: &Session,
    takes_sizes: bool,
    configured: Option<[usize; 2]>,
) -> Result<(String, Option<String>, i64, usize, usize), LoadError> {
    let inputs = session.inputs();
    let is_sizes = |i: &&ort::value::Outlet| {
        i.name() == DETR_SIZES_INPUT
            && matches!(i.dtype(), ValueType::Tensor { ty: TensorElementType::Int64, .. })
            && tensor_shape(i.dtype()).is_some_and(|s| matches!(s[..], [1 | -1, 2 | -1]))
    };
    let sizes = inputs.iter().find(is_sizes);
    let images: Vec<_> = inputs.iter().filter(|i| !is_sizes(i)).collect();
    let (expected, fits) = if takes_sizes {
        ("an image input and `orig_target_sizes` int64 [1, 2]", sizes.is_some())
    } else {
        ("one image input", sizes.is_none())
    };
    let [input] = images[..] else {
        let actual: Vec<String> = inputs.iter().map(|i| describe(i.name(), i.dtype())).collect();
        return Err(LoadError::Inputs { expected, actual: actual.join(", ") });
    };
    if !fits {
        let actual: Vec<String> = inputs.iter().map(|i| describe(i.name(), i.dtype())).collect();
        return Err(LoadError::Inputs { expected, actual: actual.join(", ") });
    }
    let shape = tensor_shape(input.dtype()).unwrap_or_default();
    let bad_shape =
        || LoadError::InputShape { name: input.name().to_string(), shape: shape.clone() };
    let [n, c, h, w] = shape[..] else { return Err(bad_shape()) };
    if !(n == 1 || n == -1) || c != 3 {
        return Err(bad_shape());
    }
    let model_size = (w > 0 && h > 0).then_some([w as usize, h as usize]);
    let [width, height] = match (configured, model_size) {
        (Some(configured), Some(model)) if configured != model => {
            return Err(LoadError::InputSizeMismatch { configured, model });
        }
        (Some(size), _) | (None, Some(size)) => size,
        (None, None) => return Err(LoadError::DynamicInputSize),
    };
    let sizes = sizes.map(|s| s.name().to_string());
    Ok((input.name().to_string(), sizes, n, width, height))
}

/// The input through which the DETR family's exports take the image size they scale boxes to.
const DETR_SIZES_INPUT: &str = "orig_target_sizes";

fn tensor_shape(dtype: &ValueType) -> Option<Vec<i64>> {
    dtype.tensor_shape().map(|s| s.iter().copied().collect())
}

fn describe(name: &str, dtype: &ValueType) -> String {
    format!("{name}: {dtype}")
}

/// The process-wide ONNX Runtime environment, loaded once.
fn runtime() -> Result<&'static ort::environment::Environment, RuntimeError> {
    static RUNTIME: OnceLock<Result<ort::environment::Environment, RuntimeError>> = OnceLock::new();
    RUNTIME
        .get_or_init(|| {
            let library = find_onnxruntime()?;
            ort::init_from(&library)
                .map_err(|e| RuntimeError::Load { library, source: Arc::new(e) })?
                .with_name("cityeye")
                .build()
                .map_err(|e| RuntimeError::Start(Arc::new(e)))
        })
        .as_ref()
        .map_err(Clone::clone)
}

/// Checked here because `ort` panics when the library is missing.
fn find_onnxruntime() -> Result<PathBuf, RuntimeError> {
    if let Some(path) = std::env::var_os("ORT_DYLIB_PATH") {
        let path = PathBuf::from(path);
        return if path.is_file() { Ok(path) } else { Err(RuntimeError::DylibPathMissing(path)) };
    }
    ORT_LIBRARY_PLACES
        .iter()
        .map(PathBuf::from)
        .find(|p| p.is_file())
        .ok_or(RuntimeError::NotInstalled)
}

#[cfg(test)]
mod tests {
    use super::*;

    // Each text is the one these errors had as strings, built the way the old code built it.

    #[test]
    fn runtime_errors_read_as_before() {
        assert_eq!(
            RuntimeError::NotInstalled.to_string(),
            "ONNX Runtime library not found in /usr/lib/cityeye/libonnxruntime.so or \
             /usr/local/lib/cityeye/libonnxruntime.so; run scripts/setup or set ORT_DYLIB_PATH"
        );
        assert_eq!(
            RuntimeError::DylibPathMissing("/opt/ort/libonnxruntime.so".into()).to_string(),
            "ORT_DYLIB_PATH names /opt/ort/libonnxruntime.so, which does not exist"
        );
    }

    #[test]
    fn load_errors_read_as_before_and_name_their_key() {
        let read = std::io::Error::from(std::io::ErrorKind::NotFound);
        let text = format!("cannot read models/m.onnx: {read}");
        let unreadable = LoadError::Unreadable { path: "models/m.onnx".into(), source: read };
        assert_eq!((unreadable.key(), unreadable.to_string()), ("path", text));
        let sha = LoadError::Sha256Mismatch {
            path: "m.onnx".into(),
            actual: "ab12".into(),
            expected: "cd34".into(),
        };
        assert_eq!(
            (sha.key(), sha.to_string().as_str()),
            ("sha256", "m.onnx has SHA-256 ab12, expected cd34")
        );
        let size = LoadError::InputSizeMismatch { configured: [640, 480], model: [416, 416] };
        assert_eq!(
            (size.key(), size.to_string().as_str()),
            ("input_size", "is [640, 480] but the model takes [416, 416]")
        );
        let input = LoadError::InputShape { name: "images".into(), shape: vec![1, 640, 640, 3] };
        assert_eq!(
            (input.key(), input.to_string().as_str()),
            ("format", "input `images` has shape [1, 640, 640, 3]; expected [1, 3, height, width]")
        );
        let reason = ModelFormat::Yolov8.check_output_shape(&[1, 3549, 85], 80, 416, 416);
        let output = LoadError::DetectorOutput { reason: reason.unwrap_err(), classes: 80 };
        assert_eq!(
            (output.key(), output.to_string().as_str()),
            (
                "format",
                "output shape [1, 3549, 85] does not fit yolov8 with 80 classes: expected \
                 [1, 84, N] (the class list has 80 names)"
            )
        );
        let labels = LoadError::ClassifierOutput { shape: vec![1, 1000], labels: 2 };
        assert_eq!(
            (labels.key(), labels.to_string().as_str()),
            (
                "classes",
                "output shape [1, 1000] does not fit a classifier of 2 labels: expected [1, 2]"
            )
        );
        let warm_up = LoadError::from(InferError::EmptyBox);
        assert_eq!((warm_up.key(), warm_up.to_string().as_str()), ("path", "the box is empty"));
        let runtime = LoadError::from(RuntimeError::NotInstalled);
        assert_eq!(
            (runtime.key(), runtime.to_string()),
            ("path", RuntimeError::NotInstalled.to_string())
        );
    }

    #[test]
    fn inference_errors_read_as_before() {
        let reason =
            "output shape [1, 84, 100] does not fit yolov8 with 2 classes: expected [1, 6, N]";
        assert_eq!(
            InferError::OutputShape(reason.into()).to_string(),
            format!("unexpected output: {reason}")
        );
        assert_eq!(InferError::NoScores.to_string(), "the classifier gave no scores");
        assert_eq!(InferError::EmptyBox.to_string(), "the box is empty");
    }
}
