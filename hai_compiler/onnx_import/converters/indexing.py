"""ONNX converters: indexing family (Slice, Gather, GatherElements, GatherND, ScatterND,
ScatterElements, Trilu, OneHot, NonZero).

Rule: Slice bounds (attributes before opset 10, inputs after) are resolved with
`resolve_slice` into explicit, clamped starts/ends/axes/steps (bounds computed
at run time with a static span, `x[i : i + 1]` in a Loop's body, become a
Gather: converters/run_time_bounds.py); axes become
non-negative; index tensors stay data operands. The deprecated Scatter (opset
9-10) is ScatterElements without a reduction. NonZero's result shape depends
on the data, so it is only imported when its input is a compile-time constant.
"""

from __future__ import annotations

import numpy as np

from hai_compiler.onnx_import.converter import ConversionContext, StaticOperandError, converter
from hai_compiler.onnx_import.converters.run_time_bounds import run_time_slice
from hai_compiler.onnx_import.converters.shape import attr_or_input, required_input, static_ints
from ir import Value
from ir.ops.common import normalize_axes, normalize_axis
from ir.ops.indexing import resolve_slice


@converter("Slice")
def slice_(ctx: ConversionContext) -> list[Value]:
    x = required_input(ctx)
    dims = x.type.shape
    try:
        starts = attr_or_input(ctx, "starts", 1, since=10)
        ends = attr_or_input(ctx, "ends", 2, since=10)
    except StaticOperandError:
        sliced = run_time_slice(ctx, x) if ctx.opset >= 10 else None
        if sliced is None:
            raise
        return sliced
    if starts is None or ends is None or len(starts) != len(ends):
        raise ctx.fail("starts and ends are required and must have the same length")
    axes = attr_or_input(ctx, "axes", 3, since=10) or list(range(len(starts)))
    steps = (static_ints(ctx, 4, "steps") if ctx.opset >= 10 else None) or [1] * len(starts)
    if not len(axes) == len(steps) == len(starts):
        raise ctx.fail(
            f"starts, ends, axes and steps differ in length ({len(starts)}, {len(axes)}, {len(steps)})"
        )
    axes = list(normalize_axes(axes, len(dims)))
    if 0 in steps:
        raise ctx.fail("steps must not be 0")
    bounds = [resolve_slice(dims[a], s, e, st) for a, s, e, st in zip(axes, starts, ends, steps, strict=True)]
    attrs = {"starts": [b[0] for b in bounds], "ends": [b[1] for b in bounds], "axes": axes, "steps": steps}
    return ctx.emit("Slice", [x], attrs)


def _axis(ctx: ConversionContext, rank: int, default: int = 0) -> int:
    return normalize_axis(int(ctx.attrs.get("axis", default)), rank)


@converter("Gather", "GatherElements")
def gather(ctx: ConversionContext) -> list[Value]:
    x = required_input(ctx)
    return ctx.emit(ctx.op_type, [x, required_input(ctx, 1)], {"axis": _axis(ctx, x.type.rank)})


@converter("GatherND")
def gather_nd(ctx: ConversionContext) -> list[Value]:
    return ctx.emit(
        "GatherND",
        [required_input(ctx), required_input(ctx, 1)],
        {"batch_dims": int(ctx.attrs.get("batch_dims", 0))},
    )


@converter("ScatterND")
def scatter_nd(ctx: ConversionContext) -> list[Value]:
    operands = [required_input(ctx, i) for i in range(3)]
    return ctx.emit("ScatterND", operands, {"reduction": ctx.attrs.get("reduction", "none")})


@converter("ScatterElements", "Scatter")
def scatter_elements(ctx: ConversionContext) -> list[Value]:
    data = required_input(ctx)
    operands = [data, required_input(ctx, 1), required_input(ctx, 2)]
    attrs = {"axis": _axis(ctx, data.type.rank), "reduction": ctx.attrs.get("reduction", "none")}
    return ctx.emit("ScatterElements", operands, attrs)


@converter("Trilu")
def trilu(ctx: ConversionContext) -> list[Value]:
    k = static_ints(ctx, 1, "k")
    return ctx.emit(
        "Trilu", [required_input(ctx)], {"upper": int(ctx.attrs.get("upper", 1)), "k": k[0] if k else 0}
    )


@converter("OneHot")
def one_hot(ctx: ConversionContext) -> list[Value]:
    indices = required_input(ctx)
    depth = ctx.static_input(1, "depth")
    if depth is None or depth.size != 1:
        raise ctx.fail("depth must be a scalar")
    axis = _axis(ctx, indices.type.rank + 1, default=-1)
    return ctx.emit(
        "OneHot", [indices, required_input(ctx, 2)], {"depth": int(depth.reshape(-1)[0]), "axis": axis}
    )


@converter("NonZero")
def non_zero(ctx: ConversionContext) -> list[Value]:
    x = required_input(ctx)
    if not x.is_constant:
        raise StaticOperandError(
            f"{ctx.where}: NonZero's result shape depends on the values of %{x.name}, "
            "which are computed at run time; HAI needs static shapes"
        )
    return [ctx.constant(np.array(np.nonzero(x.constant_array()), dtype=np.int64).reshape(x.type.rank, -1))]
