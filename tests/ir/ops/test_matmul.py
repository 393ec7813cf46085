"""MatMul and Gemm: one-node ONNX models through HAI against onnxruntime (numpy matmul shapes,
Gemm's transposes, alpha/beta and C broadcasting), and inference errors that name the shapes."""

from __future__ import annotations

import numpy as np
import pytest
from one_node_onnx import assert_close, one_node_model, run_hai, run_onnxruntime

from ir import Builder, DType, Graph, IRError, TensorType

RNG = np.random.default_rng(3)


def f32(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


MATMUL_CASES = [
    ("2d", (3, 4), (4, 5)),
    ("1d-1d", (4,), (4,)),
    ("1d-3d", (4,), (2, 4, 5)),
    ("4d-1d", (2, 3, 5, 4), (4,)),
    ("batch-broadcast", (2, 1, 3, 4), (5, 4, 6)),
    ("matrix-times-batch", (3, 4), (2, 4, 5)),
    ("linear-layer", (1, 40, 96), (96, 120)),
]


@pytest.mark.parametrize("a_shape, b_shape", [c[1:] for c in MATMUL_CASES], ids=[c[0] for c in MATMUL_CASES])
def test_matmul_matches_onnxruntime(a_shape, b_shape) -> None:
    a, b = f32(*a_shape), f32(*b_shape)
    model = one_node_model("MatMul", [("a", a), ("b", b)], ["y"], 13)
    assert_close(
        run_hai(model, {"a": a, "b": b}), run_onnxruntime(model, {"a": a, "b": b}), rtol=1e-5, atol=1e-5
    )


@pytest.mark.parametrize("dtype", [np.float16, np.float64, np.int32, np.int64])
def test_matmul_dtypes(dtype) -> None:
    a, b = (f32(2, 3, 4) * 4).astype(dtype), (f32(4, 5) * 4).astype(dtype)
    model = one_node_model("MatMul", [("a", a), ("b", b)], ["y"], 13)
    tol = 1e-2 if dtype == np.float16 else 1e-6
    assert_close(
        run_hai(model, {"a": a, "b": b}), run_onnxruntime(model, {"a": a, "b": b}), rtol=tol, atol=tol
    )


# (id, opset, a shape, b shape, c shape or None, attributes)
GEMM_CASES = [
    ("plain", 13, (3, 4), (4, 5), None, {}),
    ("transA", 13, (4, 3), (4, 5), (5,), {"transA": 1}),
    ("transB", 13, (3, 4), (5, 4), (3, 5), {"transB": 1}),
    ("both-transposed", 13, (4, 3), (5, 4), (1, 5), {"transA": 1, "transB": 1}),
    ("alpha-beta", 13, (3, 4), (4, 5), (3, 1), {"alpha": 0.5, "beta": -2.0}),
    ("scalar-c", 13, (3, 4), (4, 5), (), {"beta": 3.0}),
    ("beta-zero", 13, (3, 4), (4, 5), (3, 5), {"beta": 0.0}),
    ("opset7", 7, (3, 4), (4, 5), (5,), {"alpha": 2.0}),
    ("opset9-fc", 9, (1, 96), (10, 96), (10,), {"transB": 1}),
]


@pytest.mark.parametrize(
    "opset, a_shape, b_shape, c_shape, attrs", [c[1:] for c in GEMM_CASES], ids=[c[0] for c in GEMM_CASES]
)
def test_gemm_matches_onnxruntime(opset, a_shape, b_shape, c_shape, attrs) -> None:
    a = f32(*a_shape)
    constants = [("b", f32(*b_shape))] + ([("c", f32(*c_shape))] if c_shape is not None else [])
    model = one_node_model("Gemm", [("a", a)], ["y"], opset, constants, **attrs)
    assert_close(run_hai(model, {"a": a}), run_onnxruntime(model, {"a": a}), rtol=1e-5, atol=1e-5)


def _node(op: str, *shapes: tuple[int, ...], **attrs):
    graph = Graph()
    operands = [graph.add_input(f"v{i}", TensorType(DType.F32, s)) for i, s in enumerate(shapes)]
    return Builder(graph).op(op, operands, attrs, name="m1")


def test_matmul_inner_dim_mismatch_names_both_shapes() -> None:
    with pytest.raises(
        IRError, match=r"MatMul node 'm1'.*A \[2, 3\] and B \[4, 5\]: inner dims differ \(3 vs 4\)"
    ):
        _node("MatMul", (2, 3), (4, 5))


def test_matmul_batch_dims_must_broadcast() -> None:
    with pytest.raises(IRError, match=r"do not broadcast"):
        _node("MatMul", (2, 3, 4), (3, 4, 5))


def test_gemm_inner_dim_mismatch() -> None:
    with pytest.raises(IRError, match=r"Gemm node 'm1'.*inner dims differ \(4 vs 5\)"):
        _node("Gemm", (3, 4), (4, 5), transB=1)


def test_gemm_c_must_broadcast_to_the_result() -> None:
    with pytest.raises(IRError, match=r"C f32\[4\] does not broadcast to the result shape \[3, 5\]"):
        _node("Gemm", (3, 4), (4, 5), (4,))
