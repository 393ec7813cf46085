"""Templates of the image family: DepthToSpace, SpaceToDepth and Resize.

Rule: Resize follows `ir.ops.resampling` operation for operation. Nearest
picks one source index per changed axis: when the reference's index table for
an axis equals `(o * p + r) // q` (upsampling or downsampling by a ratio,
e.g. PP-OCR's ×2 asymmetric/floor) the kernel uses that integer formula,
checked against the table at compile time; otherwise it computes the source
coordinate in float64 as the reference does. Linear and cubic weight the taps
in float64 and nest the axes as the reference's separable passes (first axis
innermost), then saturate into the result dtype. A Resize of an NHWC region indexes its stored
axes (the channels last: nearest copies each position's channel row). Block ops are pure index
permutations over a 6-D view of the spatial axis.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from fractions import Fraction
from typing import Any

import ml_dtypes
import numpy as np
from tvm import te, tirx

from ir.dtypes import DType
from ir.graph import Node
from ir.ops.resampling import KERNELS, is_identity, nearest_indices, saturate, source_coordinates
from ir.types import LAYOUTS
from targets.lowering.elementwise import PARALLEL_MIN_ELEMENTS
from targets.lowering.kernel import LoweredKernel, LoweringError
from targets.lowering.movement import KernelBuilder, clamp, decode, encode, literal, rounded
from targets.lowering.registry import lowering
from targets.schedules import schedules_of
from targets.target import TargetDescription

Expr = Any


@lowering("DepthToSpace", "SpaceToDepth")
def lower_block(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    """The spatial side viewed as (N, C, H, b, W, b); the channel side is the flat NCHW tensor."""
    k = KernelBuilder(node, target, epilogue)
    b, dcr = node.attrs["blocksize"], node.attrs["mode"] == "DCR"
    deep = node.operands[0] if node.op == "DepthToSpace" else node.results[0]
    assert deep is not None
    n, c, h, w = deep.type.shape
    depth = c // (b * b)
    spatial = (n, depth, h, b, w, b)

    def channel(ci, i, j):
        return (i * b + j) * depth + ci if dcr else ci * b * b + i * b + j

    if node.op == "DepthToSpace":
        x = k.operand(0)
        out = te.compute(spatial, lambda nn, ci, hh, i, ww, j: x[nn, channel(ci, i, j), hh, ww], name="out")
    elif dcr:
        x = k.operand(0, spatial)
        out = te.compute(
            (n, b, b, depth, h, w), lambda nn, i, j, ci, hh, ww: x[nn, ci, hh, i, ww, j], name="out"
        )
    else:
        x = k.operand(0, spatial)
        out = te.compute(
            (n, depth, b, b, h, w), lambda nn, ci, i, j, hh, ww: x[nn, ci, hh, i, ww, j], name="out"
        )
    return k.finish([out], contiguous=node.op == "SpaceToDepth")


class Axis:
    """How one axis of Resize maps output index `o` to source taps."""

    def __init__(
        self,
        axis: int,
        in_len: int,
        out_len: int,
        scale: float,
        roi: tuple[float, float],
        attrs: Mapping[str, Any],
    ) -> None:
        self.axis, self.in_len, self.out_len, self.scale, self.roi = axis, in_len, out_len, scale, roi
        self.attrs = attrs
        self.coord_mode = attrs["coordinate_transformation_mode"]
        self.table = source_coordinates(self.coord_mode, out_len, in_len, scale, roi)

    def coordinate(self, o: Expr) -> Expr:
        """`source_coordinates` for one output index, in float64, same operations in the same order."""
        mode, in_len, out_len, scale = self.coord_mode, self.in_len, self.out_len, self.scale
        y = tirx.Cast("float64", o)
        resized = scale * in_len

        def f(v: float) -> Expr:
            return tirx.const(v, "float64")

        if mode == "align_corners":
            return f(0.0) if resized == 1 else y * f(in_len - 1) / f(resized - 1)
        if mode == "asymmetric":
            return y / f(scale)
        if mode == "tf_crop_and_resize":
            start, end = self.roi
            if resized == 1:
                return f((end - start) * (in_len - 1) / 2 + start * (in_len - 1))
            return y * f(end - start) * f(in_len - 1) / f(resized - 1) + f(start * (in_len - 1))
        if mode == "pytorch_half_pixel":
            return f(-0.5) if resized == 1 else (y + f(0.5)) / f(scale) - f(0.5)
        if mode == "half_pixel":
            return (y + f(0.5)) / f(scale) - f(0.5)
        if mode == "half_pixel_symmetric":
            return f(in_len / 2 * (1 - out_len / resized)) + (y + f(0.5)) / f(scale) - f(0.5)
        raise LoweringError(f"unknown coordinate_transformation_mode {mode!r}")

    def outside(self, o: Expr) -> Expr | None:
        """Whether tf_crop_and_resize extrapolates at `o` (None: never)."""
        if self.coord_mode != "tf_crop_and_resize":
            return None
        x = self.coordinate(o)
        return tirx.any(x < tirx.const(0.0, "float64"), x > tirx.const(self.in_len - 1, "float64"))

    def nearest_rule(self) -> tuple[int, int, int] | None:
        """(p, r, q) with clip(nearest index) == (o * p + r) // q for every o, if there is one."""
        want = np.clip(nearest_indices(self.table, self.attrs["nearest_mode"]), 0, max(self.in_len - 1, 0))
        ratio = Fraction(self.in_len, self.out_len)
        o = np.arange(self.out_len)
        for r in range(ratio.denominator):
            if np.array_equal((o * ratio.numerator + r) // ratio.denominator, want):
                return ratio.numerator, r, ratio.denominator
        return None

    def nearest(self, o: Expr) -> Expr:
        rule = self.nearest_rule()
        if rule is not None:
            p, r, q = rule
            return tirx.floordiv(o * p + r, q) if q > 1 else o * p + r
        x = self.coordinate(o)
        base = tirx.floor(x)
        frac = x - base
        mode = self.attrs["nearest_mode"]
        one, half = tirx.const(1.0, "float64"), tirx.const(0.5, "float64")
        if mode == "round_prefer_floor":
            base = tirx.Select(frac > half, base + one, base)
        elif mode == "round_prefer_ceil":
            base = tirx.Select(frac >= half, base + one, base)
        elif mode == "ceil":
            base = tirx.ceil(x)
        return clamp(tirx.Cast("int32", base), self.in_len)

    def taps(self, o: Expr) -> list[tuple[Expr, Expr]]:
        """(clamped source index, float64 weight) of every tap, as `tap_weights` computes them."""
        attrs = self.attrs
        kernel, support = KERNELS[attrs["mode"]]
        stretch = min(self.scale, 1.0) if attrs["antialias"] else 1.0
        first = math.floor(-support / stretch) + 1
        x = self.coordinate(o)
        base = tirx.Cast("int32", tirx.floor(x))
        indices = [base + t for t in range(first, 2 - first)]
        weights = [
            _kernel(attrs["mode"], (tirx.Cast("float64", i) - x) * _f(stretch), attrs) for i in indices
        ]
        if attrs["antialias"]:
            total = numpy_sum(weights)
            weights = [w / total for w in weights]
        if attrs["exclude_outside"]:
            zero = _f(0.0)
            weights = [
                tirx.Select(tirx.any(i < 0, i >= self.in_len), zero, w) for i, w in zip(indices, weights)
            ]
            total = numpy_sum(weights)
            total = tirx.Select(total == zero, _f(1.0), total)
            weights = [w / total for w in weights]
        return [(clamp(i, self.in_len), w) for i, w in zip(indices, weights, strict=True)]


def _f(v: float) -> Expr:
    return tirx.const(v, "float64")


def _kernel(mode: str, d: Expr, attrs: Mapping[str, Any]) -> Expr:
    if mode == "linear":
        return te.max(te.min(_f(1.0) - tirx.abs(d), _f(1.0)), _f(0.0))
    a = attrs["cubic_coeff_a"]
    d = tirx.abs(d)
    near = rounded((rounded(_f(a + 2) * d) - _f(a + 3)) * d * d) + _f(1.0)
    far = rounded((rounded((rounded(_f(a) * d) - _f(5 * a)) * d) + _f(8 * a)) * d) - _f(4 * a)
    return tirx.Select(d <= _f(1.0), near, tirx.Select(d < _f(2.0), far, _f(0.0)))


def numpy_sum(terms: Sequence[Expr]) -> Expr:
    """Sum in numpy's order for a contiguous row (pairwise_sum: 8 accumulators from 8 terms on)."""
    if len(terms) < 8:
        total = _f(0.0)
        for t in terms:
            total = total + t
        return total
    acc = list(terms[:8])
    i = 8
    while i + 8 <= len(terms):
        acc = [a + t for a, t in zip(acc, terms[i : i + 8])]
        i += 8
    total = ((acc[0] + acc[1]) + (acc[2] + acc[3])) + ((acc[4] + acc[5]) + (acc[6] + acc[7]))
    for t in terms[i:]:
        total = total + t
    return total


def _saturate(value: Expr, dtype: DType) -> Expr:
    """`resampling.saturate` of a float64 value into `dtype`'s storage."""
    if dtype is DType.F64:
        return value
    if dtype.is_integer:
        info = ml_dtypes.iinfo(dtype.numpy)
        lo, hi = int(info.min), int(info.max)
        return encode(te.max(te.min(tirx.nearbyint(value), _f(hi)), _f(lo)), dtype)
    finfo = ml_dtypes.finfo(dtype.numpy)
    return encode(te.max(te.min(value, _f(float(finfo.max))), _f(float(finfo.min))), dtype)


@lowering("Resize")
def lower_resize(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    k = KernelBuilder(node, target, epilogue)
    dtype, attrs = k.dtype(), node.attrs
    if attrs["mode"] != "nearest" and dtype is DType.BOOL:
        raise LoweringError(f"node {node.name!r}: {attrs['mode']} Resize of bool")
    x_type, out_type = node.operands[0].type, node.results[0].type  # type: ignore[union-attr]
    logical = x_type.shape
    rank = len(logical)
    order = LAYOUTS.get(x_type.layout or "", tuple(range(rank)))  # stored axis k holds logical order[k]
    in_shape, out_shape = x_type.stored_shape, out_type.stored_shape
    roi = attrs.get("roi") or (0.0,) * rank + (1.0,) * rank
    axes = []
    for a in range(rank):  # logical order: the separable passes nest as the reference's
        axis_roi = (roi[a], roi[rank + a])
        out_len, scale = attrs["sizes"][a], attrs["scales"][a]
        if not is_identity(out_len, logical[a], scale, axis_roi, attrs["coordinate_transformation_mode"]):
            axes.append(Axis(order.index(a), logical[a], out_len, scale, axis_roi, attrs))
    if math.prod(out_shape) == 0:
        k.operand(0, in_shape)
        return k.finish([te.compute(out_shape, lambda *i: literal(0, dtype), name="out")])
    rows = attrs["mode"] == "nearest" and attrs["coordinate_transformation_mode"] != "tf_crop_and_resize"
    if rows and schedules_of(target).loop_nests:
        fast = _nearest_rows(k, in_shape, out_shape, axes)
        if fast is not None:
            return fast
    x = k.operand(0, in_shape)
    if attrs["mode"] == "nearest":
        fill = literal(saturate(np.asarray(attrs["extrapolation_value"]), dtype.numpy), dtype)

        def read(*o):
            index = list(o)
            for ax in axes:
                index[ax.axis] = ax.nearest(o[ax.axis])
            value = x[tuple(index)]
            for ax in axes:
                outside = ax.outside(o[ax.axis])
                value = value if outside is None else tirx.Select(outside, fill, value)
            return value
    else:

        def read(*o):
            return _saturate(_filtered(x, dtype, axes, list(o), len(axes)), dtype)

    out = te.compute(out_shape, read, name="out")
    inner = rank - 1
    return k.finish([out], contiguous=all(ax.axis != inner for ax in axes))


def _filtered(x: Any, dtype: DType, axes: Sequence[Axis], index: list, count: int) -> Expr:
    """The float64 value after the separable passes over the first `count` changed axes."""
    if count == 0:
        return tirx.Cast("float64", decode(x[tuple(index)], dtype))
    ax = axes[count - 1]
    o = index[ax.axis]
    total = None
    for source, weight in ax.taps(o):
        tapped = list(index)
        tapped[ax.axis] = source
        term = rounded(_filtered(x, dtype, axes, tapped, count - 1) * weight)
        total = term if total is None else total + term
    outside = ax.outside(o)
    if outside is not None:
        total = tirx.Select(outside, _f(ax.attrs["extrapolation_value"]), total)
    return total


def _nearest_rows(
    k: KernelBuilder, in_shape: Sequence[int], out_shape: Sequence[int], axes: Sequence[Axis]
) -> LoweredKernel | None:
    """Nearest Resize whose every index is an integer rule and whose last axis repeats each element q times.

    Each output row copies one source row: vector loads, each lane repeated q times by a
    shuffle, vector stores (PP-OCR's ×2 upsample). None when the resize does not have that form.
    """
    from tvm.script.ir_builder import IRBuilder
    from tvm.script.ir_builder import tirx as T

    rules = {ax.axis: ax.nearest_rule() for ax in axes}
    last = len(in_shape) - 1
    repeat = rules[last] if last in rules else (1, 0, 1)
    store = str(k.operand_dtype())
    if any(r is None for r in rules.values()) or repeat[:2] != (1, 0) or store == "bool" or last < 0:
        return None
    q, in_w, out_w = repeat[2], in_shape[last], out_shape[last]
    if out_w != in_w * q:
        return None
    lanes = k.target.vector_bytes // np.dtype(store).itemsize
    x = k.operand(0, (math.prod(in_shape),))
    out = te.placeholder((math.prod(out_shape),), store, name="out")
    parallel = math.prod(out_shape) >= PARALLEL_MIN_ELEMENTS
    with IRBuilder() as ib:
        with T.prim_func():
            T.func_name("resize_rows")
            src_buf, dst_buf = (T.arg(t.op.name, T.Buffer(t.shape, t.dtype)) for t in (x, out))
            with (T.parallel if parallel else T.serial)(0, math.prod(out_shape[:-1])) as row:
                source, rest, stride = 0, row, 1
                for a in reversed(range(last)):
                    o = tirx.floormod(rest, out_shape[a])
                    rest = tirx.floordiv(rest, out_shape[a])
                    p, r, d = rules.get(a) or (1, 0, 1)
                    source = source + tirx.floordiv(o * p + r, d) * stride
                    stride *= in_shape[a]
                src, dst = source * in_w, row * out_w
                with T.serial(0, in_w // lanes) as b:
                    v = tirx.BufferLoad(src_buf, [tirx.Ramp(src + b * lanes, 1, lanes)])
                    if q > 1:
                        v = tirx.Shuffle([v] * q, [tirx.const(i // q, "int32") for i in range(lanes * q)])
                    T.buffer_store(dst_buf, v, [tirx.Ramp(dst + b * (lanes * q), 1, lanes * q)])
                done = in_w - in_w % lanes
                with T.serial(0, (in_w - done) * q) as t:
                    T.buffer_store(dst_buf, src_buf[src + done + tirx.floordiv(t, q)], [dst + done * q + t])
    return k.finish([out], func=ib.get(), workload={"path": "rows"})
