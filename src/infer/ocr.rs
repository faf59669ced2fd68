//! PP-OCR's text models, as plate reading runs them: the text detector (DB: a map of how
//! likely each pixel is text) and the recognizer (CTC: per time step, a probability for each
//! character of its dictionary and for the blank).
//!
//! Both take packed BGR crops, as PaddleOCR feeds them from OpenCV. What the outputs mean
//! (boxes, characters, plate syntax) is read in `crate::plates`; this module only runs them.

use std::path::Path;
use std::sync::Mutex;

use ort::session::Session;
use ort::value::TensorRef;

use super::letterbox::{InputSpec, Letterbox, letterbox_into};
use super::{InferError, LoadError, runtime, tensor_shape};
use crate::config::{ChannelOrder, PixelScale, Preprocessing, Resize};

/// PaddleOCR's detector input: ImageNet statistics on BGR planes, as its `NormalizeImage`
/// applies them to OpenCV's BGR image.
const DETECTOR_PREPROCESSING: Preprocessing = Preprocessing {
    channels: ChannelOrder::Bgr,
    scale: PixelScale::Unit,
    mean: [0.485, 0.456, 0.406],
    std: [0.229, 0.224, 0.225],
    resize: Resize::LetterboxTopLeft,
};

/// The recognizer's: `(pixel / 255 - 0.5) / 0.5`, the text at the left, padding on the right.
const RECOGNIZER_PREPROCESSING: Preprocessing = Preprocessing {
    channels: ChannelOrder::Bgr,
    scale: PixelScale::Unit,
    mean: [0.5; 3],
    std: [0.5; 3],
    resize: Resize::LetterboxTopLeft,
};

/// The recognizer's input height, and the width it is padded to at least (PP-OCR's 3x48x320).
const LINE_HEIGHT: usize = 48;
const LINE_MIN_WIDTH: usize = 320;

/// The detector sees a vehicle crop scaled so its longer side is this (a multiple of 32, as
/// DB's down- and up-sampling needs): a plate of a car that fills the crop is then about 100
/// pixels wide, where PP-OCR reads best.
const DETECTOR_SIDE: usize = 640;

/// One session, run by one caller at a time (plate reading is one worker's job).
struct OcrSession {
    session: Mutex<Session>,
    input: String,
}

impl OcrSession {
    fn open(path: &Path, threads: usize) -> Result<(OcrSession, Vec<i64>), LoadError> {
        let bytes = std::fs::read(path)
            .map_err(|source| LoadError::Unreadable { path: path.to_path_buf(), source })?;
        let cannot_load = |source| LoadError::Session { path: path.to_path_buf(), source };
        let session = Session::builder(runtime()?)
            .map_err(cannot_load)?
            .with_intra_threads(threads)
            .map_err(|e| cannot_load(e.into()))?
            .commit_from_memory(&bytes)
            .map_err(cannot_load)?;
        let [input] = session.inputs() else {
            let names: Vec<&str> = session.inputs().iter().map(|i| i.name()).collect();
            return Err(LoadError::Inputs {
                expected: "one image input",
                actual: names.join(", "),
            });
        };
        let input = input.name().to_string();
        let output = session.outputs().first().ok_or(LoadError::NoOutputs)?;
        let shape = tensor_shape(output.dtype()).unwrap_or_default();
        Ok((OcrSession { session: Mutex::new(session), input }, shape))
    }

    /// Runs one `[1, 3, height, width]` image; the first output's shape and values.
    fn run(
        &self,
        tensor: &[f32],
        width: usize,
        height: usize,
    ) -> Result<(Vec<usize>, Vec<f32>), InferError> {
        let input = TensorRef::from_array_view(([1, 3, height, width], tensor))
            .map_err(InferError::InputTensor)?;
        let mut session = self.session.lock().unwrap_or_else(|e| e.into_inner());
        let outputs =
            session.run(ort::inputs![self.input.as_str() => input]).map_err(InferError::Run)?;
        let (shape, values) =
            outputs[0].try_extract_tensor::<f32>().map_err(InferError::OutputType)?;
        let shape = shape.iter().map(|&d| usize::try_from(d).unwrap_or(0)).collect();
        Ok((shape, values.to_vec()))
    }
}

/// Where text is in an image: DB's probability map, `width` × `height` at the scale the
/// detector saw the image, and how to map its pixels back.
#[derive(Debug, Clone)]
pub struct TextMap {
    pub width: usize,
    pub height: usize,
    pub probability: Vec<f32>,
    pub letterbox: Letterbox,
}

