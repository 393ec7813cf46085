"""One bf16 rounding per bf16 layer: a Cast pair that several bf16 layers read is copied for each.

Rule: the `quantize` pass's bf16 rung reads each bf16 layer's input through its
own Cast(bf16) -> Cast(f32) pair; `eliminate-common-subexpressions` merges the
pairs of layers reading one value (a residual block's first conv and its
shortcut), and a pair with several readers is no layer's activation prologue
(passes/fuse.py), so it would run as two kernels of its own, the rounded copy
written in f32 and read back. `unshare_roundings` gives every bf16 layer (its
weight read through a DequantizeLinear of a bf16 constant, passes/fuse.py's
`weight_prologue`) that reads such a pair as operand 0 a copy of the pair (same
types, same annotations) and drops the shared pair when nothing else reads it:
rounding is elementwise and the same wherever it runs, so the graph computes
the same values, and each layer's kernel rounds its own input.
"""

from __future__ import annotations

from collections.abc import Callable

from ir.builder import Builder
from ir.dtypes import DType
from ir.graph import Graph, Node


def rounding_pair(node: Node) -> Node | None:
    """The Cast(bf16) of an f32 value whose result only `node`, a Cast(f32), reads; else None."""
    if node.op != "Cast" or node.attrs.get("to") is not DType.F32:
        return None
    half = node.operands[0]
    first = half.producer if half is not None else None
    if half is None or first is None or first.op != "Cast" or first.attrs.get("to") is not DType.BF16:
        return None
    source = first.operands[0]
    if source is None or source.type.dtype is not DType.F32 or half.uses() != [(node, 0)]:
        return None
    return first


def unshare_roundings(graph: Graph, bf16_layer: Callable[[Node], bool]) -> int:
    """Copy each shared rounding pair for the bf16 layers among its readers (module rule); the number
    of pairs added."""
    copies = 0
    for last in list(graph.nodes):
        first = rounding_pair(last)
        rounded = last.results[0]
        uses = rounded.uses()
        if first is None or len(uses) < 2:
            continue
        layers = [user for user, index in uses if index == 0 and bf16_layer(user)]
        for user in layers:
            builder = Builder(graph, insert_before=user)
            (half,) = builder.op("Cast", first.operands, dict(first.attrs), name=first.name,
                                 result_types=[first.results[0].type])  # fmt: skip
            (copy,) = builder.op(
                "Cast", [half], dict(last.attrs), name=last.name, result_types=[rounded.type]
            )
            half.producer.annotations.update(first.annotations)  # type: ignore[union-attr]
            copy.producer.annotations.update(last.annotations)  # type: ignore[union-attr]
            user.set_operand(0, copy)
            copies += 1
        if not rounded.uses() and not rounded.is_graph_output:
            graph.remove_node(last)
            graph.remove_node(first)
            copies -= 1
    return copies
