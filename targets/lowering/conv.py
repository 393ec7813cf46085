"""Conv (2-D) as an implicit GEMM over pre-packed weights, and depthwise Conv as a vectorised window sum.

Rule: the general template (group 1) computes acc[n, oh, ow, oc] =
sum over (kh, kw, c) of xpad[...] * Wp[oc // nb, kh, kw, c, oc % nb], weights packed
at compile time into output-channel panels of `nb` lanes (zero-padded), a
register tile of `mi` output columns x `nb` channels (targets/lowering/tiling.py),
bias and the fused epilogue applied as each tile is written. Activations are
"NCHW" (the IR's: the tile is written column by column) or "NHWC" (channels-last:
the tile is written as whole vectors; a layout pass must transpose around it and
epilogue operands must then be NHWC too). Depthwise (group == C == M) vectorises
along output columns (NCHW) or channels (NHWC). Padding is a separate stage
into a scratch buffer. Everything else (other groups, 1-D/3-D, non-f32,
run-time weights) goes to the general template in conv_general.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from tvm import te

from ir.graph import Node, Value
from targets.lowering import KernelArg, LoweredKernel, LoweringError, kernel_name, lowering
from targets.lowering.conv_general import lower_general_conv
from targets.lowering.elementwise import Epilogue, epilogue_args
from targets.lowering.matmul import arg
from targets.lowering.tiling import choose_knobs, padded, schedule_gemm
from targets.target import TargetDescription


class Geometry:
    """Shapes and window facts of one 2-D conv, in the IR's NCHW terms."""

    def __init__(self, node: Node) -> None:
        x, w = node.operands[0], node.operands[1]
        assert x is not None and w is not None
        if x.type.rank != 4:
            raise LoweringError(f"node {node.name!r}: only 2-D Conv is lowered, got X {x.type}")
        self.n, self.c, self.h, self.w = x.type.shape
        self.m, _, self.kh, self.kw = w.type.shape
        _, _, self.oh, self.ow = node.results[0].type.shape
        a = node.attrs
        self.stride = tuple(a["strides"])
        self.dilation = tuple(a["dilations"])
        self.pads = tuple(a["pads"])  # top, left, bottom, right
        self.group = a["group"]
        self.hp = self.h + self.pads[0] + self.pads[2]
        self.wp = self.w + self.pads[1] + self.pads[3]

    def to_json(self) -> dict[str, Any]:
        return {k: v for k, v in vars(self).items()}

    def in_shape(self, layout: str) -> tuple[int, ...]:
        return (self.n, self.c, self.h, self.w) if layout == "NCHW" else (self.n, self.h, self.w, self.c)

    def out_shape(self, layout: str) -> tuple[int, ...]:
        return (self.n, self.m, self.oh, self.ow) if layout == "NCHW" else (self.n, self.oh, self.ow, self.m)


def padded_input(x: Any, g: Geometry, layout: str) -> tuple[Any, Any]:
    """(accessor xp(n, c, y, x) over the padded input, pad stage tensor or None)."""
    top, left = g.pads[0], g.pads[1]
    if not any(g.pads):
        src = x
    else:
        shape = (g.n, g.c, g.hp, g.wp) if layout == "NCHW" else (g.n, g.hp, g.wp, g.c)

        def fill(*i: Any) -> Any:
            n, c, y, xx = i if layout == "NCHW" else (i[0], i[3], i[1], i[2])
            inside = te.all(y >= top, y < top + g.h, xx >= left, xx < left + g.w)
            read = x[n, c, y - top, xx - left] if layout == "NCHW" else x[n, y - top, xx - left, c]
            return te.if_then_else(inside, read, te.const(0, "float32"))

        src = te.compute(shape, fill, name="pad")
    if layout == "NCHW":
        return (lambda n, c, y, xx: src[n, c, y, xx]), (src if src is not x else None)
    return (lambda n, c, y, xx: src[n, y, xx, c]), (src if src is not x else None)


def schedule_pad(sch: Any, lanes: int) -> None:
    block = sch.get_sblock("pad")
    loops = sch.get_loops(block)
    sch.parallel(sch.fuse(loops[0], loops[1]))


