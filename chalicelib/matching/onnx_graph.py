"""The int8 search's onnxruntime graph, written as ONNX protobuf bytes, without `onnx`.

Written by hand, where a library would normally do it: `onnx` (its `helper` module) is the
library that writes these bytes, but it is not in the Lambda layer (the recognizer is prepared
at build time, so a worker never needs it) and importing it costs ~0.7 CPU-s, half the cold-start
budget. The graph is one node, so its encoding is short; tests/unit/test_onnx_graph.py checks
that these bytes equal what `onnx.helper` makes, field for field, for several shapes.

Protobuf wire format (protobuf.dev, "Encoding"): each field is a varint key (number << 3 | wire
type), then a varint (type 0) or a varint length and that many bytes (type 2). Field numbers
are those of onnx/onnx.proto (ONNX IR version 9, opset 13); `onnx` writes repeated int64 `dims`
unpacked and `int32_data` packed, and so does this.
"""

from __future__ import annotations

# onnx.proto's TensorProto.DataType values used here.
UINT8, INT8, INT32 = 2, 3, 6
IR_VERSION, OPSET = 9, 13
_VARINT, _BYTES = 0, 2


def _varint(value: int) -> bytes:
    if value < 0:
        raise ValueError("negative varints are not used in this graph")
    out = bytearray()
    while True:
        low, value = value & 0x7F, value >> 7
        if value:
            out.append(low | 0x80)
        else:
            out.append(low)
            return bytes(out)


def _int(field: int, value: int) -> bytes:
    return _varint(field << 3 | _VARINT) + _varint(value)


def _bytes(field: int, payload: bytes) -> bytes:
    return _varint(field << 3 | _BYTES) + _varint(len(payload)) + payload


def _str(field: int, text: str) -> bytes:
    return _bytes(field, text.encode())


def _value_info(name: str, elem_type: int, shape: list[int | str]) -> bytes:
    """ValueInfoProto: name = 1, type = 2 (TypeProto.tensor_type = 1: elem_type = 1, shape = 2;
    TensorShapeProto.dim = 1: dim_value = 1, dim_param = 2)."""
    dims = b"".join(_bytes(1, _str(2, d) if isinstance(d, str) else _int(1, d)) for d in shape)
    tensor = _int(1, elem_type) + _bytes(2, dims)
    return _str(1, name) + _bytes(2, _bytes(1, tensor))


def matmul_integer(dims: int, width: int, zero_point: int = 128) -> bytes:
    """Y (B, width) int32 = MatMulInteger(A (B, dims) uint8, W (dims, width) int8, A's zero point).

    W is an initializer whose data is external, named "in-memory": the caller gives it with
    SessionOptions.add_external_initializers, so the weights are never copied into these bytes
    and MLAS packs them once, when the session is made.
    """
    node = b"".join(_str(1, name) for name in ("A", "W", "zp")) + _str(2, "Y") \
        + _str(4, "MatMulInteger")  # NodeProto: input = 1, output = 2, op_type = 4
    # TensorProto: dims = 1, data_type = 2, int32_data = 5 (packed), name = 8,
    # external_data = 13 (StringStringEntryProto: key = 1, value = 2), data_location = 14.
    zp = _int(2, UINT8) + _bytes(5, _varint(zero_point)) + _str(8, "zp")
    external = (("location", "in-memory"), ("offset", "0"), ("length", str(dims * width)))
    w = _int(1, dims) + _int(1, width) + _int(2, INT8) + _str(8, "W") \
        + b"".join(_bytes(13, _str(1, k) + _str(2, v)) for k, v in external) + _int(14, 1)
    # GraphProto: node = 1, name = 2, initializer = 5, input = 11, output = 12.
    graph = _bytes(1, node) + _str(2, "coarse") + _bytes(5, zp) + _bytes(5, w) \
        + _bytes(11, _value_info("A", UINT8, ["B", dims])) \
        + _bytes(12, _value_info("Y", INT32, ["B", width]))
    # ModelProto: ir_version = 1, graph = 7, opset_import = 8 (domain = 1, version = 2).
    return _int(1, IR_VERSION) + _bytes(7, graph) + _bytes(8, _str(1, "") + _int(2, OPSET))
