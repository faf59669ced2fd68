//! A tiny, real ONNX image classifier written by the tests themselves, so no model weights are
//! committed or downloaded. The protobuf encoding is hand-rolled (std only) and covers just the
//! parts of `onnx.proto` the model needs; field numbers are from onnx/onnx.proto (proto2).

use std::path::Path;

/// ONNX `TensorProto.DataType.FLOAT`, also used as `TypeProto.Tensor.elem_type`.
const FLOAT: i64 = 1;
/// `AttributeProto.AttributeType` values.
const ATTR_INT: i64 = 2;
const ATTR_INTS: i64 = 7;

/// Protobuf wire-format writer. Every message is built bottom-up: nested messages are encoded
/// first and then embedded as length-delimited bytes. Repeated scalars are written unpacked
/// (one key per value), the canonical proto2 encoding.
#[derive(Default)]
struct Writer(Vec<u8>);

impl Writer {
    /// Base-128 varint, least significant group first.
    fn varint(mut self, mut v: u64) -> Self {
        while v >= 0x80 {
            self.0.push(v as u8 | 0x80);
            v >>= 7;
        }
        self.0.push(v as u8);
        self
    }

    /// A varint field (wire type 0): int32, int64 or enum.
    fn int(self, field: u64, v: i64) -> Self {
        self.varint(field << 3).varint(v as u64)
    }

    /// A length-delimited field (wire type 2): string, bytes or embedded message.
    fn bytes(self, field: u64, b: &[u8]) -> Self {
        let mut w = self.varint(field << 3 | 2).varint(b.len() as u64);
        w.0.extend_from_slice(b);
        w
    }
}

/// `TensorProto`: a float32 tensor with `data` stored as little-endian `raw_data`.
fn tensor(name: &str, dims: &[i64], data: &[f32]) -> Vec<u8> {
    assert_eq!(dims.iter().product::<i64>(), data.len() as i64, "tensor {name}: shape mismatch");
    let w = dims.iter().fold(Writer::default(), |w, &d| w.int(1, d));
    let raw: Vec<u8> = data.iter().flat_map(|v| v.to_le_bytes()).collect();
    w.int(2, FLOAT).bytes(8, name.as_bytes()).bytes(9, &raw).0
}

/// `ValueInfoProto` for a float32 tensor of fixed shape `dims`.
fn value_info(name: &str, dims: &[i64]) -> Vec<u8> {
    let shape =
        dims.iter().fold(Writer::default(), |w, &d| w.bytes(1, &Writer::default().int(1, d).0));
    let tensor_type = Writer::default().int(1, FLOAT).bytes(2, &shape.0);
    let type_proto = Writer::default().bytes(1, &tensor_type.0);
    Writer::default().bytes(1, name.as_bytes()).bytes(2, &type_proto.0).0
}

/// `AttributeProto` of type INTS.
fn attribute_ints(name: &str, ints: &[i64]) -> Vec<u8> {
    let w = ints.iter().fold(Writer::default().bytes(1, name.as_bytes()), |w, &i| w.int(8, i));
    w.int(20, ATTR_INTS).0
}

/// `AttributeProto` of type INT.
fn attribute_int(name: &str, i: i64) -> Vec<u8> {
    Writer::default().bytes(1, name.as_bytes()).int(3, i).int(20, ATTR_INT).0
}

/// `NodeProto` in the default domain, named after its first output.
fn node(op_type: &str, inputs: &[&str], outputs: &[&str], attributes: &[Vec<u8>]) -> Vec<u8> {
    let w = inputs.iter().fold(Writer::default(), |w, i| w.bytes(1, i.as_bytes()));
    let w = outputs.iter().fold(w, |w, o| w.bytes(2, o.as_bytes()));
    let w = w.bytes(3, outputs[0].as_bytes()).bytes(4, op_type.as_bytes());
    attributes.iter().fold(w, |w, a| w.bytes(5, a)).0
}

/// `GraphProto` from already-encoded nodes, initializers, inputs and outputs.
fn graph(
    name: &str,
    nodes: &[Vec<u8>],
    initializers: &[Vec<u8>],
    inputs: &[Vec<u8>],
    outputs: &[Vec<u8>],
) -> Vec<u8> {
    let w = nodes.iter().fold(Writer::default(), |w, n| w.bytes(1, n));
    let w = initializers.iter().fold(w.bytes(2, name.as_bytes()), |w, t| w.bytes(5, t));
    let w = inputs.iter().fold(w, |w, v| w.bytes(11, v));
    outputs.iter().fold(w, |w, v| w.bytes(12, v)).0
}

/// `ModelProto`: IR version 7, default-domain opset 13 (ReduceMean still takes `axes` as an
/// attribute there; it became an input in opset 18).
fn model(graph: &[u8]) -> Vec<u8> {
    let opset = Writer::default().bytes(1, b"").int(2, 13);
    let w = Writer::default().int(1, 7).bytes(2, b"cityeye-tests");
    w.bytes(7, graph).bytes(8, &opset.0).0
}

/// Writes a small image classifier as an ONNX model to `path`: input `input` float32
/// [1, 3, size, size] (RGB planes, values 0..1), output `probabilities` float32 [1, labels]
/// after Softmax. Its logits are `weights · mean_rgb + bias`, where mean_rgb is the mean of each
/// input plane (ReduceMean over H and W), so tests can steer it by colour.
///
/// `weights` has one row per label. For example `[[5, 0, 0], [0, 5, 0], [0, 0, 5]]` with a zero
/// bias ranks a red image as label 0, green as 1 and blue as 2.
pub fn write_colour_classifier(path: &Path, size: usize, weights: &[[f32; 3]], bias: &[f32]) {
    assert!(
        !weights.is_empty() && weights.len() == bias.len(),
        "one weight row and bias per label"
    );
    let labels = weights.len() as i64;
    // MatMul wants W^T: [3, labels], row-major, so element (c, l) is weights[l][c].
    let w_t: Vec<f32> = (0..3).flat_map(|c| weights.iter().map(move |row| row[c])).collect();
    let nodes = [
        node(
            "ReduceMean",
            &["input"],
            &["mean_rgb"],
            &[attribute_ints("axes", &[2, 3]), attribute_int("keepdims", 0)],
        ),
        node("MatMul", &["mean_rgb", "weights_t"], &["scores"], &[]),
        node("Add", &["scores", "bias"], &["logits"], &[]),
        node("Softmax", &["logits"], &["probabilities"], &[attribute_int("axis", 1)]),
    ];
    let initializers = [tensor("weights_t", &[3, labels], &w_t), tensor("bias", &[labels], bias)];
    let size = size as i64;
    let graph = graph(
        "colour_classifier",
        &nodes,
        &initializers,
        &[value_info("input", &[1, 3, size, size])],
        &[value_info("probabilities", &[1, labels])],
    );
    std::fs::write(path, model(&graph))
        .unwrap_or_else(|e| panic!("writing ONNX model {}: {e}", path.display()));
}
