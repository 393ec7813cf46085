"""The `layout` pass: store the activations of conv regions channels-last (NHWC) where that pays.

Rule: a *region* is a connected set of nodes whose kernels can run NHWC: 2-D f32 Convs with constant
weights (or a DequantizeLinear of constants: a bf16 layer's, never relaid) that are dense (group 1)
or depthwise, pointwise ops with a rank-4 result (the elementwise kernels), f32 2-D MaxPool and
AveragePool without Indices (kernels up to MAX_POOL_TAPS wide: the separable pool template,
vectorised along the channels), Concats of rank-4 run-time values (a channel Concat is then one
along the stored last axis), Splits of one (YOLOv8's C2f blocks split each conv's channels) and
Resizes (a detector's upsampling), so a chain of stride-1 MaxPools and their Concat (YOLO's SPPF)
stays channels-last. Inside a region
every result's type gets `layout = "NHWC"` (shapes stay logical NCHW, so
inference and the interpreter are unchanged); every rank-4 run-time value a
region reads from outside enters through a `Relayout{layout = "NHWC"}` node,
and every region result read outside (or a graph output, which keeps its name)
leaves through a `Relayout{layout = "NCHW"}`. Graph inputs and outputs, views
and every other op keep NCHW. Constants are never relaid: kernels read them in
their logical order (a (C, 1, 1) bias broadcasts as in numpy).

Cost rule (`prefer=auto`, measured on Zen 4, 2 threads, f32, 16 lanes): an
NHWC conv kernel beats the NCHW one when its channels fill whole vectors
(output channels for a dense conv, a multiple of the vector lanes) and the
NCHW kernel cannot use its own vector axis, the output row (row width not a
multiple of the lanes, or a column stride > 1). Measured, such convs save about
0.1 ns per output element (7%-65% of the kernel), about what a Relayout costs
per element it moves. A depthwise conv needs only 8-float channel vectors (its
NHWC template takes half-width vectors; measured on Sapphire Rapids, 1 thread:
0.3-0.8x the NCHW kernel's time on 28x28 to 7x7 maps and stride 2, about 1x on a
56x56 stride-1 one), and a pointwise (1x1) conv over a plane of at most
SMALL_PLANE positions, not a multiple of the lanes, with 8-float output
vectors is 0.65-0.95x in NHWC (MobileNet/EfficientNet's 14x14 and 7x7; where
NCHW tiles the plane in whole vectors, PP-LCNet's 2x96 or 3x96, NHWC is
0.9-1.5x). Joining a region without gaining: a pointwise
conv with 8-float output vectors over a larger plane (0.95-1.3x, one 2x), a depthwise
one with 8-float channel vectors whose rows are whole vectors (0.4-1.0x) and a
conv over a 1x1 plane (the same bytes in both orders: squeeze-excite's), so an
inverted-residual chain stays one region; other convs lose up to 2.9x in NHWC
and are never members. GlobalAverage/MaxPool join as followers (channel vectors
over the plane). The activation of a conv outside a region stays outside with
it (it fuses into that conv). A region is converted when its preferring convs
write at least `min-gain` times as many elements as its Relayouts move.
Where the target's measured cost rule says its dense convs run faster channels-last whatever
the row (`ctx.target.channels_last_dense`, as on Sapphire Rapids: a 3x3 conv of 256-wide rows 17 ms
NHWC against 29 ms NCHW, one thread), a dense conv whose channels fill whole vectors prefers NHWC
too, and every dense conv's gain there is counted in multiply-adds (`DENSE_MACS_PER_ELEMENT`),
whether or not its NCHW rows are whole vectors.
`prefer=NHWC` converts every region whatever the cost (tests, experiments);
`prefer=NCHW` changes nothing. Imports only `ir` and this package.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Collection

from ir import Graph, Node, Value
from ir.builder import Builder
from ir.dtypes import DType
from ir.fusion import epilogue_ops
from passes.manager import Pass, PassContext

NHWC = "NHWC"
GLOBAL_POOLS = ("GlobalAveragePool", "GlobalMaxPool")  # f32: channel vectors over the plane
MAX_POOL_TAPS = 32  # the separable pool template's unrolled kernel extent (targets/lowering/pool_window.py)
MIN_CHANNEL_VECTOR = 8  # channels in whole 8-float vectors: a depthwise or pointwise NHWC kernel's floor
SMALL_PLANE = 32 * 32  # pointwise convs over at most this many positions (and ragged NCHW tiles) gain NHWC
PREFERENCES = ("auto", "NHWC", "NCHW")
DENSE_MACS_PER_ELEMENT = 20
"""Multiply-adds of a dense conv whose NHWC kernel saves what relaying one element costs on a
`channels_last_dense` target: measured on Sapphire Rapids (one thread), NHWC saves 4-10 ps per
multiply-add on UNet's 3x3 convs, and a Relayout moves an element in about 0.1 ns."""
DEFAULT_VECTOR_BYTES = 32  # an AVX2 vector when the context names no target


