"""ONNX converters: shape family (Reshape, Flatten, Transpose, Squeeze, Unsqueeze, Concat, Split,
Expand, Tile, Pad).

Rule: every opset's form (attributes in old opsets, inputs in new ones) is read
here and resolved into the IR op's explicit attributes: Reshape's 0 and -1,
negative axes, default perms, equal Split sizes, Pad's axes and constant value.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from hai_compiler.onnx_import.converter import ConversionContext, converter
from ir import Value
from ir.ops.common import broadcast_shapes, normalize_axes, normalize_axis


def static_ints(ctx: ConversionContext, index: int, what: str) -> list[int] | None:
    """A compile-time input of integers as a list of ints (None when the input is absent)."""
    array = ctx.static_input(index, what)
    if array is None:
        return None
    array = np.asarray(array)
    if array.dtype.kind not in "iu":
        raise ctx.fail(f"{what} must be an integer tensor, got {array.dtype}")
    return [int(v) for v in array.reshape(-1)]


def attr_or_input(ctx: ConversionContext, name: str, index: int, since: int) -> list[int] | None:
    """Ints that opsets before `since` give as attribute `name` and later ones as input `index`."""
    if ctx.opset >= since:
        return static_ints(ctx, index, name)
    value = ctx.attrs.get(name)
    return None if value is None else [int(v) for v in value]


def required_input(ctx: ConversionContext, index: int = 0) -> Value:
    """A required data input."""
    value = ctx.input(index)
    if value is None:
        raise ctx.fail(f"input {index} is required")
    return value


def resolve_reshape(
    ctx: ConversionContext, shape: Sequence[int], dims: Sequence[int], allowzero: bool
) -> list[int]:
    """ONNX Reshape's target: 0 copies the input dim (unless allowzero), one -1 is inferred."""
    out = []
    for i, d in enumerate(shape):
        if d == 0 and not allowzero:
            if i >= len(dims):
                raise ctx.fail(f"shape {list(shape)} copies dim {i} (a 0) of a rank-{len(dims)} input")
            d = dims[i]
        elif d < -1:
            raise ctx.fail(f"shape {list(shape)} has the invalid dim {d}")
        out.append(d)
    if out.count(-1) > 1:
        raise ctx.fail(f"shape {list(shape)} has more than one -1")
    if -1 in out:
        known = math.prod(d for d in out if d != -1)
        total = math.prod(dims)
        if known == 0 or total % known:
            raise ctx.fail(f"cannot infer the -1 of shape {list(shape)} for an input of shape {list(dims)}")
        out[out.index(-1)] = total // known
    return out


@converter("Reshape")
def reshape(ctx: ConversionContext) -> list[Value]:
    x = required_input(ctx)
    shape = static_ints(ctx, 1, "shape")
    if shape is None:
        raise ctx.fail("input 1 (shape) is required")
    target = resolve_reshape(ctx, shape, x.type.shape, bool(ctx.attrs.get("allowzero", 0)))
    return ctx.emit("Reshape", [x], {"shape": target})


@converter("Flatten")
def flatten(ctx: ConversionContext) -> list[Value]:
    x = required_input(ctx)
    axis = int(ctx.attrs.get("axis", 1))
    if not -x.type.rank <= axis <= x.type.rank:
        raise ctx.fail(f"axis {axis} is out of range for rank {x.type.rank}")
    return ctx.emit("Flatten", [x], {"axis": axis + x.type.rank if axis < 0 else axis})


@converter("Transpose")
def transpose(ctx: ConversionContext) -> list[Value]:
    x = required_input(ctx)
    perm = ctx.attrs.get("perm") or list(reversed(range(x.type.rank)))
    return ctx.emit("Transpose", [x], {"perm": normalize_axes(perm, x.type.rank, "perm")})


@converter("Squeeze")
def squeeze(ctx: ConversionContext) -> list[Value]:
    x = required_input(ctx)
    axes = attr_or_input(ctx, "axes", 1, since=13)
    if not axes:  # absent (or empty): every size-1 axis
        resolved = tuple(i for i, d in enumerate(x.type.shape) if d == 1)
    else:
        resolved = normalize_axes(axes, x.type.rank)
    return ctx.emit("Squeeze", [x], {"axes": sorted(resolved)})


