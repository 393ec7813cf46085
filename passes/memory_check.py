"""Checking and reporting a memory plan from the offsets a graph's types carry (e.g. a `.hir`).

Rule: the check trusts nothing the planner computed. It recomputes liveness
(passes/memory_plan.py's `loop_lifetimes`: loop spans lengthen lives), joins each view's result to its operand
into one *family* (the same bytes, the same data), and then requires, for every
two families whose byte ranges overlap while both are live, that they be an
allowed in-place pair: family A's last step is the step that produces family B
by a pointwise op (ir/aliasing.py) writing over an operand of A with exactly
A's offset, dtype and shape, and A holds no graph input. Every node result must
have an offset unless it is a view of a value outside the arena; offsets are
multiples of the graph's recorded alignment (metadata `memory.alignment`).
Fusion groups (ir/fusion.py) run at their anchor's step; their intermediates
must have no offset, and their last result may be in place only over what the
group allows.
Imports only `ir` and this package.
"""

from __future__ import annotations

import dataclasses

from ir import Graph, HaiError, Value
from ir.aliasing import is_view
from ir.fusion import Fusion, read_fusion
from ir.memory import ALIGNMENT_KEY, align_up
from passes.memory_plan import loop_lifetimes


class MemoryPlanError(HaiError):
    """A memory plan in which two live tensors share bytes, or a tensor lacks its place."""


@dataclasses.dataclass(eq=False)
class _Family:
    values: list[Value]
    offset: int
    size: int
    start: int
    end: int

    @property
    def root(self) -> Value:
        return self.values[0]

    def describe(self) -> str:
        return (
            f"%{self.root.name} (bytes [{self.offset}, {self.offset + self.size}), "
            f"live over steps {self.start}..{self.end})"
        )


def recorded_alignment(graph: Graph) -> int:
    """The alignment the plan was made with (1 when the graph does not record it)."""
    text = graph.metadata.get(ALIGNMENT_KEY, "1")
    try:
        return max(int(text), 1)
    except ValueError:
        raise MemoryPlanError(f"graph metadata {ALIGNMENT_KEY} = {text!r} is not an integer") from None


def _families(graph: Graph, fusion: Fusion) -> tuple[list[_Family], dict[Value, _Family]]:
    last, loop_starts = loop_lifetimes(graph, fusion)
    intermediates = fusion.intermediates
    family_of: dict[Value, _Family] = {}
    families: list[_Family] = []
    alignment = recorded_alignment(graph)
    for value in graph.inputs:
        if value.type.offset is not None:
            family = _Family([value], value.type.offset, value.type.nbytes, -1, -1)
            families.append(family)
            family_of[value] = family
    for node in graph.nodes:
        step = fusion.steps[node]
        view = is_view(node)
        for result in node.results:
            offset = result.type.offset
            if result in intermediates:
                if offset is not None:
                    raise MemoryPlanError(
                        f"%{result.name} is computed inside a fused kernel, yet has arena offset {offset}"
                    )
                continue
            source = node.operands[0] if view else None
            if view and source is not None and source not in family_of:
                if offset is not None:
                    raise MemoryPlanError(
                        f"%{result.name} is a view of %{source.name}, which is outside the arena, "
                        f"yet has arena offset {offset}"
                    )
                continue
            if offset is None:
                raise MemoryPlanError(
                    f"%{result.name} ({node.label()}) has no arena offset: the graph is not planned"
                )
            if offset < 0 or offset % alignment:
                raise MemoryPlanError(
                    f"%{result.name} has offset {offset}, not a multiple of {alignment} ≥ 0"
                )
            if view and source is not None:
                family = family_of[source]
                if offset != family.offset:
                    raise MemoryPlanError(
                        f"view %{result.name} has offset {offset}, its operand %{source.name} {family.offset}"
                    )
                family.values.append(result)
            else:
                start = loop_starts.get(node, step)
                family = _Family([result], offset, result.type.nbytes, start, step)
                families.append(family)
            family_of[result] = family
    for value, family in family_of.items():
        family.end = max(family.end, last[value])
    return families, family_of


def _in_place_pair(first: _Family, second: _Family, family_of: dict[Value, _Family], fusion: Fusion) -> bool:
    """True when `second` is produced, in place over `first`, at `first`'s last step."""
    for a, b in ((first, second), (second, first)):
        node = b.root.producer
        if node is None or a.end != b.start or a.offset != b.offset or a.size != b.size:
            continue
        if any(v.is_graph_input for v in a.values):
            continue
        if any(family_of.get(operand) is a for operand in fusion.in_place_operands(node)):
            return True
    return False


def check_memory_plan(graph: Graph) -> None:
    """Raise a MemoryPlanError naming both values if two live tensors share bytes illegally."""
    fusion = read_fusion(graph)
    families, family_of = _families(graph, fusion)
    by_offset = sorted((f for f in families if f.size), key=lambda f: f.offset)
    for i, first in enumerate(by_offset):
        for second in by_offset[i + 1 :]:
            if second.offset >= first.offset + first.size:
                break
            if first.start <= second.end and second.start <= first.end:
                if not _in_place_pair(first, second, family_of, fusion):
                    raise MemoryPlanError(
                        f"memory plan overlap: {first.describe()} and {second.describe()} "
                        "share bytes while both are live"
                    )


def memory_report(graph: Graph) -> dict[str, int]:
    """Arena size, naive sum and reuses, recomputed from the offsets in `graph`'s types.

    `naive_bytes` sums the sizes of every value that has an offset (one buffer
    each, no sharing); `arena_bytes` is the end of the last one, rounded up to
    the recorded alignment; `views` and `in_place` count results that share
    their operand's offset through a view or a pointwise op.
    """
    placed = [v for v in graph.values() if v.type.offset is not None and not v.is_constant]
    end = max((v.type.offset + v.type.nbytes for v in placed if v.type.offset is not None), default=0)
    views = in_place = 0
    fusion = read_fusion(graph)
    for node in graph.nodes:
        result = node.results[0] if len(node.results) == 1 else None
        if result is None:
            continue
        if is_view(node):
            views += 1
        elif result.type.offset is not None and any(
            operand.type.offset == result.type.offset for operand in fusion.in_place_operands(node)
        ):
            in_place += 1
    return {
        "arena_bytes": align_up(end, recorded_alignment(graph)),
        "naive_bytes": sum(v.type.nbytes for v in placed),
        "planned_values": len(placed),
        "views": views,
        "in_place": in_place,
    }
