"""ONNX converters: conv family (Conv, ConvTranspose), every opset from 7 on.

Rule: the IR gets explicit strides, dilations, pads and group; kernel_shape is
checked against the weight and dropped; auto_pad becomes pads; ConvTranspose's
output_shape and auto_pad become explicit pads and output_padding.
"""

from __future__ import annotations

from hai_compiler.onnx_import.converter import ConversionContext, converter
from hai_compiler.onnx_import.converters.window import ints_attr, kernel_attr, spatial_input, window_attrs
from ir import Value
from ir.ops.window import AUTO_PADS, transposed_pads_for_shape


def _weight(ctx: ConversionContext, x: Value) -> Value:
    w = ctx.input(1)
    if w is None:
        raise ctx.fail("input 1 (W) is required")
    if w.type.rank != x.type.rank:
        raise ctx.fail(f"W {w.type} must have the rank of X {x.type}")
    return w


@converter("Conv")
def conv(ctx: ConversionContext) -> list[Value]:
    x = spatial_input(ctx)
    w = _weight(ctx, x)
    kernel = kernel_attr(ctx, x, w.type.shape[2:])
    attrs = {**window_attrs(ctx, x, kernel), "group": int(ctx.attrs.get("group", 1))}
    return ctx.emit("Conv", [x, w, ctx.input(2)], attrs)


@converter("ConvTranspose")
def conv_transpose(ctx: ConversionContext) -> list[Value]:
    x = spatial_input(ctx)
    w = _weight(ctx, x)
    kernel = kernel_attr(ctx, x, w.type.shape[2:])
    n = len(kernel)
    spatial = x.type.shape[2:]
    strides = ints_attr(ctx, "strides", (1,) * n, n)
    dilations = ints_attr(ctx, "dilations", (1,) * n, n)
    pads = ints_attr(ctx, "pads", (0,) * (2 * n), 2 * n)
    output_padding = ints_attr(ctx, "output_padding", (0,) * n, n)
    auto_pad = str(ctx.attrs.get("auto_pad", "NOTSET"))
    if auto_pad not in AUTO_PADS:
        raise ctx.fail(f"auto_pad '{auto_pad}' is not one of {', '.join(AUTO_PADS)}")
    output_shape = [int(v) for v in ctx.attrs.get("output_shape") or ()]
    if len(output_shape) == n + 2:
        output_shape = output_shape[2:]  # some exporters give the full (N, C, spatial...) shape
    if output_shape and len(output_shape) != n:
        raise ctx.fail(f"output_shape {output_shape} must have {n} entries")
    if not output_shape and auto_pad.startswith("SAME"):
        output_shape = [size * s for size, s in zip(spatial, strides, strict=True)]
    if output_shape:
        pads, output_padding = transposed_pads_for_shape(
            auto_pad, spatial, kernel, strides, dilations, output_padding, output_shape
        )
    elif auto_pad == "VALID":
        pads = (0,) * (2 * n)
    attrs = {
        "strides": strides,
        "dilations": dilations,
        "pads": pads,
        "output_padding": output_padding,
        "group": int(ctx.attrs.get("group", 1)),
    }
    return ctx.emit("ConvTranspose", [x, w, ctx.input(2)], attrs)
