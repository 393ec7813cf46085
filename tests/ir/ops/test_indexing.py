"""Indexing-family ops (Slice, Gather*, Scatter*, Trilu, OneHot, NonZero): one-node ONNX models of
several opsets through HAI against the ONNX reference evaluator, plus Slice bound resolution against
Python's own slicing."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from one_node_onnx import assert_close, feeds_of, one_node_model, run_hai, run_onnxruntime, run_reference

from hai_compiler.onnx_import import import_onnx
from hai_compiler.onnx_import.converter import StaticOperandError
from ir.ops.indexing import resolve_slice, slice_length
from ir.ops.registry import get_schema

RNG = np.random.default_rng(11)
X = RNG.standard_normal((4, 5, 6)).astype(np.float32)
BIG = np.iinfo(np.int64).max


def i64(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


# (id, op, opset, graph inputs, initializers, attributes)
CASES = [
    (
        "slice-opset9-attrs",
        "Slice",
        9,
        [("x", X)],
        [],
        {"starts": [1, -4], "ends": [BIG, -1], "axes": [0, 2]},
    ),
    ("slice-opset9-default-axes", "Slice", 9, [("x", X)], [], {"starts": [0, 1], "ends": [2, 100]}),
    (
        "slice-steps",
        "Slice",
        13,
        [("x", X)],
        [("s", i64(-1, 0)), ("e", i64(-BIG, 6)), ("a", i64(-1, 1)), ("st", i64(-2, 2))],
        {},
    ),
    (
        "slice-negative-step-clamped",
        "Slice",
        10,
        [("x", X)],
        [("s", i64(100)), ("e", i64(-100)), ("a", i64(1)), ("st", i64(-1))],
        {},
    ),
    ("slice-empty", "Slice", 13, [("x", X)], [("s", i64(3)), ("e", i64(1)), ("a", i64(0))], {}),
    ("gather-negative", "Gather", 13, [("x", X), ("i", i64(-1, 0, 2, -5).reshape(2, 2))], [], {"axis": 1}),
    ("gather-scalar-index", "Gather", 11, [("x", X)], [("i", np.array(-2, np.int32))], {"axis": -1}),
    (
        "gather-elements",
        "GatherElements",
        13,
        [("x", X), ("i", RNG.integers(-6, 6, (4, 5, 3)).astype(np.int64))],
        [],
        {"axis": 2},
    ),
    ("gather-nd", "GatherND", 11, [("x", X), ("i", i64(0, 1, -1, 2, 3, 0).reshape(3, 2))], [], {}),
    (
        "gather-nd-batch",
        "GatherND",
        12,
        [("x", X), ("i", i64(1, 2, 0, 4, 3, 3, -1, 0).reshape(4, 1, 2))],
        [],
        {"batch_dims": 1},
    ),
    (
        "scatter-nd",
        "ScatterND",
        11,
        [("x", X), ("i", i64(0, 1, 3, 4).reshape(2, 2)), ("u", np.ones((2, 6), np.float32))],
        [],
        {},
    ),
    (
        "scatter-nd-add",
        "ScatterND",
        16,
        [("x", X), ("i", i64(1, 1).reshape(2, 1)), ("u", np.ones((2, 5, 6), np.float32))],
        [],
        {"reduction": "add"},
    ),
    (
        "scatter-elements-axis-duplicates",
        "ScatterElements",
        11,
        [
            ("x", X),
            ("i", i64(0, -1, 0, 5, 0, 2).reshape(1, 2, 3)),
            ("u", RNG.standard_normal((1, 2, 3), np.float32)),
        ],
        [],
        {"axis": -1},
    ),
    *[
        (
            f"scatter-elements-{reduction}",
            "ScatterElements",
            18,
            [
                ("x", X),
                ("i", i64(3, 3, 0, -1, 1, 1).reshape(3, 2, 1)),
                ("u", RNG.standard_normal((3, 2, 1), np.float32)),
            ],
            [],
            {"axis": 0, "reduction": reduction},
        )
        for reduction in ("add", "mul", "max", "min")
    ],
    ("trilu-upper-k", "Trilu", 14, [("x", X)], [("k", np.array(1, np.int64))], {}),
    ("trilu-lower", "Trilu", 14, [("x", X)], [], {"upper": 0}),
    (
        "onehot",
        "OneHot",
        11,
        [("i", i64(0, -1, 7, 2))],
        [("d", np.array(5, np.int64)), ("v", np.array([1, 3], np.int32))],
        {"axis": 0},
    ),
    (
        "onehot-default-axis",
        "OneHot",
        9,
        [("i", np.array([[1.0, 3.0]], np.float32))],
        [("d", np.array(4.0, np.float32)), ("v", np.array([0.0, 2.0], np.float32))],
        {},
    ),
]


@pytest.mark.parametrize(
    ("op", "opset", "inputs", "consts", "attrs"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_matches_onnx_reference(op, opset, inputs, consts, attrs) -> None:  # type: ignore[no-untyped-def]
    model = one_node_model(op, inputs, ["y"], opset, constants=consts, **attrs)
    feeds = feeds_of(inputs)
    assert_close(run_hai(model, feeds), run_reference(model, feeds), rtol=0, atol=0)


def test_slice_bounds_are_resolved_in_the_ir() -> None:
    model = one_node_model(
        "Slice",
        [("x", X)],
        ["y"],
        13,
        constants=[("s", i64(-100, 2)), ("e", i64(BIG, -BIG)), ("a", i64(-1, 0)), ("st", i64(1, -1))],
    )
    (node,) = import_onnx(model).nodes
    assert node.attrs == {"starts": (0, 2), "ends": (6, -1), "axes": (2, 0), "steps": (1, -1)}


@given(st.integers(0, 7), st.integers(-12, 12), st.integers(-12, 12), st.integers(-4, 4).filter(bool))
def test_resolved_slice_matches_python_slicing(dim: int, start: int, end: int, step: int) -> None:
    """Python slicing is ONNX's except for a negative step from before the axis (ONNX clamps to 0)."""
    if step < 0 and start + dim < 0:
        start = 0
    lo, hi = resolve_slice(dim, start, end, step)
    attrs = {"starts": (lo,), "ends": (hi,), "axes": (0,), "steps": (step,)}
    (result,) = get_schema("Slice").compute([np.arange(dim)], attrs)
    assert result.tolist() == list(range(dim))[start:end:step]
    assert slice_length(lo, hi, step) == result.size


