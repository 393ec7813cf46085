"""Conv (1-D and 2-D, any group count) as an implicit GEMM over pre-packed weights; the dispatch of
every Conv (`conv_template`).

Rule: the dense template computes out[n, o, p] = sum over (kh, kw, c) of
xpad[n, c, window(p)] * W[o, c, kh, kw] as a register-tiled GEMM
(targets/lowering/tiling.py), weights packed at compile time, bias and the fused
epilogue applied as each tile is written. Which GEMM dimension is the vector one
depends on the tile kind (in the workload key); which kinds and register tiles fit a conv,
and which of them it gets (the measured cost rule's pick), is conv_tiles.py's rule:

- "spatial" (NCHW, output rows or the whole plane a whole number of vectors):
  `mi` output channels of one group (weights broadcast from panels Wp[M/mi, kh, kw, C/group, mi]) x
  `nb` output columns (contiguous input loads; a column stride reads a
  phase-split copy of the input, as depthwise does), so the tile and its
  epilogue are written as whole vectors along the NCHW rows;
- "rows" / "flat" / "pointwise" (any layout; the only kinds for NHWC): `mi` output
  positions x `nb` channels of one group (weights in panels Wp[group * ceil(M/group/nb), kh, kw,
  C/group, nb], each group's channels zero-padded to whole panels),
  positions taken along one output row, or over the flattened plane when rows are
  too narrow for a good tile (1-D convs, 7- or 14-wide rows), a pointwise conv
  (1x1, stride 1, unpadded) reading its input as a plain (C, H*W) matrix.

Flattened kernels view their input/output as (n, c, h*w) or (n, h*w, c). NHWC
activations need a layout pass to transpose around the kernel, and epilogue
operands must then be NHWC too. Padding is a separate stage into a scratch
buffer. A group's tile reads only its own input channels (the group is an outer loop of the
GEMM). 1-D convs are 2-D convs of height 1 (conv_geometry.py). Convs whose groups read one
input channel each go to conv_depthwise.py; 3-D, non-f32 and run-time weights to the general
template in conv_general.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from tvm import te

from ir.graph import Node
from targets.lowering.bf16_gemm import bf16_weight
from targets.lowering.bf16_tiles import lower_bf16_layer_conv
from targets.lowering.conv_depthwise import lower_depthwise, phased_input
from targets.lowering.conv_general import lower_general_conv
from targets.lowering.conv_geometry import (
    Geometry,
    bias_and_epilogue,
    finish_kernel,
    padded_input,
    schedule_pad,
)
from targets.lowering.conv_tiles import DenseTile, choose_dense_tile
from targets.lowering.elementwise import epilogue_signature
from targets.lowering.kernel import KernelArg, LoweredKernel, LoweringError, arg
from targets.lowering.registry import lowering
from targets.lowering.tiling import output_lanes, padded, schedule_gemm
from targets.lowering.weight_only import decode_at_use, has_packable_weight, weight_source
from targets.schedules import schedules_of
from targets.target import TargetDescription

BAND_AXIS = 2
"""The acc loop a channels-last tile's bands split: output rows ("rows") or positions (flat kinds)."""
BAND_WEIGHT_BYTES = 1 << 20
"""A conv computed in bands reads its packed weights once per band: only weights this small (they stay
in a core's L2 cache) are; larger ones keep every panel outermost (read once)."""