def out_index(layout: str, i: Sequence[Any]) -> tuple[Any, Any, Any, Any]:
    """(n, c, y, x) of an output index in `layout`."""
    return tuple(i) if layout == "NCHW" else (i[0], i[3], i[1], i[2])  # type: ignore[return-value]


def bias_and_epilogue(
    node: Node, epilogue: Sequence[Node], layout: str
) -> tuple[Value | None, Any, Epilogue]:
    b = node.operands[2] if len(node.operands) > 2 else None
    bias = te.placeholder((b.type.shape[0],), "float32", name="bias") if b is not None else None
    return b, bias, Epilogue.build(node.results[0], epilogue, layout=layout)


def finish_kernel(
    node: Node,
    epilogue: Sequence[Node],
    op: str,
    workload: dict[str, Any],
    sch_fn: Any,
    params: list[Any],
    args: list[KernelArg],
    flops: int,
    layout: str,
    pack: Any,
) -> LoweredKernel:
    import tvm.s_tir as s_tir

    name = kernel_name(op, workload)
    sch = s_tir.Schedule(te.create_prim_func(params))
    sch_fn(sch)
    return LoweredKernel(
        name,
        sch.mod["main"].with_attr("global_symbol", name),
        tuple(args),
        flops,
        (node.name, *(n.name for n in epilogue)),
        workload,
        layout=layout,
        pack_weights=pack,
    )


