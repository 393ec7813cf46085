"""Flattening control flow into the graph, so later stages see plain nodes.

Rule: an `If` whose condition is a constant becomes a copy of its taken branch;
a `Loop` or `Scan` is unrolled (one copy of its body per iteration, the scan
slices taken by `Gather` and stacked by `Unsqueeze` + `Concat`) when its
iteration count is known and the copies stay within `max_nodes` nodes
(`max_loop_nodes` for a Loop: a larger one runs at run time, ir/loops.py). A Loop
is known to run while its condition, folded after each copied iteration, is a
constant: it stops at a constant false (its scan outputs then hold the
iterations run, as ONNX says) and stays a Loop when the condition is computed
at run time. Copied nodes whose operands are constants fold at once (up to
`FOLD_LIMIT` elements), which is what turns a nested condition on a shape or on
the iteration number into a constant. Only the graph's own nodes are
flattened; `flatten` repeats until nothing changes, so control flow that a
copy brings up goes too. The ONNX importer uses `stack` and `take` for the
loops it unrolls while importing.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import numpy as np

from ir.builder import Builder
from ir.clone import inline_region
from ir.folding import fold_node, is_foldable
from ir.graph import Graph, Node, Value

FOLD_LIMIT = 4096
"""Copied nodes whose results have up to this many elements fold when their operands are constants."""


def stack(builder: Builder, values: Sequence[Value], axis: int, name: str) -> Value:
    """`values` (same types) stacked along a new axis `axis` (ONNX Loop and Scan outputs)."""
    rank = len(values[0].type.shape) + 1
    axis = axis % rank
    expanded = [builder.op("Unsqueeze", [v], {"axes": [axis]}, name=f"{name}/stack")[0] for v in values]
    if len(expanded) == 1:
        return expanded[0]
    return builder.op("Concat", expanded, {"axis": axis}, name=f"{name}/stack")[0]


def take(builder: Builder, value: Value, index: int, axis: int, name: str) -> Value:
    """The slice `index` of `value` along `axis`, that axis dropped (a Scan input's step)."""
    graph = builder.graph
    position = graph.add_constant(f"{name}/step", np.array(index, np.int64))
    return builder.op("Gather", [value, position], {"axis": axis}, name=f"{name}/slice")[0]


def flatten(graph: Graph, max_nodes: int, max_loop_nodes: int | None = None) -> int:
    """Flatten what this module's rule allows in `graph`'s own nodes, a Loop within `max_loop_nodes`
    (None: `max_nodes`); how many nodes went."""
    flattened = 0
    changed = True
    while changed:
        changed = False
        for node in list(graph.nodes):
            most = max_nodes if node.op != "Loop" or max_loop_nodes is None else max_loop_nodes
            if node.regions and flatten_node(graph, node, most):
                flattened += 1
                changed = True
    return flattened


def flatten_node(graph: Graph, node: Node, max_nodes: int) -> bool:
    """Replace one control-flow node by plain nodes when the rule allows; whether it did."""
    rewrite = {"If": _fold_if, "Loop": _unroll_loop, "Scan": _unroll_scan}[node.op]
    anchor = graph.nodes.previous(node)
    constants = len(graph.constants)
    results = rewrite(graph, node, max_nodes)
    if results is None:
        _discard(graph, anchor, node, constants)
        return False
    for old, new in zip(node.results, results, strict=True):
        graph.replace_value(old, new)
    graph.remove_node(node)
    return True


def _copies(graph: Graph, anchor: Node | None, node: Node) -> list[Node]:
    """The nodes between `anchor` and `node` (the copies a rewrite made)."""
    copies = []
    for copy in graph.nodes.after(anchor):
        if copy is node:
            break
        copies.append(copy)
    return copies


def _discard(graph: Graph, anchor: Node | None, node: Node, constants: int) -> None:
    """Undo an unroll that had to stop: its copies and the constants it added go."""
    for copy in reversed(_copies(graph, anchor, node)):
        graph.remove_node(copy)
    for value in list(graph.constants.values())[constants:]:
        if not value.uses() and not value.is_graph_output:
            graph.remove_constant(value)


def _copy(graph: Graph, node: Node, region: Graph, args: Sequence[Value]) -> list[Value]:
    """Inline `region` before `node` and fold what became constant."""
    anchor = graph.nodes.previous(node)
    outputs = inline_region(graph, node, region, args)
    folded: dict[Value, Value] = {}
    for new in _copies(graph, anchor, node):
        if not new.regions and is_foldable(new, FOLD_LIMIT):
            names = [r.name for r in new.results]
            results = list(new.results)
            fold_node(graph, new)
            folded.update((r, graph.value(n)) for r, n in zip(results, names))
    return [folded.get(v, v) for v in outputs]


def _constant_flag(value: Value | None) -> bool | None:
    """A condition's value when it is a loaded constant (None: absent counts as true), else None."""
    if value is None:
        return True
    if value.is_constant and isinstance(value.const, np.ndarray):
        return bool(value.const.reshape(-1)[0])
    return None


def _fold_if(graph: Graph, node: Node, max_nodes: int) -> list[Value] | None:
    taken = _constant_flag(node.operands[0])
    if taken is None:
        return None
    return _copy(graph, node, node.regions[0] if taken else node.regions[1], [])


def _size(region: Graph) -> int:
    return sum(1 for _ in region.walk())


def _unroll_loop(graph: Graph, node: Node, max_nodes: int) -> list[Value] | None:
    (body,) = node.regions
    operands = list(node.operands) + [None] * (2 - len(node.operands))
    limit, cond = operands[0], _constant_flag(operands[1])
    count = None if limit is None else _constant_int(limit)
    if cond is None or (limit is not None and count is None):
        return None
    carried = [v for v in operands[2:] if v is not None]
    scans: list[list[Value]] = [[] for _ in body.outputs[1 + len(carried) :]]
    builder = Builder(graph, insert_before=node)
    iteration = 0
    while cond and (count is None or iteration < count):
        if (iteration + 1) * _size(body) > max_nodes:
            return None
        step = graph.add_constant(f"{node.name or 'loop'}/iteration", np.array(iteration, np.int64))
        flag = graph.add_constant(f"{node.name or 'loop'}/cond", np.array(True))
        outputs = _copy(graph, node, body, [step, flag, *carried])
        next_cond = _constant_flag(outputs[0])
        if next_cond is None:
            return None
        cond = next_cond
        carried = outputs[1 : 1 + len(carried)]
        for values, value in zip(scans, outputs[1 + len(carried) :]):
            values.append(value)
        iteration += 1
    if scans and iteration != node.attrs["trip_count"]:
        return None  # typed for another length: leave it to the interpreter's error
    if scans and not iteration:
        return None
    return [*carried, *(stack(builder, values, 0, node.name or "loop") for values in scans)]


def _constant_int(value: Value) -> int | None:
    if value.is_constant and isinstance(value.const, np.ndarray):
        return int(value.const.reshape(-1)[0])
    return None


def _unroll_scan(graph: Graph, node: Node, max_nodes: int) -> list[Value] | None:
    from ir.ops.control import scan_layout

    (body,) = node.regions
    operands = [v for v in node.operands if v is not None]
    states = operands[: len(operands) - node.attrs["num_scan_inputs"]]
    inputs = operands[len(states) :]
    layout = scan_layout(node.attrs, len(states), len(operands), len(body.outputs) - len(states))
    axes = [a % len(x.type.shape) for a, x in zip(layout["scan_input_axes"], inputs)]
    length = inputs[0].type.shape[axes[0]]
    if not length or length * _size(body) > max_nodes:
        return None
    builder = Builder(graph, insert_before=node)
    copy = functools.partial(_copy, graph, node, body)
    return unrolled_scan(builder, copy, states, inputs, axes, layout, length, node.name or "scan")


def unrolled_scan(
    builder: Builder,
    body: Callable[[list[Value]], list[Value]],
    states: Sequence[Value],
    scanned: Sequence[Value],
    axes: Sequence[int],
    layout: dict[str, list[int]],
    length: int,
    name: str,
) -> list[Value]:
    """A Scan's results with its `length` iterations written out through `builder`: each step's slices
    of `scanned` (`take`, in each input's direction) and the carried `states` go through one copy of
    the body (`body(values) -> outputs`); the scan outputs are stacked in their directions. The
    importer (an ONNX body) and `flatten-control-flow` (an IR region) share it."""
    states = list(states)
    stacked: list[list[Value]] = [[] for _ in layout["scan_output_axes"]]
    for step in range(length):
        slices = [
            take(builder, x, length - 1 - step if reverse else step, axis, name)
            for x, axis, reverse in zip(scanned, axes, layout["scan_input_directions"])
        ]
        outputs = body([*states, *slices])
        states = outputs[: len(states)]
        for values, value in zip(stacked, outputs[len(states) :]):
            values.append(value)
    results = list(states)
    for values, axis, reverse in zip(stacked, layout["scan_output_axes"], layout["scan_output_directions"]):
        results.append(stack(builder, values[::-1] if reverse else values, axis, name))
    return results
