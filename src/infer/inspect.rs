//! `cityeye models inspect`: what an ONNX file is, before anyone writes its config.
//!
//! Prints its inputs and outputs with their shapes, the opsets it imports, its metadata, and
//! the `format` its shapes fit (YOLOX's raw grid, YOLOv5's anchors, YOLOv8/YOLO11's transposed
//! output, end-to-end YOLO rows, Ultralytics RT-DETR, YOLO-NAS, the DETR exports, or a
//! classifier), with a `[[models]]` table to start from.

use std::fmt::{self, Write as _};
use std::path::Path;

use ort::session::Session;

use super::{LoadError, runtime, tensor_shape};

/// The facts about one model file.
pub struct Inspection {
    path: String,
    inputs: Vec<(String, String, Vec<i64>)>,
    outputs: Vec<(String, String, Vec<i64>)>,
    opsets: Vec<(String, i64)>,
    metadata: Vec<(String, String)>,
    /// The format its shapes fit, its class count (when the shapes tell) and input size, or why
    /// none fits.
    guess: Result<Guess, String>,
}

/// Reads the model at `path`; it fails as a model's load would, with the same reasons.
pub fn inspect(path: &Path) -> Result<Inspection, LoadError> {
    let bytes = std::fs::read(path)
        .map_err(|source| LoadError::Unreadable { path: path.to_path_buf(), source })?;
    let cannot_load = |source| LoadError::Session { path: path.to_path_buf(), source };
    let session = Session::builder(runtime()?)
        .map_err(cannot_load)?
        .commit_from_memory(&bytes)
        .map_err(cannot_load)?;
    let tensor = |name: &str, dtype: &ort::value::ValueType| {
        (name.to_string(), dtype.to_string(), tensor_shape(dtype).unwrap_or_default())
    };
    let inputs: Vec<_> = session.inputs().iter().map(|i| tensor(i.name(), i.dtype())).collect();
    let outputs: Vec<_> = session.outputs().iter().map(|o| tensor(o.name(), o.dtype())).collect();
    let named = |all: &[(String, String, Vec<i64>)]| {
        all.iter().map(|(name, _, shape)| (name.clone(), shape.clone())).collect::<Vec<_>>()
    };
    let guess = guess_format(&named(&inputs), &named(&outputs));
    Ok(Inspection {
        path: path.display().to_string(),
        inputs,
        outputs,
        opsets: opset_imports(&bytes),
        metadata: metadata(&session),
        guess,
    })
}

fn metadata(session: &Session) -> Vec<(String, String)> {
    let Ok(m) = session.metadata() else { return Vec::new() };
    let mut facts: Vec<(String, String)> = [
        ("producer", m.producer()),
        ("domain", m.domain()),
        ("description", m.description()),
        // ONNX Runtime reports an unset model version as i64::MAX.
        ("version", m.version().filter(|v| *v != i64::MAX).map(|v| v.to_string())),
    ]
    .into_iter()
    .filter_map(|(k, v)| Some((k.to_string(), v.filter(|v| !v.is_empty())?)))
    .collect();
    for key in m.custom_keys().unwrap_or_default() {
        if let Some(value) = m.custom(&key) {
            facts.push((key, value));
        }
    }
    facts
}