/// PP-OCR's DB text detector.
pub struct TextDetector {
    model: OcrSession,
}

impl TextDetector {
    pub fn load(path: &Path, threads: usize) -> Result<TextDetector, LoadError> {
        let (model, shape) = OcrSession::open(path, threads)?;
        // [1, 1, H, W]: one probability map.
        if !matches!(shape[..], [_, 1, _, _]) {
            return Err(LoadError::Ocr {
                path: path.to_path_buf(),
                reason: format!("gives {shape:?}; a DB text detector gives [1, 1, H, W]"),
            });
        }
        Ok(TextDetector { model })
    }

    /// The text probability map of a packed BGR image.
    pub fn text_map(&self, bgr: &[u8], width: usize, height: usize) -> Result<TextMap, InferError> {
        let r = DETECTOR_SIDE as f32 / width.max(height) as f32;
        let side = |n: usize| (((n as f32 * r) / 32.0).round() as usize).max(1) * 32;
        let (w, h) = (side(width), side(height));
        let spec = InputSpec::new(w, h, &DETECTOR_PREPROCESSING);
        let mut tensor = vec![0.0; 3 * w * h];
        let letterbox = letterbox_into(bgr, width, height, &spec, &mut tensor);
        let (shape, probability) = self.model.run(&tensor, w, h)?;
        match shape[..] {
            [1, 1, mh, mw] if mh * mw == probability.len() => {
                Ok(TextMap { width: mw, height: mh, probability, letterbox })
            }
            _ => Err(InferError::OutputShape(format!("text map {shape:?}"))),
        }
    }
}

/// What the recognizer made of a line of text: per time step, the probabilities of the blank
/// (index 0) and of each dictionary character (index i + 1).
#[derive(Debug, Clone)]
pub struct TextSteps {
    pub steps: usize,
    pub classes: usize,
    pub probability: Vec<f32>,
}

/// PP-OCR's CTC text recognizer, with its dictionary.
pub struct TextRecognizer {
    model: OcrSession,
    /// The characters, in the order of the model's classes after the blank.
    pub dictionary: Vec<String>,
}

impl TextRecognizer {
    /// Loads the model and its dictionary (one character a line), and checks that the model
    /// has one class per character, plus the blank and PP-OCR's trailing space.
    pub fn load(
        path: &Path,
        dictionary: &Path,
        threads: usize,
    ) -> Result<TextRecognizer, LoadError> {
        let text = std::fs::read_to_string(dictionary)
            .map_err(|source| LoadError::Unreadable { path: dictionary.to_path_buf(), source })?;
        let mut characters: Vec<String> =
            text.lines().map(|l| l.trim_end_matches('\r').to_string()).collect();
        characters.push(" ".into());
        let (model, shape) = OcrSession::open(path, threads)?;
        let classes = characters.len() + 1;
        let fits = matches!(shape[..], [_, _, c] if c == -1 || c == classes as i64);
        if !fits {
            return Err(LoadError::Ocr {
                path: path.to_path_buf(),
                reason: format!(
                    "gives {shape:?}, which does not fit {}: its {} characters need [1, T, {classes}] \
                     (the blank, each character, a space)",
                    dictionary.display(),
                    characters.len() - 1
                ),
            });
        }
        Ok(TextRecognizer { model, dictionary: characters })
    }

    /// Reads one line of text, a packed BGR image of it upright.
    pub fn read_line(
        &self,
        bgr: &[u8],
        width: usize,
        height: usize,
    ) -> Result<TextSteps, InferError> {
        let scaled = (LINE_HEIGHT as f32 * width as f32 / height.max(1) as f32).ceil() as usize;
        let w = scaled.max(LINE_MIN_WIDTH).div_ceil(8) * 8;
        let spec = InputSpec::new(w, LINE_HEIGHT, &RECOGNIZER_PREPROCESSING);
        let mut tensor = vec![0.0; 3 * w * LINE_HEIGHT];
        letterbox_into(bgr, width, height, &spec, &mut tensor);
        let (shape, probability) = self.model.run(&tensor, w, LINE_HEIGHT)?;
        let classes = self.dictionary.len() + 1;
        match shape[..] {
            [1, steps, c] if c == classes && steps * c == probability.len() => {
                Ok(TextSteps { steps, classes, probability })
            }
            _ => Err(InferError::OutputShape(format!(
                "recognizer output {shape:?}; its dictionary needs {classes} classes"
            ))),
        }
    }
}
