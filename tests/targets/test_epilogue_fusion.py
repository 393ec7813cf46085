"""Activations fuse into the Conv/MatMul that produces their input, multi-node ones included (SiLU as
Sigmoid·Mul, the erf and tanh Gelu chains, Mish, HardSigmoid·x), and a bias Add behind a Squeeze:
the artifact matches onnxruntime and runs one kernel per conv or matmul with its activation."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import runtime
from hai_compiler.compiler import CompileOptions, compile_model
from hai_compiler.compiler.bench import relative_error

ort = pytest.importorskip("onnxruntime")

TOLERANCE = 1e-5
"""max |HAI - onnxruntime| / max |onnxruntime|: f32 kernels; roundings and erf/tanh approximations differ."""

SCALARS = {"sqrt2": math.sqrt(2), "one": 1.0, "half": 0.5, "c044": 0.044715, "s2pi": math.sqrt(2 / math.pi),
           "zero": 0.0, "six": 6.0}  # fmt: skip


def node(op: str, inputs: list[str], output: str, **attrs: object) -> onnx.NodeProto:
    return helper.make_node(op, inputs, [output], **attrs)


def activation(kind: str, y: str, out: str) -> list[onnx.NodeProto]:
    """The ONNX nodes of activation `kind` of `y`, as exporters write them."""
    chains = {
        "silu": [node("Sigmoid", [y], "s"), node("Mul", [y, "s"], out)],
        "gelu_erf": [node("Div", [y, "sqrt2"], "d"), node("Erf", ["d"], "e"), node("Add", ["e", "one"], "a"),
                     node("Mul", [y, "a"], "m"), node("Mul", ["m", "half"], out)],
        "gelu_tanh": [node("Mul", [y, y], "y2"), node("Mul", ["y2", y], "y3"),
                      node("Mul", ["y3", "c044"], "y4"), node("Add", [y, "y4"], "y5"),
                      node("Mul", ["y5", "s2pi"], "y6"), node("Tanh", ["y6"], "y7"),
                      node("Add", ["y7", "one"], "y8"), node("Mul", [y, "half"], "y9"),
                      node("Mul", ["y9", "y8"], out)],
        "gelu": [node("Gelu", [y], out)],
        "gelu_tanh_op": [node("Gelu", [y], out, approximate="tanh")],
        "mish": [node("Softplus", [y], "p"), node("Tanh", ["p"], "t"), node("Mul", [y, "t"], out)],
        "hardswish": [node("HardSwish", [y], out)],
        "hardswish_chain": [node("HardSigmoid", [y], "h", alpha=1 / 6, beta=0.5), node("Mul", [y, "h"], out)],
        "leaky_relu": [node("LeakyRelu", [y], out, alpha=0.1)],
        "clip": [node("Clip", [y, "zero", "six"], out)],
    }  # fmt: skip
    return chains[kind]


def model(
    nodes: list[onnx.NodeProto], x: list[int], y: list[int], arrays: dict[str, np.ndarray]
) -> onnx.ModelProto:
    used = {i for n in nodes for i in n.input}
    scalars = {k: np.array(v, np.float32) for k, v in SCALARS.items() if k in used}
    graph = helper.make_graph(
        nodes, "block", [helper.make_tensor_value_info("x", TensorProto.FLOAT, x)],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, y)],
        [numpy_helper.from_array(a, n) for n, a in {**arrays, **scalars}.items()],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 20)])


def compiled_kernels(m: onnx.ModelProto, tmp_path: Path, x: np.ndarray) -> list[str]:
    """Each kernel's ops joined by '+', after checking the artifact against onnxruntime on `x`."""
    expected = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x}
    )
    result = compile_model(m, tmp_path / "m.hai", CompileOptions(input_shapes={"x": x.shape}))
    got = runtime.load(result.path).run({"x": x})
    assert relative_error([got["z"]], expected) <= TOLERANCE
    assert len(result.plan.plan.steps) == len(result.groups)  # one plan step per kernel, no copies
    kernels = ["+".join(n.op for n in g.nodes) for g in result.groups]
    return [k for k in kernels if k != "Relayout"]  # the layout pass's region boundaries (host-dependent)