/// A format guessed from shapes: its name, its class count when the shapes tell it, and the
/// input size `[W, H]`.
type Guess = (&'static str, Option<usize>, [i64; 2]);

/// The format whose layout the shapes fit: `[1, 3, H, W]` in; YOLOX `[1, G, 5+C]` with G the
/// grid cells of strides 8, 16 and 32; YOLOv5 `[1, 3G, 5+C]` (three anchors a cell);
/// YOLOv8/YOLO11 `[1, 4+C, G]`; end-to-end YOLO `[1, N, 6]`; Ultralytics RT-DETR `[1, N, 4+C]`
/// for other N; YOLO-NAS `[1, N, 4]` and `[1, N, C]`; DETR `labels`, `boxes` and `scores` with
/// an `orig_target_sizes` input; a classifier `[1, C]`.
fn guess_format(
    inputs: &[(String, Vec<i64>)],
    outputs: &[(String, Vec<i64>)],
) -> Result<Guess, String> {
    let image = inputs.iter().find(|(name, _)| name != "orig_target_sizes");
    let input = image.map(|(_, shape)| &shape[..]).unwrap_or_default();
    let [_, 3, h, w] = input[..] else {
        return Err(format!("input shape {input:?} is not an image [1, 3, height, width]"));
    };
    if h <= 0 || w <= 0 {
        return Err("the input size is dynamic: the format cannot be told from shapes".into());
    }
    let size = [w, h];
    let named = |name: &str| outputs.iter().any(|(n, _)| n == name);
    if inputs.len() == 2 && ["labels", "boxes", "scores"].iter().all(|n| named(n)) {
        return Ok(("detr", None, size));
    }
    let cells: i64 = [8, 16, 32].iter().map(|s| (h / s) * (w / s)).sum();
    let shapes: Vec<&[i64]> = outputs.iter().map(|(_, shape)| &shape[..]).collect();
    let classes = |k: i64| Some(k as usize);
    match shapes[..] {
        [&[_, n, 4], &[_, m, c]] | [&[_, m, c], &[_, n, 4]] if n == m && c > 0 => {
            Ok(("yolo_nas", classes(c), size))
        }
        [&[_, n, k]] if n == cells && k > 5 => Ok(("yolox", classes(k - 5), size)),
        [&[_, n, k]] if n == 3 * cells && k > 5 => Ok(("yolov5", classes(k - 5), size)),
        [&[_, k, n]] if n == cells && k > 4 => Ok(("yolov8", classes(k - 4), size)),
        [&[_, _, 6]] => Ok(("yolo_end2end", None, size)),
        [&[_, _, k]] if k > 4 => Ok(("rtdetr", classes(k - 4), size)),
        [&[_, c]] if c > 1 => Ok(("classifier", classes(c), size)),
        _ => Err(format!(
            "output shapes {shapes:?} fit no supported format for a {w}x{h} input \
             (YOLOX [1, {cells}, 5+C], YOLOv5 [1, {}, 5+C], YOLOv8 [1, 4+C, {cells}], \
             yolo_end2end [1, N, 6], rtdetr [1, N, 4+C], yolo_nas [1, N, 4] and [1, N, C], detr \
             labels, boxes and scores, classifier [1, C])",
            3 * cells
        )),
    }
}

/// The `(domain, version)` pairs of `ModelProto.opset_import` (field 8), read straight from the
/// protobuf: ONNX Runtime does not expose them.
fn opset_imports(model: &[u8]) -> Vec<(String, i64)> {
    let mut opsets = Vec::new();
    for (field, value) in protobuf_fields(model) {
        if let (8, Field::Bytes(entry)) = (field, value) {
            let (mut domain, mut version) = (String::new(), 0);
            for (field, value) in protobuf_fields(entry) {
                match (field, value) {
                    (1, Field::Bytes(d)) => domain = String::from_utf8_lossy(d).into_owned(),
                    (2, Field::Varint(v)) => version = v as i64,
                    _ => {}
                }
            }
            opsets.push((if domain.is_empty() { "ai.onnx".into() } else { domain }, version));
        }
    }
    opsets
}

enum Field<'a> {
    Varint(u64),
    Bytes(&'a [u8]),
    Other,
}

/// The top-level fields of a protobuf message; stops at the first malformed one.
fn protobuf_fields(mut data: &[u8]) -> Vec<(u64, Field<'_>)> {
    let mut fields = Vec::new();
    while let Some(key) = varint(&mut data) {
        let field = match key & 7 {
            0 => match varint(&mut data) {
                Some(v) => Field::Varint(v),
                None => break,
            },
            2 => {
                let Some(len) = varint(&mut data).and_then(|l| usize::try_from(l).ok()) else {
                    break;
                };
                if len > data.len() {
                    break;
                }
                let (bytes, rest) = data.split_at(len);
                data = rest;
                Field::Bytes(bytes)
            }
            1 if data.len() >= 8 => {
                data = &data[8..];
                Field::Other
            }
            5 if data.len() >= 4 => {
                data = &data[4..];
                Field::Other
            }
            _ => break,
        };
        fields.push((key >> 3, field));
    }
    fields
}

fn varint(data: &mut &[u8]) -> Option<u64> {
    let mut value = 0u64;
    for (i, byte) in data.iter().enumerate().take(10) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            *data = &data[i + 1..];
            return Some(value);
        }
    }
    None
}

