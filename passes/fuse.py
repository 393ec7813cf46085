"""The `fuse` pass: group an anchor and the elementwise chain after it into one kernel, in annotations.

Rule: walking the node order, an *anchor* is a node of an anchor op (Conv,
ConvTranspose, Gemm, MatMul) or, to start a standalone chain, a fusable
elementwise node not already taken by an earlier group. From the anchor's
result the epilogue grows one node at a time, in node order, by a *step*
that reads a value of the group (the anchor's result or an epilogue node's)
which something outside the group still reads:

- a node of a fusable op (`ctx.target.fusable_ops`, which the compile driver
  fills from the target's epilogue tables; when absent, the ops whose schema
  says `epilogue`, `ir.fusion.epilogue_ops`) with one result of the anchor's
  result shape and dtype (a float), whose operands are of that dtype;
- whose other operands are constants or values computed before the anchor
  (a residual), broadcast;
- whose result is stored in the anchor result's layout (TensorType.layout, set
  by the `layout` pass): one kernel writes one layout.

The epilogue kept is the longest grown prefix after which only its last
node's result is read outside the group (and no other is a graph output): a
chain (Conv → Relu → Add), and the multi-node activations whose nodes read
the anchor's result more than once (SiLU's Sigmoid and Mul, the erf and tanh
Gelu chains, Mish's Softplus → Tanh → Mul). Growth stops once more than
MAX_OPEN values wait for readers outside the group, or MAX_UNCLOSED steps
after the last prefix that could be kept.

Quantize steps (`QUANTIZE_STEP_OPS`, when the target lists them): a
QuantizeLinear or DequantizeLinear of a run-time value may change the running
dtype (so may follow an integer anchor, ConvInteger/MatMulInteger, whose result
is int32, or quantize a float anchor's result); the steps after it keep its
dtype, and every step keeps the anchor's shape and layout. A quantize step also
starts a standalone chain.

A Conv/MatMul/Gemm anchor also takes its *weight prologue* (`weight_prologue`):
a DequantizeLinear of a constant stored as INT4 (symmetric, group-wise along
the anchor's reduction axis), FP16 or BF16, whose result only the anchor's weight
operand reads. An anchor whose weight prologue is bf16 also takes its *activation prologue*
(`activation_prologue`): the Cast(bf16) -> Cast(f32) pair that rounds its
input (passes/quantize.py's bf16 rung), each result read only by the next, the
last only as the anchor's operand 0: its kernel rounds the input itself, so
neither Cast is a kernel of its own (a pair several bf16 layers read is first
copied for each, passes/bf16_rounding.py). A recurrent LSTM/GRU/RNN node (never an epilogue anchor) takes
one for W and one for R (`recurrent_prologue`): a DequantizeLinear to f32 of an
8-bit constant [dirs, gates*H, k] quantized per tensor, per direction (axis 0)
or per gate row (axis 1), read only as that operand; such a node forms a group
of its prologues alone. A prologue is moved to right before the anchor; the
kernel reads the stored weight and dequantises it inside, so no f32 copy of the
weight exists.

A group of at least two nodes is recorded in annotations (ir/fusion.py
states the format and what a group means) and its epilogue nodes are moved to
right after the anchor — legal, since each reads only the group's earlier
results and values that exist before the anchor. Nothing else changes: annotations carry
no semantics, so the interpreter computes the same. Views (ir/aliasing.py)
are never fused: they cost no kernel. Old fusion annotations are dropped first.
Imports only `ir` and this package.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Collection

from ir import DType, Graph, Node, Value
from ir.aliasing import is_view_op
from ir.fusion import (
    FUSED_INTO_KEY,
    GROUP_KEY,
    PROLOGUE_KEY,
    RECURRENT_OPS,
    RECURRENT_WEIGHT_OPERANDS,
    WEIGHT_OPERAND,
    anchor_label,
    epilogue_ops,
)
from ir.predication import guards_of
from passes.bf16_rounding import unshare_roundings
from passes.manager import Pass, PassContext
from passes.quantize import reduction_axis

INTEGER_ANCHOR_OPS = ("ConvInteger", "MatMulInteger")
"""Anchors with an int32 accumulator: their epilogue starts with a quantize step (DequantizeLinear)."""

QUANTIZE_STEP_OPS = ("QuantizeLinear", "DequantizeLinear")
"""Pointwise steps that change the dtype; fused when the target lists them in `fusable_ops`."""

DEFAULT_ANCHOR_OPS = ("Conv", "ConvTranspose", "Gemm", "MatMul", *INTEGER_ANCHOR_OPS)
"""Ops whose kernels take an epilogue; `ctx.target.fusion_anchors` overrides them."""

MAX_OPEN, MAX_UNCLOSED = 4, 16
"""Epilogue growth bounds (module rule): values waiting for outside readers; steps past a keepable prefix."""

WEIGHT_PROLOGUE_ANCHORS = ("Conv", "Gemm", "MatMul")
"""Anchor ops whose kernels dequantise a stored (INT4 group-wise or FP16) weight inside (weight_prologue)."""


@dataclasses.dataclass(frozen=True)
class _Rules:
    fusable: Collection[str]
    anchors: Collection[str]

    def is_elementwise(self, node: Node) -> bool:
        if node.op not in self.fusable or is_view_op(node.op) or len(node.results) != 1:
            return False
        dtype = node.results[0].type.dtype
        present = [o for o in node.operands if o is not None and o.type.dtype is dtype]
        return len(present) == len(node.operands) in (1, 2) and dtype.is_float

    def is_quantize_step(self, node: Node) -> bool:
        """A Quantize/DequantizeLinear of a run-time value (a constant's DequantizeLinear is a weight
        prologue, not an epilogue step)."""
        if node.op not in QUANTIZE_STEP_OPS or node.op not in self.fusable or len(node.results) != 1:
            return False
        return len(node.operands) == 1 and node.operands[0] is not None and not node.operands[0].is_constant

    def is_step(self, node: Node) -> bool:
        return self.is_elementwise(node) or self.is_quantize_step(node)

    def is_anchor(self, node: Node) -> bool:
        if node.op in self.anchors:
            integer = node.op in INTEGER_ANCHOR_OPS
            return len(node.results) == 1 and (integer or node.results[0].type.dtype.is_float)
        if self.is_quantize_step(node):
            return True
        head = node.operands[0] if node.operands else None
        return self.is_elementwise(node) and head is not None and node.operands.count(head) == 1


@dataclasses.dataclass(frozen=True)
class Fuse(Pass):
    """Group conv/matmul anchors and chains of elementwise nodes into kernels, recorded in annotations
    (`fusion_group`, `fused_into`) that name the IR/ONNX nodes every kernel came from."""

    name = "fuse"
    requires = ("no-control-flow",)  # a static plan runs no branch chosen at run time
    standalone_chains: bool = dataclasses.field(
        default=True, metadata={"help": "also fuse chains that start at an elementwise node"}
    )

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        rules = _Rules(
            frozenset(epilogue_ops() if ctx.target.fusable_ops is None else ctx.target.fusable_ops),
            frozenset(DEFAULT_ANCHOR_OPS if ctx.target.fusion_anchors is None else ctx.target.fusion_anchors),
        )
        for node in graph.nodes:
            node.annotations.pop(GROUP_KEY, None)
            node.annotations.pop(FUSED_INTO_KEY, None)
            node.annotations.pop(PROLOGUE_KEY, None)
        ctx.count(self.name, "roundings-copied", unshare_roundings(graph, bf16_layer))
        order = list(graph.nodes)
        position = {node: i for i, node in enumerate(order)}
        prologues = {a: p for a in order if (p := weight_prologues(a, rules.anchors))}
        taken: set[Node] = {p for found in prologues.values() for p in found}
        groups = 0
        for anchor in order:
            recurrent = anchor.op in RECURRENT_OPS and anchor in prologues
            if anchor in taken or not (recurrent or rules.is_anchor(anchor)):
                continue
            if anchor.op not in rules.anchors and not (recurrent or self.standalone_chains):
                continue
            chain = [] if recurrent else _epilogue(anchor, rules, position, taken)
            prologue = prologues.get(anchor, [])
            if not chain and not prologue:
                continue
            _record(graph, groups, anchor, chain)
            for node in prologue:
                _record_prologue(graph, groups, anchor, node)
                ctx.count(
                    self.name, "weight-prologues" if node.op == "DequantizeLinear" else "cast-prologues"
                )
            taken.update(chain)
            groups += 1
            ctx.count(self.name, "nodes-fused", len(chain))
        ctx.count(self.name, "groups", groups)
        return graph


def weight_prologues(anchor: Node, anchors: Collection[str]) -> list[Node]:
    """The weight prologues `anchor`'s kernel can take (module rule), in operand order."""
    if anchor.op in RECURRENT_OPS:
        found = [recurrent_prologue(anchor, index) for index in RECURRENT_WEIGHT_OPERANDS]
        return [node for node in found if node is not None]
    prologue = weight_prologue(anchor) if anchor.op in anchors else None
    if prologue is None:
        return []
    return [*activation_prologue(anchor, prologue), prologue]


