"""The `split-weights` pass: cut every constant weight larger than `max-bytes` into pieces that fit.

Rule: weights are paged from disk in pages of `max-bytes` (issue 5), so a float
(f32/f16) constant weight larger than that is cut along the op's OUTPUT axis,
each piece consumed by its own copy of the op, the pieces' results joined by a
`Concat` along the matching result axis. Each output element still comes from
one whole reduction, so the values are what the unsplit op computes.

- `MatMul(x, W)`, W constant [K, N]: pieces W[:, cols]; Concat on the result's last axis.
- `Gemm(A, B, C)`, B constant: B's axis 1 (transB=0) or axis 0 (transB=1); a C that
  varies along N (shape [N], [1, N] or [M, N]) is cut the same way (it must then be
  constant), any other C is read whole by every piece; attributes are kept; Concat on axis 1.
- `Conv(x, W, b)`, group 1, W constant [M, C, k...]: W and b cut along axis 0; Concat on axis 1.

There are as few pieces as possible: each holds the most whole output columns or
channels whose weight bytes fit `max-bytes`, all equal but the last. When one
column or channel alone is larger, `WeightSplitError` names the node, the weight,
its size and the smallest `max-bytes` that works. Weights that fit, non-constant
or quantized weights (ConvInteger, MatMulInteger, weight-only: a later stage
reports their page size) and other ops are left alone.

A piece of weight `W` is the contiguous constant `W.part<j>`, read by node
`<name>.part<j>` (`<name>`: the node's name, else its result's), which keeps the
node's annotations and records the node in `folded_from` (provenance); the Concat,
named `<name>`, takes over the node's result. Imports only `ir` and this package.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from ir import Builder, DType, Graph, HaiError, Node, Value
from ir.fusion import FUSED_INTO_KEY, GROUP_KEY, PROLOGUE_KEY, anchor_label, record_folded
from ir.units import ByteSize, format_size
from passes.fold_batchnorm import replace_node
from passes.manager import Pass, PassContext

SPLIT_DTYPES = (DType.F32, DType.F16)
WEIGHT_OPERAND = 1  # MatMul's W, Gemm's B, Conv's W
FUSION_KEYS = (GROUP_KEY, FUSED_INTO_KEY, PROLOGUE_KEY)  # a piece is no member of the node's old group


class WeightSplitError(HaiError):
    """A weight whose single output column or channel is larger than the split limit."""


@dataclasses.dataclass(frozen=True)
class Cut:
    """How a node is split: per operand, the axis it is cut along (None: every piece reads it
    whole), the result axis the pieces are joined along, and what one slice is called."""

    operand_axes: tuple[int | None, ...]
    result_axis: int
    slice_word: str


def _matmul_cut(node: Node) -> Cut | None:
    weight = node.operands[WEIGHT_OPERAND]
    if weight is None or weight.type.rank != 2:
        return None
    return Cut((None, 1), node.results[0].type.rank - 1, "column")


def _gemm_cut(node: Node) -> Cut | None:
    axes: list[int | None] = [None, 0 if node.attrs["transB"] else 1]
    c = node.operands[2] if len(node.operands) > 2 else None
    n = node.results[0].type.shape[1]
    if c is not None:
        axes.append(c.type.rank - 1 if c.type.rank >= 1 and c.type.shape[-1] == n > 1 else None)
    return Cut(tuple(axes), 1, "column")


def _conv_cut(node: Node) -> Cut | None:
    if node.attrs["group"] != 1:
        return None
    bias = node.operands[2] if len(node.operands) > 2 else None
    return Cut((None, 0) + ((0,) if bias is not None else ()), 1, "output channel")


CUT_RULES: dict[str, Callable[[Node], Cut | None]] = {
    "MatMul": _matmul_cut,
    "Gemm": _gemm_cut,
    "Conv": _conv_cut,
}
"""Per op, how its weight is cut along the output axis, or None when the node cannot be split."""


def piece_bounds(extent: int, slice_bytes: int, max_bytes: int) -> list[tuple[int, int]]:
    """[start, stop) of each piece: the most whole slices of `slice_bytes` that fit `max_bytes`."""
    per_piece = max_bytes // slice_bytes
    return [(start, min(start + per_piece, extent)) for start in range(0, extent, per_piece)]


def splittable_weight(node: Node, max_bytes: int) -> tuple[Value, Cut] | None:
    """The node's float constant weight when it exceeds `max_bytes` and the node can be cut."""
    rule = CUT_RULES.get(node.op)
    if rule is None or len(node.operands) <= WEIGHT_OPERAND or len(node.results) != 1:
        return None
    weight = node.operands[WEIGHT_OPERAND]
    if weight is None or not weight.is_constant or weight.type.quant is not None:
        return None
    if weight.type.dtype not in SPLIT_DTYPES or weight.type.nbytes <= max_bytes:
        return None
    cut = rule(node)
    if cut is None:
        return None
    cut_operands = [o for o, axis in zip(node.operands, cut.operand_axes, strict=True) if axis is not None]
    if not all(o is not None and o.is_constant for o in cut_operands):
        return None  # a bias that varies along the output axis but is computed: leave the node
    return weight, cut


