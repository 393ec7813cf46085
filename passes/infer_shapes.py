"""The `infer-shapes` pass: re-infer every node result's type in program order."""

from __future__ import annotations

import dataclasses

from ir import Graph
from ir.builder import infer_types
from passes.manager import Pass, PassContext


@dataclasses.dataclass(frozen=True)
class InferShapes(Pass):
    """Re-infer the dtype and shape of every node result, in order, from its operands.

    Quantization and placement facts of a result are kept; memory-plan facts
    (arena offset, page) are kept only where dtype and shape did not change,
    since a plan made for another size no longer holds.
    """

    name = "infer-shapes"
    ensures = ("types-inferred",)

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        changed = 0
        for node in graph.nodes:
            operand_types = [o.type if o is not None else None for o in node.operands]
            inferred = infer_types(node.op, operand_types, node.attrs, node.label(), node.regions)
            if len(inferred) != len(node.results):
                count = f"{len(node.results)} results, inference gives {len(inferred)}"
                raise ValueError(f"{node.label()}: {count}")
            for result, new in zip(node.results, inferred, strict=True):
                old = result.type
                if old.same_tensor(new):
                    continue
                result.type = new.with_(quant=old.quant, device=old.device)
                changed += 1
        ctx.count(self.name, "types-changed", changed)
        return graph
