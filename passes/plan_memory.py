"""The `plan-memory` pass: give every intermediate tensor an offset in one arena."""

from __future__ import annotations

import dataclasses

from ir import Graph
from ir.memory import ALIGNMENT_KEY, ARENA_KEY
from ir.units import ByteSize, format_size
from passes.manager import Pass, PassContext
from passes.memory_plan import plan_memory

BUDGET_KEY = "memory.budget_bytes"
PAGE_SIZE_KEY = "memory.page_bytes"


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

    With `budget`, the plan is for a process that must stay under it: the
    budget and `page-size` are recorded (`memory.budget_bytes`,
    `memory.page_bytes`) for the compiler, which keeps weights resident when
    they fit beside the rest and otherwise pages them in pages of that size
    (targets/plan/memory_budget.py); and since nothing pages the
    arena, an arena that with the runtime's own baseline (the target fact
    `runtime_baseline_bytes`) exceeds the budget is warned of here.
    """

    name = "plan-memory"
    requires = ("no-control-flow",)  # a static plan runs no branch chosen at run time
    alignment: int = dataclasses.field(default=64, metadata={"help": "byte alignment of every offset"})
    in_place: bool = dataclasses.field(
        default=True, metadata={"help": "let pointwise ops write over an operand that dies at them"}
    )
    arena_inputs: bool = dataclasses.field(
        default=False, metadata={"help": "place graph inputs in the arena too (copied in by the runtime)"}
    )
    budget: ByteSize | None = dataclasses.field(
        default=None, metadata={"help": "memory budget of the running process (512MB); none: no budget"}
    )
    page_size: ByteSize = dataclasses.field(
        default=ByteSize(4 * 2**20), metadata={"help": "bytes of one weight page when weights are paged"}
    )

    def __post_init__(self) -> None:
        if self.alignment < 1 or self.alignment & (self.alignment - 1):
            raise ValueError(f"alignment must be a power of two, got {self.alignment}")
        if self.page_size <= 0 or self.page_size % self.alignment:
            raise ValueError(f"page-size {self.page_size} must be a positive multiple of {self.alignment}")

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        for value in graph.values():
            if value.type.offset is not None:
                value.type = value.type.with_(offset=None)
        alignment = max(self.alignment, ctx.target.buffer_alignment)
        plan = plan_memory(graph, alignment=alignment, in_place=self.in_place, arena_inputs=self.arena_inputs)
        for buffer in plan.buffers:
            for value in buffer.values:
                value.type = value.type.with_(offset=buffer.offset)
        graph.metadata[ARENA_KEY] = str(plan.arena_bytes)
        graph.metadata[ALIGNMENT_KEY] = str(alignment)
        self._record_budget(graph, ctx, plan.arena_bytes)
        ctx.statistics[self.name] = {  # the last plan's numbers, not a sum over runs
            "arena-bytes": plan.arena_bytes,
            "naive-bytes": plan.naive_bytes,
            "buffers": len(plan.buffers),
            "views": plan.views,
            "in-place": plan.in_place,
            "fused": plan.fused,
        }
        return graph

    def _record_budget(self, graph: Graph, ctx: PassContext, arena: int) -> None:
        budget = self.budget
        baseline = ctx.target.runtime_baseline_bytes
        graph.metadata.pop(BUDGET_KEY, None)
        graph.metadata.pop(PAGE_SIZE_KEY, None)
        if budget is None:
            return
        if arena + baseline > budget:
            ctx.warn(
                self.name,
                f"budget {format_size(budget)}: the arena ({format_size(arena)}) and the runtime's baseline "
                f"({format_size(baseline)}) alone need {format_size(arena + baseline)}; weights can be "
                "paged, the arena cannot",
            )
        graph.metadata[BUDGET_KEY] = str(int(budget))
        graph.metadata[PAGE_SIZE_KEY] = str(int(self.page_size))
