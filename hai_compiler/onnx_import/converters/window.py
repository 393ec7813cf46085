"""Reading ONNX's window attributes (kernel_shape, strides, dilations, pads, auto_pad, ceil_mode).

Rule: whatever the opset and whichever attributes a node leaves out, the result
is the IR's explicit window: strides, dilations and `[begin..., end...]` pads of
the right lengths, with auto_pad already turned into pads (see `ir.ops.window`).
Shared by the conv and pooling converters.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hai_compiler.onnx_import.converter import ConversionContext
from ir import Value
from ir.ops.window import resolve_auto_pad


def spatial_input(ctx: ConversionContext, index: int = 0) -> Value:
    """A required (N, C, spatial...) input."""
    x = ctx.input(index)
    if x is None:
        raise ctx.fail(f"input {index} is required")
    if x.type.rank < 3:
        raise ctx.fail(f"input {index} must be (N, C, spatial...), got {x.type}")
    return x


def ints_attr(ctx: ConversionContext, name: str, default: Sequence[int], length: int) -> tuple[int, ...]:
    """An ints attribute (`default` when absent or empty) that must have `length` entries."""
    value = tuple(int(v) for v in ctx.attrs.get(name) or default)
    if len(value) != length:
        raise ctx.fail(f"{name} {list(value)} must have {length} entries")
    return value


def kernel_attr(
    ctx: ConversionContext, x: Value, weight_kernel: Sequence[int] | None = None
) -> tuple[int, ...]:
    """kernel_shape: the attribute, checked against the weight's spatial dims when there is a weight."""
    spatial = x.type.rank - 2
    given = ctx.attrs.get("kernel_shape")
    if weight_kernel is None:
        if not given:
            raise ctx.fail("kernel_shape is required")
        return ints_attr(ctx, "kernel_shape", (), spatial)
    kernel = tuple(weight_kernel)
    if given and tuple(int(k) for k in given) != kernel:
        raise ctx.fail(f"kernel_shape {list(given)} does not match the weight's spatial dims {list(kernel)}")
    return kernel


def window_attrs(
    ctx: ConversionContext, x: Value, kernel: Sequence[int], dilated_same: bool = True
) -> dict[str, Any]:
    """The explicit strides, dilations and pads of this node; auto_pad resolved against X's shape.

    SAME padding spans the dilated kernel for convolutions; pools pad for the
    undilated kernel (`dilated_same` False), as onnxruntime and the ONNX reference do.
    """
    n = len(kernel)
    spatial = x.type.shape[2:]
    if len(spatial) != n:
        raise ctx.fail(
            f"a {n}-D kernel {list(kernel)} does not fit input {x.type} ({len(spatial)} spatial dims)"
        )
    strides = ints_attr(ctx, "strides", (1,) * n, n)
    dilations = ints_attr(ctx, "dilations", (1,) * n, n)
    pads = ints_attr(ctx, "pads", (0,) * (2 * n), 2 * n)
    auto_pad = str(ctx.attrs.get("auto_pad", "NOTSET"))
    resolved = resolve_auto_pad(auto_pad, spatial, kernel, strides, dilations if dilated_same else (1,) * n)
    return {"strides": strides, "dilations": dilations, "pads": resolved if resolved is not None else pads}


def pool_window_attrs(ctx: ConversionContext, x: Value, kernel: Sequence[int]) -> dict[str, Any]:
    """A pooling window: `window_attrs` plus kernel_shape and ceil_mode (0 under SAME, whose pads fit)."""
    attrs = window_attrs(ctx, x, kernel, dilated_same=False)
    same = str(ctx.attrs.get("auto_pad", "NOTSET")).startswith("SAME")
    return {
        **attrs,
        "kernel_shape": tuple(kernel),
        "ceil_mode": 0 if same else int(ctx.attrs.get("ceil_mode", 0)),
    }
