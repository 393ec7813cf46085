"""f32 1-D and 2-D MaxPool and AveragePool as separable, vectorised window reductions, NCHW or NHWC.

Rule: a 2-D window's max (or sum) is the max (sum) over its kernel rows of each
row's max (sum) over the kernel columns, so a kh x kw window costs kh + kw
operations per output instead of kh * kw (a 5x5 stride-1 SPPF pool: 10, not 25).
Stages, each a plain loop of whole vectors with constant offsets (the kernel taps are
unrolled in the compute, no reduce axes):

- "pad" (NCHW): each input plane padded with the reduction's identity (-inf for max,
  0 for sums) wherever the window reads outside it (explicit pads and ceil_mode's end
  room), its columns split by stride phase (as the depthwise conv does,
  conv_depthwise.py), so strided output columns are contiguous loads and no tap tests
  bounds. NHWC has no pad stage: a tap outside the input reads the identity, a test
  uniform over a vector of channels;
- "rows": every padded input row reduced over the kernel columns, for each output column;
- "acc": each output row reduced over the kernel rows of "rows"; "out" applies the
  average's divisor (`valid_count`: count_include_pad and ceil_mode, shared with pooling.py)
  and the fused epilogue.

NCHW vectorises along the output row (padded to whole vectors as depthwise rows are,
`row_vector`; the extra columns are never written), one (n, c) plane per parallel
task with its stages computed inside it (they stay in cache). NHWC (a region the
`layout` pass made channels-last) vectorises along the channels, each stage parallel
over its (n, row) pairs, or, where each input row is reduced at most twice (`rows_per_output_row`:
strided pools), the "rows" stage inside each output row's task. A 1-D pool is the 2-D pool of
height 1 (`planar`). Pools with indices, other dtypes or ranks, LpPool and global pools keep the
general template (pooling.py).
"""

from __future__ import annotations

import functools
import math
from collections.abc import Sequence
from typing import Any

from tvm import s_tir, te

from ir.graph import Node
from ir.ops.window import Window, WindowDim
from targets.lowering.conv_depthwise import row_vector
from targets.lowering.elementwise import Epilogue, epilogue_args
from targets.lowering.generic import (
    PARALLEL_MIN_WORK,
    Param,
    lowest,
    make_kernel,
    operand_param,
    output_param,
    row_lanes,
)
from targets.lowering.kernel import LoweredKernel
from targets.lowering.tiling import padded
from targets.schedules import schedules_of
from targets.target import TargetDescription

MAX_TAPS = 32
"""Kernel extents up to which the taps are unrolled in the compute (larger windows: pooling.py)."""


def takes_window_template(node: Node) -> bool:
    """Whether `node` is a pool this template lowers (see the module rule)."""
    x = node.operands[0]
    return (
        node.op in ("MaxPool", "AveragePool")
        and x is not None
        and x.type.rank in (3, 4)
        and x.type.dtype.numpy.name == "float32"
        and len(node.results) == 1
        and max(node.attrs["kernel_shape"]) <= MAX_TAPS
    )


def ceil_div(a: Any, b: int) -> Any:
    return -te.floordiv(-a, b)


def valid_count(window: Window, spatial: Sequence[int], out: Sequence[Any], include_pad: bool) -> Any:
    """How many kernel positions of the window at output index `out` read input (or explicit pads)."""
    count = None
    for d, o in zip(window.dims(spatial), out, strict=True):
        low, high = (0, d.size + d.begin + d.end) if include_pad else (d.begin, d.begin + d.size)
        start = o * d.stride
        first = te.max(ceil_div(low - start, d.dilation), 0)
        last = te.min(te.floordiv(high - 1 - start, d.dilation), d.kernel - 1)
        dim_count = te.max(last - first + 1, 0)
        count = dim_count if count is None else count * dim_count
    return count


def reach(d: WindowDim, out: int) -> int:
    """Padded input extent the window reads along one dim for `out` outputs."""
    return (out - 1) * d.stride + (d.kernel - 1) * d.dilation + 1


def identity(kind: str) -> Any:
    return lowest("float32") if kind == "MaxPool" else te.const(0.0, "float32")


def fold(kind: str, values: Sequence[Any]) -> Any:
    return functools.reduce(te.max if kind == "MaxPool" else (lambda a, b: a + b), values)


