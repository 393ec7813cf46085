"""onnxruntime's static INT8 baseline: the recipe's steps, checked with onnxruntime itself."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from hai_compiler.quantize import datasets, metrics
from hai_compiler.quantize.onnxruntime_int8 import (
    constants_to_initializers,
    fix_input_shapes,
    onnxruntime_static_int8,
)

ort = pytest.importorskip("onnxruntime")


def run(model: onnx.ModelProto | str, feed: dict[str, np.ndarray]) -> np.ndarray:
    source = model.SerializeToString() if isinstance(model, onnx.ModelProto) else model
    return ort.InferenceSession(source, providers=["CPUExecutionProvider"]).run(None, feed)[0]


def test_constants_become_initializers_with_the_same_results() -> None:
    weight = helper.make_tensor("w", TensorProto.FLOAT, [3], [0.5, -1.0, 2.0])
    nodes = [
        helper.make_node("Constant", [], ["w"], value=weight),
        helper.make_node("Mul", ["x", "w"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["n", 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["n", 3])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    feed = {"x": np.arange(6, dtype=np.float32).reshape(2, 3)}
    expected = run(model, feed)
    assert constants_to_initializers(model.graph) == 1
    assert [n.op_type for n in model.graph.node] == ["Mul"] and model.graph.initializer[0].name == "w"
    np.testing.assert_array_equal(run(model, feed), expected)
    fix_input_shapes(model, {"x": (2, 3)})
    assert [d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim] == [2, 3]


def test_digits_int8_is_qdq_per_channel_and_close_to_fp32(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    monkeypatch.setenv("HAI_CACHE_DIR", str(tmp_path))
    data = datasets.load_case("digits", calibration_samples=32, eval_samples=64)
    path = onnxruntime_static_int8(data.model, data.calibration_feeds(), {"image": (1, 1, 8, 8)})
    assert path.is_relative_to(tmp_path / "quantized")
    model = onnx.load(str(path))
    ops = {n.op_type for n in model.graph.node}
    assert {"QuantizeLinear", "DequantizeLinear"} <= ops
    int8_weights = [
        t for t in model.graph.initializer if t.data_type == TensorProto.INT8 and len(t.dims) == 4
    ]
    assert int8_weights  # the conv weights, stored as int8
    per_channel = [
        n for n in model.graph.node if n.op_type == "DequantizeLinear" and n.input[0].endswith("quantized")
    ]
    assert any(a.name == "axis" for n in per_channel for a in n.attribute)
    assert metrics.onnx_weight_bytes(path) < 0.3 * metrics.onnx_weight_bytes(data.model)
    fp32 = np.concatenate([run(str(data.model), f) for f in data.evaluation_feeds()])
    int8 = np.concatenate([run(str(path), f) for f in data.evaluation_feeds()])
    assert metrics.top1_agreement(int8, fp32) > 0.95 and metrics.sqnr_db(int8, fp32) > 20
    before = path.stat().st_mtime_ns
    assert onnxruntime_static_int8(data.model, data.calibration_feeds(), {"image": (1, 1, 8, 8)}) == path
    assert path.stat().st_mtime_ns == before  # served from the cache


@pytest.mark.slow
def test_ppocr_rec_with_symbolic_dims_and_opset_12_quantizes(tmp_path, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    pytest.importorskip("PIL", reason="the rec set needs Pillow (the `bench` extra)")
    data = datasets.load_case("rec", calibration_samples=4, eval_samples=2)  # fetches into the real cache
    monkeypatch.setenv("HAI_CACHE_DIR", str(tmp_path))
    path = onnxruntime_static_int8(data.model, data.calibration_feeds(), {"x": (1, 3, 48, 320)})
    model = onnx.load(str(path))
    assert next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx")) >= 13
    constants = [n.attribute[0].t for n in model.graph.node if n.op_type == "Constant"]
    float_constants = [t for t in constants if t.data_type == TensorProto.FLOAT and len(t.dims) >= 2]
    assert not float_constants  # the Constant-node weights became initializers, then int8
    assert sum(t.data_type == TensorProto.INT8 and len(t.dims) >= 2 for t in model.graph.initializer) > 20
    fp32 = np.concatenate([run(str(data.model), f) for f in data.evaluation_feeds()])
    int8 = np.concatenate([run(str(path), f) for f in data.evaluation_feeds()])
    assert int8.shape == fp32.shape and metrics.top1_agreement(int8, fp32) > 0.8
