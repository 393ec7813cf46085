"""The `flatten-control-flow` pass: constant-condition Ifs and small static loops become plain nodes."""

from __future__ import annotations

import dataclasses

from ir import Graph
from ir.flatten import flatten
from passes.manager import Pass, PassContext


@dataclasses.dataclass(frozen=True)
class FlattenControlFlow(Pass):
    """Replace each `If` whose condition is a constant by its taken branch, and unroll each `Loop` whose
    iterations are known (a constant trip count, a condition that folds to a constant) and each
    `Scan`, when the unrolled copies stay within `max-nodes` nodes (ir/flatten.py states the rule).

    What stays (a condition or trip count computed at run time, a loop too big to unroll) keeps its
    regions; compiling it is then refused naming the node.
    """

    name = "flatten-control-flow"
    max_nodes: int = dataclasses.field(
        default=4096, metadata={"help": "most nodes one unrolled Loop or Scan may become"}
    )

    max_loop_nodes: int = dataclasses.field(
        default=512, metadata={"help": "most nodes one unrolled Loop may become (larger: run at run time)"}
    )

    def __post_init__(self) -> None:
        if self.max_nodes < 1:
            raise ValueError(f"max-nodes must be positive, got {self.max_nodes}")
        if self.max_loop_nodes < 0:
            raise ValueError(f"max-loop-nodes must not be negative, got {self.max_loop_nodes}")

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        flattened = flatten(graph, self.max_nodes, self.max_loop_nodes)
        ctx.count(self.name, "nodes-flattened", flattened)
        return graph