def activation_prologue(anchor: Node, weight: Node) -> list[Node]:
    """The Cast(bf16) and Cast(f32) nodes rounding `anchor`'s input when its weight prologue `weight`
    is bf16 (module rule), in order; [] when there is no such pair."""
    stored = weight.operands[0]
    if stored is None or stored.type.dtype is not DType.BF16:
        return []
    pair: list[Node] = []
    value, reader, dtypes = anchor.operands[0], (anchor, 0), (DType.F32, DType.BF16)
    for dtype in dtypes:
        node = value.producer if value is not None else None
        if node is None or node.op != "Cast" or node.attrs.get("to") is not dtype:
            return []
        if value is None or value.is_graph_output or value.uses() != [reader]:
            return []
        pair.insert(0, node)
        value, reader = node.operands[0], (node, 0)
    return pair if value is not None and value.type.dtype is DType.F32 else []


def _dequantized_constant(anchor: Node, index: int) -> Node | None:
    """The DequantizeLinear to f32 of a constant that feeds only operand `index` of `anchor`."""
    weight = anchor.operands[index] if len(anchor.operands) > index else None
    node = weight.producer if weight is not None else None
    if weight is None or node is None or node.op != "DequantizeLinear" or len(node.results) != 1:
        return None
    stored = node.operands[0]
    if stored is None or not stored.is_constant or weight.type.dtype is not DType.F32:
        return None
    if weight.is_graph_output or weight.uses() != [(anchor, index)]:
        return None
    return node