def nchw_stages(x: Any, kind: str, dims: Sequence[WindowDim], oh: int, owp: int) -> Any:
    """The "acc" stage (behind "rows" and "pad") of an NCHW pool computing `owp` (>= ow) columns of
    every output row."""
    dy, dx = dims
    n, c = (int(s) for s in x.shape[:2])
    sw = dx.stride
    qw = padded(owp + ((dx.kernel - 1) * dx.dilation) // sw, 8)

    def fill(nn: Any, cc: Any, y: Any, phase: Any, q: Any) -> Any:
        row, col = y - dy.begin, q * sw + phase - dx.begin
        inside = te.all(row >= 0, row < dy.size, col >= 0, col < dx.size)
        return te.if_then_else(inside, x[nn, cc, row, col], identity(kind))

    pad = te.compute((n, c, reach(dy, oh), sw, qw), fill, name="pad")

    def tap(k: int) -> tuple[int, int]:  # (column phase, column offset) of kernel column k
        return (k * dx.dilation) % sw, (k * dx.dilation) // sw

    rows = te.compute(
        (n, c, reach(dy, oh), owp),
        lambda nn, cc, y, ox: fold(
            kind, [pad[nn, cc, y, tap(k)[0], ox + tap(k)[1]] for k in range(dx.kernel)]
        ),
        name="rows",
    )
    acc = te.compute(
        (n, c, oh, owp),
        lambda nn, cc, oy, ox: fold(
            kind, [rows[nn, cc, oy * dy.stride + k * dy.dilation, ox] for k in range(dy.kernel)]
        ),
        name="acc",
    )
    return acc


def nhwc_stages(x: Any, kind: str, dims: Sequence[WindowDim], oh: int, ow: int) -> Any:
    """The "acc" stage (behind "rows") of an NHWC pool (x is (n, h, w, c)); no pad stage: a tap
    outside the input reads the identity, a test uniform over a vector of channels (measured: a
    padded copy of the whole input cost up to 2.5x the pool on 20x20x256)."""
    dy, dx = dims

    def read(nn: Any, y: Any, xx: Any, cc: Any) -> Any:
        row, col = y - dy.begin, xx - dx.begin
        inside = te.all(row >= 0, row < dy.size, col >= 0, col < dx.size)
        return te.if_then_else(inside, x[nn, row, col, cc], identity(kind))

    n, c = int(x.shape[0]), int(x.shape[3])
    rows = te.compute(
        (n, reach(dy, oh), ow, c),
        lambda nn, y, ox, cc: fold(
            kind, [read(nn, y, ox * dx.stride + k * dx.dilation, cc) for k in range(dx.kernel)]
        ),
        name="rows",
    )
    acc = te.compute(
        (n, oh, ow, c),
        lambda nn, oy, ox, cc: fold(
            kind, [rows[nn, oy * dy.stride + k * dy.dilation, ox, cc] for k in range(dy.kernel)]
        ),
        name="acc",
    )
    return acc


def vectorize_inner(sch: Any, block: Any, lanes: int | None) -> None:
    """Vectorise the block's innermost loop in `lanes`-wide pieces (None: leave it scalar). Only a
    loop directly around the block alone: where compute_at left a single column, TVM drops that loop
    and the innermost is another axis with other blocks inside it, which vectorised wrongly."""
    if lanes is None:
        return
    loop = sch.get_loops(block)[-1]
    if isinstance(sch.get(loop).body, s_tir.SBlockRealize):  # nothing else inside it
        sch.vectorize(sch.split(loop, [None, lanes])[1])


def schedule_nchw(sch: Any, vl: int, ow: int, parallel: bool) -> None:
    """One (n, c) plane per task: its pad and rows stages inside it, "acc" per output row."""
    out = sch.get_sblock("out")
    n, c, oy, _ = sch.get_loops(out)
    plane = sch.fuse(n, c)
    acc, rows, pad = sch.get_sblock("acc"), sch.get_sblock("rows"), sch.get_sblock("pad")
    sch.compute_at(acc, oy)
    sch.compute_at(rows, plane)
    sch.compute_at(pad, plane)
    vectorize_inner(sch, out, row_lanes(ow, vl))
    for block, lanes in ((acc, vl), (rows, vl), (pad, 8)):
        vectorize_inner(sch, block, lanes)
    if parallel:
        sch.parallel(plane)


def rows_per_output_row(dims: Sequence[WindowDim]) -> bool:
    """Whether an NHWC pool computes the "rows" stage under each output row (kernel rows no more than
    twice the row stride: each input row is reduced at most twice) rather than as a whole stage of
    its own: a 3x3 stride-2 pool then reads its input once and keeps the rows in cache (measured:
    0.68x the time of ResNet's stem pool), a 5x5 stride-1 pool would redo each row 5 times."""
    return dims[0].kernel <= 2 * dims[0].stride


def schedule_nhwc(sch: Any, lanes: int | None, parallel: bool, per_row: bool) -> None:
    """Each stage parallel over its (n, row) pairs, vectorised along the channels; with `per_row` the
    "rows" stage is computed inside each output row's task instead."""
    sch.compute_inline(sch.get_sblock("acc"))
    if per_row:
        n, y, *_ = sch.get_loops(sch.get_sblock("out"))
        rows = sch.fuse(n, y)
        sch.compute_at(sch.get_sblock("rows"), rows)
        for name in ("rows", "out"):
            vectorize_inner(sch, sch.get_sblock(name), lanes)
        if parallel:
            sch.parallel(rows)
        return
    for name in ("rows", "out"):
        block = sch.get_sblock(name)
        n, y, *_ = sch.get_loops(block)
        rows = sch.fuse(n, y)
        vectorize_inner(sch, block, lanes)
        if parallel:
            sch.parallel(rows)


def planar(window: Window, x: Sequence[int], out: Sequence[int]) -> tuple[Window, list[int], list[int]]:
    """A 1-D pool as the 2-D pool of height 1: (window, x shape, output shape), 2-D ones as they are."""
    if window.rank == 2:
        return window, list(x), list(out)
    (k,), (s,), (d,), (begin, end) = window.kernel, window.strides, window.dilations, window.pads
    flat = Window((1, k), (1, s), (0, begin, 0, end), (1, d), window.ceil_mode)
    return flat, [*x[:2], 1, x[2]], [*out[:2], 1, out[2]]


def lower_window_pool(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    x_v, result = node.operands[0], node.results[0]
    assert x_v is not None
    kind, attrs, rank = node.op, node.attrs, x_v.type.rank
    window, x_shape, out_shape = planar(Window.from_attrs(attrs), x_v.type.shape, result.type.shape)
    n, c, h, w = x_shape
    _, _, oh, ow = out_shape
    dims = window.dims((h, w))
    lanes = schedules_of(target).vector(target, 4).lanes
    nhwc = layout == "NHWC"
    x_param = operand_param(x_v, "x", shape=(n, h, w, c) if nhwc else (n, c, h, w), role="input")
    if nhwc:
        vl, owp = lanes, ow
        acc = nhwc_stages(x_param.tensor, kind, dims, oh, ow)
    else:
        vl, owp = row_vector(ow, lanes)
        acc = nchw_stages(x_param.tensor, kind, dims, oh, owp)
    chain = Epilogue.build(result, epilogue, layout=layout)
    include = bool(attrs.get("count_include_pad", 0))

    def finish(*i: Any) -> Any:
        nn, cc, oy, ox = (i[0], i[3], i[1], i[2]) if nhwc else i
        value = acc[i]
        if kind == "AveragePool":
            value = value / valid_count(window, (h, w), (oy, ox), include).astype("float32")
        return chain.apply(value, (nn, cc, ox) if rank == 3 else (nn, cc, oy, ox))

    out = te.compute((n, oh, ow, c) if nhwc else (n, c, oh, ow), finish, name="out")
    extra, extra_args = epilogue_args(chain)
    params = [
        x_param,
        *(Param(t, a) for t, a in zip(extra, extra_args)),
        output_param(out, chain.result or result),
    ]
    work = n * c * (reach(dims[0], oh) * owp * dims[1].kernel + oh * owp * dims[0].kernel)
    parallel = work >= PARALLEL_MIN_WORK
    workload = {
        "op": "window_pool",
        "kind": kind,
        "layout": layout,
        "x": [n, c, h, w],
        "window": [list(window.kernel), list(window.strides), list(window.pads), list(window.dilations)],
        "out": [n, c, oh, ow],
        "count_include_pad": include,
        "epilogue": chain.describe(),
        "lanes": vl,
        "parallel": parallel,
    }
    per_row = nhwc and rows_per_output_row(dims)
    if per_row:
        workload["rows_per_output_row"] = True

    def schedule(sch: Any) -> None:
        if nhwc:
            schedule_nhwc(sch, row_lanes(c, lanes), parallel, per_row)
        else:
            schedule_nchw(sch, vl, ow, parallel)

    flops = work + chain.flops(math.prod(result.type.shape))
    return make_kernel(node, "wpool", workload, params, flops, schedule, epilogue=epilogue)
