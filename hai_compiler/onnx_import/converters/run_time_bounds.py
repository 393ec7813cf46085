"""Slice and Range bounds computed at run time whose span is known: `x[i : i + k]` in a Loop's body.

Rule: a bound is read as a *root value plus a constant*, looking through what
keeps a one-element value's number: reshapes (Unsqueeze, Squeeze, Reshape,
Flatten, Identity), Casts but to bool (the loop counters exporters write go
through float and back), `+ c`, `- c`, and a clamp by a constant (`Min`/`Max`, taken as not
biting: exporters clamp the end to the tensor's length, as Slice itself
does). When the start and the end have the same root, the span `end - start`
is a constant although both are computed at run time, and the result has a
static shape: the Slice becomes a `Gather` of `start + [0, k)` (clamped into
the tensor, so it never reads outside it), the Range `start + [0, n) * delta`.
Where the assumption fails at run time (a clamp that bites, a start outside the
tensor) ONNX would give a shorter result, which no static shape holds; the
Gather then repeats the edge rows instead. One run-time axis per Slice, step 1.
"""

from __future__ import annotations

import math

import numpy as np

from hai_compiler.onnx_import.converter import ConversionContext
from ir import Value
from ir.dtypes import DType
from ir.ops.common import normalize_axis

KEEP_NUMBER = ("Unsqueeze", "Squeeze", "Reshape", "Flatten", "Identity", "Cast")
CLAMPS = ("Min", "Max")


def _scalar(value: Value) -> float | None:
    if value.is_constant and value.type.size == 1:
        return float(np.asarray(value.constant_array()).reshape(-1)[0])
    return None


def offset_form(value: Value) -> tuple[Value | None, float]:
    """(root, c) with `value` = root + c as the module rule reads it (root None: a constant c)."""
    offset = 0.0
    while True:
        constant = _scalar(value)
        if constant is not None:
            return None, offset + constant
        node = value.producer
        if node is None or value.type.size != 1:
            return value, offset
        operands = [o for o in node.operands if o is not None]
        if node.op in KEEP_NUMBER and not (node.op == "Cast" and node.attrs["to"] is DType.BOOL):
            value = operands[0]
            continue
        known = [(k, c) for k, o in enumerate(operands) if (c := _scalar(o)) is not None]
        if node.op not in ("Add", "Sub", *CLAMPS) or len(operands) != 2 or len(known) != 1:
            return value, offset
        (position, c), other = known[0], operands[1 - known[0][0]]
        if node.op == "Sub" and position == 0:
            return value, offset  # c - x: not a shift of x
        offset += c if node.op == "Add" else -c if node.op == "Sub" else 0.0
        value = other


def static_span(start: Value, end: Value) -> int | None:
    """`end - start` when both are the same run-time value plus constants (module rule), else None."""
    (a, low), (b, high) = offset_form(start), offset_form(end)
    if a is None or a is not b or high - low != round(high - low):
        return None
    return int(round(high - low))


def _counter(ctx: ConversionContext, value: Value, dtype: DType) -> Value:
    """`value` (one element) as a scalar of `dtype`."""
    (scalar,) = ctx.emit("Reshape", [value], {"shape": []})
    if scalar.type.dtype is not dtype:
        (scalar,) = ctx.emit("Cast", [scalar], {"to": dtype})
    return scalar


def run_time_slice(ctx: ConversionContext, x: Value) -> list[Value] | None:
    """Slice `x` (opset 10+) whose starts and ends are computed at run time with a static span, as a
    Gather (module rule); None when it is not that."""
    starts, ends = ctx.input(1), ctx.input(2)
    extra = [ctx.input(k) for k in (3, 4)]
    if starts is None or ends is None or starts.type.size != 1 or ends.type.size != 1:
        return None
    if any(v is not None and not v.is_constant for v in extra):
        return None
    axis, step = (int(_scalar(v) or 0) if v is not None else d for v, d in zip(extra, (0, 1), strict=True))
    span = static_span(starts, ends)
    if span is None or step != 1 or span < 0:
        return None
    axis = normalize_axis(axis, x.type.rank)
    dim = x.type.shape[axis]
    span = min(span, dim)
    start = _counter(ctx, starts, DType.I64)
    (indices,) = ctx.emit("Add", [start, ctx.constant(np.arange(span, dtype=np.int64), "offsets")])
    (indices,) = ctx.emit("Max", [indices, ctx.constant(np.array(0, np.int64), "first")])
    (indices,) = ctx.emit("Min", [indices, ctx.constant(np.array(max(dim - 1, 0), np.int64), "last")])
    return ctx.emit("Gather", [x, indices], {"axis": axis})


def run_time_range(ctx: ConversionContext) -> list[Value] | None:
    """Range whose start and limit are computed at run time with a static span and a constant delta,
    as `start + [0, n) * delta` (module rule); None when it is not that."""
    start, limit, delta = (ctx.input(k) for k in range(3))
    if start is None or limit is None or delta is None or start.type.size != 1:
        return None
    step = _scalar(delta)
    span = static_span(start, limit)
    if step is None or step == 0 or span is None:
        return None
    count = max(math.ceil(span / step), 0)
    dtype = start.type.dtype
    offsets = (np.arange(count) * step).astype(dtype.numpy)
    return ctx.emit("Add", [_counter(ctx, start, dtype), ctx.constant(offsets, "offsets")])
