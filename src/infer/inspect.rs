//! `cityeye models inspect`: what an ONNX file is, before anyone writes its config.
//!
//! Prints its inputs and outputs with their shapes, the opsets it imports, its metadata, and
//! the `format` its shapes fit (YOLOX's raw grid, YOLOv5's anchors, YOLOv8/YOLO11's transposed
//! output, or a classifier), with a `[[models]]` table to start from.

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
    /// The format its shapes fit, its class count and input size, or why none fits.
    guess: Result<(&'static str, usize, [i64; 2]), String>,
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
    let guess = guess_format(
        inputs.first().map(|i| &i.2[..]).unwrap_or_default(),
        outputs.first().map(|o| &o.2[..]).unwrap_or_default(),
    );
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

/// The format whose output layout the shapes fit: `[1, 3, H, W]` in; YOLOX `[1, G, 5+C]` with
/// G the grid cells of strides 8, 16 and 32; YOLOv5 `[1, 3G, 5+C]` (three anchors a cell);
/// YOLOv8/YOLO11 `[1, 4+C, G]`; a classifier `[1, C]`.
fn guess_format(input: &[i64], output: &[i64]) -> Result<(&'static str, usize, [i64; 2]), String> {
    let [_, 3, h, w] = input[..] else {
        return Err(format!("input shape {input:?} is not an image [1, 3, height, width]"));
    };
    if h <= 0 || w <= 0 {
        return Err("the input size is dynamic: the format cannot be told from shapes".into());
    }
    let cells: i64 = [8, 16, 32].iter().map(|s| (h / s) * (w / s)).sum();
    let size = [w, h];
    match output[..] {
        [_, n, k] if n == cells && k > 5 => Ok(("yolox", (k - 5) as usize, size)),
        [_, n, k] if n == 3 * cells && k > 5 => Ok(("yolov5", (k - 5) as usize, size)),
        [_, k, n] if n == cells && k > 4 => Ok(("yolov8", (k - 4) as usize, size)),
        [_, c] if c > 1 => Ok(("classifier", c as usize, size)),
        _ => Err(format!(
            "output shape {output:?} fits no supported format for a {w}x{h} input \
             (YOLOX [1, {cells}, 5+C], YOLOv5 [1, {}, 5+C], YOLOv8 [1, 4+C, {cells}], \
             classifier [1, C])",
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
                writeln!(f, "  looks like `{format}` with {classes} {noun}, input {w}x{h}")?;
                let mut table = String::new();
                let _ = write!(
                    table,
                    "\n[[models]]\nname = \"...\"\npath = \"{}\"\nformat = \"{format}\"\n\
                     classes = \"...\"  # a file with {classes} names, one a line, in the \
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

    #[test]
    fn formats_are_told_by_their_shapes() {
        let image = [1, 3, 416, 416];
        assert_eq!(guess_format(&image, &[1, 3549, 85]).unwrap().0, "yolox");
        assert_eq!(guess_format(&image, &[1, 3 * 3549, 85]).unwrap().0, "yolov5");
        assert_eq!(
            guess_format(&[1, 3, 640, 640], &[1, 84, 8400]).unwrap(),
            ("yolov8", 80, [640, 640])
        );
        assert_eq!(guess_format(&[1, 3, 224, 224], &[1, 2]).unwrap().0, "classifier");
        assert!(guess_format(&image, &[1, 100, 6]).unwrap_err().contains("fits no supported"));
        assert!(guess_format(&[1, 3, -1, -1], &[1, 2]).unwrap_err().contains("dynamic"));
    }

    #[test]
    fn opsets_are_read_from_the_protobuf() {
        // ModelProto { ir_version: 8, opset_import: [{ domain: "", version: 13 }] }
        let model = [0x08, 0x08, 0x42, 0x02, 0x10, 0x0d];
        assert_eq!(opset_imports(&model), [("ai.onnx".to_string(), 13)]);
        assert!(opset_imports(&[0xff]).is_empty(), "garbage is no opset");
    }
}
