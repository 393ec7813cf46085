"""Loops run at run time: a `Loop` flattening left becomes a span of plain nodes the runtime repeats.

Rule: `lower_loops(graph)` replaces each `Loop` of the graph by `LoopBegin`, a
copy of its body whose inputs read LoopBegin's results, and `LoopEnd`
(ir/ops/loop_span.py), so that layout, fusion, the memory plan and the
lowering see the body's nodes as plain nodes and lower each once; the
runtime repeats the steps between the two (runtime/loops.py). A carried value
the body gives back unchanged (itself, or through reshapes and `+ 0`, `* 1`
by constants) is loop-invariant: the body reads the initial
value itself (a constant stays a constant the kernels pack) and the result is
that value, with no copy per iteration. A body node that reads nothing the
loop changes (constants, values from before the loop, other such nodes) is
hoisted before LoopBegin, folded when it reads only constants. A Loop in a branch of an If decided at
run time keeps that branch's guards on LoopBegin, LoopEnd and the body's copies:
the runtime then skips the whole span when they do not hold. The scan outputs are stacked to the
Loop's static `trip_count`; without one the importer already refused the Loop
(naming it), since a static plan needs their size.

A span must stay a span: `span_steps` gives each span's steps in the order
the memory planner and the static plan number them, and refuses a value
computed inside a span that is read after it (it would not exist when the Loop
runs no iteration). What the planner must keep (`extend_lifetimes`): a
value from before a span that the span reads lives until its end (each
iteration reads it again), and LoopEnd's results live from the span's start
(the runtime writes a scan output's row after each iteration).
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ir.builder import Builder
from ir.clone import inline_region
from ir.errors import IRError
from ir.folding import fold_node, is_foldable
from ir.graph import Graph, Node, Value
from ir.ops.loop_span import MARKERS
from ir.predication import guards_of, rewrite_all, set_guards


def lower_loops(graph: Graph) -> int:
    """Lower every `Loop` of `graph` (those its copies bring up too); how many there were."""
    return rewrite_all(graph, "Loop", _lower)


def _lower(graph: Graph, node: Node) -> None:
    guards = guards_of(node)
    (body,) = node.regions
    operands = list(node.operands) + [None] * (2 - len(node.operands))
    limit, cond, initial = operands[0], operands[1], [v for v in operands[2:] if v is not None]
    invariant = [_gives_back(body.outputs[1 + k], body.inputs[2 + k]) for k in range(len(initial))]
    varying = [v for v, fixed in zip(initial, invariant) if not fixed]
    name = node.name or node.results[0].name
    loop = graph.unique_name(f"{name}/iteration")
    builder = Builder(graph, insert_before=node)
    begin_names = [loop, f"{name}/condition", *(f"{name}/{v.name}" for v in varying)]
    iteration, condition, *carried = builder.op(
        "LoopBegin", [limit, cond, *varying], {"loop": loop}, name=name, result_names=begin_names
    )
    reads = iter(carried)
    args = [v if fixed else next(reads) for v, fixed in zip(initial, invariant)]
    anchor = graph.nodes.previous(node)
    outputs = inline_region(graph, node, body, [iteration, condition, *args])
    inside = {iteration, condition, *carried}
    for copy in list(graph.nodes.after(anchor)):
        if copy is node:
            break
        set_guards(copy, guards + guards_of(copy))
        if copy.regions or any(o in inside for o in copy.operands) or copy.captures():
            inside.update(copy.results)
        else:
            outputs = _hoist(graph, copy, begin=iteration.producer, outputs=outputs)  # type: ignore[arg-type]
    gives = [v for v, fixed in zip(outputs[1 : 1 + len(initial)], invariant) if not fixed]
    scans = outputs[1 + len(initial) :]
    attrs = {"loop": loop, "carried": len(varying), "trip_count": node.attrs["trip_count"]}
    operands_end = [outputs[0], *gives, *scans, iteration, condition, *carried]
    ended_values = builder.op("LoopEnd", operands_end, attrs, name=f"{name}/end")
    for marker in (iteration, *ended_values[:1]):
        set_guards(marker.producer, guards)  # type: ignore[arg-type]
    ended = iter(ended_values)
    finals = [(_kept(builder, v, result) if fixed else next(ended))
              for v, fixed, result in zip(initial, invariant, node.results)]  # fmt: skip
    for old, new in zip(node.results, [*finals, *ended], strict=True):
        graph.replace_value(old, new)
    graph.remove_node(node)


def _kept(builder: Builder, initial: Value, result: Value) -> Value:
    """The result of a loop-invariant carried value: the initial value (an Identity of it when the
    result is a graph output, which keeps its own place)."""
    if not result.is_graph_output:
        return initial
    (kept,) = builder.op("Identity", [initial], name=result.name)
    return kept


SAME_NUMBERS = ("Identity", "Reshape", "Squeeze", "Unsqueeze", "Flatten")
NEUTRAL = {"Add": (0, (0, 1)), "Sub": (0, (1,)), "Mul": (1, (0, 1)), "Div": (1, (1,))}
"""Ops that give their other operand's numbers when an operand is a constant all `number`:
op -> (number, the operand positions that constant may take)."""


def _gives_back(given: Value, got: Value) -> bool:
    """Whether the body's carried output `given` is its input `got` itself, or `got` through ops that
    keep every number (reshapes; + 0, - 0, * 1, / 1 by constants): then the value never changes."""
    if not given.type.same_tensor(got.type):
        return False
    value = given
    while value is not got:
        node = value.producer
        if node is None:
            return False
        operands = [o for o in node.operands if o is not None]
        if node.op in SAME_NUMBERS and operands:
            value = operands[0]
            continue
        rule = NEUTRAL.get(node.op)
        if rule is None or len(operands) != 2:
            return False
        number, sides = rule
        neutral = [k for k in sides if _all_equal(operands[k], number)]
        if not neutral or operands[1 - neutral[0]].type.shape != value.type.shape:
            return False
        value = operands[1 - neutral[0]]
    return True


def _all_equal(value: Value, number: int) -> bool:
    return value.is_constant and bool(np.all(np.asarray(value.constant_array()) == number))


def _hoist(graph: Graph, node: Node, begin: Node, outputs: list[Value]) -> list[Value]:
    """Move a body node that reads nothing the loop changes before its LoopBegin (once, not per
    iteration), folded when its operands are constants; `outputs` with its results' replacements."""
    if is_foldable(node):
        names = [r.name for r in node.results]
        results = list(node.results)
        fold_node(graph, node)
        folded = {r: graph.value(n) for r, n in zip(results, names, strict=True)}
        return [folded.get(v, v) for v in outputs]
    graph.nodes.unlink(node)
    graph.nodes.insert_before(begin, node)
    return outputs