def lower_dense_conv(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    g = Geometry(node)
    x_v, w_v = node.operands[0], node.operands[1]
    assert x_v is not None and w_v is not None
    if not w_v.is_constant:
        raise LoweringError(f"node {node.name!r}: Conv weights must be constants to be packed")
    knobs = choose_knobs(target, g.ow, g.m)
    nb, mp = knobs.nb, padded(g.m, knobs.nb)
    x = te.placeholder(g.in_shape(layout), "float32", name="x")
    xp, pad = padded_input(x, g, layout)
    wp = te.placeholder((mp // nb, g.kh, g.kw, g.c, nb), "float32", name="Wp")
    rkh, rkw, rc = (
        te.reduce_axis((0, g.kh), "kh"),
        te.reduce_axis((0, g.kw), "kw"),
        te.reduce_axis((0, g.c), "c"),
    )
    (sh, sw), (dh, dw) = g.stride, g.dilation
    acc = te.compute(
        (g.n, g.oh, g.ow, mp),
        lambda n, y, xx, o: te.sum(
            xp(n, rc, y * sh + rkh * dh, xx * sw + rkw * dw) * wp[o // nb, rkh, rkw, rc, o % nb],
            axis=[rkh, rkw, rc],
        ),
        name="acc",
    )
    b_v, bias, chain = bias_and_epilogue(node, epilogue, layout)

    def finish(*i: Any) -> Any:
        n, o, y, xx = out_index(layout, i)
        value = acc[n, y, xx, o]
        if bias is not None:
            value = value + bias[o]
        return chain.apply(value, (n, o, y, xx))

    out = te.compute(g.out_shape(layout), finish, name="out")
    extra, extra_args = epilogue_args(chain)
    inputs = [(t, a) for t, a in zip(extra, extra_args) if a.role == "input"]
    weights = [(t, a) for t, a in zip(extra, extra_args) if a.role == "weight"]
    params = [
        x,
        *[t for t, _ in inputs],
        wp,
        *([bias] if bias is not None else []),
        *[t for t, _ in weights],
        out,
    ]
    result = chain.result or node.results[0]
    args = [
        arg(x_v, "input", g.in_shape(layout)),
        *[a for _, a in inputs],
        arg(w_v, "weight", wp.shape),
        *([arg(b_v, "weight", bias.shape)] if b_v is not None else []),
        *[a for _, a in weights],
        KernelArg(result.name, "output", g.out_shape(layout), "float32"),
    ]
    workload = {
        "op": "conv2d",
        "geometry": g.to_json(),
        "layout": layout,
        "bias": b_v is not None,
        "epilogue": chain.describe(),
        "knobs": knobs.to_json(),
    }

    def schedule(sch: Any) -> None:
        if pad is not None:
            schedule_pad(sch, knobs.lanes)
        schedule_gemm(sch, "acc", "out", knobs, vector_out=layout == "NHWC" and g.m % nb == 0)

    w_name = w_v.name

    def pack(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        packed = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()}
        w = np.zeros((mp, g.c, g.kh, g.kw), np.float32)
        w[: g.m] = arrays[w_name]
        packed[w_name] = np.ascontiguousarray(
            w.reshape(mp // nb, nb, g.c, g.kh, g.kw).transpose(0, 3, 4, 2, 1)
        )
        return packed

    flops = 2 * g.n * g.m * g.oh * g.ow * g.c * g.kh * g.kw + chain.flops(result.type.size)
    return finish_kernel(node, epilogue, "conv", workload, schedule, params, args, flops, layout, pack)


def phased_input(x: Any, g: Geometry) -> tuple[Any, Any]:
    """NCHW depthwise input as (n, c, y, column phase, column // stride), zero-padded.

    Output column ow with kernel tap kw reads phase (kw*dw) % sw at ow + (kw*dw) // sw:
    consecutive output columns read consecutive floats, so a row vectorises with
    plain loads whatever the stride. Returns (accessor xp(n, c, y, column), stage or None).
    """
    sw, top, left = g.stride[1], g.pads[0], g.pads[1]
    if sw == 1 and not any(g.pads):
        return (lambda n, c, y, col: x[n, c, y, col]), None
    qw = padded(-(-g.wp // sw), 8)  # whole vectors, so the staging copy vectorises

    def fill(n: Any, c: Any, y: Any, phase: Any, q: Any) -> Any:
        col = q * sw + phase - left
        inside = te.all(y >= top, y < top + g.h, col >= 0, col < g.w)
        return te.if_then_else(inside, x[n, c, y - top, col], te.const(0, "float32"))

    stage = te.compute((g.n, g.c, g.hp, sw, qw), fill, name="pad")

    def read(n: Any, c: Any, y: Any, col: Any) -> Any:
        return stage[n, c, y, te.floormod(col, sw), te.floordiv(col, sw)]

    return read, stage


def row_lanes(extent: int, lanes: int) -> int | None:
    """The widest vector (<= lanes, >= 4) that divides a row of `extent` floats."""
    return next((v for v in (lanes, lanes // 2, lanes // 4) if v >= 4 and extent % v == 0), None)


def schedule_depthwise_rows(sch: Any, g: Geometry, lanes: int, staged: bool) -> None:
    """Per (n, c) in parallel: stage the padded, phase-split plane, then each output row as a few
    vector accumulators (output columns) updated by every kernel tap in turn."""
    block = sch.get_sblock("acc")
    n, c, oh, ow, kh, kw = sch.get_loops(block)
    nc = sch.fuse(n, c)
    vl = row_lanes(g.ow, lanes)
    if vl is not None:
        owo, owi = sch.split(ow, [None, vl])
        sch.reorder(oh, kh, kw, owo, owi)
        if g.ow // vl <= 8:
            sch.unroll(owo)
        sch.unroll(kw)
    else:
        sch.reorder(oh, kh, kw, ow)
    sch.set_scope(block, 0, "local")
    out_block = sch.get_sblock("out")
    sch.reverse_compute_at(out_block, oh)
    if staged:
        stage = sch.get_sblock("pad")
        sch.compute_at(stage, nc)
        _, qv = sch.split(sch.get_loops(stage)[-1], [None, 8])
        sch.vectorize(qv)
    sch.parallel(nc)
    if vl is not None:
        sch.vectorize(owi)
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
    xp, pad = phased_input(x, g) if layout == "NCHW" else padded_input(x, g, layout)
    w_shape = (g.c, g.kh, g.kw) if layout == "NCHW" else (g.kh, g.kw, g.c)
    w = te.placeholder(w_shape, "float32", name="w")
    rkh, rkw = te.reduce_axis((0, g.kh), "kh"), te.reduce_axis((0, g.kw), "kw")
    (sh, sw), (dh, dw) = g.stride, g.dilation

    def w_at(c: Any, kh: Any, kw: Any) -> Any:
        return w[c, kh, kw] if layout == "NCHW" else w[kh, kw, c]

    def window(*i: Any) -> Any:
        n, c, y, xx = out_index(layout, i)
        return te.sum(xp(n, c, y * sh + rkh * dh, xx * sw + rkw * dw) * w_at(c, rkh, rkw), axis=[rkh, rkw])

    acc = te.compute(g.out_shape(layout), window, name="acc")
    b_v, bias, chain = bias_and_epilogue(node, epilogue, layout)

    def finish(*i: Any) -> Any:
        n, c, y, xx = out_index(layout, i)
        value = acc[i]
        if bias is not None:
            value = value + bias[c]
        return chain.apply(value, (n, c, y, xx))

    out = te.compute(g.out_shape(layout), finish, name="out")
    extra, extra_args = epilogue_args(chain)
    inputs = [(t, a) for t, a in zip(extra, extra_args) if a.role == "input"]
    weights = [(t, a) for t, a in zip(extra, extra_args) if a.role == "weight"]
    params = [
        x,
        *[t for t, _ in inputs],
        w,
        *([bias] if bias is not None else []),
        *[t for t, _ in weights],
        out,
    ]
    result = chain.result or node.results[0]
    args = [
        arg(x_v, "input", g.in_shape(layout)),
        *[a for _, a in inputs],
        arg(w_v, "weight", w_shape),
        *([arg(b_v, "weight", bias.shape)] if b_v is not None else []),
        *[a for _, a in weights],
        KernelArg(result.name, "output", g.out_shape(layout), "float32"),
    ]
    lanes = target.vector_lanes_f32
    workload = {
        "op": "depthwise2d",
        "schedule": "phased-rows" if layout == "NCHW" else "channels",
        "geometry": g.to_json(),
        "layout": layout,
        "bias": b_v is not None,
        "epilogue": chain.describe(),
        "lanes": lanes,
    }

    def schedule(sch: Any) -> None:
        if layout == "NCHW":
            schedule_depthwise_rows(sch, g, lanes, pad is not None)
            return
        if pad is not None:
            schedule_pad(sch, lanes)
        block = sch.get_sblock("acc")
        n, a1, a2, a3, kh, kw = sch.get_loops(block)
        # NCHW: (n, c, oh, ow) vectorised along ow; NHWC: (n, oh, ow, c) vectorised along c.
        row = a2 if layout == "NCHW" else a1
        inner = a3
        sch.reorder(n, a1, a2, kh, kw, a3) if layout == "NCHW" else sch.reorder(n, a1, a2, kh, kw, a3)
        sch.set_scope(block, 0, "local")
        sch.reverse_compute_at(sch.get_sblock("out"), a2)
        sch.parallel(sch.fuse(n, a1))
        extent = g.ow if layout == "NCHW" else g.c
        if extent % lanes == 0:
            _, lane = sch.split(inner, [None, lanes])
            sch.vectorize(lane)
            out_inner = sch.get_loops(sch.get_sblock("out"))[-1]
            _, lane_out = sch.split(out_inner, [None, lanes])
            sch.vectorize(lane_out)
        del row
        sch.decompose_reduction(block, kh)

    w_name = w_v.name

    def pack(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        packed = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()}
        weight = np.asarray(arrays[w_name], np.float32).reshape(g.c, g.kh, g.kw)
        packed[w_name] = np.ascontiguousarray(weight if layout == "NCHW" else weight.transpose(1, 2, 0))
        return packed

    flops = 2 * g.n * g.c * g.oh * g.ow * g.kh * g.kw + chain.flops(result.type.size)
    return finish_kernel(node, epilogue, "dwconv", workload, schedule, params, args, flops, layout, pack)


@lowering("Conv")
def lower_conv(node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str) -> LoweredKernel:
    x = node.operands[0]
    assert x is not None
    w = node.operands[1]
    fast = node.results[0].type.dtype.numpy.name == "float32" and x.type.rank == 4
    if fast and w is not None and w.is_constant:
        g = Geometry(node)
        if g.group == 1:
            return lower_dense_conv(node, target, epilogue, layout)
        if g.group == g.c == g.m:
            return lower_depthwise(node, target, epilogue, layout)
    return lower_general_conv(node, target, epilogue, layout)
