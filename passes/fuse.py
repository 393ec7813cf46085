"""The `fuse` pass: group an anchor and the elementwise chain after it into one kernel, in annotations.

Rule: walking the node order, an *anchor* is a node of an anchor op (Conv,
ConvTranspose, Gemm, MatMul) or, to start a standalone chain, a fusable
elementwise node not already taken by an earlier group. From the anchor's
result, the chain grows one node at a time while the running value

- has exactly one use and is no graph output,
- and that use is a node of a fusable op (`ctx.target["fusable_ops"]`, which the
  compile driver fills from the target's epilogue tables; `DEFAULT_FUSABLE_OPS`
  when absent) with one result of the anchor's result shape and dtype (a float),
  reading the running value once; its other operand, if any, is of that dtype and
  is a constant or a value computed before the anchor (a residual), broadcast;
- and that node's result is stored in the anchor result's layout (TensorType.layout,
  set by the `layout` pass): one kernel writes one layout.

A group of at least two nodes is recorded in annotations (passes/fusion.py
states the format and what a group means) and its epilogue nodes are moved to
right after the anchor — legal, since each reads only the previous node's result
and values that exist before the anchor. Nothing else changes: annotations carry
no semantics, so the interpreter computes the same. Views (passes/aliasing.py)
are never fused: they cost no kernel. Old fusion annotations are dropped first.
Imports only `ir` and this package.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection

from ir import Graph, Node, Value
from passes.aliasing import VIEW_OPS
from passes.fusion import FUSED_INTO_KEY, GROUP_KEY, anchor_label
from passes.manager import Pass, PassContext

DEFAULT_FUSABLE_OPS = tuple(
    "Abs Acos Acosh Add Asin Asinh Atan Atanh Ceil Celu Clip Cos Cosh Div Elu Erf Exp Floor Gelu "
    "HardSigmoid HardSwish LeakyRelu Log Max Min Mish Mod Mul Neg Pow PRelu Reciprocal Relu Round Selu "
    "Sigmoid Sign Sin Sinh Softplus Softsign Sqrt Sub Swish Tan Tanh ThresholdedRelu".split()
)
"""Float ops the x86 templates apply as epilogues (targets/lowering/elementwise.py's UNARY and BINARY)."""

DEFAULT_ANCHOR_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul")
"""Ops whose kernels take an epilogue; `ctx.target["fusion_anchors"]` overrides them."""


@dataclasses.dataclass(frozen=True)
class _Rules:
    fusable: Collection[str]
    anchors: Collection[str]

    def is_elementwise(self, node: Node) -> bool:
        if node.op not in self.fusable or node.op in VIEW_OPS or len(node.results) != 1:
            return False
        dtype = node.results[0].type.dtype
        present = [o for o in node.operands if o is not None and o.type.dtype is dtype]
        return len(present) == len(node.operands) in (1, 2) and dtype.is_float

    def is_anchor(self, node: Node) -> bool:
        if node.op in self.anchors:
            return len(node.results) == 1 and node.results[0].type.dtype.is_float
        head = node.operands[0] if node.operands else None
        return self.is_elementwise(node) and head is not None and node.operands.count(head) == 1


@dataclasses.dataclass(frozen=True)
class Fuse(Pass):
    """Group conv/matmul anchors and chains of elementwise nodes into kernels, recorded in annotations
    (`fusion_group`, `fused_into`) that name the IR/ONNX nodes every kernel came from."""

    name = "fuse"
    standalone_chains: bool = dataclasses.field(
        default=True, metadata={"help": "also fuse chains that start at an elementwise node"}
    )

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        rules = _Rules(
            frozenset(ctx.target.get("fusable_ops", DEFAULT_FUSABLE_OPS)),
            frozenset(ctx.target.get("fusion_anchors", DEFAULT_ANCHOR_OPS)),
        )
        for node in graph.nodes:
            node.annotations.pop(GROUP_KEY, None)
            node.annotations.pop(FUSED_INTO_KEY, None)
        order = list(graph.nodes)
        position = {node: i for i, node in enumerate(order)}
        taken: set[Node] = set()
        groups = 0
        for anchor in order:
            if anchor in taken or not rules.is_anchor(anchor):
                continue
            if anchor.op not in rules.anchors and not self.standalone_chains:
                continue
            chain = _chain(anchor, rules, position)
            if not chain:
                continue
            _record(graph, groups, anchor, chain)
            taken.update(chain)
            groups += 1
            ctx.count(self.name, "nodes-fused", len(chain))
        ctx.count(self.name, "groups", groups)
        return graph


def _chain(anchor: Node, rules: _Rules, position: dict[Node, int]) -> list[Node]:
    """The epilogue nodes that can follow `anchor`, in order."""
    chain: list[Node] = []
    running = anchor.results[0]
    while len(running.uses()) == 1 and not running.is_graph_output:
        node, _ = running.uses()[0]
        result = node.results[0] if node.results else None
        if not rules.is_elementwise(node) or node.operands.count(running) != 1 or result is None:
            break
        if not _same_storage(result, anchor.results[0]):
            break
        others = [o for o in node.operands if o is not running]
        if not all(_exists_before(o, anchor, position) for o in others):
            break
        chain.append(node)
        running = result
    return chain


def _same_storage(value: Value, anchor_result: Value) -> bool:
    """Same dtype, shape and storage layout: a kernel writes one layout (never fuse across a Relayout)."""
    return value.type.same_tensor(anchor_result.type) and value.type.layout == anchor_result.type.layout


def _exists_before(value: Value | None, anchor: Node, position: dict[Node, int]) -> bool:
    """A constant, a graph input, or the result of a node that runs before `anchor`."""
    if value is None or value.producer is None:
        return True
    return position.get(value.producer, len(position)) < position[anchor]


def _record(graph: Graph, group_id: int, anchor: Node, chain: list[Node]) -> None:
    """Annotate the group and move its epilogue nodes to right after the anchor."""
    anchor.annotations[GROUP_KEY] = group_id
    previous = anchor
    for node in chain:
        node.annotations[GROUP_KEY] = group_id
        node.annotations[FUSED_INTO_KEY] = anchor_label(anchor)
        graph.nodes.unlink(node)
        graph.nodes.insert_after(previous, node)
        previous = node