@converter("Unsqueeze")
def unsqueeze(ctx: ConversionContext) -> list[Value]:
    x = required_input(ctx)
    axes = attr_or_input(ctx, "axes", 1, since=13)
    if axes is None:
        raise ctx.fail("axes are required")
    resolved = normalize_axes(axes, x.type.rank + len(axes))
    return ctx.emit("Unsqueeze", [x], {"axes": sorted(resolved)})


@converter("Concat")
def concat(ctx: ConversionContext) -> list[Value]:
    inputs = [required_input(ctx, i) for i in range(len(ctx.inputs))]
    if not inputs:
        raise ctx.fail("Concat needs at least one input")
    axis = normalize_axis(int(ctx.attrs.get("axis", 1)), inputs[0].type.rank)
    return ctx.emit("Concat", inputs, {"axis": axis})


def equal_split(ctx: ConversionContext, dim: int, parts: int) -> list[int]:
    """ONNX's split without sizes: ceil(dim / parts) each, the last one smaller if need be."""
    if parts <= 0:
        raise ctx.fail("Split needs at least one output")
    chunk = -(-dim // parts)
    sizes = [min(chunk, max(dim - i * chunk, 0)) for i in range(parts)]
    if sum(sizes) != dim or (parts > 1 and sizes[-1] == 0 and dim % parts):
        raise ctx.fail(f"cannot split a dim of {dim} into {parts} parts")
    return sizes


@converter("Split")
def split(ctx: ConversionContext) -> list[Value]:
    x = required_input(ctx)
    axis = normalize_axis(int(ctx.attrs.get("axis", 0)), x.type.rank)
    sizes = attr_or_input(ctx, "split", 1, since=13)
    if not sizes:
        parts = int(ctx.attrs.get("num_outputs", len(ctx.node.output)))
        sizes = equal_split(ctx, x.type.shape[axis], parts)
    if len(sizes) != len(ctx.node.output):
        raise ctx.fail(f"split sizes {sizes} do not match the node's {len(ctx.node.output)} outputs")
    return ctx.emit("Split", [x], {"axis": axis, "split": sizes})


@converter("Expand")
def expand(ctx: ConversionContext) -> list[Value]:
    x = required_input(ctx)
    shape = static_ints(ctx, 1, "shape")
    if shape is None:
        raise ctx.fail("input 1 (shape) is required")
    return ctx.emit("Expand", [x], {"shape": broadcast_shapes(x.type.shape, shape)})


@converter("Tile")
def tile(ctx: ConversionContext) -> list[Value]:
    repeats = static_ints(ctx, 1, "repeats")
    if repeats is None:
        raise ctx.fail("input 1 (repeats) is required")
    return ctx.emit("Tile", [required_input(ctx)], {"repeats": repeats})


def pad_value(ctx: ConversionContext) -> float:
    if ctx.opset < 11:
        return float(ctx.attrs.get("value", 0.0))
    array = ctx.static_input(2, "constant_value")
    if array is None or array.size == 0:
        return 0.0
    return float(np.asarray(array).reshape(-1)[0])


@converter("Pad")
def pad(ctx: ConversionContext) -> list[Value]:
    x = required_input(ctx)
    rank = x.type.rank
    pads = attr_or_input(ctx, "pads", 1, since=11)
    if pads is None:
        raise ctx.fail("pads are required")
    axes = static_ints(ctx, 3, "axes") if ctx.opset >= 18 else None
    axes = list(range(rank)) if axes is None else list(normalize_axes(axes, rank))
    if len(pads) != 2 * len(axes):
        raise ctx.fail(f"pads {pads} must hold 2 values for each of the {len(axes)} padded axes")
    full = [0] * (2 * rank)
    for i, axis in enumerate(axes):
        full[axis], full[rank + axis] = pads[i], pads[len(axes) + i]
    mode = ctx.attrs.get("mode", "constant")
    return ctx.emit("Pad", [x], {"pads": full, "mode": mode, "value": pad_value(ctx)})
