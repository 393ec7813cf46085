"""Activation-family ops: one-node ONNX models through HAI against onnxruntime, at default and
non-default attributes, plus the inference errors a bad graph gets."""

from __future__ import annotations

import numpy as np
import pytest
from one_node_onnx import assert_close, one_node_model, run_hai, run_onnxruntime, run_reference

from ir import Builder, DType, Graph, IRError, TensorType

RNG = np.random.default_rng(5)
X = np.concatenate([RNG.standard_normal(40) * 4, [-30.0, -1.0, 0.0, 0.5, 1.0, 30.0, 100.0]]).astype(
    np.float32
)
X = X.reshape(-1)[:45].reshape(3, 15)

# (op, opset, attributes)
CASES = [
    ("Relu", 13, {}),
    ("LeakyRelu", 7, {}),
    ("LeakyRelu", 16, {"alpha": 0.3}),
    ("Sigmoid", 13, {}),
    ("HardSigmoid", 7, {}),
    ("HardSigmoid", 22, {"alpha": 0.5, "beta": 0.1}),
    ("HardSwish", 14, {}),
    ("Tanh", 13, {}),
    ("Gelu", 20, {}),
    ("Gelu", 20, {"approximate": "tanh"}),
    ("Elu", 7, {}),
    ("Elu", 22, {"alpha": 0.5}),
    ("Selu", 7, {}),
    ("Selu", 22, {"alpha": 2.0, "gamma": 3.0}),
    ("Softplus", 7, {}),
    ("Softsign", 7, {}),
    ("Celu", 12, {}),
    ("Celu", 12, {"alpha": 2.0}),
    ("ThresholdedRelu", 10, {}),
    ("ThresholdedRelu", 22, {"alpha": 0.5}),
    ("Mish", 18, {}),
]


@pytest.mark.parametrize(("op", "opset", "attrs"), CASES, ids=[f"{c[0]}-{c[1]}-{len(c[2])}" for c in CASES])
def test_activation_matches_onnxruntime(op: str, opset: int, attrs: dict) -> None:
    model = one_node_model(op, [("x", X)], ["y"], opset, **attrs)
    assert_close(run_hai(model, {"x": X}), run_onnxruntime(model, {"x": X}), rtol=1e-5, atol=1e-6)


def test_swish_matches_the_onnx_reference() -> None:
    # onnxruntime's sigmoid flushes the far negative tail (x < -17) to ~0, the reference does not
    model = one_node_model("Swish", [("x", X)], ["y"], 24, alpha=0.5)
    assert_close(run_hai(model, {"x": X}), run_reference(model, {"x": X}), rtol=1e-6, atol=1e-7)


@pytest.mark.parametrize("slope_shape", [(1,), (4, 1, 1), (5,), (4, 6, 5)])
def test_prelu_slope_broadcasts_onto_x(slope_shape: tuple[int, ...]) -> None:
    x = RNG.standard_normal((2, 4, 6, 5)).astype(np.float32)
    slope = RNG.random(slope_shape).astype(np.float32)
    feeds = {"x": x, "slope": slope}
    model = one_node_model("PRelu", [("x", x), ("slope", slope)], ["y"], 16)
    assert_close(run_hai(model, feeds), run_onnxruntime(model, feeds), rtol=0, atol=0)


def test_relu_on_signed_integers() -> None:
    x = np.arange(-5, 5, dtype=np.int8)
    model = one_node_model("Relu", [("x", x)], ["y"], 14)
    assert_close(run_hai(model, {"x": x}), run_reference(model, {"x": x}), rtol=0, atol=0)


def test_half_precision_activation_stays_half() -> None:
    x = X.astype(np.float16)
    model = one_node_model("Sigmoid", [("x", x)], ["y"], 13)
    assert_close(run_hai(model, {"x": x}), run_onnxruntime(model, {"x": x}), rtol=1e-3, atol=1e-3)


@pytest.mark.parametrize(
    ("op", "types", "attrs", "message"),
    [
        ("Sigmoid", [(DType.I32, (3,))], {}, "operand X must be a float tensor"),
        ("Relu", [(DType.U8, (3,))], {}, "signed"),
        ("Gelu", [(DType.F32, (3,))], {"approximate": "fast"}, "approximate must be 'none' or 'tanh'"),
        (
            "PRelu",
            [(DType.F32, (2, 3)), (DType.F32, (2, 2, 3))],
            {},
            r"slope shape \[2, 2, 3\] does not broadcast",
        ),
        ("PRelu", [(DType.F32, (2, 3)), (DType.F16, (3,))], {}, "share one dtype"),
        ("LeakyRelu", [(DType.F32, (3,))], {"beta": 1.0}, "no attribute"),
    ],
)
def test_inference_errors_name_the_problem(op: str, types: list, attrs: dict, message: str) -> None:
    graph = Graph()
    operands = [graph.add_input(f"x{i}", TensorType(d, s)) for i, (d, s) in enumerate(types)]
    with pytest.raises(IRError, match=rf"{op} node 'n'.*{message}"):
        Builder(graph).op(op, operands, attrs, name="n")
