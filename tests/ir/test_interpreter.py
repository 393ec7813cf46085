"""The reference interpreter: input checks and the single `run_node` hook."""

from __future__ import annotations

import numpy as np
import pytest

from ir import Builder, DType, Graph, Interpreter, TensorType
from ir.interpreter import InputError


def relu_add() -> Graph:
    graph = Graph()
    x = graph.add_input("x", TensorType(DType.F32, (3,)))
    c = graph.add_constant("c", np.array([1.0, -2.0, 3.0], np.float32))
    (y,) = Builder(graph).op("Add", [x, c])
    (z,) = Builder(graph).op("Relu", [y])
    graph.set_outputs([z])
    return graph


def test_runs_against_numpy() -> None:
    x = np.array([0.5, 0.5, -5.0], np.float32)
    (out,) = Interpreter(relu_add()).run({"x": x}).values()
    np.testing.assert_array_equal(out, np.maximum(x + [1.0, -2.0, 3.0], 0).astype(np.float32))


@pytest.mark.parametrize(
    "inputs, message",
    [
        ({}, "missing \\['x'\\]"),
        ({"x": np.zeros(3, np.float32), "y": np.zeros(1)}, "unknown \\['y'\\]"),
        ({"x": np.zeros(4, np.float32)}, "shape \\[4\\], expected \\[3\\]"),
        ({"x": np.zeros(3, np.float64)}, "dtype float64"),
    ],
)
def test_bad_inputs_are_named(inputs, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(InputError, match=message):
        Interpreter(relu_add()).run(inputs)


def test_run_node_hook_observes_every_value() -> None:
    seen = []

    class Observer(Interpreter):
        def run_node(self, node, args):  # type: ignore[no-untyped-def]
            results = super().run_node(node, args)
            seen.append((node.op, results[0].copy()))
            return results

    Observer(relu_add()).run({"x": np.zeros(3, np.float32)})
    assert [op for op, _ in seen] == ["Add", "Relu"]
    np.testing.assert_array_equal(seen[0][1], [1.0, -2.0, 3.0])