def recurrent_prologue(anchor: Node, index: int) -> Node | None:
    """The DequantizeLinear of an 8-bit constant [dirs, gates*H, k] feeding W (1) or R (2) of a
    recurrent `anchor`, quantized per tensor, per direction (axis 0) or per gate row (axis 1)."""
    node = _dequantized_constant(anchor, index)
    stored = node.operands[0] if node is not None else None
    if stored is None or stored.type.dtype not in (DType.I8, DType.U8) or stored.type.rank != 3:
        return None
    quant = stored.type.quant
    if quant is None or quant.group_size is not None or quant.axis not in (None, 0, 1):
        return None
    return node


def bf16_layer(node: Node) -> bool:
    """Whether `node` is a layer whose weight prologue dequantises a bf16 constant."""
    prologue = weight_prologue(node)
    stored = prologue.operands[0] if prologue is not None else None
    return stored is not None and stored.type.dtype is DType.BF16


def weight_prologue(anchor: Node) -> Node | None:
    """The DequantizeLinear of a stored weight that `anchor`'s kernel can dequantise inside, else None:
    its weight operand, read by nothing else, is DequantizeLinear(constant) to f32 of an f16 constant,
    or of an i4 constant quantized symmetrically in groups along the anchor's reduction axis."""
    if anchor.op not in WEIGHT_PROLOGUE_ANCHORS:
        return None
    node = _dequantized_constant(anchor, WEIGHT_OPERAND)
    if node is None or (anchor.op != "Conv" and node.results[0].type.rank != 2):
        return None
    stored = node.operands[0]
    assert stored is not None
    quant = stored.type.quant
    if stored.type.dtype in (DType.F16, DType.BF16):
        return node if quant is None else None
    grouped = quant is not None and quant.group_size is not None and not any(quant.zero_point)
    if stored.type.dtype is not DType.I4 or not grouped:
        return None
    return node if quant.axis == reduction_axis(anchor) else None  # type: ignore[union-attr]