def spans(graph: Graph) -> list[tuple[Node, Node]]:
    """Each (LoopBegin, LoopEnd) pair of `graph`, in the order the LoopBegins come."""
    begins: dict[str, Node] = {}
    pairs = []
    for node in graph.nodes:
        if node.op == "LoopBegin":
            begins[node.attrs["loop"]] = node
        elif node.op == "LoopEnd":
            begin = begins.pop(node.attrs["loop"], None)
            if begin is None:
                loop = node.attrs["loop"]
                raise IRError(f"{node.label()} ends loop {loop!r}, which no earlier LoopBegin starts")
            pairs.append((begin, node))
    if begins:
        raise IRError(f"loop(s) {sorted(begins)} start with a LoopBegin and never end")
    position = {node: k for k, node in enumerate(graph.nodes)}
    ordered = sorted(pairs, key=lambda pair: position[pair[0]])
    for k, (begin, end) in enumerate(ordered):
        for other, other_end in ordered[k + 1 :]:
            if position[other] < position[end] < position[other_end]:
                loops = begin.attrs["loop"], other.attrs["loop"]
                raise IRError(f"loops {loops[0]!r} and {loops[1]!r} overlap without one inside the other")
    return ordered


def is_marker(node: Node) -> bool:
    """Whether `node` is a LoopBegin or LoopEnd (no kernel: the runtime does their work)."""
    return node.op in MARKERS


def span_steps(graph: Graph, step: Mapping[Node, int]) -> list[tuple[Node, Node, int, int]]:
    """Each span as (LoopBegin, LoopEnd, its step, its end's step), `step` being the schedule's step of
    every node; an IRError when a value computed inside a span is read after it."""
    found = []
    for begin, end in spans(graph):
        first, last = step[begin], step[end]
        for node, at in step.items():
            if first < at < last:
                for result in node.results:
                    late = [u for u in result.users() if u in step and step[u] > last]
                    if late or result.is_graph_output:
                        reader = late[0].label() if late else "a graph output"
                        raise IRError(
                            f"%{result.name} is computed inside loop {begin.attrs['loop']!r} and read after "
                            f"it by {reader}: the Loop's results are its LoopEnd's"
                        )
        found.append((begin, end, first, last))
    return found


def extend_lifetimes(graph: Graph, step: Mapping[Node, int], last: dict[Value, int]) -> dict[Node, int]:
    """Lengthen `last` (each value's last step) for the spans (module rule); LoopEnd's results' first
    step (its LoopBegin's), by LoopEnd."""
    starts: dict[Node, int] = {}
    for _, end, first, final in span_steps(graph, step):
        starts[end] = first
        for value in list(last):
            born = step[value.producer] if value.producer is not None else -1
            if born < first and any(first < step.get(u, -1) < final for u in value.users()):
                last[value] = max(last[value], final)
    return starts