def check_slice_fits(node: Node, weight: Value, cut: Cut, max_bytes: int) -> int:
    """The bytes of one output slice of `weight`; a WeightSplitError when it alone exceeds `max_bytes`."""
    axis = cut.operand_axes[WEIGHT_OPERAND]
    assert axis is not None
    slice_bytes = weight.type.nbytes // weight.type.shape[axis]
    if slice_bytes > max_bytes:
        raise WeightSplitError(
            f"split-weights: {node.label()}: weight %{weight.name} {weight.type} "
            f"({format_size(weight.type.nbytes)}) cannot be cut to max-bytes={max_bytes} "
            f"({format_size(max_bytes)}): one {cut.slice_word} alone takes {slice_bytes} bytes; "
            f"give max-bytes={slice_bytes} or more"
        )
    return slice_bytes


def constant_piece(graph: Graph, value: Value, axis: int, bounds: tuple[int, int], index: int) -> Value:
    """Slice [start, stop) of constant `value` along `axis`, as its own contiguous constant."""
    index_slices = [slice(None)] * value.type.rank
    index_slices[axis] = slice(*bounds)
    data = np.ascontiguousarray(value.constant_array()[tuple(index_slices)])
    return graph.add_constant(f"{value.name}.part{index}", data)


def split_node(graph: Graph, node: Node, cut: Cut, pieces: list[tuple[int, int]]) -> Value:
    """Replace `node` by one copy per piece and a Concat of their results; returns the Concat's result."""
    builder = Builder(graph, insert_before=node)
    base = anchor_label(node)
    kept = {k: v for k, v in node.annotations.items() if k not in FUSION_KEYS}
    results = []
    for index, bounds in enumerate(pieces):
        operands = [
            o if axis is None or o is None else constant_piece(graph, o, axis, bounds, index)
            for o, axis in zip(node.operands, cut.operand_axes, strict=True)
        ]
        (result,) = builder.op(node.op, operands, node.attrs, name=f"{base}.part{index}")
        assert result.producer is not None
        result.producer.annotations.update(kept)
        record_folded(result.producer, [node])
        results.append(result)
    (joined,) = builder.op("Concat", results, {"axis": cut.result_axis}, name=base)
    replace_node(graph, node, joined, [node])  # drops the whole weights the node alone read
    return joined


@dataclasses.dataclass(frozen=True)
class SplitWeights(Pass):
    """Cut every float constant weight of a MatMul, Gemm or Conv (group 1) that is larger than
    `max-bytes` along the output axis into pieces of at most `max-bytes`, one op per piece, and
    join the pieces' results with a Concat (the module docstring states the rule).
    """

    name = "split-weights"
    requires = ("constants-loaded",)
    max_bytes: ByteSize = dataclasses.field(
        default=ByteSize(4 * 2**20),
        metadata={"help": "largest weight, in bytes or a size like 4MiB, that stays whole (one page)"},
    )

    def __post_init__(self) -> None:
        if self.max_bytes < 1:
            raise ValueError(f"split-weights option max-bytes must be 1 byte or more, got {self.max_bytes!r}")

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        for node in graph.nodes:
            found = splittable_weight(node, self.max_bytes)
            if found is None:
                continue
            weight, cut = found
            axis = cut.operand_axes[WEIGHT_OPERAND]
            assert axis is not None
            slice_bytes = check_slice_fits(node, weight, cut, self.max_bytes)
            pieces = piece_bounds(weight.type.shape[axis], slice_bytes, self.max_bytes)
            split_node(graph, node, cut, pieces)
            ctx.count(self.name, f"split-{node.op.lower()}")
            ctx.count(self.name, "pieces", len(pieces))
        return graph
