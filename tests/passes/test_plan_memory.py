"""`plan-memory` on small hand-made graphs: exact arena sizes, views, in-place rules, the checker.

Expected offsets and sizes are worked out by hand in each test's comment from
the pass's rule (liveness over the node order, 64-byte alignment, greedy by size).
"""

from __future__ import annotations

import numpy as np
import pytest
from arena_helpers import run_in_arena
from pass_helpers import check_pass, random_inputs

from ir import Graph, HaiError, run_graph
from ir.memory import ARENA_KEY
from ir.parser import parse_hir
from ir.printer import print_graph
from ir.target_facts import TargetFacts
from passes import PassContext, PassManager, parse_pipeline
from passes.memory_check import MemoryPlanError, check_memory_plan, memory_report
from passes.plan_memory import BUDGET_KEY, PAGE_SIZE_KEY


def hir(body: str, signature: str = "(%x: f32[10]) -> (%y)") -> Graph:
    return parse_hir(f"graph @main{signature} {{\n{body}\n}}\n")


def planned(graph: Graph, pipeline: str = "plan-memory") -> tuple[Graph, dict[str, int]]:
    """Run the pipeline (interpreter unchanged), check the plan, and run it in a simulated arena."""
    inputs = random_inputs(graph)
    graph, ctx = check_pass(graph, pipeline)
    check_memory_plan(graph)
    simulated = run_in_arena(graph, inputs)
    for name, want in run_graph(graph, inputs).items():
        np.testing.assert_array_equal(simulated[name], want, err_msg=name)
    return graph, ctx.statistics["plan-memory"]


def offsets(graph: Graph) -> dict[str, int | None]:
    return {v.name: v.type.offset for v in graph.values() if not v.is_constant}


CHAIN = """
  %a = Relu(%x) : f32[10]
  %b = Relu(%a) : f32[10]
  %y = Relu(%b) : f32[10]
  return %y"""


def test_chain_needs_two_buffers_without_in_place() -> None:
    # a lives over steps 0..1, b 1..2, y 2..3 (an output): a and y never meet, so
    # two 40-byte buffers at 0 and 64 (the alignment): an arena of 128 bytes.
    graph, stats = planned(hir(CHAIN), "plan-memory{in-place=false}")
    assert offsets(graph) == {"x": None, "a": 0, "b": 64, "y": 0}
    assert stats["arena-bytes"] == 128 and stats["naive-bytes"] == 120 and stats["in-place"] == 0
    assert memory_report(graph)["arena_bytes"] == 128


def test_chain_needs_one_buffer_in_place() -> None:
    # a cannot overwrite the input x; b overwrites a, y overwrites b.
    graph, stats = planned(hir(CHAIN))
    assert offsets(graph) == {"x": None, "a": 0, "b": 0, "y": 0}
    assert stats["arena-bytes"] == 64 and stats["in-place"] == 2 and stats["buffers"] == 1
    report = memory_report(graph)
    assert report == {"arena_bytes": 64, "naive_bytes": 120, "planned_values": 3, "views": 0, "in_place": 2}


def test_alignment_option() -> None:
    graph, stats = planned(hir(CHAIN), "plan-memory{in-place=false alignment=8}")
    assert offsets(graph) == {"x": None, "a": 0, "b": 40, "y": 0}
    assert stats["arena-bytes"] == 80
    assert graph.metadata["memory.alignment"] == "8"


def test_views_share_their_operands_bytes() -> None:
    graph, stats = planned(
        hir(
            """
  %a = Relu(%x) : f32[2,5]
  %r = Reshape(%a) {shape = [10]} : f32[10]
  %u = Unsqueeze(%r) {axes = [0]} : f32[1,10]
  %s = Squeeze(%u) {axes = [0]} : f32[10]
  %f = Flatten(%s) {axis = 0} : f32[1,10]
  %i = Identity(%f) : f32[1,10]
  %y = Neg(%i) : f32[1,10]
  return %y""",
            "(%x: f32[2,5]) -> (%y)",
        ),
        "plan-memory{in-place=false}",
    )
    places = offsets(graph)
    assert {places[n] for n in ("a", "r", "u", "s", "f", "i")} == {0}
    assert places["y"] == 64  # a's bytes are read by Neg through the views
    assert stats["views"] == 5 and stats["buffers"] == 2


