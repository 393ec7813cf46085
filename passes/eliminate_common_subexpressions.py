"""The `eliminate-common-subexpressions` pass (`cse`): compute each distinct thing once."""

from __future__ import annotations

import dataclasses
from collections.abc import Hashable
from typing import Any

from ir import Graph, Node, Value
from passes.manager import Pass, PassContext


def _hashable(value: Any) -> Hashable:
    if isinstance(value, (list, tuple)):
        return tuple(_hashable(v) for v in value)
    if isinstance(value, float) and value != value:  # NaN: equal to itself as an attribute
        return ("nan",)
    return value


def constant_key(value: Value) -> Hashable:
    """Constants with the same full type (dtype, shape, quantization, placement) and content hash."""
    return (value.type, value.sha256)


COMMUTATIVE_OPS = frozenset({"Add", "Mul", "Max", "Min", "Sum", "Mean", "And", "Or", "Xor", "Equal"})
"""Ops whose operands may come in any order (all of them are IR ops with numpy broadcasting)."""


def node_key(node: Node) -> Hashable:
    """Nodes with the same op, the same operand values (in any order for commutative ops), equal
    attributes and equal result types."""
    operands = tuple(node.operands)  # values hash by identity
    if node.op in COMMUTATIVE_OPS:
        operands = tuple(sorted(operands, key=id))
    attrs = tuple(sorted((k, _hashable(v)) for k, v in node.attrs.items()))
    return (node.op, operands, attrs, tuple(r.type for r in node.results))


def can_replace(old: Value, new: Value) -> bool:
    """`old` may give way to `new` unless a graph output would lose its name."""
    return not old.is_graph_output or (new.producer is not None and not new.is_graph_output)


@dataclasses.dataclass(frozen=True)
class EliminateCommonSubexpressions(Pass):
    """Merge constants with identical content and type, then nodes with the same op, the same
    operands and equal attributes, keeping the first; readers of the later copy read the first.
    Nodes with regions (control flow) are never merged.

    Graph output names never change, so a copy that is an output stays when the first is one too.
    """

    name = "eliminate-common-subexpressions"
    aliases = ("cse",)

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        ctx.count(self.name, "constants-merged", self._merge_constants(graph))
        ctx.count(self.name, "nodes-merged", self._merge_nodes(graph))
        return graph

    @staticmethod
    def _merge_constants(graph: Graph) -> int:
        first: dict[Hashable, Value] = {}
        merged = 0
        for value in list(graph.constants.values()):
            kept = first.setdefault(constant_key(value), value)
            if kept is value or not can_replace(value, kept):
                continue
            graph.replace_value(value, kept)
            graph.remove_constant(value)
            merged += 1
        return merged

    @staticmethod
    def _merge_nodes(graph: Graph) -> int:
        first: dict[Hashable, Node] = {}
        merged = 0
        for node in graph.nodes:
            if node.regions:  # regions are not compared: a control-flow node stays as it is
                continue
            kept = first.setdefault(node_key(node), node)
            if kept is node or not all(map(can_replace, node.results, kept.results)):
                continue
            for old, new in zip(node.results, kept.results, strict=True):
                graph.replace_value(old, new)
            graph.remove_node(node)
            merged += 1
        return merged
