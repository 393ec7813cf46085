"""ONNX converters: pooling family (MaxPool, AveragePool, LpPool; the Global forms map as they are).

Rule: every opset (7+) becomes the IR's explicit window (kernel_shape, strides,
dilations, pads, ceil_mode; auto_pad resolved). MaxPool's Indices output turns
on the IR op's `return_indices`.
"""

from __future__ import annotations

from hai_compiler.onnx_import.converter import ConversionContext, converter
from hai_compiler.onnx_import.converters.window import kernel_attr, pool_window_attrs, spatial_input
from ir import Value


@converter("MaxPool")
def max_pool(ctx: ConversionContext) -> list[Value]:
    x = spatial_input(ctx)
    attrs = pool_window_attrs(ctx, x, kernel_attr(ctx, x))
    with_indices = ctx.output_used(1)
    storage_order = int(ctx.attrs.get("storage_order", 0)) if with_indices else 0
    attrs.update(return_indices=int(with_indices), storage_order=storage_order)
    return ctx.emit("MaxPool", [x], attrs)


@converter("AveragePool")
def average_pool(ctx: ConversionContext) -> list[Value]:
    x = spatial_input(ctx)
    attrs = pool_window_attrs(ctx, x, kernel_attr(ctx, x))
    attrs["count_include_pad"] = int(ctx.attrs.get("count_include_pad", 0))
    return ctx.emit("AveragePool", [x], attrs)


@converter("LpPool")
def lp_pool(ctx: ConversionContext) -> list[Value]:
    x = spatial_input(ctx)
    attrs = pool_window_attrs(ctx, x, kernel_attr(ctx, x))
    attrs["p"] = _integral_p(ctx)
    return ctx.emit("LpPool", [x], attrs)


@converter("GlobalLpPool")
def global_lp_pool(ctx: ConversionContext) -> list[Value]:
    return ctx.emit("GlobalLpPool", [spatial_input(ctx)], {"p": _integral_p(ctx)})


def _integral_p(ctx: ConversionContext) -> int:
    p = float(ctx.attrs.get("p", 2))
    if p != int(p) or p < 1:
        raise ctx.fail(f"p {p} must be a positive integer")
    return int(p)
