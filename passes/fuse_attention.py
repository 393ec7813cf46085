"""The `fuse-attention` pass: scaled dot-product attention as one `Attention` node (ir/ops/attention.py).

Rule: a chain MatMul(Q, Kt) -> [Mul or Div by a one-element constant] -> [Add(mask)] ->
Softmax(last axis) -> MatMul(., V) becomes Attention(Q, Kt, V, mask) {scale}, where

- each value inside the chain is read only by the next node and is no graph output;
- Q, Kt and V are f32 (the one dtype the kernel takes), rank >= 2, with the same batch dims
  (`attention_shapes`), and the mask (when present) broadcasts to the scores;
- the scale is the constant (Mul) or its reciprocal (Div), 1 without one.

The new node takes the last MatMul's place and result name; every operand is computed before it.
It runs only for a target whose `composite_ops` lists Attention (or with `always`, for tests and
`hai ir`), so targets without the fused kernel, and graphs prepared for no target in particular,
keep the plain ops. Imports only `ir` and this package.
"""

from __future__ import annotations

import dataclasses

from ir import DType, Graph, Node, Value
from ir.builder import Builder
from ir.ops.attention import attention_shapes
from ir.ops.common import broadcasts_to
from passes.cleanup import drop_unused_constants
from passes.manager import Pass, PassContext

OP = "FusedAttention"


@dataclasses.dataclass(frozen=True)
class Chain:
    """A matched chain: its nodes in order and the new node's operands and scale."""

    nodes: tuple[Node, ...]
    q: Value
    kt: Value
    v: Value
    mask: Value | None
    scale: float


@dataclasses.dataclass(frozen=True)
class FuseAttention(Pass):
    """Form Attention nodes from MatMul -> scale -> mask -> Softmax -> MatMul chains (module rule)."""

    name = "fuse-attention"
    requires = ("constants-loaded",)

    always: bool = dataclasses.field(
        default=False, metadata={"help": "form Attention whatever the target lists (tests, `hai ir`)"}
    )

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        if not self.always and OP not in ctx.target.composite_ops:
            return graph
        for node in list(graph.nodes):
            if node.graph is graph and node.op == "Softmax":
                chain = match(node)
                if chain is not None:
                    rewrite(graph, chain)
                    ctx.count(self.name, "attention-fused")
        return graph


def only_reader(value: Value) -> Node | None:
    """The one node reading `value` (once), when nothing else reads it and it is no graph output."""
    uses = value.uses()
    if value.is_graph_output or len(uses) != 1:
        return None
    return uses[0][0]


def one_element(value: Value | None) -> float | None:
    if value is None or not value.is_constant or value.type.size != 1:
        return None
    return float(value.constant_array().reshape(-1)[0])


def produced(value: Value | None, reader: Node, ops: tuple[str, ...]) -> Node | None:
    """The producer of `value` when it is one of `ops` and `reader` is the value's only reader."""
    node = value.producer if value is not None else None
    return node if node is not None and node.op in ops and only_reader(value) is reader else None  # type: ignore[arg-type]


def other_operand(node: Node, value: Value | None) -> Value | None:
    a, b = node.operands
    return b if a is value else a


def scaled_product(value: Value | None, reader: Node) -> tuple[list[Node], float] | None:
    """The MatMul (after an optional constant Mul/Div) that gives `value` to `reader`, and the scale."""
    node = produced(value, reader, ("Mul", "Div", "MatMul"))
    if node is None or node.op == "MatMul":
        return None if node is None else ([node], 1.0)
    sides = node.operands[:1] if node.op == "Div" else node.operands  # a Div divides the product
    product = next((o for o in sides if produced(o, node, ("MatMul",)) is not None), None)
    constant = one_element(other_operand(node, product)) if product is not None else None
    first = produced(product, node, ("MatMul",))
    if first is None or constant is None or constant == 0.0:
        return None
    return [first, node], constant if node.op == "Mul" else 1.0 / constant


def match(softmax: Node) -> Chain | None:
    """The chain around `softmax` (module rule), or None."""
    scores = softmax.operands[0]
    result = softmax.results[0]
    if scores is None or softmax.attrs["axis"] != scores.type.rank - 1:
        return None
    after = only_reader(result)
    if after is None or after.op != "MatMul" or after.operands[0] is not result:
        return None
    found, mask, nodes = scaled_product(scores, softmax), None, [softmax, after]
    add = produced(scores, softmax, ("Add",)) if found is None else None
    for side in add.operands if add is not None else ():
        found = scaled_product(side, add) if add is not None else None
        if add is not None and found is not None:
            mask, nodes = other_operand(add, side), [add, softmax, after]
            break
    if found is None:
        return None
    head, scale = found
    q, kt, v = head[0].operands[0], head[0].operands[1], after.operands[1]
    if q is None or kt is None or v is None or not fits(q, kt, v, mask, scores):
        return None
    return Chain((*head, *nodes), q, kt, v, mask, scale)


def fits(q: Value, kt: Value, v: Value, mask: Value | None, scores: Value) -> bool:
    """All f32, equal batch dims, the scores of the chain's shape, a mask that broadcasts."""
    dtypes = {x.type.dtype for x in (q, kt, v, scores, *([mask] if mask is not None else []))}
    shape = attention_shapes(q.type.shape, kt.type.shape, v.type.shape)
    if mask is not None and not broadcasts_to(mask.type.shape, scores.type.shape):
        return False
    return dtypes == {DType.F32} and shape == tuple(scores.type.shape)


def rewrite(graph: Graph, chain: Chain) -> None:
    """Replace the chain by one Attention node at its last MatMul."""
    last = chain.nodes[-1]
    result = last.results[0]
    name = result.name
    operands = [chain.q, chain.kt, chain.v, chain.mask]
    (fused,) = Builder(graph, insert_before=last).op(OP, operands, {"scale": chain.scale}, name=last.name)
    graph.replace_value(result, fused)
    dropped = [o for n in chain.nodes for o in n.operands]
    for node in reversed(chain.nodes):
        graph.remove_node(node)
    drop_unused_constants(graph, dropped)
    if not graph.has_value(name):
        graph.rename(fused, name)
