"""`eliminate-dead-code`: unused nodes and constants go, whole dead chains in one run."""

from __future__ import annotations

from pass_helpers import check_pass, const, f32, ops

from ir import Builder, Graph


def test_dead_chain_and_constant_removed_live_kept() -> None:
    graph = Graph()
    x = graph.add_input("x", f32(2, 3))
    b = Builder(graph)
    w = const(graph, "w", (2, 3), seed=1)
    const(graph, "unused", (4,), seed=2)
    (dead1,) = b.op("Mul", [x, w], name="dead1")
    b.op("Relu", [dead1], name="dead2")
    (live,) = b.op("Relu", [x], name="live")
    graph.set_outputs([live])
    graph, ctx = check_pass(graph, "eliminate-dead-code")
    assert ops(graph) == ["Relu"]
    assert graph.constants == {}
    assert graph.inputs[0].name == "x"
    assert ctx.statistics["eliminate-dead-code"] == {"nodes-removed": 2, "constants-removed": 2}


def test_multi_result_node_stays_when_one_result_is_used() -> None:
    graph = Graph()
    x = graph.add_input("x", f32(4, 6))
    first, _ = Builder(graph).op("Split", [x], {"axis": 1, "split": [3, 3]})
    graph.set_outputs([first])
    graph, _ = check_pass(graph, "dce")
    assert ops(graph) == ["Split"]


def test_constant_graph_output_and_unused_input_stay() -> None:
    graph = Graph()
    graph.add_input("unused_input", f32(2))
    c = const(graph, "c", (2,), seed=3)
    graph.set_outputs([c])
    graph, _ = check_pass(graph, "eliminate-dead-code")
    assert list(graph.constants) == ["c"]
    assert [v.name for v in graph.inputs] == ["unused_input"]