def test_view_keeps_its_operand_alive() -> None:
    # r is a view of a read at step 3, so Sigmoid (step 1) must not overwrite a.
    graph, _ = planned(
        hir("""
  %a = Relu(%x) : f32[10]
  %b = Sigmoid(%a) : f32[10]
  %r = Reshape(%a) {shape = [2,5]} : f32[2,5]
  %n = Neg(%r) : f32[2,5]
  %m = Reshape(%n) {shape = [10]} : f32[10]
  %y = Add(%b, %m) : f32[10]
  return %y""")
    )
    places = offsets(graph)
    assert places["b"] != places["a"] and places["r"] == places["a"]
    assert places["n"] == places["a"]  # Neg is where a's bytes die
    assert places["y"] in (places["b"], places["m"])


def test_never_in_place_over_a_graph_input() -> None:
    # Add(a, x): a dies there and may be overwritten; x is the caller's buffer (or pinned in the arena).
    body = """
  %a = Relu(%x) : f32[10]
  %y = Add(%x, %a) : f32[10]
  return %y"""
    graph, stats = planned(hir(body))
    assert offsets(graph) == {"x": None, "a": 0, "y": 0}
    graph, stats = planned(hir(body), "plan-memory{arena-inputs=true}")
    places = offsets(graph)
    assert places["x"] is not None and places["y"] == places["a"] != places["x"]
    assert stats["naive-bytes"] == 120


def test_branch_read_later_is_not_overwritten() -> None:
    # a is read by Sigmoid (step 1) and Neg (step 2): only Neg may overwrite it.
    graph, stats = planned(
        hir("""
  %a = Relu(%x) : f32[10]
  %b = Sigmoid(%a) : f32[10]
  %c = Neg(%a) : f32[10]
  %y = Add(%b, %c) : f32[10]
  return %y""")
    )
    places = offsets(graph)
    assert places["b"] != places["a"] and places["c"] == places["a"]
    assert places["y"] in (places["b"], places["c"])
    assert stats["arena-bytes"] == 128


def test_outputs_are_never_overwritten_and_inputs_or_constants_get_no_offset() -> None:
    graph, _ = planned(
        hir(
            """
  %w = constant f32[2] dense<[1.0, 2.0]>
  %a = Relu(%x) : f32[10]
  %y = Neg(%a) : f32[10]
  %r = Reshape(%x) {shape = [2,5]} : f32[2,5]
  %z = Abs(%r) : f32[2,5]
  return %a, %y, %x, %w, %r, %z""",
            "(%x: f32[10]) -> (%a, %y, %x, %w, %r, %z)",
        )
    )
    places = offsets(graph)
    assert places["x"] is None and places["r"] is None  # the caller's bytes, and a view of them
    assert len({places["a"], places["y"], places["z"]}) == 3


def test_unused_results_and_multi_result_nodes_get_their_own_bytes() -> None:
    graph, _ = planned(
        hir(
            """
  %s.0, %s.1 = Split(%x) {axis = 0, split = [4, 6]} : f32[4], f32[6]
  %y = Relu(%s.1) : f32[6]
  return %y"""
        )
    )
    places = offsets(graph)
    assert places["s.0"] != places["s.1"]  # both written by Split at the same step


def test_round_trip_and_report_from_hir() -> None:
    graph, stats = planned(hir(CHAIN.replace("Relu(%a)", "Sigmoid(%a)")))
    text = print_graph(graph)
    assert "{offset = 0}" in text and 'metadata "memory.arena_bytes" = "64"' in text
    again = parse_hir(text)
    assert print_graph(again) == text
    check_memory_plan(again)
    assert memory_report(again)["arena_bytes"] == stats["arena-bytes"]
    assert memory_report(again)["in_place"] == stats["in-place"]


def test_replanning_gives_the_same_plan() -> None:
    graph, _ = planned(hir(CHAIN), "plan-memory{in-place=false}")
    once = print_graph(graph)
    graph = PassManager(parse_pipeline("plan-memory{in-place=false}")).run(graph, PassContext())
    assert print_graph(graph) == once


