"""ConvInteger (2-D): dense ones as the integer GEMM core over an NHWC u8 copy of the input; grouped plain.

Rule: a dense (group 1) ConvInteger with constant weights is an implicit GEMM
(targets/lowering/integer_gemm.py): a "pad" stage copies the input into a
channels-last u8 buffer xq[n, hp, wp, Cp] (an i8 input shifted by +128; padding
and the channels past C filled with the u8 zero point zx, so padding adds
nothing once the corrected bias subtracts zx * sum W), the reduction runs over
(kh, kw, c4, ci) against Wp packed in that order (C padded to the step's depth), and
where the W stride is 1 and the output width even, neighbouring positions pair up for a
2-row step (`paired_rows`: their input bytes are one strided region). Each tile adds ctab row 0
(the corrected bias) and runs the fused epilogue (DequantizeLinear, float ops,
the next layer's QuantizeLinear) before it is stored. Output (n, M, P) for NCHW
(or (n, P, M) for NHWC), the IR bytes in either case. Grouped and depthwise
ConvIntegers get a plain int32 TE template over unpacked weights, their
per-channel constants in a table after each channel's weights: one tile per
output channel copies its group's planes padded (NCHW u8) in cache and sums
whole 16-lane vectors along each output row (`lower_grouped`). Kernels below
PARALLEL_MIN_MACS multiply-adds run serial (a launch costs more than it saves).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
from tvm import te

from ir.dtypes import DType
from ir.graph import Node, Value
from targets.lowering.conv_geometry import Geometry, finish_kernel
from targets.lowering.elementwise import Epilogue, epilogue_signature, output_arg
from targets.lowering.integer_gemm import (
    DEPTH,
    LANES,
    PARALLEL_MIN_MACS,
    choose_int_knobs,
    corrected_bias,
    dot_step,
    fused_tables,
    pack_integer_weights,
    packed_table_stage,
    schedule_integer_gemm,
    table_bytes,
    table_stage,
    weight_at,
    weight_placeholder,
)
from targets.lowering.kernel import KernelArg, LoweredKernel, LoweringError, arg
from targets.lowering.tiling import padded
from targets.target import TargetDescription


def activation_zero(x: Value) -> tuple[int, int]:
    """(shift into u8, the u8 zero point): an i8 activation is shifted by +128."""
    assert x.type.quant is not None
    shift = 128 if x.type.dtype is DType.I8 else 0
    return shift, int(x.type.quant.zero_point[0]) + shift


def bias_array(node: Node) -> np.ndarray | None:
    b = node.operands[2] if len(node.operands) > 2 else None
    if b is None:
        return None
    if not b.is_constant:
        raise LoweringError(f"node {node.name!r}: {node.op} bias must be a constant")
    return np.asarray(b.constant_array()).reshape(-1)


def as_u8(read: Any, shift: int) -> Any:
    return read.astype("uint8") if shift == 0 else (read.astype("int32") + shift).astype("uint8")


def u8_input(
    x: Any, g: Geometry, layout: str, cp: int, shift: int, zero: int, channels_last: bool, width: int = 0
) -> Any:
    """The "pad" stage of an integer conv: the input as u8, zero point outside it (`padded_input`)."""
    convert = partial(as_u8, shift=shift)
    return padded_input(x, g, layout, cp, convert, te.const(zero, "uint8"), channels_last, width)


def padded_input(
    x: Any, g: Geometry, layout: str, cp: int, convert: Any, outside: Any, channels_last: bool, width: int = 0
) -> Any:
    """The "pad" stage: each input element `convert`ed (to u8, to bf16 bits), `outside` beyond it,
    xq[n, hp, wp, cp] when `channels_last` else xq[n, cp, hp, wp] (wp: `width` when given, at least
    the padded width; bounds tested only where there is padding: an unpadded, whole-channel copy is
    a plain transpose or copy)."""
    top, left = g.pads[0], g.pads[1]
    width = max(width, g.wp)

    def fill(n: Any, y: Any, xx: Any, c: Any) -> Any:
        right = g.pads[3] + width - g.wp
        bounds = [(y - top, g.h, top, g.pads[2]), (xx - left, g.w, left, right), (c, g.c, 0, cp - g.c)]
        index, checks = [], []
        for at, size, before, after in bounds:
            index.append(te.min(te.max(at, 0), size - 1) if before or after else at)
            checks += [at >= 0] * bool(before) + [at < size] * bool(after)
        yy, xc, cc = index
        read = convert(x[n, cc, yy, xc] if layout == "NCHW" else x[n, yy, xc, cc])
        return te.if_then_else(te.all(*checks), read, outside) if checks else read

    if channels_last:
        return te.compute((g.n, g.hp, width, cp), fill, name="pad")
    return te.compute((g.n, cp, g.hp, width), lambda n, c, y, xx: fill(n, y, xx, c), name="pad")


def conv_epilogue(node: Node, epilogue: Sequence[Node], layout: str) -> Epilogue:
    if not node.operands[1].is_constant:  # type: ignore[union-attr]
        raise LoweringError(f"node {node.name!r}: ConvInteger weights must be constants to be packed")
    return Epilogue.build(node.results[0], epilogue, layout=layout)


def lower_dense(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    g = Geometry(node)
    x_v, w_v = node.operands[0], node.operands[1]
    assert x_v is not None and w_v is not None
    shift, zero = activation_zero(x_v)
    chain = conv_epilogue(node, epilogue, layout)
    chain.tables = tables = fused_tables(chain.nodes, 1)
    positions = g.oh * g.ow
    pairs = g.stride[1] == 1 and g.ow % 2 == 0  # two neighbours of one output row: one strided region
    knobs = choose_int_knobs(target, positions, g.m, g.n * g.m * positions * g.c * g.kh * g.kw, pairs)
    step = dot_step(target, knobs)
    depth = step.depth
    cp = padded(g.c, depth)
    k = g.kh * g.kw * cp
    x = te.placeholder(g.in_shape(layout), x_v.type.dtype.numpy.name, name="x")
    xq = u8_input(x, g, layout, cp, shift, zero, channels_last=True)
    wp = weight_placeholder(k, g.m, 1 + len(tables.rows), depth)
    tables.ctab = ctab = packed_table_stage(wp, k, 1 + len(tables.rows))
    rkh, rkw = te.reduce_axis((0, g.kh), "kh"), te.reduce_axis((0, g.kw), "kw")
    rc4, rci = te.reduce_axis((0, cp // depth), "c4"), te.reduce_axis((0, depth), "ci")
    (sh, sw), (dh, dw) = g.stride, g.dilation

    def window(n: Any, p: Any, o: Any) -> Any:
        read = xq[n, (p // g.ow) * sh + rkh * dh, (p % g.ow) * sw + rkw * dw, rc4 * depth + rci]
        block = (rkh * g.kw + rkw) * (cp // depth) + rc4
        product = read.astype("int32") * weight_at(wp, o, block, rci).astype("int32")
        return te.sum(product, axis=[rkh, rkw, rc4, rci])

    acc = te.compute((g.n, positions, wp.shape[0] * wp.shape[2]), window, name="acc")
    params, args, result = conv_output(node, g, chain, layout, x, wp, ctab, lambda n, p, o: acc[n, p, o])
    rows = list(tables.rows)
    pack = conv_packer(node, g, cp, rows, zero + step.shift, depth)
    workload = {
        "op": "conv_integer",
        "geometry": g.to_json(),
        "layout": layout,
        "x": [str(x_v.type.dtype), zero],
        "tables": len(rows),
        "epilogue": chain.describe(),
        "knobs": knobs.to_json(),
    }
    flops = 2 * g.n * g.m * positions * g.c * g.kh * g.kw + chain.flops(result.type.size)
    vector_out = layout != "NCHW"
    schedule = partial(
        schedule_integer_gemm, knobs=knobs, stages=["pad"], vector_out=vector_out, channels=g.m, dot=step
    )
    return finish_kernel(node, epilogue, "convint", workload, schedule, params, args, flops, layout, pack)


def conv_output(
    node: Node, g: Geometry, chain: Epilogue, layout: str, x: Any, wp: Any, ctab: Any,
    acc_at: Callable[[Any, Any, Any], Any],
) -> tuple[Any, Any, Any]:  # fmt: skip
    """(params, args, result) of a dense integer conv whose GEMM value at (n, position, o) is
    `acc_at`: the "out" stage adds ctab row 0 (the corrected bias) and runs the fused epilogue,
    (n, M, P) for NCHW, (n, P, M) for NHWC."""
    x_v, w_v = node.operands[0], node.operands[1]
    assert x_v is not None and w_v is not None
    nchw = layout == "NCHW"
    positions = g.oh * g.ow
    out_shape = (g.n, g.m, positions) if nchw else (g.n, positions, g.m)
    result = chain.result or node.results[0]

    def finish(*i: Any) -> Any:
        n, o, p = i if nchw else (i[0], i[2], i[1])
        return chain.apply(ctab[0, o] + acc_at(n, p, o), (n, o, p // g.ow, p % g.ow))

    out = te.compute(out_shape, finish, name="out")
    anchor = [
        (x, arg(x_v, "input", x.shape)),
        (wp, KernelArg(w_v.name, "weight", tuple(int(d) for d in wp.shape), "int8")),
    ]
    output = KernelArg(result.name, "output", out_shape, output_arg(result).dtype)
    params, args = epilogue_signature(anchor, chain, out, output)
    return params, args, result


def conv_packer(
    node: Node, g: Geometry, cp: int, rows: Sequence[np.ndarray], zero: int, depth: int, k_step: int = 0,
    m_step: int = LANES,
) -> Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]:  # fmt: skip
    """Packs the conv's weight as (kh, kw, channels padded to `cp`) x M rows with the corrected bias
    for u8 zero point `zero` and the tables' `rows` (`pack_integer_weights`)."""
    w_v, bias = node.operands[1], bias_array(node)
    assert w_v is not None
    name, k = w_v.name, g.kh * g.kw * cp

    def pack(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        packed = {key: np.ascontiguousarray(a) for key, a in arrays.items()}
        w = np.zeros((g.m, cp, g.kh, g.kw), np.int8)
        w[:, : g.c] = arrays[name]
        w_ko = w.transpose(2, 3, 1, 0).reshape(k, g.m)
        words = [corrected_bias(w_ko, bias, zero), *rows]
        packed[name] = pack_integer_weights(w_ko, words, depth, k_step, m_step)
        return packed

    return pack


def lower_grouped(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    """Any group count, NCHW: plain int32 sums of (x - zx) * w; tables after each channel's weights.

    One tile per (n, output channel): its group's input planes are copied padded into a u8
    NCHW "pad" stage inside the tile (contiguous rows, in cache), the int32 sums of one output
    row run vectorised along it (over whole vectors: rows of 16 or more outputs are summed
    `row_vectors` wide, the pad stage wide enough, the extra sums never stored), then the
    epilogue; tiles run in parallel above PARALLEL_MIN_MACS."""
    if layout != "NCHW":
        raise LoweringError(f"node {node.name!r}: grouped ConvInteger is lowered NCHW only")
    g = Geometry(node)
    x_v, w_v = node.operands[0], node.operands[1]
    assert x_v is not None and w_v is not None
    shift, zero = activation_zero(x_v)
    chain = conv_epilogue(node, epilogue, layout)
    chain.tables = tables = fused_tables(chain.nodes, 1)
    cg, mg = g.c // g.group, g.m // g.group
    k, count = cg * g.kh * g.kw, 1 + len(tables.rows)
    x = te.placeholder(g.in_shape(layout), x_v.type.dtype.numpy.name, name="x")
    sums = padded(g.ow, LANES) if g.ow >= LANES else g.ow
    width = (sums - 1) * g.stride[1] + (g.kw - 1) * g.dilation[1] + 1
    xq = u8_input(x, g, layout, g.c, shift, zero, channels_last=False, width=width)
    wg = te.placeholder((g.m, k + DEPTH * count), "int8", name="Wg")
    tables.ctab = ctab = table_stage(lambda t, o, b: wg[o, k + DEPTH * t + b], count, g.m)
    rc, rkh, rkw = (
        te.reduce_axis((0, cg), "c"),
        te.reduce_axis((0, g.kh), "kh"),
        te.reduce_axis((0, g.kw), "kw"),
    )
    (sh, sw), (dh, dw) = g.stride, g.dilation

    def window(n: Any, o: Any, y: Any, xx: Any) -> Any:
        read = xq[n, (o // mg) * cg + rc, y * sh + rkh * dh, xx * sw + rkw * dw].astype("int32")
        weight = wg[o, (rc * g.kh + rkh) * g.kw + rkw].astype("int32")
        return te.sum(read * weight, axis=[rc, rkh, rkw])

    acc = te.compute((g.n, g.m, g.oh, sums), window, name="acc")
    out = te.compute(
        g.out_shape("NCHW"),
        lambda n, o, y, xx: chain.apply(ctab[0, o] + acc[n, o, y, xx], (n, o, y, xx)),
        name="out",
    )
    result = chain.result or node.results[0]
    anchor = [
        (x, arg(x_v, "input", x.shape)),
        (wg, KernelArg(w_v.name, "weight", tuple(int(d) for d in wg.shape), "int8")),
    ]
    params, args = epilogue_signature(anchor, chain, out, output_arg(result))
    bias, w_name, rows = bias_array(node), w_v.name, list(tables.rows)

    def pack(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        packed = {name: np.ascontiguousarray(a) for name, a in arrays.items()}
        w = np.asarray(arrays[w_name], np.int8).reshape(g.m, k)
        corrected = corrected_bias(w.T, bias, zero)
        packed[w_name] = np.ascontiguousarray(
            np.concatenate([w, table_bytes([corrected, *rows], g.m)], axis=1)
        )
        return packed

    macs = g.n * g.m * g.oh * g.ow * cg * g.kh * g.kw
    parallel = macs >= PARALLEL_MIN_MACS
    workload = {"op": "conv_integer_grouped", "geometry": g.to_json(), "x": [str(x_v.type.dtype), zero],
                "tables": len(rows), "epilogue": chain.describe(), "schedule": [2, parallel]}  # fmt: skip
    flops = 2 * macs + chain.flops(result.type.size)
    schedule = partial(schedule_grouped, row=g.ow, sums=sums, parallel=parallel)
    return finish_kernel(node, epilogue, "convintg", workload, schedule, params, args, flops, layout, pack)


def schedule_grouped(sch: Any, row: int, sums: int, parallel: bool) -> None:
    """Tiles over (n, o), pad and sums inside each tile, rows vectorised (see lower_grouped)."""
    acc, out = sch.get_sblock("acc"), sch.get_sblock("out")
    n, o, y, ax, *reduce = sch.get_loops(acc)
    tile = sch.fuse(n, o)
    sch.compute_inline(sch.get_sblock("ctab"))  # reverse_compute_at wants out's producers under the tile
    sch.reverse_compute_at(out, y)
    sch.compute_at(sch.get_sblock("pad"), tile)
    if parallel:  # before decompose_reduction, which leaves blocks parallel refuses
        sch.parallel(tile)
    if sums % LANES == 0:
        xo, xi = sch.split(ax, [None, LANES])
        sch.reorder(xo, *reduce, xi)
        sch.vectorize(xi)
        init = sch.decompose_reduction(acc, reduce[0])
        sch.vectorize(sch.get_loops(init)[-1])
    if row % LANES == 0:
        sch.vectorize(sch.split(sch.get_loops(out)[-1], [None, LANES])[1])


def lower_conv_integer(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    x = node.operands[0]
    if x is None or x.type.rank != 4:
        raise LoweringError(f"node {node.name!r}: only 2-D ConvInteger is lowered, got X {x and x.type}")
    g = Geometry(node)
    return (lower_dense if g.group == 1 else lower_grouped)(node, target, epilogue, layout)