def weights(seed: int, **shapes: tuple[int, ...]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {name: rng.normal(0, 0.3, shape).astype(np.float32) for name, shape in shapes.items()}


KINDS = ["silu", "gelu_erf", "gelu_tanh", "gelu", "gelu_tanh_op", "mish", "hardswish", "hardswish_chain",
         "leaky_relu", "clip"]  # fmt: skip


@pytest.mark.parametrize("kind", KINDS)
def test_an_activation_fuses_into_its_conv(tmp_path: Path, kind: str) -> None:
    nodes = [node("Conv", ["x", "w", "b"], "y", pads=[1, 1, 1, 1]), *activation(kind, "y", "z")]
    arrays = weights(0, w=(16, 8, 3, 3), b=(16,))
    m = model(nodes, [1, 8, 20, 20], [1, 16, 20, 20], arrays)
    x = np.random.default_rng(1).normal(0, 1.5, (1, 8, 20, 20)).astype(np.float32)
    kernels = compiled_kernels(m, tmp_path, x)
    assert len(kernels) == 1 and kernels[0].startswith("Conv+"), kernels


@pytest.mark.parametrize("kind", ["gelu_erf", "gelu_tanh", "silu", "mish"])
def test_an_activation_chain_fuses_into_matmul_and_its_bias(tmp_path: Path, kind: str) -> None:
    nodes = [node("MatMul", ["x", "w"], "mm"), node("Add", ["mm", "b"], "y"), *activation(kind, "y", "z")]
    m = model(nodes, [1, 64, 32], [1, 64, 48], weights(2, w=(32, 48), b=(48,)))
    x = np.random.default_rng(3).normal(0, 1, (1, 64, 32)).astype(np.float32)
    (kernel,) = compiled_kernels(m, tmp_path, x)
    assert kernel.startswith("MatMul+Add+"), kernel


def test_a_yolo_block_runs_one_kernel_per_conv(tmp_path: Path) -> None:
    """Three Conv → SiLU (3x3, 3x3 strided, 1x1; Mul(sigmoid, x) in either operand order): three kernels."""
    nodes = [
        node("Conv", ["x", "w1", "b1"], "c1", pads=[1, 1, 1, 1]), node("Sigmoid", ["c1"], "s1"),
        node("Mul", ["c1", "s1"], "y1"),
        node("Conv", ["y1", "w2", "b2"], "c2", pads=[1, 1, 1, 1], strides=[2, 2]),
        node("Sigmoid", ["c2"], "s2"), node("Mul", ["s2", "c2"], "y2"),
        node("Conv", ["y2", "w3", "b3"], "c3"), node("Sigmoid", ["c3"], "s3"), node("Mul", ["c3", "s3"], "z"),
    ]  # fmt: skip
    arrays = weights(4, w1=(16, 3, 3, 3), b1=(16,), w2=(32, 16, 3, 3), b2=(32,), w3=(16, 32, 1, 1), b3=(16,))
    m = model(nodes, [1, 3, 32, 32], [1, 16, 16, 16], arrays)
    x = np.random.default_rng(5).normal(0, 1, (1, 3, 32, 32)).astype(np.float32)
    assert compiled_kernels(m, tmp_path, x) == ["Conv+Sigmoid+Mul"] * 3
    # the sigmoid's exp is vector code (targets/lowering/vector_math.py), no libm call per lane
    assert b"expf" not in (tmp_path / "m.hai" / "kernels.cpu.so").read_bytes()


def test_magika_bias_behind_a_squeeze_folds_and_gelu_fuses(tmp_path: Path) -> None:
    """magika's Conv (N, C, L, 1) → Squeeze → Add (1, C, 1) → tanh-form Gelu: one Conv kernel, the bias
    folded into it (sink-views, fold-channel-affine) and the Gelu chain its epilogue."""
    nodes = [
        node("Conv", ["x", "w"], "c"),
        node("Squeeze", ["c", "axes"], "s"),
        node("Add", ["s", "b"], "y"),
        *activation("gelu_tanh", "y", "z"),
    ]
    arrays = {**weights(6, w=(32, 16, 5, 1), b=(1, 32, 1)), "axes": np.array([3])}
    m = model(nodes, [1, 16, 40, 1], [1, 32, 36], arrays)
    x = np.random.default_rng(7).normal(0, 1, (1, 16, 40, 1)).astype(np.float32)
    assert compiled_kernels(m, tmp_path, x) == ["Conv+Mul+Mul+Mul+Add+Mul+Tanh+Add+Mul+Mul"]
