"""Imported quantized models round as onnxruntime rounds them, bit for bit, at the .5 ties where the
order of float operations decides the integer: QuantizeLinear of a float (a division), a QDQ layer's
requantization (one multiplication of the int32 accumulator), its float bias (onnxruntime's
BiasQuantization) and a quantized Add (onnxruntime's QLinearAdd). The reference is onnxruntime with its
default optimisations (its fused QLinear kernels) on the same model; the inputs are built to hit ties."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from hai_compiler.compiler import CompileOptions, compile_model
from hai_compiler.compiler.options import load_graph
from hai_compiler.driver import run_pipeline
from ir import Interpreter

SCALE = np.float32(2 / 102)  # x / SCALE and x * float32(1 / SCALE) round apart for ~20% of the ties below


def tie_inputs(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """Values (k + 0.5) * SCALE: every one a .5 tie (or within an ulp of one) when divided by SCALE."""
    k = np.random.default_rng(seed).integers(-60, 60, shape)
    return ((k + 0.5) * SCALE).astype(np.float32)


def model(nodes: list[onnx.NodeProto], inputs: dict[str, tuple[int, ...]], outputs: list[str],
          constants: Mapping[str, object]) -> onnx.ModelProto:  # fmt: skip
    graph = helper.make_graph(
        nodes, "rounding",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        [numpy_helper.from_array(np.asarray(v), k) for k, v in constants.items()],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def qdq(name: str, scale: str, zero: str) -> list[onnx.NodeProto]:
    """`name` quantized and dequantized again: `name`_q (u8) and `name`_dq (f32)."""
    return [
        helper.make_node("QuantizeLinear", [name, scale, zero], [f"{name}_q"]),
        helper.make_node("DequantizeLinear", [f"{name}_q", scale, zero], [f"{name}_dq"]),
    ]


def assert_like_onnxruntime(
    onnx_model: onnx.ModelProto, feeds: dict[str, np.ndarray], tmp_path: Path
) -> None:
    """HAI's interpreter (after the default pipeline) and compiled model equal onnxruntime exactly."""
    import runtime

    expected = ort.InferenceSession(onnx_model.SerializeToString()).run(None, feeds)
    names = [o.name for o in onnx_model.graph.output]
    shapes = {k: v.shape for k, v in feeds.items()}
    graph = run_pipeline(load_graph(onnx_model, CompileOptions(input_shapes=shapes)), "default")
    interpreted = Interpreter(graph).run(feeds)
    compiled = runtime.load(compile_model(onnx_model, tmp_path / "m.hai", CompileOptions()).path).run(feeds)
    for name, want in zip(names, expected, strict=True):
        np.testing.assert_array_equal(interpreted[name], want, err_msg=f"interpreter, {name}")
        np.testing.assert_array_equal(compiled[name], want, err_msg=f"compiled, {name}")


def test_quantize_linear_divides_by_the_scale(tmp_path: Path) -> None:
    x = tie_inputs((4, 64), seed=0)
    reciprocal = np.rint(x * np.float32(1 / np.float64(SCALE)))
    assert np.count_nonzero(reciprocal != np.rint(x / SCALE)) > 10  # the ties tell the two rules apart
    nodes = qdq("x", "s", "z")
    constants = {"s": SCALE, "z": np.uint8(128)}
    assert_like_onnxruntime(model(nodes, {"x": x.shape}, ["x_dq"], constants), {"x": x}, tmp_path)


def test_qdq_add_computes_as_onnxruntimes_qlinear_add(tmp_path: Path) -> None:
    """s1 = x + b, b a constant of one value per run (onnxruntime's scalar operand), s2 = x + w (both
    run-time), s3 = b + w (the scalar first). x's scale equals the sums' and b's ratio to it is .5, so
    every s1 is a tie, rounded with the odd zero point inside."""
    shape = (1, 4, 6, 6)
    constants = {
        "sx": np.float32(0.02), "zx": np.uint8(10), "sw": np.float32(0.013), "zw": np.uint8(77),
        "b": np.full((4, 1, 1), 101, np.uint8), "sb": np.float32(0.01), "zb": np.uint8(0),
        "sy": np.float32(0.02), "zy": np.uint8(3),
    }  # fmt: skip
    nodes = [
        *qdq("x", "sx", "zx"), *qdq("w", "sw", "zw"),
        helper.make_node("DequantizeLinear", ["b", "sb", "zb"], ["b_dq"]),
        helper.make_node("Add", ["x_dq", "b_dq"], ["s1"]), *qdq("s1", "sy", "zy"),
        helper.make_node("Add", ["x_dq", "w_dq"], ["s2"]), *qdq("s2", "sy", "zy"),
        helper.make_node("Add", ["b_dq", "w_dq"], ["s3"]), *qdq("s3", "sy", "zy"),
    ]  # fmt: skip
    rng = np.random.default_rng(3)
    feeds = {n: rng.uniform(-1.5, 1.5, shape).astype(np.float32) for n in ("x", "w")}
    onnx_model = model(nodes, {"x": shape, "w": shape}, ["s1_dq", "s2_dq", "s3_dq"], constants)
    assert_like_onnxruntime(onnx_model, feeds, tmp_path)


@pytest.mark.parametrize("bias", [False, True])
def test_qdq_conv_requantizes_its_accumulator_once(bias: bool, tmp_path: Path) -> None:
    """DQ -> Conv(+ float bias) -> Q: one float32 multiplication of the int32 accumulator (and the bias
    rounded as onnxruntime rounds it), as QLinearConv. The scales make the multiplier exactly 0.5
    (0.5 * 0.2 / 0.2 in float32), so every odd accumulator is a tie, which dequantizing first (to a
    rounded float32) and then quantizing moves off; the bias values sit at ties too."""
    sx, sw, sy = np.float32(0.5), np.float32(0.2), np.float32(0.2)
    acc_scale = np.float32(sx * sw)
    channels = 6
    constants = {
        "sx": sx, "zx": np.uint8(128), "w": np.array([1, -1, 3, -3, 5, 7], np.int8).reshape(-1, 1, 1, 1),
        "sw": np.full(channels, sw, np.float32), "zw": np.zeros(channels, np.int8), "sy": sy,
        "zy": np.uint8(127), "bias": ((np.arange(channels) * 7 - 20 + 0.5) * acc_scale).astype(np.float32),
    }  # fmt: skip
    conv_inputs = ["x_dq", "w_dq", "bias"] if bias else ["x_dq", "w_dq"]
    nodes = [
        *qdq("x", "sx", "zx"),
        helper.make_node("DequantizeLinear", ["w", "sw", "zw"], ["w_dq"], axis=0),
        helper.make_node("Conv", conv_inputs, ["y"]), *qdq("y", "sy", "zy"),
    ]  # fmt: skip
    x = (np.random.default_rng(5).integers(-40, 40, (1, 1, 16, 16)) * sx).astype(np.float32)
    assert_like_onnxruntime(model(nodes, {"x": x.shape}, ["y_dq"], constants), {"x": x}, tmp_path)
