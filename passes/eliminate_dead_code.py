"""The `eliminate-dead-code` pass: remove what no graph output depends on."""

from __future__ import annotations

import dataclasses

from ir import Graph
from passes.manager import Pass, PassContext


@dataclasses.dataclass(frozen=True)
class EliminateDeadCode(Pass):
    """Remove every node none of whose results is used by a node or a graph output, then unused constants.

    Nodes are visited last to first, so a whole dead chain goes in one run;
    graph inputs always stay (they are the model's signature).
    """

    name = "eliminate-dead-code"
    aliases = ("dce",)
    ensures = ("no-dead-code",)

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        nodes = 0
        for node in list(reversed(graph.nodes)):  # snapshot: removal unlinks the node
            if not any(r.uses() or r.is_graph_output for r in node.results):
                graph.remove_node(node)
                nodes += 1
        constants = 0
        for value in list(graph.constants.values()):
            if not value.uses() and not value.is_graph_output:
                graph.remove_constant(value)
                constants += 1
        ctx.count(self.name, "nodes-removed", nodes)
        ctx.count(self.name, "constants-removed", constants)
        return graph
