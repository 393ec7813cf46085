"""Op family: convolutions (Conv, ConvTranspose) over 1-D, 2-D and 3-D spatial dims.

Rule: every window fact is an explicit attribute (strides, pads as
`[begin..., end...]`, dilations, group; ConvTranspose adds output_padding); the
kernel shape is the weight's. auto_pad and output_shape never reach the IR: the
frontend resolves them. References are vectorised: Conv gathers columns and
runs one batched matmul over the groups (depthwise Conv sums weighted slices
instead), ConvTranspose runs one matmul and adds each kernel position's slice
(col2im); half floats accumulate in f32.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ir.errors import IRError
from ir.ops.common import accumulation_dtype, expect_float, present, same_dtype
from ir.ops.registry import Attr, AttrKind, define_op
from ir.ops.window import Window, span
from ir.types import TensorType

WINDOW_ATTRS = {
    "strides": Attr(AttrKind.INTS),
    "pads": Attr(AttrKind.INTS),
    "dilations": Attr(AttrKind.INTS),
    "group": Attr(AttrKind.INT, 1),
}


def _check_operands(
    types: Sequence[TensorType | None], expected_channels: int, layout: str, out_channels: int
) -> tuple[TensorType, TensorType]:
    """Shared checks of X, W, B: ranks, dtypes, channel counts."""
    x, w, b = types[0], types[1], present(types, 2)
    assert x is not None and w is not None
    same_dtype([x, w, b], "X, W and B")
    expect_float(x, "X")
    if x.rank < 3:
        raise IRError(f"X must be (N, C, spatial...), got {x}")
    if w.rank != x.rank:
        raise IRError(f"W {w} must have the rank of X {x}")
    if x.shape[1] != expected_channels:
        raise IRError(f"X {x} has {x.shape[1]} channels but W {w} expects {expected_channels} ({layout})")
    if b is not None and b.shape != (out_channels,):
        raise IRError(f"B {b} must have shape [{out_channels}] (one bias per output channel)")
    return x, w


def _check_group(group: int, channels: int, what: str) -> None:
    if group < 1 or channels % group:
        raise IRError(f"group {group} must be >= 1 and divide the {channels} {what}")


def _conv_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    w, group = types[1], attrs["group"]
    assert w is not None
    _check_group(group, w.shape[0], "output channels of W")
    x, w = _check_operands(
        types, w.shape[1] * group, f"W is (M, C/group, kernel...) with group {group}", w.shape[0]
    )
    window = Window.from_attrs(attrs, w.shape[2:])
    return [TensorType(x.dtype, (x.shape[0], w.shape[0], *window.output_shape(x.shape[2:])))]


def _conv_compute(args: Sequence[np.ndarray | None], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    x, w, b = args[0], args[1], args[2] if len(args) > 2 else None
    assert x is not None and w is not None
    acc = accumulation_dtype(x.dtype)
    window = Window.from_attrs(attrs, w.shape[2:])
    out = window.output_shape(x.shape[2:])
    n, channels, group, m = x.shape[0], x.shape[1], attrs["group"], w.shape[0]
    padded = window.pad(x.astype(acc, copy=False), 0)
    weights = w.astype(acc, copy=False).reshape(group, m // group, -1)
    if channels == group:
        y = _depthwise(padded, weights, window, out)
    else:
        y = _im2col_matmul(padded, weights, window, out)
    y = y.reshape(n, m, *out)
    if b is not None:
        y += b.astype(acc, copy=False).reshape(m, *([1] * len(out)))
    return [y.astype(x.dtype, copy=False)]


def _im2col_matmul(padded: np.ndarray, weights: np.ndarray, window: Window, out: Sequence[int]) -> np.ndarray:
    """Gather every kernel position's slice into columns, then one batched matmul per group."""
    n, channels = padded.shape[:2]
    group = weights.shape[0]
    if window.kernel == (1,) * window.rank:  # pointwise: the one slice is the columns, often without a copy
        cols = np.ascontiguousarray(next(window.slices(padded, out))[1])
    else:
        cols = np.empty((n, channels, int(np.prod(window.kernel)), *out), dtype=padded.dtype)
        for flat, view in window.slices(padded, out):
            cols[:, :, flat] = view
    return np.matmul(weights, cols.reshape(n, group, -1, int(np.prod(out))))