@pytest.mark.parametrize(
    ("body", "message"),
    [
        # b is read by y while a is still read too (by y): they must not share bytes.
        (
            "%a = Relu(%x) : f32[10]{offset = 0}\n%b = Neg(%a) : f32[10]{offset = 0}\n"
            "%y = Add(%a, %b) : f32[10]{offset = 64}\nreturn %y",
            "%a .* and %b",
        ),
        # partial overlap of two live tensors
        (
            "%a = Relu(%x) : f32[10]{offset = 0}\n%b = Neg(%x) : f32[10]{offset = 32}\n"
            "%y = Add(%a, %b) : f32[10]{offset = 64}\nreturn %y",
            "%a .* and %b",
        ),
        # an in-place-shaped pair, but Softmax is no pointwise op
        (
            "%a = Relu(%x) : f32[10]{offset = 0}\n"
            "%y = Softmax(%a) {axis = 0} : f32[10]{offset = 0}\nreturn %y",
            "%a .* and %y",
        ),
        ("%a = Relu(%x) : f32[10]{offset = 0}\n%y = Neg(%a) : f32[10]\nreturn %y", "%y .* no arena offset"),
        (
            "%r = Reshape(%x) {shape = [2,5]} : f32[2,5]{offset = 0}\n%y = Neg(%r) : f32[2,5]{offset = 64}\n"
            "return %y",
            "view of %x",
        ),
        (
            "%a = Relu(%x) : f32[10]{offset = 0}\n%r = Reshape(%a) {shape = [2,5]} : f32[2,5]{offset = 64}\n"
            "return %r",
            "view %r",
        ),
    ],
    ids=["full-overlap", "partial-overlap", "not-pointwise", "unplanned", "view-of-input", "moved-view"],
)
def test_check_memory_plan_names_both_values(body: str, message: str) -> None:
    signature = "(%x: f32[10]) -> (%" + body.rsplit("return %", 1)[1] + ")"
    graph = hir(body, signature)
    with pytest.raises(MemoryPlanError, match=message):
        check_memory_plan(graph)


def test_in_place_over_an_arena_input_is_rejected() -> None:
    graph = hir("%y = Neg(%x) : f32[10]{offset = 0}\nreturn %y", "(%x: f32[10]{offset = 0}) -> (%y)")
    with pytest.raises(MemoryPlanError, match="%x .* and %y"):
        check_memory_plan(graph)


def test_bad_alignment_option_is_refused() -> None:
    with pytest.raises(Exception, match="power of two"):
        parse_pipeline("plan-memory{alignment=48}")


def test_budget_and_page_size_are_recorded_for_the_compiler() -> None:
    graph, _ = planned(hir(CHAIN), "plan-memory{budget=512MB page-size=1MiB}")
    assert graph.metadata[BUDGET_KEY] == str(512 * 2**20) and graph.metadata[PAGE_SIZE_KEY] == str(2**20)
    graph, _ = planned(graph, "plan-memory")  # no budget: none recorded, an old one dropped
    assert BUDGET_KEY not in graph.metadata and PAGE_SIZE_KEY not in graph.metadata


def test_budget_under_arena_and_baseline_is_warned_of() -> None:
    ctx = PassContext(target=TargetFacts(runtime_baseline_bytes=1000))
    graph = PassManager(parse_pipeline("plan-memory{budget=1KiB in-place=false}")).run(hir(CHAIN), ctx)
    assert graph.metadata[ARENA_KEY] == "128"  # two 40-byte buffers at 64-byte alignment
    (warning,) = ctx.diagnostics
    assert "budget 1 KiB: the arena (128 B) and the runtime's baseline (1000 B) alone need 1.1 KiB" in str(
        warning.message
    )


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("budget=12XB", "unknown unit 'XB'"),
        ("page-size=100", "page-size 100 must be a positive multiple of 64"),
    ],
)
def test_malformed_budget_options_name_the_option(options: str, message: str) -> None:
    with pytest.raises(HaiError, match=message):
        parse_pipeline(f"plan-memory{{{options}}}")
