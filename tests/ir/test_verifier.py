"""The verifier names the node that breaks an invariant."""

from __future__ import annotations

import pytest

from ir import Builder, DType, Graph, TensorType, VerificationError, verify
from ir.graph import Node

F32 = TensorType(DType.F32, (4,))


def small_graph() -> Graph:
    graph = Graph()
    x = graph.add_input("x", F32)
    (y,) = Builder(graph).op("Relu", [x], name="relu")
    (z,) = Builder(graph).op("Add", [y, x], name="add")
    graph.set_outputs([z])
    return graph


def test_valid_graph_passes() -> None:
    verify(small_graph())


def test_use_before_definition_names_the_node() -> None:
    graph = small_graph()
    relu, add = list(graph.nodes)
    graph.nodes.unlink(add)
    graph.nodes.insert_before(relu, add)
    with pytest.raises(VerificationError, match="Add node 'add'.*used before it is defined"):
        verify(graph)


def test_wrong_result_type_names_the_node() -> None:
    graph = small_graph()
    next(iter(graph.nodes)).results[0].type = TensorType(DType.F32, (5,))
    with pytest.raises(VerificationError, match="Relu node 'relu'"):
        verify(graph)


def test_dangling_use_is_found() -> None:
    graph = small_graph()
    x = graph.inputs[0]
    stray = Node("Relu", [x], {}, [F32], ["stray"])  # never inserted: its use dangles
    assert (stray, 0) in x._uses
    with pytest.raises(VerificationError, match="dangling use"):
        verify(graph)


def test_undefined_output() -> None:
    graph = small_graph()
    other = Graph()
    graph.set_outputs([other.add_input("elsewhere", F32)])
    with pytest.raises(VerificationError, match="elsewhere"):
        verify(graph)
