"""The `plan-memory` pass: give every intermediate tensor an offset in one arena."""

from __future__ import annotations

import dataclasses

from ir import Graph
from passes.manager import Pass, PassContext
from passes.memory_check import ALIGNMENT_KEY, ARENA_KEY
from passes.memory_plan import plan_memory


@dataclasses.dataclass(frozen=True)
class PlanMemory(Pass):
    """Store in every node result's type its byte offset in one arena, sharing bytes between tensors
    that are never live together (passes/memory_plan.py states the algorithm).

    Views (Reshape, Flatten, Squeeze, Unsqueeze, Identity) take their operand's
    offset; with `in-place`, a pointwise op whose operand dies at it writes over
    that operand. Graph outputs get offsets (the runtime copies them out); graph
    inputs are the caller's buffers and get none unless `arena-inputs`. A view of
    a value outside the arena has no offset: it is that value's bytes. Offsets
    already in the graph are replaced. Records `memory.arena_bytes` and
    `memory.alignment` in the graph's metadata and the counts in the statistics.
    """

    name = "plan-memory"
    alignment: int = dataclasses.field(default=64, metadata={"help": "byte alignment of every offset"})
    in_place: bool = dataclasses.field(
        default=True, metadata={"help": "let pointwise ops write over an operand that dies at them"}
    )
    arena_inputs: bool = dataclasses.field(
        default=False, metadata={"help": "place graph inputs in the arena too (copied in by the runtime)"}
    )

    def __post_init__(self) -> None:
        if self.alignment < 1 or self.alignment & (self.alignment - 1):
            raise ValueError(f"alignment must be a power of two, got {self.alignment}")

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        for value in graph.values():
            if value.type.offset is not None:
                value.type = value.type.with_(offset=None)
        plan = plan_memory(
            graph, alignment=self.alignment, in_place=self.in_place, arena_inputs=self.arena_inputs
        )
        for buffer in plan.buffers:
            for value in buffer.values:
                value.type = value.type.with_(offset=buffer.offset)
        graph.metadata[ARENA_KEY] = str(plan.arena_bytes)
        graph.metadata[ALIGNMENT_KEY] = str(self.alignment)
        ctx.statistics[self.name] = {  # the last plan's numbers, not a sum over runs
            "arena-bytes": plan.arena_bytes,
            "naive-bytes": plan.naive_bytes,
            "buffers": len(plan.buffers),
            "views": plan.views,
            "in-place": plan.in_place,
            "fused": plan.fused,
        }
        return graph
