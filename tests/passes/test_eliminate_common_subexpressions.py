"""`eliminate-common-subexpressions` (`cse`): duplicate nodes and identical constants merge."""

from __future__ import annotations

import numpy as np
from pass_helpers import check_pass, f32, ops

from ir import Builder, Graph


def test_duplicate_nodes_and_their_users_merge() -> None:
    graph = Graph()
    x = graph.add_input("x", f32(2, 3))
    b = Builder(graph)
    (a1,) = b.op("Relu", [x], name="a1")
    (a2,) = b.op("Relu", [x], name="a2")
    (n1,) = b.op("Neg", [a1], name="n1")
    (n2,) = b.op("Neg", [a2], name="n2")  # the same once a2 became a1
    (y,) = b.op("Add", [n1, n2], name="y")
    graph.set_outputs([y])
    graph, ctx = check_pass(graph, "cse")
    assert ops(graph) == ["Relu", "Neg", "Add"]
    assert graph.value("y").producer.operands == (graph.value("n1"),) * 2
    assert ctx.statistics["eliminate-common-subexpressions"]["nodes-merged"] == 2


def test_different_attributes_or_operand_order_stay() -> None:
    graph = Graph()
    x = graph.add_input("x", f32(2, 3))
    z = graph.add_input("z", f32(2, 3))
    b = Builder(graph)
    (t1,) = b.op("LeakyRelu", [x], {"alpha": 0.1})
    (t2,) = b.op("LeakyRelu", [x], {"alpha": 0.2})
    (s1,) = b.op("Sub", [x, z])
    (s2,) = b.op("Sub", [z, x])
    graph.set_outputs([t1, t2, s1, s2])
    graph, _ = check_pass(graph, "eliminate-common-subexpressions")
    assert len(graph.nodes) == 4


def test_identical_constants_merge_by_content() -> None:
    graph = Graph()
    x = graph.add_input("x", f32(3))
    c1 = graph.add_constant("c1", np.array([1, 2, 3], np.float32))
    c2 = graph.add_constant("c2", np.array([1, 2, 3], np.float32))
    c3 = graph.add_constant("c3", np.array([1, 2, 4], np.float32))
    b = Builder(graph)
    (m1,) = b.op("Mul", [x, c1], name="m1")
    (m2,) = b.op("Mul", [x, c2], name="m2")  # duplicate of m1 once c2 is c1
    (m3,) = b.op("Mul", [x, c3], name="m3")
    (y,) = b.op("Sum", [m1, m2, m3], name="y")
    graph.set_outputs([y])
    graph, ctx = check_pass(graph, "cse")
    assert sorted(graph.constants) == ["c1", "c3"]
    assert ops(graph) == ["Mul", "Mul", "Sum"]
    assert ctx.statistics["eliminate-common-subexpressions"] == {"constants-merged": 1, "nodes-merged": 1}


def test_duplicate_outputs_keep_their_names() -> None:
    graph = Graph()
    x = graph.add_input("x", f32(2))
    b = Builder(graph)
    (hidden,) = b.op("Relu", [x], name="hidden")
    (out,) = b.op("Relu", [x], name="out")  # an output; the first copy is not: it takes the name
    (o1,) = b.op("Neg", [hidden], name="o1")
    (o2,) = b.op("Neg", [hidden], name="o2")  # both outputs: both stay
    graph.set_outputs([out, o1, o2])
    graph, _ = check_pass(graph, "cse")
    assert [v.name for v in graph.outputs] == ["out", "o1", "o2"]
    assert ops(graph) == ["Relu", "Neg", "Neg"]


def test_commutative_operands_in_either_order_merge() -> None:
    graph = Graph()
    x = graph.add_input("x", f32(2, 3))
    z = graph.add_input("z", f32(1, 3))
    b = Builder(graph)
    (m1,) = b.op("Mul", [x, z], name="m1")
    (m2,) = b.op("Mul", [z, x], name="m2")  # broadcasting both ways gives the same [2, 3]
    (y,) = b.op("Sub", [m1, m2], name="y")
    graph.set_outputs([y])
    graph, _ = check_pass(graph, "cse")
    assert ops(graph) == ["Mul", "Sub"]
