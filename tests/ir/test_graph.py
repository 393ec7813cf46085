"""Use-def links, safe mutation while iterating, and output-name preservation in `ir.graph`."""

from __future__ import annotations

import numpy as np
import pytest

from ir import Builder, DType, Graph, IRError, TensorType

F32 = TensorType(DType.F32, (2, 3))


def chain(n: int) -> tuple[Graph, list]:
    """x -> Relu -> Relu -> ... (n nodes), last result the graph output."""
    graph = Graph("chain")
    value = graph.add_input("x", F32)
    nodes = []
    for i in range(n):
        (value,) = Builder(graph).op("Relu", [value], name=f"r{i}")
        nodes.append(value.producer)
    graph.set_outputs([value])
    return graph, nodes


def test_uses_track_operands() -> None:
    graph = Graph()
    x = graph.add_input("x", F32)
    (y,) = Builder(graph).op("Add", [x, x])
    assert x.uses() == [(y.producer, 0), (y.producer, 1)]
    assert x.users() == [y.producer]
    y.producer.set_operand(1, y.producer.operands[0])
    assert len(x.uses()) == 2


def test_replace_all_uses_and_remove() -> None:
    graph, nodes = chain(3)
    middle = nodes[1]
    nodes[2].set_operand(0, nodes[0].results[0])
    assert middle.results[0].uses() == []
    graph.remove_node(middle)
    assert [n.name for n in graph.nodes] == ["r0", "r2"]
    assert nodes[0].results[0].uses() == [(nodes[2], 0)]
    assert not graph.has_value(middle.results[0].name)


def test_removing_a_used_node_is_refused() -> None:
    graph, nodes = chain(2)
    with pytest.raises(IRError, match="used by Relu node 'r1'"):
        graph.remove_node(nodes[0])


def test_iteration_survives_removal_of_current_and_next() -> None:
    graph, nodes = chain(5)
    seen = []
    for node in graph.nodes:
        seen.append(node.name)
        if node.name == "r1":
            # bypass r1 and r2, then remove both while iterating
            nodes[3].set_operand(0, nodes[0].results[0])
            graph.remove_node(nodes[2])
            graph.remove_node(nodes[1])
    assert seen == ["r0", "r1", "r3", "r4"]
    assert [n.name for n in graph.nodes] == ["r0", "r3", "r4"]


def test_insertion_during_iteration_is_visited_when_after() -> None:
    graph, nodes = chain(2)
    seen = []
    for node in graph.nodes:
        seen.append(node.name)
        if node.name == "r0":
            Builder(graph, insert_before=nodes[1]).op("Identity", [node.results[0]], name="inserted")
    assert seen == ["r0", "inserted", "r1"]


def test_replace_value_keeps_output_names() -> None:
    graph, nodes = chain(2)
    out = graph.outputs[0]
    name = out.name
    graph.replace_value(out, nodes[0].results[0])
    graph.remove_node(nodes[1])
    assert graph.outputs[0] is nodes[0].results[0]
    assert graph.outputs[0].name == name


def test_renaming_a_constant_keeps_its_place() -> None:
    graph = Graph()
    a, b, c = (graph.add_constant(n, np.zeros(1, np.float32)) for n in "abc")
    graph.rename(c, "newest")  # the newest constant (what folding renames)
    graph.rename(a, "oldest")
    assert list(graph.constants) == ["oldest", "b", "newest"]
    assert [graph.constants[n] for n in ("oldest", "b", "newest")] == [a, b, c]
    assert graph.value("newest") is c and not graph.has_value("c")


def test_unique_names_and_constants() -> None:
    graph = Graph()
    a = graph.add_constant("w", np.zeros(3, np.float32))
    b = graph.add_constant("w", np.ones(3, np.float32))
    assert (a.name, b.name) == ("w", "w_1")
    assert list(graph.constants) == ["w", "w_1"]
    assert a.sha256 != b.sha256
    graph.remove_constant(a)
    assert list(graph.constants) == ["w_1"]
