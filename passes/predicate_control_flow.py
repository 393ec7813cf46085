"""The `predicate-control-flow` pass: control flow decided at run time becomes what a static plan runs:
an If, guarded steps and a Where; a Loop, a span of steps the runtime repeats."""

from __future__ import annotations

import dataclasses

from ir import Graph
from ir.loops import lower_loops
from ir.predication import predicate
from passes.manager import Pass, PassContext


@dataclasses.dataclass(frozen=True)
class PredicateControlFlow(Pass):
    """Replace every `Loop` left by `flatten-control-flow` by a span: `LoopBegin`, its body's nodes,
    `LoopEnd` (ir/loops.py states the rule; the runtime repeats the span's steps), and every `If` by
    both its branches, each node guarded by the condition (the runtime skips a step whose guard does
    not hold), and a `Where` per result that picks the branch that ran (ir/predication.py). Loops go
    first, so an If in a loop's body becomes guarded steps inside the span; a Loop in a branch
    becomes a span under the branch's guards (the runtime skips it whole). The compile driver runs
    it before `layout`, `fuse` and `plan-memory`, so the memory plan covers both branches and every
    loop's body.
    """

    name = "predicate-control-flow"

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        while True:
            loops = lower_loops(graph)
            ifs = predicate(graph)
            if loops:
                ctx.count(self.name, "loops-spanned", loops)
            ctx.count(self.name, "ifs-predicated", ifs)
            if not loops and not ifs:
                return graph