class LayoutOptionError(ValueError):
    """An unknown `prefer` value (the pipeline parser reports it with the pass name)."""


@dataclasses.dataclass(frozen=True)
class _Rules:
    """Which nodes can run NHWC, and which convs gain from it, for one target."""

    pointwise: Collection[str]
    lanes: int
    channels_last_dense: bool = False  # ctx.target's fact: dense convs prefer NHWC whatever the row

    def conv_capable(self, node: Node) -> bool:
        if node.op != "Conv" or len(node.operands) < 2 or len(node.results) != 1:
            return False
        x, w = node.operands[0], node.operands[1]
        if x is None or w is None or not _constant(w) or x.type.rank != 4:
            return False
        if node.results[0].type.dtype is not DType.F32:
            return False
        c, m, group = x.type.shape[1], w.type.shape[0], node.attrs["group"]
        return group == 1 or group == c == m

    def pointwise_capable(self, node: Node) -> bool:
        return (
            node.op in self.pointwise
            and len(node.results) == 1
            and node.results[0].type.rank == 4
            and all(o is not None and o.type.rank <= 4 for o in node.operands)
        )

    def follower_capable(self, node: Node) -> bool:
        """A non-conv node that can run NHWC: pointwise, a 2-D f32 MaxPool/AveragePool, a Concat, a
        Split, a Resize; never one of constants only (a weight's DequantizeLinear)."""
        if all(o is None or o.is_constant for o in node.operands):
            return False
        if self.pointwise_capable(node):
            return True
        if node.op == "Split":
            x = node.operands[0]
            return x is not None and not x.is_constant and all(r.type.rank == 4 for r in node.results)
        if len(node.results) != 1 or node.results[0].type.rank != 4:
            return False
        if node.op in ("Concat", "Resize"):
            return all(o is not None and o.type.rank == 4 and not o.is_constant for o in node.operands)
        if node.op in GLOBAL_POOLS:
            return node.results[0].type.dtype is DType.F32
        return (
            node.op in ("MaxPool", "AveragePool")
            and node.results[0].type.dtype is DType.F32
            and max(node.attrs["kernel_shape"]) <= MAX_POOL_TAPS
        )

    def capable(self, node: Node) -> bool:
        return self.conv_capable(node) or self.follower_capable(node)

    def prefers(self, node: Node) -> bool:
        """A conv whose NHWC kernel is the faster one (the module's cost rule)."""
        if not self.conv_capable(node):
            return False
        w = node.operands[1]
        assert w is not None
        channels = w.type.shape[0]  # output channels; a depthwise conv's channels
        _, _, oh, ow = node.results[0].type.shape
        if node.attrs["group"] > 1:  # depthwise: channel vectors of half the lanes are as good
            return channels % max(self.lanes // 2, MIN_CHANNEL_VECTOR) == 0 and not self.row_vectors(node)
        small_plane = oh * ow <= SMALL_PLANE and (oh * ow) % self.lanes != 0  # NCHW's tiles fall short
        if _pointwise(node) and channels % MIN_CHANNEL_VECTOR == 0 and small_plane:
            return True
        return channels % self.lanes == 0 and (self.dense_fact(node) or not self.row_vectors(node))

    def row_vectors(self, node: Node) -> bool:
        """Whether the NCHW kernel writes the conv's output rows as whole vectors."""
        return node.results[0].type.shape[3] % self.lanes == 0 and node.attrs["strides"][1] == 1

    def dense_fact(self, node: Node) -> bool:
        """A dense conv on a `channels_last_dense` target."""
        return self.channels_last_dense and node.attrs["group"] == 1

    def gain(self, node: Node) -> int:
        """What a preferring conv saves NHWC, in elements a Relayout moves in the same time: its
        output elements, or for a dense conv on a `channels_last_dense` target (whether or not its
        NCHW rows are whole vectors) its multiply-adds over DENSE_MACS_PER_ELEMENT where that is
        more: counted in elements, a YOLOv8 C2f block's convs (80- and 40-wide rows) never
        outweighed the Relayouts around their Splits, though NHWC runs them 0.9x as long."""
        size = node.results[0].type.size
        if not self.dense_fact(node):
            return size
        w = node.operands[1]
        assert w is not None
        return max(size, size * math.prod(w.type.shape[1:]) // DENSE_MACS_PER_ELEMENT)

    def joins(self, node: Node) -> bool:
        """A conv that may sit inside a region (auto): a preferring one, or one NHWC costs little:
        a depthwise or pointwise conv whose output channels fill 8-float vectors, or one over a 1x1
        plane (both orders store the same bytes)."""
        if not self.conv_capable(node):
            return False
        w = node.operands[1]
        assert w is not None
        _, _, oh, ow = node.results[0].type.shape
        neutral = (_pointwise(node) or node.attrs["group"] > 1) and w.type.shape[0] % MIN_CHANNEL_VECTOR == 0
        return self.prefers(node) or neutral or oh * ow == 1


def _pointwise(node: Node) -> bool:
    """A 1x1, stride-1, unpadded dense conv (a GEMM over the channels)."""
    w = node.operands[1]
    assert w is not None
    return (
        node.attrs["group"] == 1
        and tuple(w.type.shape[2:]) == (1, 1)
        and all(s == 1 for s in node.attrs["strides"])
        and not any(node.attrs["pads"])
    )


@dataclasses.dataclass
class _Region:
    nodes: list[Node]
    entering: list[Value]  # rank-4 run-time values read by the region, made outside it
    leaving: list[Value]  # region results read outside it or graph outputs

    def gain(self, rules: _Rules) -> int:
        return sum(rules.gain(n) for n in self.nodes if rules.prefers(n))

    def cost(self) -> int:
        return sum(v.type.size for v in (*self.entering, *self.leaving))


@dataclasses.dataclass(frozen=True)
class Layout(Pass):
    """Store conv regions channels-last (NHWC) where the cost rule says it pays, with explicit
    Relayout nodes at every region boundary; graph inputs and outputs stay NCHW."""

    name = "layout"
    requires = ("no-control-flow",)  # a static plan runs no branch chosen at run time
    prefer: str = dataclasses.field(
        default="auto",
        metadata={"help": "auto: convert regions where the cost rule gains; NHWC: every region; NCHW: none"},
    )
    min_gain: float = dataclasses.field(
        default=2.0, metadata={"help": "elements written by preferring convs per element relaid (auto)"}
    )

    def __post_init__(self) -> None:
        if self.prefer not in PREFERENCES:
            raise LayoutOptionError(f"prefer={self.prefer!r}: expected one of {', '.join(PREFERENCES)}")

    def _chosen(self, graph: Graph, regions: list[_Region], rules: _Rules) -> list[_Region | None]:
        """The regions to convert (None: one kept NCHW). `prefer=auto`: a region that fails the
        cost rule is tried again as the smaller regions of its preferring convs alone (joining
        convs can glue gaining stages into one region whose boundary outweighs them)."""
        if self.prefer != "auto":
            return list(regions)
        chosen: list[_Region | None] = []
        for region in regions:
            if region.gain(rules) >= self.min_gain * region.cost():
                chosen.append(region)
                continue
            parts = _regions(graph, rules, rules.prefers, within=set(region.nodes))
            gaining = [p for p in parts if p.gain(rules) >= self.min_gain * p.cost()]
            chosen += gaining or [None]
        return chosen

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        if self.prefer == "NCHW":
            return graph
        if any(node.op == "Relayout" for node in graph.nodes):
            ctx.note(self.name, "the graph already has Relayout nodes; layout runs once, nothing changed")
            return graph
        vector_bytes = ctx.target.vector_bytes or DEFAULT_VECTOR_BYTES
        fusable = epilogue_ops() if ctx.target.fusable_ops is None else ctx.target.fusable_ops
        rules = _Rules(frozenset(fusable), max(vector_bytes // 4, 1), ctx.target.channels_last_dense)
        auto = self.prefer == "auto"
        regions = _regions(graph, rules, rules.joins if auto else rules.conv_capable)
        for region in self._chosen(graph, regions, rules):
            if region is None:
                ctx.count(self.name, "regions-kept-nchw")
                continue
            _convert(graph, region)
            ctx.count(self.name, "regions")
            ctx.count(self.name, "nodes-nhwc", len(region.nodes))
            ctx.count(self.name, "relayouts", len(region.entering) + len(region.leaving))
        return graph


def _regions(
    graph: Graph, rules: _Rules, conv_member: Callable[[Node], bool], within: set[Node] | None = None
) -> list[_Region]:
    """Connected sets of NHWC-capable nodes (`within`, when given; convs: those `conv_member` takes),
    each holding at least one conv, in node order. Members link through the values they share
    (all rank 4: every capable node has one rank-4 result)."""
    import networkx  # ~0.3 s to import: only when the pass runs

    order = [node for node in graph.nodes if within is None or node in within]

    def member(node: Node) -> bool:
        return conv_member(node) if node.op == "Conv" else rules.follower_capable(node)

    members = _without_outside_epilogues(order, {node for node in order if member(node)}, rules)
    linked = networkx.Graph()
    linked.add_nodes_from(members)
    linked.add_edges_from(
        (node, user)
        for node in members
        for result in node.results
        for user in result.users()
        if user in members
    )
    seen: set[Node] = set()
    regions = []
    for start in order:
        if start in seen or start not in linked or start.op != "Conv":
            continue
        nodes = networkx.node_connected_component(linked, start)
        seen |= nodes
        ordered = [n for n in order if n in nodes]
        regions.append(_Region(ordered, _entering(ordered, nodes), _leaving(ordered, nodes)))
    return regions


def _without_outside_epilogues(order: list[Node], members: set[Node], rules: _Rules) -> set[Node]:
    """`members` less the pointwise nodes that read a result of a conv outside them (or of such a
    node): they stay in the conv's layout, so `fuse` can still make them its epilogue."""
    staying: set[Node] = set()
    for node in order:
        if node not in members or not rules.pointwise_capable(node):
            continue
        producers = {o.producer for o in node.operands if o is not None and o.producer is not None}
        if any((p.op == "Conv" and p not in members) or p in staying for p in producers):
            staying.add(node)
    return members - staying


def _constant(value: Value) -> bool:
    """A constant, or a DequantizeLinear of constants (a quantized weight, read in its logical order)."""
    producer = value.producer
    return value.is_constant or (
        producer is not None
        and producer.op == "DequantizeLinear"
        and all(o is None or o.is_constant for o in producer.operands)
    )


def _entering(nodes: list[Node], members: set[Node]) -> list[Value]:
    values = [
        o
        for n in nodes
        for o in n.operands
        if o is not None and o.type.rank == 4 and not _constant(o) and o.producer not in members
    ]
    return list(dict.fromkeys(values))


def _leaving(nodes: list[Node], members: set[Node]) -> list[Value]:
    return [
        r for n in nodes for r in n.results if r.is_graph_output or any(u not in members for u in r.users())
    ]


def _convert(graph: Graph, region: _Region) -> None:
    """Mark the region's results NHWC and put Relayouts on its boundary values."""
    members = set(region.nodes)
    for node in region.nodes:
        for result in node.results:
            result.type = result.type.with_(layout=NHWC)
    for value in region.entering:
        readers = [(n, i) for n, i in value.uses() if n in members]
        first = next(n for n in graph.nodes if n in {r for r, _ in readers})
        (relaid,) = Builder(graph, insert_before=first).op(
            "Relayout", [value], {"layout": NHWC}, result_names=[f"{value.name}.nhwc"]
        )
        for reader, index in readers:
            reader.set_operand(index, relaid)
    for value in region.leaving:
        _leave(graph, value, members)


def _leave(graph: Graph, value: Value, members: set[Node]) -> None:
    """A Relayout back to NCHW for the readers of `value` outside the region (a graph output keeps
    its name: the NHWC value is renamed `NAME.nhwc`)."""
    outside = [(n, i) for n, i in value.uses() if n not in members]
    readers = {n for n, _ in outside}
    first = next((n for n in graph.nodes if n in readers), None)
    name = value.name
    if value.is_graph_output:
        graph.rename(value, graph.unique_name(f"{name}.nhwc"))
    else:
        name = f"{name}.nchw"
    (relaid,) = Builder(graph, insert_before=first).op(
        "Relayout", [value], {"layout": "NCHW"}, result_names=[name]
    )
    for reader, index in outside:
        reader.set_operand(index, relaid)
    graph.set_outputs([relaid if v is value else v for v in graph.outputs])
