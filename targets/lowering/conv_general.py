"""The general N-D convolution template: any rank, any group, any float dtype, and ConvTranspose.

Rule: out[n, m, o...] = sum over (c, k...) of src[n, g(m) * C/group + c, o * stride + k * dilation]
* w(m, c, k...), with src a staged copy of the input: zero-padded for Conv,
and for ConvTranspose zero-upsampled by the stride and padded so the same
formula holds with the weight read flipped and regrouped (W[g*C/g + c, m % M/g,
K-1-k]); weights are read in the IR's layout (no packing, run-time weights
work). The accumulator vectorises along the last output dim; bias and the
fused epilogue are applied as it is written, at the IR (NCHW) index. This is
the fallback behind the fast 2-D templates (dense and depthwise fp32 in conv.py,
kernel == stride ConvTranspose in conv_transpose.py, which registers ConvTranspose).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from tvm import te

from ir.graph import Node
from ir.ops.window import Window, span
from targets.lowering.elementwise import Epilogue, epilogue_args
from targets.lowering.generic import (
    FLOATS,
    Param,
    check_dtypes,
    make_kernel,
    operand_param,
    output_param,
    schedule_injective,
    schedule_reduce,
    work_dtype,
)
from targets.lowering.kernel import LoweredKernel, LoweringError
from targets.lowering.pointwise import narrow
from targets.lowering.weight_only import weight_params
from targets.target import TargetDescription


def padded_source(x: Any, window: Window, spatial: Sequence[int], work: str) -> tuple[Any, list[int]]:
    """x zero-padded by the window's pads (a stage), and its spatial extents."""
    dims = window.dims(spatial)
    extents = [d.begin + d.size + d.end for d in dims]
    if not any(window.pads):
        return te.compute(x.shape, lambda *i: x[i].astype(work), name="src"), extents

    def fill(n: Any, c: Any, *p: Any) -> Any:
        coords = [pi - d.begin for pi, d in zip(p, dims, strict=True)]
        inside = te.all(*[q >= 0 for q in coords], *[q < d.size for q, d in zip(coords, dims, strict=True)])
        return te.if_then_else(inside, x[(n, c, *coords)].astype(work), te.const(0, work))

    return te.compute((*x.shape[:2], *extents), fill, name="src"), extents


def upsampled_source(
    x: Any, window: Window, spatial: Sequence[int], out: Sequence[int], work: str
) -> tuple[Any, list[int]]:
    """The ConvTranspose input as a Conv sees it: x[i] sits at i * stride + offset, zeros elsewhere."""
    dims = window.dims(spatial)
    offsets = [span(d.kernel, d.dilation) - 1 - d.begin for d in dims]
    extents = [o + span(d.kernel, d.dilation) - 1 for o, d in zip(out, dims, strict=True)]

    def fill(n: Any, c: Any, *p: Any) -> Any:
        checks, coords = [], []
        for pi, d, off in zip(p, dims, offsets, strict=True):
            shifted = pi - off
            i = te.floordiv(shifted, d.stride)
            checks += [te.floormod(shifted, d.stride) == 0, i >= 0, i < d.size]
            coords.append(i)
        return te.if_then_else(te.all(*checks), x[(n, c, *coords)].astype(work), te.const(0, work))

    return te.compute((*x.shape[:2], *extents), fill, name="src"), extents


def lower_general_conv(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    """Conv or ConvTranspose of any rank and group in the IR's layout."""
    if layout != "NCHW":
        raise LoweringError(f"node {node.name!r}: the general {node.op} template is NCHW only")
    dtype = check_dtypes(node, FLOATS)
    work = work_dtype(dtype)
    x_v, w_v = node.operands[0], node.operands[1]
    b_v = node.operands[2] if len(node.operands) > 2 else None
    assert x_v is not None and w_v is not None
    transposed = node.op == "ConvTranspose"
    attrs = node.attrs
    group = int(attrs["group"])
    n, channels, *spatial = x_v.type.shape
    kernel = tuple(w_v.type.shape[2:])
    window = Window.from_attrs(attrs, kernel)
    result = node.results[0]
    out_shape = tuple(result.type.shape)
    m_total = out_shape[1]
    c_per, m_per = channels // group, m_total // group
    x_param = operand_param(x_v, "x", role="input")
    x = x_param.tensor
    stored = weight_params(node, "w") if not transposed else None
    w, *w_parts = stored[1] if stored is not None else [operand_param(w_v, "w")]
    bias = operand_param(b_v, "bias") if b_v is not None else None
    if transposed:
        src, _ = upsampled_source(x, window, spatial, out_shape[2:], work)
        strides = (1,) * len(kernel)
    else:
        src, _ = padded_source(x, window, spatial, work)
        strides = window.strides
    rc = te.reduce_axis((0, c_per), "c")
    rk = [te.reduce_axis((0, k), f"k{i}") for i, k in enumerate(kernel)]

    def weight(m: Any) -> Any:
        if not transposed:
            return w.tensor[(m, rc, *rk)].astype(work)
        flipped = [k_size - 1 - k for k, k_size in zip(rk, kernel, strict=True)]
        return w.tensor[((m // m_per) * c_per + rc, m % m_per, *flipped)].astype(work)

    def window_sum(nn: Any, m: Any, *o: Any) -> Any:
        coords = [oi * s + k * d for oi, s, k, d in zip(o, strides, rk, window.dilations, strict=True)]
        channel = (m // m_per) * c_per + rc if group > 1 else rc
        return te.sum(src[(nn, channel, *coords)] * weight(m), axis=[rc, *rk])

    acc = te.compute(out_shape, window_sum, name="acc")
    chain = Epilogue.build(result, epilogue)

    def finish(*i: Any) -> Any:
        value = acc[i]
        if bias is not None:
            value = value + bias.tensor[i[1]].astype(work)
        return chain.apply(narrow(value, result.type.dtype), i)

    out = te.compute(out_shape, finish, name="out")
    extra, extra_args = epilogue_args(chain)
    params = [
        x_param,
        w,
        *w_parts,
        *([bias] if bias is not None else []),
        *[Param(t, a) for t, a in zip(extra, extra_args)],
        output_param(out, chain.result or result),
    ]
    macs = math.prod(out_shape) * c_per * math.prod(kernel)
    lanes = target.vector_lanes_f32
    workload = {
        "op": "conv_general",
        "transposed": transposed,
        "x": list(x_v.type.shape),
        "w": [list(w_v.type.shape), w.arg.role],
        "bias": None if bias is None else bias.arg.role,
        "dtype": dtype,
        "window": [list(window.kernel), list(window.strides), list(window.pads), list(window.dilations)],
        "group": group,
        "out": list(out_shape),
        "epilogue": chain.describe(),
        "lanes": lanes,
    }
    if stored is not None:
        stored[0].add_to(workload)

    def schedule(sch: Any) -> None:
        schedule_injective(sch, "src", lanes, macs)
        schedule_reduce(sch, "acc", lanes, macs, consumers=["out"])

    flops = 2 * macs + chain.flops(math.prod(out_shape))
    pack = stored[0].pack_all if stored is not None else None
    return make_kernel(node, "convg", workload, params, flops, schedule, epilogue=epilogue, pack=pack)
