"""The int8 search's graph, written without `onnx`: the bytes `onnx` would write, and a session
made from them computes the exact integer product."""

from __future__ import annotations

import numpy as np
import pytest

from chalicelib.matching import coarse, onnx_graph

SHAPES = [(128, 32768), (128, 5), (3, 300), (512, 1), (128, 200_000)]


@pytest.mark.parametrize(("dims", "width"), SHAPES)
def test_the_bytes_are_what_onnx_helper_writes(dims: int, width: int) -> None:
    onnx = pytest.importorskip("onnx", reason="the reference writer is the `onnx` package (dev)")
    from onnx import TensorProto, helper

    stub = TensorProto(name="W", data_type=TensorProto.INT8, dims=[dims, width])
    stub.data_location = TensorProto.EXTERNAL
    for key, value in (("location", "in-memory"), ("offset", "0"), ("length", str(dims * width))):
        entry = stub.external_data.add()
        entry.key, entry.value = key, value
    graph = helper.make_graph(
        [helper.make_node("MatMulInteger", ["A", "W", "zp"], ["Y"])], "coarse",
        [helper.make_tensor_value_info("A", TensorProto.UINT8, ["B", dims])],
        [helper.make_tensor_value_info("Y", TensorProto.INT32, ["B", width])],
        initializer=[helper.make_tensor("zp", TensorProto.UINT8, [], [128]), stub])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)], ir_version=9)
    ours = onnx_graph.matmul_integer(dims, width)
    assert ours == model.SerializeToString()
    parsed = onnx.load_from_string(ours)  # (onnx.checker wants the "in-memory" file to exist)
    assert [n.op_type for n in parsed.graph.node] == ["MatMulInteger"]
    assert list(parsed.graph.initializer[1].dims) == [dims, width]


@pytest.mark.skipif(not coarse.available(), reason="needs onnxruntime")
@pytest.mark.parametrize("b", [1, 7])
def test_a_session_from_these_bytes_is_the_exact_integer_product(b: int) -> None:
    rng = np.random.default_rng(b)
    w = rng.integers(-63, 64, (128, 1000), dtype=np.int8)
    a = rng.integers(0, 256, (b, 128), dtype=np.uint8)
    sess, _held = coarse._session(w)
    got = sess.run(None, {"A": a})[0]
    want = (a.astype(np.int64) - 128) @ w.astype(np.int64)
    assert got.dtype == np.int32
    assert np.array_equal(got, want)


def test_varints_encode_as_protobuf_does() -> None:
    assert onnx_graph._varint(0) == b"\x00"
    assert onnx_graph._varint(127) == b"\x7f"
    assert onnx_graph._varint(128) == b"\x80\x01"
    assert onnx_graph._varint(300) == b"\xac\x02"
    with pytest.raises(ValueError):
        onnx_graph._varint(-1)