def _epilogue(anchor: Node, rules: _Rules, position: dict[Node, int], taken: set[Node]) -> list[Node]:
    """The epilogue nodes that can follow `anchor`, in order (module rule)."""
    grown: list[Node] = []
    members = {anchor}
    open_values = [anchor.results[0]]  # group values something outside the group reads, in order
    kept = 0
    while len(open_values) <= MAX_OPEN and len(grown) - kept < MAX_UNCLOSED:
        node = _next_step(anchor, open_values, members, rules, position, taken)
        if node is None:
            break
        grown.append(node)
        members.add(node)
        open_values = [v for v in [*open_values, node.results[0]] if _read_outside(v, members)]
        if not open_values or open_values == [node.results[0]]:
            kept = len(grown)
    return grown[:kept]


def _read_outside(value: Value, members: set[Node]) -> bool:
    return value.is_graph_output or any(user not in members for user in value.users())


def _next_step(
    anchor: Node,
    open_values: list[Value],
    members: set[Node],
    rules: _Rules,
    position: dict[Node, int],
    taken: set[Node],
) -> Node | None:
    """The first node (in node order) reading an open value that can join the epilogue (module rule)."""
    readers = {u for v in open_values for u in v.users() if u not in members and u not in taken}
    inside = {r for n in members for r in n.results}
    for node in sorted(readers, key=position.__getitem__):
        result = node.results[0] if len(node.results) == 1 else None
        if result is None or not rules.is_step(node):
            continue
        if guards_of(node) != guards_of(anchor):  # a kernel runs under its anchor's guards only
            continue
        read = next(o for o in node.operands if o in inside)
        if not _step_fits(result, read, anchor.results[0], rules.is_quantize_step(node)):
            continue
        if all(o in inside or _exists_before(o, anchor, position) for o in node.operands):
            return node
    return None


def _same_storage(value: Value, anchor_result: Value) -> bool:
    """Same dtype, shape and storage layout: a kernel writes one layout (never fuse across a Relayout)."""
    return value.type.same_tensor(anchor_result.type) and value.type.layout == anchor_result.type.layout


def _step_fits(result: Value, running: Value, anchor_result: Value, quantize_step: bool) -> bool:
    """`_same_storage` as the anchor's result, except that a quantize step changes the dtype (and the
    steps after it keep the running value's): shape and storage layout still those of the anchor."""
    if _same_storage(result, anchor_result):
        return True
    same_place = (
        result.type.shape == anchor_result.type.shape and result.type.layout == anchor_result.type.layout
    )
    return same_place and (quantize_step or result.type.dtype is running.type.dtype)


def _exists_before(value: Value | None, anchor: Node, position: dict[Node, int]) -> bool:
    """A constant, a graph input, or the result of a node that runs before `anchor`."""
    if value is None or value.producer is None:
        return True
    return position.get(value.producer, len(position)) < position[anchor]


def _record_prologue(graph: Graph, group_id: int, anchor: Node, prologue: Node) -> None:
    """Annotate a prologue node and move it to right before the anchor (it reads a constant, or a value
    that exists before the anchor)."""
    prologue.annotations[GROUP_KEY] = group_id
    prologue.annotations[PROLOGUE_KEY] = anchor_label(anchor)
    graph.nodes.unlink(prologue)
    graph.nodes.insert_before(anchor, prologue)


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
