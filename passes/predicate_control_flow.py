"""The `predicate-control-flow` pass: Ifs decided at run time become guarded steps and a Where."""

from __future__ import annotations

import dataclasses

from ir import Graph
from ir.predication import predicate
from passes.manager import Pass, PassContext


@dataclasses.dataclass(frozen=True)
class PredicateControlFlow(Pass):
    """Replace every `If` left by `flatten-control-flow` by both its branches, each node guarded by the
    condition (the runtime skips a step whose guard does not hold), and a `Where` per result that picks
    the branch that ran (ir/predication.py states the rule). The compile driver runs it before
    `layout`, `fuse` and `plan-memory`, so the memory plan covers both branches.
    """

    name = "predicate-control-flow"

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        ctx.count(self.name, "ifs-predicated", predicate(graph))
        return graph