def _depthwise(padded: np.ndarray, weights: np.ndarray, window: Window, out: Sequence[int]) -> np.ndarray:
    """One input channel per group: a weighted sum of slices (a batched matmul with one row is slow)."""
    group, multiplier = weights.shape[:2]
    spatial_ones = (1,) * len(out)
    y = np.zeros((padded.shape[0], group, multiplier, *out), dtype=padded.dtype)
    for flat, view in window.slices(padded, out):
        y += weights[:, :, flat].reshape(group, multiplier, *spatial_ones) * view[:, :, None]
    return y


define_op(
    "Conv",
    family="conv",
    operands=["X", "W", "B?"],
    attrs=WINDOW_ATTRS,
    infer=_conv_infer,
    compute=_conv_compute,
    doc="N-D convolution: X (N, C, *in), W (M, C/group, *kernel), B (M,) -> (N, M, *out).",
)


def _transposed_window(attrs: Mapping[str, Any], kernel: Sequence[int]) -> Window:
    window = Window.from_attrs(attrs, kernel)
    padding = attrs["output_padding"]
    if len(padding) != window.rank or any(p < 0 for p in padding):
        raise IRError(f"output_padding {list(padding)} must be {window.rank} non-negative entries")
    return window


def _conv_transpose_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    w, group = types[1], attrs["group"]
    assert w is not None
    _check_group(group, w.shape[0], "input channels of W")
    x, w = _check_operands(types, w.shape[0], "W is (C, M/group, kernel...)", w.shape[1] * group)
    window = _transposed_window(attrs, w.shape[2:])
    out = window.transposed_output_shape(x.shape[2:], attrs["output_padding"])
    return [TensorType(x.dtype, (x.shape[0], w.shape[1] * group, *out))]


def _conv_transpose_compute(args: Sequence[np.ndarray | None], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    """col2im: one batched matmul gives every kernel position's contribution, then each is added at
    its strided place in an uncropped output (the kernel positions' slices), and the pads are cropped."""
    x, w, b = args[0], args[1], args[2] if len(args) > 2 else None
    assert x is not None and w is not None
    acc = accumulation_dtype(x.dtype)
    window = _transposed_window(attrs, w.shape[2:])
    spatial = x.shape[2:]
    out = window.transposed_output_shape(spatial, attrs["output_padding"])
    n, channels, group = x.shape[0], x.shape[1], attrs["group"]
    m = w.shape[1] * group
    # cols[n, g, (m, k), p] = sum_c W[g, c, (m, k)] * X[n, g, c, p]
    weights = w.astype(acc, copy=False).reshape(group, channels // group, -1).transpose(0, 2, 1)
    cols = np.matmul(weights, x.astype(acc, copy=False).reshape(n, group, channels // group, -1))
    cols = cols.reshape(n, m, int(np.prod(window.kernel)), *spatial)
    uncropped = [
        max((d.size - 1) * d.stride + span(d.kernel, d.dilation), d.begin + o)
        for d, o in zip(window.dims(spatial), out, strict=True)
    ]
    y = np.zeros((n, m, *uncropped), dtype=acc)
    for flat, view in window.slices(y, spatial):
        view += cols[:, :, flat]
    crop: tuple[Any, ...] = tuple(slice(lo, lo + o) for lo, o in zip(window.pads_begin, out, strict=True))
    y = y[(Ellipsis, *crop)]
    if b is not None:
        y = y + b.astype(acc, copy=False).reshape(m, *([1] * len(out)))
    return [np.ascontiguousarray(y).astype(x.dtype, copy=False)]


define_op(
    "ConvTranspose",
    family="conv",
    operands=["X", "W", "B?"],
    attrs={**WINDOW_ATTRS, "output_padding": Attr(AttrKind.INTS)},
    infer=_conv_transpose_infer,
    compute=_conv_transpose_compute,
    doc="N-D transposed convolution: X (N, C, *in), W (C, M/group, *kernel), B (M,) -> (N, M, *out); "
    "out = stride*(in-1) + output_padding + dilation*(kernel-1) + 1 - pad_begin - pad_end.",
)
