"""`eliminate-identity`: no-op nodes go, but never at the cost of a graph output's name."""

from __future__ import annotations

from typing import Any

import pytest
from pass_helpers import check_pass, const, f32, ops

from ir import Builder, DType, Graph, Node
from passes.eliminate_identity import is_no_op

NO_OPS: list[tuple[str, dict[str, Any], int]] = [
    ("Identity", {}, 1),
    ("Reshape", {"shape": [3, 3]}, 1),
    ("Expand", {"shape": [3, 3]}, 1),
    ("Squeeze", {"axes": []}, 1),
    ("Flatten", {"axis": 1}, 1),
    ("Transpose", {"perm": [0, 1]}, 1),
    ("Cast", {"to": DType.F32}, 1),
    ("Slice", {"starts": [0, 0], "ends": [3, 3], "axes": [0, 1], "steps": [1, 1]}, 1),
    ("Pad", {"pads": [0, 0, 0, 0], "mode": "reflect"}, 1),
    ("Concat", {"axis": 0}, 1),
    ("Sum", {}, 1),
    ("Max", {}, 1),
    ("Mean", {}, 1),
]

CHANGES: list[tuple[str, dict[str, Any], int]] = [
    ("Transpose", {"perm": [1, 0]}, 1),  # same shape, other order
    ("Slice", {"starts": [1], "ends": [3], "axes": [0], "steps": [1]}, 1),
    ("Reshape", {"shape": [9]}, 1),
    ("Cast", {"to": DType.F16}, 1),
    ("Pad", {"pads": [1, 0, 0, 0]}, 1),
    ("Concat", {"axis": 0}, 2),
    ("Sum", {}, 2),
]


def between_relus(op: str, attrs: dict[str, Any], count: int) -> Graph:
    """x -> Relu -> op(r, r, ...) -> Relu -> output, on a [3, 3] tensor."""
    graph = Graph()
    x = graph.add_input("x", f32(3, 3))
    builder = Builder(graph)
    (r,) = builder.op("Relu", [x], name="r")
    (mid,) = builder.op(op, [r] * count, attrs, name="mid")
    (y,) = builder.op("Neg", [mid], name="y")
    graph.set_outputs([y])
    return graph


@pytest.mark.parametrize(("op", "attrs", "count"), NO_OPS, ids=[case[0] for case in NO_OPS])
def test_no_op_forms_are_removed(op: str, attrs: dict[str, Any], count: int) -> None:
    graph, ctx = check_pass(between_relus(op, attrs, count), "eliminate-identity")
    assert ops(graph) == ["Relu", "Neg"]
    assert graph.nodes.last.operands[0] is graph.value("r")
    assert ctx.statistics["eliminate-identity"]["nodes-removed"] == 1


@pytest.mark.parametrize(("op", "attrs", "count"), CHANGES, ids=[f"{c[0]}-{c[1]}" for c in CHANGES])
def test_forms_that_change_the_tensor_stay(op: str, attrs: dict[str, Any], count: int) -> None:
    graph, _ = check_pass(between_relus(op, attrs, count), "eliminate-identity")
    assert ops(graph) == ["Relu", op, "Neg"]


def test_full_reversed_slice_is_not_a_no_op() -> None:
    # Same shape, unit-size steps, but the elements come in the other order.
    graph = Graph()
    x = graph.add_input("x", f32(3))
    attrs = {"starts": (2,), "ends": (-1,), "axes": (0,), "steps": (-1,)}
    node = Node("Slice", [x], attrs, [f32(3)], ["rev"])
    assert not is_no_op(node)
    assert is_no_op(Node("Slice", [x], dict(attrs, steps=(1,)), [f32(3)], ["same"]))


def test_identity_output_of_a_node_result_takes_over_the_name() -> None:
    graph = Graph()
    x = graph.add_input("x", f32(2))
    builder = Builder(graph)
    (r,) = builder.op("Relu", [x], name="r")
    (out,) = builder.op("Identity", [r], name="out")
    graph.set_outputs([out])
    graph, _ = check_pass(graph, "eliminate-identity")
    assert ops(graph) == ["Relu"]
    assert [v.name for v in graph.outputs] == ["out"] and graph.outputs[0].producer.op == "Relu"


@pytest.mark.parametrize("source", ["input", "constant", "other-output"])
def test_identity_output_of_input_constant_or_output_stays(source: str) -> None:
    graph = Graph()
    x = graph.add_input("x", f32(2))
    builder = Builder(graph)
    outputs = []
    if source == "input":
        operand = x
    elif source == "constant":
        operand = const(graph, "c", (2,), seed=1)
    else:
        (operand,) = builder.op("Relu", [x], name="first")
        outputs.append(operand)
    (out,) = builder.op("Identity", [operand], name="out")
    graph.set_outputs([*outputs, out])
    graph, ctx = check_pass(graph, "eliminate-identity")
    assert ops(graph)[-1] == "Identity"
    assert [v.name for v in graph.outputs] == [v.name for v in outputs] + ["out"]
    assert ctx.statistics["eliminate-identity"]["kept-for-output-name"] == 1