def test_negative_step_from_before_the_axis_follows_onnxruntime() -> None:
    x = np.arange(3, dtype=np.float32)
    model = one_node_model(
        "Slice",
        [("x", x)],
        ["y"],
        13,
        constants=[("s", i64(-5)), ("e", i64(-10)), ("a", i64(0)), ("st", i64(-1))],
    )
    assert_close(run_hai(model, {"x": x}), run_onnxruntime(model, {"x": x}), rtol=0, atol=0)


def test_nonzero_of_a_constant_becomes_a_constant() -> None:
    x = np.array([[1, 0, 3], [0, 5, 0]], np.int32)
    model = one_node_model("NonZero", [], ["y"], 13, constants=[("x", x)])
    graph = import_onnx(model)
    assert len(graph.nodes) == 0
    assert_close(run_hai(model, {}), run_reference(model, {}), rtol=0, atol=0)


def test_nonzero_of_run_time_data_is_a_static_operand_error() -> None:
    x = np.array([1, 0, 2], np.float32)
    model = one_node_model("NonZero", [("x", x)], ["y"], 13)
    with pytest.raises(StaticOperandError, match="NonZero.*depends on the values"):
        import_onnx(model)
    assert_close(run_hai(model, {"x": x}), run_reference(model, {"x": x}), rtol=0, atol=0)


def test_gather_index_out_of_range_is_a_hai_error() -> None:
    from ir import HaiError

    model = one_node_model("Gather", [("x", X), ("i", i64(9))], ["y"], 13, axis=0)
    with pytest.raises(HaiError, match="out of range"):
        run_hai(model, {"x": X, "i": i64(9)})
