"""The `fold-constants` pass: evaluate nodes whose operands are all constants."""

from __future__ import annotations

import dataclasses

from ir import Graph, IRError
from ir.folding import fold_node, is_foldable
from passes.cleanup import drop_unused_constants
from passes.manager import Pass, PassContext


@dataclasses.dataclass(frozen=True)
class FoldConstants(Pass):
    """Replace every node whose operands are all loaded constants by constants holding its results.

    Nodes are visited in order, so chains of constant computations fold in one
    run; a node whose results together exceed `max-size` elements stays, so
    folding never blows up the model's weights. Constants left unused by a fold go.
    """

    name = "fold-constants"
    max_size: int = dataclasses.field(
        default=1 << 20,
        metadata={"help": "largest result, in elements, that folding may create (0: no limit)"},
    )

    def __post_init__(self) -> None:
        if self.max_size < 0:
            raise ValueError(f"max-size must be 0 (no limit) or positive, got {self.max_size}")

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        limit = self.max_size or None
        folded = 0
        for node in graph.nodes:
            if not node.results or not is_foldable(node, limit):
                continue
            operands = list(node.operands)
            try:
                fold_node(graph, node)
            except IRError:
                raise
            except Exception as exc:  # a reference implementation's numpy error: name the node
                raise IRError(f"cannot fold {node.label()}: {type(exc).__name__}: {exc}") from exc
            drop_unused_constants(graph, operands)
            folded += 1
        ctx.count(self.name, "nodes-folded", folded)
        return graph
