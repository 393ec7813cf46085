"""Depthwise Conv (group == C, M = k * C: output channel o reads input channel o // k) as vectorised
window sums over each output row or channel vector.

Rule: NCHW computes every output row of a (n, c) plane as a few vector
accumulators along the columns, padded to whole vectors when no vector width
divides the row (the extra columns read zeros and are never written), over a
zero-padded, stride-phase-split staging copy of the plane, so each tap is a plain
(unaligned) vector load whatever the stride. NHWC (a channels-last region's)
accumulates a tile of output columns x one channel vector in registers, each tap
a weight vector and one input vector per column read straight from the input
(a tap in the padding reads zero through a select: no padded copy, which cost
more than the selects on every MobileNet shape). Bias and the fused epilogue are
applied as each row or tile is written.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from tvm import te

from ir.graph import Node
from targets.lowering.conv_geometry import (
    Geometry,
    bias_and_epilogue,
    finish_kernel,
    out_index,
)
from targets.lowering.elementwise import epilogue_signature
from targets.lowering.generic import row_lanes
from targets.lowering.kernel import KernelArg, LoweredKernel, arg
from targets.lowering.tiling import padded
from targets.lowering.weight_only import weight_source
from targets.schedules import schedules_of
from targets.target import TargetDescription

MAX_COLUMNS = 8  # NHWC output columns accumulated in registers at once (one vector each)
ROW_BLOCK = 4  # output rows per NHWC row task (consecutive rows share input rows in cache)
MIN_PLANE_TASKS = 8  # channel vectors that make enough parallel plane tasks
PLANE_BYTES = 16 * 1024  # a plane task's input (a channel vector's plane) stays in the L1 cache


def row_vector(ow: int, lanes: int) -> tuple[int, int]:
    """(vector width, padded row width) for depthwise rows of `ow` output columns.

    A row is computed as whole vectors, padded past `ow` when no width divides it
    (the extra columns read zeros and are never written). Cost model: vectors per
    row, a vector wider than 8 floats counting as 8-float halves (double-pumped
    on Zen 4), a 4-float vector as a whole 8-float one; ties go to the wider vector.
    """
    options = [v for v in (lanes, lanes // 2, lanes // 4) if v >= 4] or [lanes]

    def cost(v: int) -> tuple[float, int]:
        return (padded(ow, v) // v) * max(v, 8) / 8, -v

    vl = min(options, key=cost)
    return vl, padded(ow, vl)


def phased_input(x: Any, g: Geometry, owp: int) -> tuple[Any, Any]:
    """NCHW depthwise input as (n, c, y, column phase, column // stride), zero-padded.

    Output column ow with kernel tap kw reads phase (kw*dw) % sw at ow + (kw*dw) // sw:
    consecutive output columns read consecutive floats, so a row vectorises with
    plain loads whatever the stride. `owp` (>= ow) output columns are computed, so the
    stage holds zeros far enough right for a padded row. Returns (accessor xp(n, c, y,
    column), stage or None).
    """
    sw, top, left = g.stride[1], g.pads[0], g.pads[1]
    if sw == 1 and not any(g.pads) and owp == g.ow:
        return (lambda n, c, y, col: x[n, c, y, col]), None
    reach = owp + ((g.kw - 1) * g.dilation[1]) // sw
    qw = padded(max(-(-g.wp // sw), reach), 8)  # whole vectors, so the staging copy vectorises

    def fill(n: Any, c: Any, y: Any, phase: Any, q: Any) -> Any:
        col = q * sw + phase - left
        inside = te.all(y >= top, y < top + g.h, col >= 0, col < g.w)
        return te.if_then_else(inside, x[n, c, y - top, col], te.const(0, "float32"))

    stage = te.compute((g.n, g.c, g.hp, sw, qw), fill, name="pad")

    def read(n: Any, c: Any, y: Any, col: Any) -> Any:
        return stage[n, c, y, te.floormod(col, sw), te.floordiv(col, sw)]

    return read, stage


def schedule_depthwise_rows(sch: Any, g: Geometry, lanes: int, staged: bool) -> None:
    """Per (n, c) in parallel: stage the padded, phase-split plane, then each output row as a few
    vector accumulators (output columns, padded to whole vectors) updated by every kernel tap in turn."""
    block = sch.get_sblock("acc")
    n, c, oh, ow, kh, kw = sch.get_loops(block)
    nc = sch.fuse(n, c)
    vl, owp = row_vector(g.ow, lanes)
    owo, owi = sch.split(ow, [None, vl])
    sch.reorder(oh, kh, kw, owo, owi)
    if owp // vl <= 8:
        sch.unroll(owo)
    sch.unroll(kw)
    sch.set_scope(block, 0, "local")
    out_block = sch.get_sblock("out")
    sch.reverse_compute_at(out_block, oh)
    if staged:
        stage = sch.get_sblock("pad")
        sch.compute_at(stage, nc)
        _, qv = sch.split(sch.get_loops(stage)[-1], [None, 8])
        sch.vectorize(qv)
    sch.parallel(nc)
    sch.vectorize(owi)
    out_lanes = row_lanes(g.ow, lanes)
    if out_lanes is not None:
        _, lane_out = sch.split(sch.get_loops(out_block)[-1], [None, out_lanes])
        sch.vectorize(lane_out)
    sch.decompose_reduction(block, kh)


def column_tile(ow: int) -> int:
    """Output columns per NHWC register tile: the most, up to MAX_COLUMNS, that divide the row."""
    return next(t for t in range(min(ow, MAX_COLUMNS), 0, -1) if ow % t == 0)


def guarded_input(x: Any, g: Geometry) -> Any:
    """NHWC input accessor xp(n, c, y, column) over padded coordinates: zero in the padding."""
    top, left = g.pads[0], g.pads[1]
    if not any(g.pads):
        return lambda n, c, y, xx: x[n, y, xx, c]

    def read(n: Any, c: Any, y: Any, xx: Any) -> Any:
        inside = te.all(y >= top, y < top + g.h, xx >= left, xx < left + g.w)
        return te.if_then_else(inside, x[n, y - top, xx - left, c], te.const(0, "float32"))

    return read


def row_block(oh: int) -> int:
    """Output rows per NHWC row task: the most, up to ROW_BLOCK, that divide the map's height."""
    return next(r for r in range(min(oh, ROW_BLOCK), 0, -1) if oh % r == 0)


def plane_tasks(g: Geometry, target: TargetDescription) -> bool:
    """Whether NHWC tasks are whole channel-vector planes (else blocks of output rows of one channel
    vector): where the target splits channels-last work by channels (`parallel_bands` 1), there
    are enough channel vectors and one's input plane fits PLANE_BYTES (measured alone on 14x14 and
    7x7 maps: 0.75x the row tasks' time; between row-banded convs, row tasks win)."""
    vl = row_lanes(g.m, schedules_of(target).depthwise(target).lanes)
    if vl is None or schedules_of(target).parallel_bands > 1:
        return False
    return g.m // vl >= MIN_PLANE_TASKS and g.h * g.w * vl * 4 <= PLANE_BYTES


def schedule_depthwise_channels(sch: Any, g: Geometry, lanes: int, planes: bool) -> None:
    """NHWC: each (n, channel vector) plane or (n, output row, channel vector) in parallel
    (`plane_tasks`); a tile of up to MAX_COLUMNS output columns x one channel vector accumulates in
    registers over every tap (a weight vector per tap, one input vector per column), then its bias
    and epilogue are applied as it is written."""
    vl = row_lanes(g.m, lanes)
    block = sch.get_sblock("acc")
    n, oh, ow, c, kh, kw = sch.get_loops(block)
    owo, owi = sch.split(ow, [None, column_tile(g.ow)])
    co, ci = sch.split(c, [None, vl]) if vl is not None else (c, None)
    lane = [ci] if ci is not None else []
    if planes:
        sch.reorder(n, co, oh, owo, kh, kw, owi, *lane)
        tile = sch.fuse(n, co)
    else:
        oho, ohi = sch.split(oh, [None, row_block(g.oh)])
        sch.reorder(n, oho, co, ohi, owo, kh, kw, owi, *lane)
        tile = sch.fuse(n, oho, co)
    sch.set_scope(block, 0, "local")
    out_block = sch.get_sblock("out")
    sch.reverse_compute_at(out_block, owo)
    sch.parallel(tile)
    sch.unroll(kw)
    sch.unroll(owi)
    if ci is not None:
        sch.vectorize(ci)
        _, lane_out = sch.split(sch.get_loops(out_block)[-1], [None, vl])
        sch.vectorize(lane_out)
    sch.decompose_reduction(block, kh)


def lower_depthwise(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    g = Geometry(node)
    x_v, w_v = node.operands[0], node.operands[1]
    assert x_v is not None and w_v is not None
    x = te.placeholder(g.in_shape(layout), "float32", name="x")
    lanes = schedules_of(target).depthwise(target).lanes
    owp = row_vector(g.ow, lanes)[1] if layout == "NCHW" else g.ow
    planes = layout == "NHWC" and plane_tasks(g, target)
    xp, pad = phased_input(x, g, owp) if layout == "NCHW" else (guarded_input(x, g), None)
    w_shape = (g.m, g.kh, g.kw) if layout == "NCHW" else (g.kh, g.kw, g.m)

    def weight_layout(weight: np.ndarray) -> np.ndarray:
        per_channel = weight.reshape(g.m, g.kh, g.kw)
        return np.ascontiguousarray(per_channel if layout == "NCHW" else per_channel.transpose(1, 2, 0))

    w_src = weight_source(node, w_shape, weight_layout, None, "w")
    w = w_src.tensor
    rkh, rkw = te.reduce_axis((0, g.kh), "kh"), te.reduce_axis((0, g.kw), "kw")
    (sh, sw), (dh, dw) = g.stride, g.dilation

    def w_at(c: Any, kh: Any, kw: Any) -> Any:
        return w[c, kh, kw] if layout == "NCHW" else w[kh, kw, c]

    def window(*i: Any) -> Any:
        n, o, y, xx = out_index(layout, i)
        c = o // g.mg if g.mg > 1 else o  # the input channel output channel o reads
        return te.sum(xp(n, c, y * sh + rkh * dh, xx * sw + rkw * dw) * w_at(o, rkh, rkw), axis=[rkh, rkw])

    acc_shape = (g.n, g.m, g.oh, owp) if layout == "NCHW" else g.out_shape(layout)
    acc = te.compute(acc_shape, window, name="acc")
    b_v, bias, chain = bias_and_epilogue(node, epilogue, layout)

    def finish(*i: Any) -> Any:
        n, c, y, xx = out_index(layout, i)
        value = acc[i]
        if bias is not None:
            value = value + bias[c]
        return chain.apply(value, g.logical(n, c, y, xx))

    out = te.compute(g.out_shape(layout), finish, name="out")
    result = chain.result or node.results[0]
    anchor = [(x, arg(x_v, "input", g.in_shape(layout))), *w_src.params]
    if b_v is not None:
        anchor.append((bias, arg(b_v, "weight", bias.shape)))
    output = KernelArg(result.name, "output", g.out_shape(layout), str(out.dtype))
    params, args = epilogue_signature(anchor, chain, out, output)
    workload = {
        "op": "depthwise2d",
        "schedule": "padded-phased-rows" if layout == "NCHW" else "guarded-channel-column-tiles",
        "plane_tasks": planes,
        "geometry": g.to_json(),
        "layout": layout,
        "bias": b_v is not None,
        "epilogue": chain.describe(),
        "lanes": lanes,
    }
    w_src.add_to(workload)

    def schedule(sch: Any) -> None:
        w_src.schedule(sch, lanes)
        if layout == "NCHW":
            schedule_depthwise_rows(sch, g, lanes, pad is not None)
            return
        schedule_depthwise_channels(sch, g, lanes, planes)

    def pack(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        packed = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()}
        packed.update(w_src.pack(arrays))
        return packed

    flops = 2 * g.n * g.m * g.oh * g.ow * g.kh * g.kw + chain.flops(result.type.size)
    return finish_kernel(node, epilogue, "dwconv", workload, schedule, params, args, flops, layout, pack)