def row_bands(g: Geometry, target: TargetDescription, layout: str, tile: DenseTile, panels: int) -> int:
    """How many bands of output rows the tile loop is split into (`schedule_gemm`'s `band`): for a
    channels-last tile whose weights fit BAND_WEIGHT_BYTES, the most bands, up to the target's
    `parallel_bands` and halving, that divide its rows (output rows, or row tiles of the flat kinds)
    evenly: uneven bands would leave one thread the larger share. Else 1 (panels outermost)."""
    weight_bytes = 4 * panels * tile.knobs.nb * g.kh * g.kw * g.cg
    if layout != "NHWC" or tile.kind == "spatial" or weight_bytes > BAND_WEIGHT_BYTES:
        return 1
    rows = g.oh if tile.kind == "rows" else -(-g.oh * g.ow // tile.knobs.mi)
    bands = schedules_of(target).parallel_bands
    while bands > 1 and rows % bands:
        bands //= 2
    return bands


def pack_conv_weights(w: np.ndarray, g: Geometry, panel: int) -> np.ndarray:
    """(M, C/group, [KH,] KW) -> (group * ceil(M/group/panel), KH, KW, C/group, panel): each group's
    output channels zero-padded to whole panels, so no panel spans two groups. The reduction axis
    may be shorter than C/group (a stored weight's group scales: weight_only.py)."""
    mgp, c = padded(g.mg, panel), w.size // (g.m * g.kh * g.kw)
    full = np.zeros((g.group, mgp, c, g.kh, g.kw), w.dtype)
    full[:, : g.mg] = w.reshape(g.group, g.mg, c, g.kh, g.kw)
    panels = g.group * mgp // panel
    return np.ascontiguousarray(full.reshape(panels, panel, c, g.kh, g.kw).transpose(0, 3, 4, 2, 1))


def grouped_out_shape(g: Geometry, layout: str, flat: bool) -> tuple[int, ...]:
    """The output as the kernel writes it (the same bytes as the IR's), the plane flat or not; a
    grouped conv's channel axis split into (group, channel of the group), so each tile's output
    block is affine in the accumulator's loops."""
    plane = (g.oh * g.ow,) if flat else (g.oh, g.ow)
    channels = (g.group, g.mg) if g.group > 1 else (g.m,)
    return (g.n, *channels, *plane) if layout == "NCHW" else (g.n, *plane, *channels)


def dense_acc(g: Geometry, x: Any, layout: str, tile: DenseTile, panel: int, wp: Any) -> tuple[Any, ...]:
    """(acc compute, its reader acc_at(n, group, channel, y, xx, p), pad stage or None) over the packed
    weight `wp` (`channel`: of the group; `p`: the flat position, for flat accumulators). "rows"
    accumulators compute `owp` >= ow columns (padded tiles: the extra ones read zeros, never stored);
    "flat" and "pointwise" ones the tile's `flat_positions` (padded positions read the last one again).

    acc's loops are (outer..., group, m, n, reduce...) as schedule_gemm wants: for "spatial"
    m = a group's output channels and n = columns or positions; otherwise m = positions,
    n = a group's (panel-padded) channels. A group-1 conv has one group: its loop is of extent 1.
    """
    kind, owp = tile.kind, tile.owp
    per_group = int(wp.shape[0]) * panel // g.group  # a group's padded output channels
    rkh, rkw, rc = (
        te.reduce_axis((0, g.kh), "kh"),
        te.reduce_axis((0, g.kw), "kw"),
        te.reduce_axis((0, g.cg), "c"),
    )
    (sh, sw), (dh, dw) = g.stride, g.dilation
    if g.pointwise:
        xp, pad = None, None
    elif kind == "spatial" and g.stride[1] > 1:
        xp, pad = phased_input(x, g, g.ow)  # strided columns as contiguous loads
    else:
        xp, pad = padded_input(x, g, layout, (owp - 1) * sw + (g.kw - 1) * dw + 1)

    def w_at(gi: Any, o: Any, kh: Any, kw: Any, c: Any) -> Any:
        return wp[gi * (per_group // panel) + o // panel, kh, kw, c, o % panel]

    def window(n: Any, gi: Any, y: Any, xx: Any, o: Any) -> Any:
        read = xp(n, gi * g.cg + rc, y * sh + rkh * dh, xx * sw + rkw * dw)  # type: ignore[misc]
        return te.sum(read * w_at(gi, o, rkh, rkw, rc), axis=[rkh, rkw, rc])

    def pointwise(n: Any, gi: Any, p: Any, o: Any) -> Any:
        c = gi * g.cg + rc
        read = x[n, c, p] if layout == "NCHW" else x[n, p, c]
        return te.sum(read * w_at(gi, o, 0, 0, rc), axis=[rc])

    positions, groups = g.oh * g.ow, g.group
    if kind == "spatial" and g.pointwise:
        acc = te.compute(
            (g.n, groups, per_group, positions), lambda n, gi, o, p: pointwise(n, gi, p, o), name="acc"
        )
        return acc, (lambda n, gi, o, y, xx, p: acc[n, gi, o, p]), pad
    if kind == "spatial":
        acc = te.compute(
            (g.n, g.oh, groups, per_group, g.ow), lambda n, y, gi, o, xx: window(n, gi, y, xx, o), name="acc"
        )
        return acc, (lambda n, gi, o, y, xx, p: acc[n, y, gi, o, xx]), pad
    if kind == "rows":
        acc = te.compute((g.n, groups, g.oh, owp, per_group), window, name="acc")
        return acc, (lambda n, gi, o, y, xx, p: acc[n, gi, y, xx, o]), pad
    computed = tile.flat_positions(g)

    def real(p: Any) -> Any:  # a padded position reads the last real one
        return p if computed == positions else te.min(p, positions - 1)

    shape = (g.n, groups, computed, per_group)
    if kind == "pointwise":
        acc = te.compute(shape, lambda n, gi, p, o: pointwise(n, gi, real(p), o), name="acc")
    else:
        at = lambda n, gi, p, o: window(n, gi, real(p) // g.ow, real(p) % g.ow, o)  # noqa: E731
        acc = te.compute(shape, at, name="acc")
    return acc, (lambda n, gi, o, y, xx, p: acc[n, gi, p, o]), pad


def lower_dense_conv(
    node: Node,
    target: TargetDescription,
    epilogue: Sequence[Node],
    layout: str,
    tile: DenseTile | None = None,
) -> LoweredKernel:
    g = Geometry(node)
    x_v, w_v = node.operands[0], node.operands[1]
    assert x_v is not None and w_v is not None
    if not has_packable_weight(node):
        raise LoweringError(f"node {node.name!r}: Conv weights must be constants to be packed")
    if tile is None:
        tile = choose_dense_tile(g, layout, target)
    kind, knobs = tile.kind, tile.knobs
    positions = g.oh * g.ow
    flat_out = kind in ("pointwise", "flat") or (kind == "spatial" and g.pointwise)
    panel = knobs.mi if kind == "spatial" else knobs.nb
    panels = g.group * padded(g.mg, panel) // panel
    x_shape = g.flat_in_shape(layout) if g.pointwise else g.in_shape(layout)
    out_shape = grouped_out_shape(g, layout, flat_out)
    x = te.placeholder(x_shape, "float32", name="x")
    w_src = weight_source(
        node,
        (panels, g.kh, g.kw, g.cg, panel),
        lambda w: pack_conv_weights(w, g, panel),
        3,
        "Wp",
        inline=decode_at_use(g.n * positions, vector_along_panel=kind != "spatial"),
    )
    acc, acc_at, pad = dense_acc(g, x, layout, tile, panel, w_src.tensor)
    b_v, bias, chain = bias_and_epilogue(node, epilogue, layout)

    k = 2 if g.group > 1 else 1  # channel axes of the output (grouped_out_shape)

    def finish(*i: Any) -> Any:
        n, channel, at = (i[0], i[1 : 1 + k], i[1 + k :]) if layout == "NCHW" else (i[0], i[-k:], i[1:-k])
        gi, oc = channel if k == 2 else (0, channel[0])
        p = at[0] if flat_out else None
        y, xx = (at[0] // g.ow, at[0] % g.ow) if flat_out else at
        value = acc_at(n, gi, oc, y, xx, p)
        o = gi * g.mg + oc
        if bias is not None:
            value = value + bias[o]
        return chain.apply(value, g.logical(n, o, y, xx))

    out = te.compute(out_shape, finish, name="out")
    result = chain.result or node.results[0]
    anchor = [(x, arg(x_v, "input", x_shape)), *w_src.params]
    if b_v is not None:
        anchor.append((bias, arg(b_v, "weight", bias.shape)))
    output = KernelArg(result.name, "output", out_shape, str(out.dtype))  # a quantize epilogue: u8/i8
    params, args = epilogue_signature(anchor, chain, out, output)
    workload = {
        "op": "conv2d",
        "geometry": g.to_json(),
        "layout": layout,
        "tile": kind,
        "bias": b_v is not None,
        "epilogue": chain.describe(),
        "knobs": knobs.to_json(),
    }
    bands = row_bands(g, target, layout, tile, panels)
    if bands > 1:
        workload["bands"] = bands
    w_src.add_to(workload)
    out_lanes = knobs.lanes if kind == "spatial" else output_lanes(g.mg, knobs) if layout == "NHWC" else None
    if out_lanes not in (None, knobs.lanes):
        workload["out_lanes"] = out_lanes

    def schedule(sch: Any) -> None:
        w_src.schedule(sch, knobs.lanes)
        if pad is not None and len(pad.shape) == 5:  # phase-split rows: parallel rows, whole vectors
            n, c, y, _, q = sch.get_loops(sch.get_sblock("pad"))
            sch.parallel(sch.fuse(n, c, y))
            sch.vectorize(sch.split(q, [None, 8])[1])
        elif pad is not None:
            schedule_pad(sch, knobs.lanes)
        band = (BAND_AXIS, bands) if bands > 1 else None
        schedule_gemm(sch, "acc", "out", knobs, out_lanes=out_lanes, band=band)

    def pack(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        packed = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()}
        packed.update(w_src.pack(arrays))
        return packed

    flops = 2 * g.n * g.m * g.oh * g.ow * g.cg * g.kh * g.kw + chain.flops(result.type.size)
    return finish_kernel(node, epilogue, "conv", workload, schedule, params, args, flops, layout, pack)


def conv_template(node: Node) -> str:
    """Which template lowers a Conv (the rule on its workload): "depthwise" for f32 1-D/2-D convs
    with constant weights whose groups each read one input channel (any channel multiplier),
    "dense" for the other such convs (any group count, stride, dilation and pads), "general" for the
    rest (3-D, non-f32, run-time weights)."""
    x, w = node.operands[0], node.operands[1]
    assert x is not None
    f32 = node.results[0].type.dtype.numpy.name == "float32"
    if not (f32 and x.type.rank in (3, 4) and w is not None and has_packable_weight(node)):
        return "general"
    g = Geometry(node)
    return "depthwise" if g.group > 1 and g.cg == 1 else "dense"


@lowering("Conv")
def lower_conv(node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str) -> LoweredKernel:
    x = node.operands[0]
    assert x is not None
    f32 = node.results[0].type.dtype.numpy.name == "float32"
    if f32 and x.type.rank == 4 and bf16_weight(node) is not None and Geometry(node).group == 1:
        return lower_bf16_layer_conv(node, target, epilogue, layout)
    template = conv_template(node)
    if template == "dense":
        return lower_dense_conv(node, target, epilogue, layout)
    if template == "depthwise":
        return lower_depthwise(node, target, epilogue, layout)
    return lower_general_conv(node, target, epilogue, layout)
