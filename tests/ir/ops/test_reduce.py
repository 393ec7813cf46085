"""Reduce-family ops: one-node ONNX models of every opset form (axes as attribute or input, old
flatten-to-2-D softmax, K as attribute or input) through HAI against onnxruntime (the ONNX
reference evaluator for empty reductions), the resolved IR attributes, and inference errors."""

from __future__ import annotations

import warnings

import numpy as np
import pytest
from one_node_onnx import assert_close, feeds_of, one_node_model, run_hai, run_onnxruntime, run_reference

from hai_compiler.onnx_import import import_onnx
from hai_compiler.onnx_import.converter import StaticOperandError
from ir import Builder, DType, Graph, IRError, TensorType
from ir.ops.registry import all_schemas

RNG = np.random.default_rng(3)
X = RNG.standard_normal((2, 3, 4)).astype(np.float32)
POSITIVE = (np.abs(X) + 0.5).astype(np.float32)
TIES = RNG.integers(0, 3, (3, 5)).astype(np.float32)
REDUCE_OPS = sorted(s.name for s in all_schemas() if s.family == "reduce" and s.name.startswith("Reduce"))


def i64(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


def axes_as_input(op: str, opset: int) -> bool:
    return opset >= (13 if op == "ReduceSum" else 18)


def reduce_model(op: str, opset: int, x: np.ndarray, axes: list[int] | None, **attrs: int):  # type: ignore[no-untyped-def]
    consts = []
    if axes is not None and axes_as_input(op, opset):
        consts = [("axes", i64(*axes))]
    elif axes is not None:
        attrs["axes"] = axes  # type: ignore[assignment]
    return one_node_model(op, [("x", x)], ["y"], opset, constants=consts, **attrs)


FORMS = [(11, [-1, 0], 1), (11, [1], 0), (13, None, 1), (18, [0, 2], 0), (18, [-2], 1), (18, None, 0)]


@pytest.mark.parametrize("op", REDUCE_OPS)
@pytest.mark.parametrize(
    ("opset", "axes", "keepdims"), FORMS, ids=[f"opset{f[0]}-{f[1]}-k{f[2]}" for f in FORMS]
)
def test_reduce_matches_onnxruntime(op: str, opset: int, axes: list[int] | None, keepdims: int) -> None:
    x = POSITIVE if op in ("ReduceLogSum", "ReduceProd") else X
    model = reduce_model(op, opset, x, axes, keepdims=keepdims)
    assert_close(run_hai(model, {"x": x}), run_onnxruntime(model, {"x": x}), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op", ["ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceMean"])
def test_integer_reduce_matches_onnxruntime(op: str) -> None:
    x = RNG.integers(-5, 6, (3, 4)).astype(np.int32)
    model = reduce_model(op, 18, x, [1], keepdims=0)
    assert_close(run_hai(model, {"x": x}), run_onnxruntime(model, {"x": x}), rtol=0, atol=0)


@pytest.mark.parametrize("op", REDUCE_OPS)
def test_empty_set_reduces_to_the_identity(op: str) -> None:
    x = np.zeros((2, 0, 3), np.float32)
    model = reduce_model(op, 18, x, [1], keepdims=1)
    with np.errstate(all="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # the reference's "mean of empty slice"
        assert_close(run_hai(model, {"x": x}), run_reference(model, {"x": x}), rtol=0, atol=0)


def test_noop_with_empty_axes_returns_the_input() -> None:
    model = reduce_model("ReduceMax", 18, X, None, noop_with_empty_axes=1)
    assert_close(run_hai(model, {"x": X}), [X], rtol=0, atol=0)
    assert [n.op for n in import_onnx(model).nodes] == ["Identity"]  # only the graph-output copy


def test_axes_are_explicit_and_non_negative_in_the_ir() -> None:
    (node,) = import_onnx(reduce_model("ReduceMean", 18, X, [-1, 0], keepdims=0)).nodes
    assert (node.attrs["axes"], node.attrs["keepdims"]) == ((0, 2), 0)
    (node,) = import_onnx(reduce_model("ReduceSum", 11, X, None)).nodes
    assert node.attrs["axes"] == (0, 1, 2)


def test_axes_computed_at_run_time_are_a_static_operand_error() -> None:
    model = one_node_model("ReduceSum", [("x", X), ("axes", i64(1))], ["y"], 13)
    with pytest.raises(StaticOperandError, match="ReduceSum.*axes"):
        import_onnx(model)


ARGS = [
    (op, axis, keepdims, last)
    for op in ("ArgMax", "ArgMin")
    for axis in (0, -1)
    for keepdims in (0, 1)
    for last in (0, 1)
]


@pytest.mark.parametrize(("op", "axis", "keepdims", "last"), ARGS)
def test_arg_reduce_ties_match_onnxruntime(op: str, axis: int, keepdims: int, last: int) -> None:
    model = one_node_model(op, [("x", TIES)], ["y"], 13, axis=axis, keepdims=keepdims, select_last_index=last)
    assert_close(run_hai(model, {"x": TIES}), run_onnxruntime(model, {"x": TIES}), rtol=0, atol=0)


SOFTMAX_FORMS = [(11, None), (11, 1), (11, 0), (11, -1), (11, 2), (13, None), (13, 1), (13, -3)]


@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax", "Hardmax"])
@pytest.mark.parametrize(
    ("opset", "axis"), SOFTMAX_FORMS, ids=[f"opset{f[0]}-axis{f[1]}" for f in SOFTMAX_FORMS]
)
def test_softmax_likes_follow_their_opset_semantics(op: str, opset: int, axis: int | None) -> None:
    x = TIES.reshape(3, 5, 1) * np.ones((1, 1, 2), np.float32) if op == "Hardmax" else X
    attrs = {} if axis is None else {"axis": axis}
    model = one_node_model(op, [("x", x)], ["y"], opset, **attrs)
    assert_close(run_hai(model, {"x": x}), run_onnxruntime(model, {"x": x}), rtol=1e-5, atol=1e-6)


def test_old_softmax_on_the_last_axis_needs_no_reshape() -> None:
    ops = [n.op for n in import_onnx(one_node_model("Softmax", [("x", X)], ["y"], 11, axis=2)).nodes]
    assert ops == ["Softmax"]
    ops = [n.op for n in import_onnx(one_node_model("Softmax", [("x", X)], ["y"], 11)).nodes]
    assert ops == ["Reshape", "Softmax", "Reshape"]


def test_half_precision_softmax() -> None:
    x = X.astype(np.float16)
    model = one_node_model("Softmax", [("x", x)], ["y"], 13)
    assert_close(run_hai(model, {"x": x}), run_onnxruntime(model, {"x": x}), rtol=2e-3, atol=1e-3)


TOPK = [
    ("opset9-attr-k", 9, [], {"k": 2}),
    ("opset10-input-k", 10, [("k", i64(3))], {"axis": 0}),
    ("opset11-smallest", 11, [("k", i64(4))], {"largest": 0}),
    ("opset11-axis0-largest", 11, [("k", i64(2))], {"axis": -2}),
    ("opset11-k-zero", 11, [("k", i64(0))], {}),
]


@pytest.mark.parametrize(("opset", "consts", "attrs"), [c[1:] for c in TOPK], ids=[c[0] for c in TOPK])
def test_topk_values_and_indices_match_onnxruntime(opset: int, consts: list, attrs: dict) -> None:
    inputs = [("x", TIES)]
    model = one_node_model("TopK", inputs, ["values", "indices"], opset, constants=consts, **attrs)
    feeds = feeds_of(inputs)
    assert_close(run_hai(model, feeds), run_onnxruntime(model, feeds), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("op", "attrs", "message"),
    [
        ("ReduceSum", {"axes": (2,)}, r"axes entry 2 is not in \[0, 2\)"),
        ("ReduceSum", {"axes": (-1,)}, "non-negative"),
        ("ReduceMax", {"axes": (1, 1)}, "repeat an axis"),
        ("ReduceMean", {}, "needs attribute 'axes'"),
        ("Softmax", {}, "needs attribute 'axis'"),
        ("ArgMax", {"axis": 5}, r"axis 5 is not in \[0, 2\)"),
        ("TopK", {"k": 9, "axis": 1}, r"k=9 is not in \[0, 3\]"),
    ],
)
def test_inference_errors_name_the_problem(op: str, attrs: dict, message: str) -> None:
    graph = Graph()
    x = graph.add_input("x", TensorType(DType.F32, (2, 3)))
    with pytest.raises(IRError, match=rf"{op} node 'n'.*{message}"):
        Builder(graph).op(op, [x], attrs, name="n")


def test_log_sum_exp_rejects_integers() -> None:
    graph = Graph()
    x = graph.add_input("x", TensorType(DType.I32, (2, 3)))
    with pytest.raises(IRError, match="operand data must be a float tensor"):
        Builder(graph).op("ReduceLogSumExp", [x], {"axes": (1,)})
