"""Static memory planning: liveness over the node order, buffers, and their offsets in one arena.

Rule: nodes run in the graph's order; node `i` reads its operands and writes
its results during step `i`. A value is live from its producer's step (graph
inputs: step -1) to the step of its last reader (graph outputs: step `n`, past
the last node, since the runtime copies them out). Constants live in the
weights, never in the arena.

Values are first grouped into *buffers* (runs of values that share bytes),
walking the nodes in order:

- a view's result (ir/aliasing.py) joins its operand's buffer, which then
  lives until the view's last reader; a view of a value outside the arena (a
  graph input not placed in it, a constant) stays outside too and gets no offset:
  it is that value's bytes;
- with `in_place`, a pointwise result joins the buffer of an operand of its
  dtype and shape when every value of that buffer is last read at this very
  node, and the buffer is no graph input (nor output, which lives to the end);
- any other result starts a buffer of its own.

A buffer's size is its values' largest byte count; its lifetime runs from its
first value's step to its values' last. Offsets are then assigned greedily, as
TFLite Micro's GreedyMemoryPlanner does: buffers are taken largest first, and
each goes to the lowest `alignment`-aligned offset where it overlaps no
already-placed buffer whose lifetime intersects its own (two lifetimes that
meet at one step intersect: a node never writes over what it reads, except in
place). The same first-fit placement is also tried in two other orders (longest
lifetime first; earliest start first), and the smallest arena wins; ties go to
the order listed, so the plan is deterministic. The arena size is the end of
the last buffer, rounded up to the alignment.

A loop span (ir/loops.py) runs again for each iteration: a value from before
it that it reads lives until its LoopEnd, and LoopEnd's results (written by
the runtime during the loop) live from its LoopBegin's step.

Fusion groups (ir/fusion.py) run as one kernel at one step: every node of a
group counts as running at its anchor's step, and the results fused into a later
node of the group (the intermediates) never materialise: they get no buffer. The
group's last result may be written in place only over what the group's
`in_place_operands` allows. Imports only `ir` and this package.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Sequence

from ir import Graph, Node, Value
from ir.aliasing import is_view
from ir.fusion import Fusion, read_fusion
from ir.loops import extend_lifetimes
from ir.memory import align_up


@dataclasses.dataclass(eq=False)
class Buffer:
    """Values that share the same bytes of the arena, and when those bytes are in use."""

    values: list[Value]
    size: int
    start: int
    end: int
    pinned: bool = False  # holds a graph input: never written over in place
    offset: int = 0

    def add(self, value: Value, last_use: int) -> None:
        self.values.append(value)
        self.size = max(self.size, value.type.nbytes)
        self.end = max(self.end, last_use)

    def overlaps_in_time(self, other: Buffer) -> bool:
        return self.start <= other.end and other.start <= self.end


@dataclasses.dataclass
class MemoryPlan:
    """Buffers with their offsets, and what sharing saved."""

    buffers: list[Buffer]
    arena_bytes: int
    naive_bytes: int
    views: int
    in_place: int
    outside: list[Value]  # views of values outside the arena: no offset, the source's bytes
    fused: int = 0  # results computed inside a fused kernel: never materialised


def last_uses(graph: Graph, fusion: Fusion | None = None) -> dict[Value, int]:
    """Each non-constant value's last step: its last reader's, the end for outputs, its own if unread.

    A node's step is its position, or its fusion group's anchor's position.
    """
    nodes = list(graph.nodes)
    step = (fusion or read_fusion(graph)).steps
    last: dict[Value, int] = {}
    for value in graph.inputs:
        last[value] = -1
    for node in nodes:
        for result in node.results:
            last[result] = step[node]
    for value in list(last):
        readers = [step[user] for user in value.users() if user in step]
        last[value] = max([last[value], *readers])
    for value in graph.outputs:
        if not value.is_constant:
            last[value] = len(nodes)
    return last


def loop_lifetimes(graph: Graph, fusion: Fusion) -> tuple[dict[Value, int], dict[Node, int]]:
    """`last_uses`, lengthened for the loop spans (ir/loops.py), and the first step of each LoopEnd's
    results (its LoopBegin's)."""
    last = last_uses(graph, fusion)
    return last, extend_lifetimes(graph, fusion.steps, last)


def group_buffers(graph: Graph, *, in_place: bool, arena_inputs: bool) -> MemoryPlan:
    """Walk the nodes in order and group values into buffers (views, in-place), unplaced."""
    fusion = read_fusion(graph)
    intermediates = fusion.intermediates
    last, loop_starts = loop_lifetimes(graph, fusion)
    buffer_of: dict[Value, Buffer] = {}
    buffers: list[Buffer] = []
    plan = MemoryPlan(buffers, 0, 0, 0, 0, [])

    def new_buffer(value: Value, start: int, pinned: bool = False) -> None:
        buffer = Buffer([value], value.type.nbytes, start, last[value], pinned)
        buffers.append(buffer)
        buffer_of[value] = buffer

    if arena_inputs:
        for value in graph.inputs:
            new_buffer(value, -1, pinned=True)
    outside = set(v for v in graph.inputs if not arena_inputs)
    for node in graph.nodes:
        i = fusion.steps[node]
        if node.results and node.results[0] in intermediates:
            plan.fused += 1
            continue
        if is_view(node):
            source, result = node.operands[0], node.results[0]
            assert source is not None
            if source.is_constant or source in outside:
                outside.add(result)
                plan.outside.append(result)
            else:
                buffer_of[source].add(result, last[result])
                buffer_of[result] = buffer_of[source]
            plan.views += 1
            continue
        target = _in_place_target(fusion.in_place_operands(node), buffer_of, i) if in_place else None
        for result in node.results:
            if target is not None:
                target.add(result, last[result])
                buffer_of[result] = target
                plan.in_place += 1
            else:
                new_buffer(result, loop_starts.get(node, i))
    plan.naive_bytes = sum(v.type.nbytes for v in buffer_of)
    return plan


def _in_place_target(candidates: list[Value], buffer_of: dict[Value, Buffer], step: int) -> Buffer | None:
    """The buffer of the first candidate operand to overwrite: one that dies at this step, no input's."""
    for operand in candidates:
        buffer = buffer_of.get(operand)
        if buffer is not None and not buffer.pinned and buffer.end == step:
            return buffer
    return None


Order = Callable[[Buffer], tuple[int, ...]]

ORDERS: tuple[Order, ...] = (
    lambda b: (-b.size, b.start, -b.end),  # greedy by size (TFLite Micro)
    lambda b: (b.start - b.end, -b.size, b.start),  # longest lifetime first
    lambda b: (b.start, -b.size, -b.end),  # in execution order
)
"""The orders first-fit placement tries; the first one giving the smallest arena wins."""


def place(buffers: Sequence[Buffer], alignment: int, order: Order) -> int:
    """First-fit: each buffer, in `order`, at the lowest aligned offset free for its lifetime."""
    placed: list[Buffer] = []
    arena = 0
    indexed = sorted(range(len(buffers)), key=lambda k: (*order(buffers[k]), k))
    for buffer in (buffers[k] for k in indexed):
        offset = 0
        if buffer.size:
            busy = sorted((p.offset, p.offset + p.size) for p in placed if p.overlaps_in_time(buffer))
            for low, high in busy:
                if offset + buffer.size <= low:
                    break
                offset = max(offset, align_up(high, alignment))
            placed.append(buffer)
        buffer.offset = offset
        arena = max(arena, offset + buffer.size)
    return align_up(arena, alignment)


def plan_memory(
    graph: Graph, *, alignment: int = 64, in_place: bool = True, arena_inputs: bool = False
) -> MemoryPlan:
    """Group the graph's values into buffers and give each the offset of the smallest arena found."""
    plan = group_buffers(graph, in_place=in_place, arena_inputs=arena_inputs)
    best: tuple[int, list[int]] | None = None
    for order in ORDERS:
        arena = place(plan.buffers, alignment, order)
        if best is None or arena < best[0]:
            best = (arena, [b.offset for b in plan.buffers])
    assert best is not None
    plan.arena_bytes = best[0]
    for buffer, offset in zip(plan.buffers, best[1], strict=True):
        buffer.offset = offset
    return plan