impl fmt::Display for Inspection {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "model {}", self.path)?;
        for (name, dtype, _) in &self.inputs {
            writeln!(f, "  input   {name}: {dtype}")?;
        }
        for (name, dtype, _) in &self.outputs {
            writeln!(f, "  output  {name}: {dtype}")?;
        }
        let opsets: Vec<String> = self.opsets.iter().map(|(d, v)| format!("{d} {v}")).collect();
        writeln!(
            f,
            "  opsets  {}",
            if opsets.is_empty() { "?".into() } else { opsets.join(", ") }
        )?;
        for (key, value) in &self.metadata {
            writeln!(f, "  meta    {key}: {value}")?;
        }
        match &self.guess {
            Ok((format, classes, [w, h])) => {
                let noun = if *format == "classifier" { "labels" } else { "classes" };
                let (count, names) = match classes {
                    Some(n) => (format!(" with {n} {noun}"), format!("{n} names")),
                    None => (String::new(), "its class names".to_string()),
                };
                writeln!(f, "  looks like `{format}`{count}, input {w}x{h}")?;
                let mut table = String::new();
                let _ = write!(
                    table,
                    "\n[[models]]\nname = \"...\"\npath = \"{}\"\nformat = \"{format}\"\n\
                     classes = \"...\"  # a file with {names}, one a line, in the \
                     model's order\n",
                    self.path
                );
                write!(f, "{table}")
            }
            Err(why) => writeln!(f, "  format  unknown: {why}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tensors(list: &[(&str, &[i64])]) -> Vec<(String, Vec<i64>)> {
        list.iter().map(|(name, shape)| (name.to_string(), shape.to_vec())).collect()
    }

    fn guess(input: &[i64], outputs: &[&[i64]]) -> Result<Guess, String> {
        let outputs: Vec<(&str, &[i64])> = outputs.iter().map(|s| ("out", *s)).collect();
        guess_format(&tensors(&[("images", input)]), &tensors(&outputs))
    }

    #[test]
    fn formats_are_told_by_their_shapes() {
        let image = [1, 3, 416, 416];
        assert_eq!(guess(&image, &[&[1, 3549, 85]]).unwrap().0, "yolox");
        assert_eq!(guess(&image, &[&[1, 3 * 3549, 85]]).unwrap().0, "yolov5");
        let yolov8 = guess(&[1, 3, 640, 640], &[&[1, 84, 8400]]).unwrap();
        assert_eq!(yolov8, ("yolov8", Some(80), [640, 640]));
        assert_eq!(guess(&[1, 3, 224, 224], &[&[1, 2]]).unwrap().0, "classifier");
        assert_eq!(guess(&image, &[&[1, 300, 6]]).unwrap(), ("yolo_end2end", None, [416, 416]));
        assert_eq!(guess(&image, &[&[1, 300, 84]]).unwrap(), ("rtdetr", Some(80), [416, 416]));
        let nas = guess(&image, &[&[1, 3549, 4], &[1, 3549, 80]]).unwrap();
        assert_eq!(nas, ("yolo_nas", Some(80), [416, 416]));
        let detr = guess_format(
            &tensors(&[("images", &[1, 3, 640, 640]), ("orig_target_sizes", &[1, 2])]),
            &tensors(&[("labels", &[1, 300]), ("boxes", &[1, 300, 4]), ("scores", &[1, 300])]),
        );
        assert_eq!(detr.unwrap(), ("detr", None, [640, 640]));
        assert!(guess(&image, &[&[1, 100, 3]]).unwrap_err().contains("fit no supported"));
        assert!(guess(&[1, 3, -1, -1], &[&[1, 2]]).unwrap_err().contains("dynamic"));
    }

    #[test]
    fn opsets_are_read_from_the_protobuf() {
        // ModelProto { ir_version: 8, opset_import: [{ domain: "", version: 13 }] }
        let model = [0x08, 0x08, 0x42, 0x02, 0x10, 0x0d];
        assert_eq!(opset_imports(&model), [("ai.onnx".to_string(), 13)]);
        assert!(opset_imports(&[0xff]).is_empty(), "garbage is no opset");
    }
}
