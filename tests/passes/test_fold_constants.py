"""`fold-constants`: chains of constant computations fold, bounded by `max-size`."""

from __future__ import annotations

import numpy as np
import pytest
from pass_helpers import check_pass, const, f32, ops

from ir import Builder, Graph
from passes import PassFailedError, PassManager
from passes.fold_constants import FoldConstants


def constant_chain() -> tuple[Graph, np.ndarray, np.ndarray]:
    """x + Relu(a * b) where a and b are constants."""
    graph = Graph()
    x = graph.add_input("x", f32(2, 3))
    a, b = const(graph, "a", (2, 3), seed=1), const(graph, "b", (2, 3), seed=2)
    builder = Builder(graph)
    (prod,) = builder.op("Mul", [a, b], name="prod")
    (act,) = builder.op("Relu", [prod], name="act")
    (y,) = builder.op("Add", [x, act], name="y")
    graph.set_outputs([y])
    return graph, a.constant_array(), b.constant_array()


def test_chain_folds_to_one_constant_with_numpy_values() -> None:
    graph, a, b = constant_chain()
    graph, ctx = check_pass(graph, "fold-constants")
    assert ops(graph) == ["Add"]
    assert list(graph.constants) == ["act"]  # the folded value keeps its name; a, b, prod are gone
    np.testing.assert_array_equal(graph.constants["act"].constant_array(), np.maximum(a * b, 0))
    assert ctx.statistics["fold-constants"]["nodes-folded"] == 2


def test_max_size_keeps_large_results() -> None:
    graph, _, _ = constant_chain()
    graph, ctx = check_pass(graph, FoldConstants(max_size=5))
    assert ops(graph) == ["Mul", "Relu", "Add"]
    assert ctx.statistics["fold-constants"]["nodes-folded"] == 0
    graph, _ = check_pass(graph, "fold-constants{max-size=6}")
    assert ops(graph) == ["Add"]


def test_folded_graph_output_keeps_its_name() -> None:
    graph = Graph()
    graph.add_input("x", f32(1))
    c = const(graph, "c", (3,), seed=4)
    (y,) = Builder(graph).op("Neg", [c], name="y")
    graph.set_outputs([y])
    graph, _ = check_pass(graph, "fold-constants")
    assert ops(graph) == [] and [v.name for v in graph.outputs] == ["y"]
    assert graph.outputs[0].is_constant


def test_fold_error_names_the_pass_and_node() -> None:
    graph = Graph()
    graph.add_input("x", f32(1))
    c = const(graph, "c", (3,), seed=4)
    (y,) = Builder(graph).op("Neg", [c], name="neg1")
    graph.set_outputs([y])
    y.producer.op = "NoSuchOp"  # a node whose op has no reference implementation
    with pytest.raises(PassFailedError, match=r"pass 'fold-constants' failed .*NoSuchOp"):
        PassManager([FoldConstants()]).run(graph)


def test_negative_max_size_is_rejected() -> None:
    with pytest.raises(ValueError, match="max-size"):
        FoldConstants(max_size=-1)
