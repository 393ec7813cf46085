"""QLinearMatMul and MatMulInteger of two run-time operands (attention in QOperator models): imported as
exact integer products computed in f32 (converters/activation_matmul.py), checked against onnxruntime,
and PP-OCR rec quantized by onnxruntime in QOperator form, end to end (slow)."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import runtime
from hai_compiler import real_models
from hai_compiler.compiler import CompileOptions, compile_model
from hai_compiler.onnx_import.converter import ConversionError
from hai_compiler.onnx_import.importer import import_onnx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from test_qoperator_models import compile_and_run, qoperator_model  # noqa: E402

RNG = np.random.default_rng(5)
U8, I32 = TensorProto.UINT8, TensorProto.INT32


def model_of(node: onnx.NodeProto, inputs: list, output: onnx.ValueInfoProto, inits: list) -> onnx.ModelProto:  # type: ignore[type-arg]
    initializers = [onnx.numpy_helper.from_array(value, name) for name, value in inits]
    graph = helper.make_graph([node], "m", inputs, [output], initializers)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])


def qlinear_scores(k: int) -> onnx.ModelProto:
    """QLinearMatMul of a [2, 4, 3, k] u8 and a [2, 4, k, 5] u8, both run-time."""
    node = helper.make_node("QLinearMatMul", ["a", "as", "az", "b", "bs", "bz", "ys", "yz"], ["y"], name="qk")
    inits = [("as", np.float32(0.02)), ("az", np.uint8(120)), ("bs", np.float32(0.03)),
             ("bz", np.uint8(131)), ("ys", np.float32(0.4)), ("yz", np.uint8(128))]  # fmt: skip
    inputs = [
        helper.make_tensor_value_info("a", U8, [2, 4, 3, k]),
        helper.make_tensor_value_info("b", U8, [2, 4, k, 5]),
    ]
    return model_of(node, inputs, helper.make_tensor_value_info("y", U8, [2, 4, 3, 5]), inits)


def test_qlinear_matmul_of_two_run_time_operands_matches_onnxruntime(tmp_path: Path) -> None:
    model = qlinear_scores(32)
    feeds = {
        "a": RNG.integers(0, 256, (2, 4, 3, 32), np.uint8),
        "b": RNG.integers(0, 256, (2, 4, 32, 5), np.uint8),
    }
    path = tmp_path / "qk.onnx"
    onnx.save(model, path)
    result = compile_model(path, tmp_path / "qk.hai", CompileOptions())
    ours = runtime.load(result.path).run(feeds)["y"]
    (theirs,) = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feeds)
    assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1  # within 1 LSB (ties)


def test_matmul_integer_of_two_run_time_operands_is_exact() -> None:
    node = helper.make_node("MatMulInteger", ["a", "b", "az", "bz"], ["y"], name="mmi")
    inputs = [helper.make_tensor_value_info("a", U8, [3, 6]), helper.make_tensor_value_info("b", U8, [6, 4])]
    model = model_of(node, inputs, helper.make_tensor_value_info("y", I32, [3, 4]),
                     [("az", np.uint8(7)), ("bz", np.uint8(200))])  # fmt: skip
    feeds = {"a": RNG.integers(0, 256, (3, 6), np.uint8), "b": RNG.integers(0, 256, (6, 4), np.uint8)}
    from ir import run_graph

    ours = run_graph(import_onnx(model), feeds)["y"]
    want = (feeds["a"].astype(np.int64) - 7) @ (feeds["b"].astype(np.int64) - 200)
    np.testing.assert_array_equal(ours, want)


def test_a_product_too_long_for_exact_f32_is_refused() -> None:
    with pytest.raises(ConversionError, match=r"'qk' \(QLinearMatMul\).*K=1000.*exact integers"):
        import_onnx(qlinear_scores(1000))  # 1000 * 135 * 131 > 2^24


@pytest.mark.slow
def test_ppocr_rec_qoperator_runs_with_its_attention_and_agrees_with_onnxruntime(tmp_path: Path) -> None:
    spec = real_models.MODELS["ppocr_rec"]
    name = next(iter(spec.input_shapes))
    model = qoperator_model(real_models.fetch("ppocr_rec"), spec.input_shapes,
                            [spec.sample_inputs(seed=s) for s in range(4)])  # fmt: skip
    inputs = [spec.sample_inputs(seed=100 + s)[name] for s in range(5)]
    groups, ours, theirs = compile_and_run(model, name, inputs, tmp_path)
    assert sum(g.startswith(("ConvInteger", "MatMulInteger")) for g in groups) >= 40
    # per-timestep top-1 (the text decoded): the u8 softmax differs by some 1/256 steps (docs/quantization.md)
    assert float(np.mean(ours.argmax(-1) == theirs.argmax(-1))) >= 0.99
