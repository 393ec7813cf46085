"""Regions (the branches and bodies of If, Loop, Scan): use lists across regions, the verifier, the
text format, cloning and the interpreter, checked against numpy."""

from __future__ import annotations

import numpy as np
import pytest

from ir import Builder, DType, Graph, TensorType, VerificationError, run_graph, verify
from ir.clone import clone_graph
from ir.parser import HirParseError, parse_hir
from ir.printer import print_graph

F32_2 = TensorType(DType.F32, (2,))


def if_graph() -> Graph:
    """y = If(c) { relu(x) } else { -x * w }: both branches read the outer %x."""
    graph = Graph("main")
    x = graph.add_input("x", F32_2)
    c = graph.add_input("c", TensorType(DType.BOOL, ()))
    then_branch = Graph("then_branch", enclosing=graph)
    (relu,) = Builder(then_branch).op("Relu", [x], name="relu")
    then_branch.set_outputs([relu])
    else_branch = Graph("else_branch", enclosing=graph)
    w = else_branch.add_constant("w", np.array([2.0, 3.0], np.float32))
    (neg,) = Builder(else_branch).op("Neg", [x], name="neg")
    (scaled,) = Builder(else_branch).op("Mul", [neg, w], name="scaled")
    else_branch.set_outputs([scaled])
    (y,) = Builder(graph).op("If", [c], name="choose", regions=[then_branch, else_branch])
    graph.set_outputs([y])
    return graph


@pytest.mark.parametrize("flag", [True, False])
def test_if_runs_the_branch_its_condition_takes(flag: bool) -> None:
    graph = if_graph()
    verify(graph)
    x = np.array([-1.5, 2.0], np.float32)
    want = np.maximum(x, 0) if flag else -x * np.array([2.0, 3.0], np.float32)
    np.testing.assert_array_equal(run_graph(graph, {"x": x, "c": np.array(flag)})["choose"], want)


def test_outer_values_list_their_uses_inside_regions() -> None:
    graph = if_graph()
    x = graph.value("x")
    assert sorted(n.op for n in x.users()) == ["Neg", "Relu"]
    (node,) = [n for n in graph.nodes if n.regions]
    assert node.captures() == [x]
    # a rewrite of the outer value reaches the region's readers
    other = graph.add_input("other", F32_2)
    graph.replace_value(x, other)
    assert sorted(n.op for n in other.users()) == ["Neg", "Relu"]
    verify(graph)
    # removing the If drops its regions' uses of outer values
    graph.set_outputs([other])
    graph.remove_node(node)
    assert other.users() == []
    verify(graph)


def test_text_round_trip_and_clone_keep_regions() -> None:
    graph = if_graph()
    text = print_graph(graph)
    assert '  %choose = If(%c) : f32[2] loc("choose") {\n    graph @then_branch() -> (%relu) {\n' in text
    assert print_graph(parse_hir(text)) == text
    copy = clone_graph(graph)
    assert print_graph(copy) == text
    verify(copy)
    assert copy.value("x").users() and all(u.graph is not None for u in copy.value("x").users())
    assert not any(user.graph.enclosing is graph for user in copy.value("x").users())  # type: ignore[union-attr]


def test_region_may_not_redefine_an_outer_name() -> None:
    text = (
        print_graph(if_graph()).replace("%relu = Relu(%x)", "%c = Relu(%x)").replace("-> (%relu)", "-> (%c)")
    )
    text = text.replace("return %relu", "return %c")
    with pytest.raises(HirParseError, match=r"%c is defined twice"):
        parse_hir(text)


def test_region_returns_its_own_values() -> None:
    text = print_graph(if_graph()).replace("-> (%relu)", "-> (%x)").replace("return %relu", "return %x")
    with pytest.raises(HirParseError, match=r"%x is defined outside this region"):
        parse_hir(text)


def test_branches_of_different_shapes_are_refused() -> None:
    graph = if_graph()
    text = (
        print_graph(graph)
        .replace("dense<[2.0, 3.0]>", "dense<[2.0]>")
        .replace("w = constant f32[2]", "w = constant f32[1]")
    )
    text = text.replace("%neg = Neg(%x) : f32[2]", "%neg = Neg(%x) : f32[2]")
    reparsed = parse_hir(text)  # Mul broadcasts [2] * [1]: still f32[2]
    verify(reparsed)
    bad = text.replace("%scaled = Mul(%neg, %w) : f32[2]", "%scaled = Mul(%w, %w) : f32[1]")
    with pytest.raises(HirParseError, match=r"its branches give different types"):
        parse_hir(bad)


def test_verifier_catches_a_region_reading_a_later_value() -> None:
    graph = if_graph()
    (node,) = [n for n in graph.nodes if n.regions]
    (late,) = Builder(graph).op("Neg", [graph.value("x")], name="late")
    relu = node.regions[0].nodes.last
    assert relu is not None
    relu.set_operand(0, late)
    with pytest.raises(VerificationError, match=r"operand 0 %late is used before it is defined"):
        verify(graph)


@pytest.mark.parametrize("flag", [True, False])
def test_predicated_if_gives_the_if_results(flag: bool) -> None:
    from ir.predication import guards_of, predicate

    graph = if_graph()
    x = np.array([-1.5, 2.0], np.float32)
    feeds = {"x": x, "c": np.array(flag)}
    want = run_graph(graph, feeds)["choose"]
    assert predicate(graph) == 1
    verify(graph)
    assert [(n.op, guards_of(n)) for n in graph.nodes] == [
        ("Relu", [("c", True)]),
        ("Neg", [("c", False)]),
        ("Mul", [("c", False)]),
        ("Where", []),
    ]
    np.testing.assert_array_equal(run_graph(graph, feeds)["choose"], want)
