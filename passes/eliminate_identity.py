"""The `eliminate-identity` pass: remove nodes whose result is exactly their first operand."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from ir import Graph, Node, Value
from passes.manager import Pass, PassContext


def _same_tensor(node: Node) -> bool:
    source = node.operands[0]
    return source is not None and node.results[0].type.same_tensor(source.type)


def _always(node: Node) -> bool:
    return True


def _identity_perm(node: Node) -> bool:
    return tuple(node.attrs["perm"]) == tuple(range(len(node.attrs["perm"])))


def _unit_steps(node: Node) -> bool:
    return all(step == 1 for step in node.attrs.get("steps", ()))


def _no_padding(node: Node) -> bool:
    return not any(node.attrs.get("pads", ()))


def _single_operand(node: Node) -> bool:
    return len(node.operands) == 1


NO_OP_RULES: dict[str, Callable[[Node], bool]] = {
    "Identity": _always,
    # Views: same dtype and shape means the same elements in the same order.
    "Reshape": _always,
    "Expand": _always,
    "Squeeze": _always,
    "Unsqueeze": _always,
    "Flatten": _always,
    "Cast": _always,  # same dtype
    "Transpose": _identity_perm,  # a square transpose keeps the shape, not the elements
    "Slice": _unit_steps,  # a full-range reversed slice keeps the shape, not the elements
    "Pad": _no_padding,
    "Concat": _single_operand,
    "Sum": _single_operand,
    "Max": _single_operand,
    "Min": _single_operand,
    "Mean": _single_operand,
}
"""Op → when a node of it (whose result has its first operand's dtype and shape) changes nothing."""


def is_no_op(node: Node) -> bool:
    """True when `node`'s one result holds exactly its first operand's elements."""
    rule = NO_OP_RULES.get(node.op)
    return rule is not None and len(node.results) == 1 and _same_tensor(node) and rule(node)


def must_stay(result: Value, source: Value) -> bool:
    """A graph output keeps its name: it cannot become an input, a constant or another output."""
    return result.is_graph_output and (source.producer is None or source.is_graph_output)


@dataclasses.dataclass(frozen=True)
class EliminateIdentity(Pass):
    """Replace each no-op node (Identity, a Reshape/Expand/Squeeze/Unsqueeze/Flatten to the same
    shape, an identity Transpose, a Cast to the same dtype, a unit-step Slice or Pad that changes
    nothing, a single-operand Concat/Sum/Max/Min/Mean) by its operand.

    Graph output names never change: a no-op whose result is an output stays when its
    operand is a graph input, a constant or another output.
    """

    name = "eliminate-identity"

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        removed = 0
        for node in graph.nodes:
            if not is_no_op(node):
                continue
            result, source = node.results[0], node.operands[0]
            assert source is not None
            if must_stay(result, source):
                ctx.count(self.name, "kept-for-output-name")
                continue
            graph.replace_value(result, source)
            graph.remove_node(node)
            removed += 1
        ctx.count(self.name, "nodes-removed", removed)
        return graph
