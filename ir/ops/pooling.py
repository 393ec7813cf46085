"""Op family: pooling (MaxPool, AveragePool, LpPool and their Global forms) over N-D spatial dims.

Rule: windows are explicit attributes (kernel_shape, strides, pads
`[begin..., end...]`, dilations, ceil_mode); auto_pad never reaches the IR.
Padded positions never win a max and never count in an average unless
count_include_pad says so (positions that only ceil_mode adds never count).
References reduce one strided slice per kernel position, so they stay
vectorised. MaxPool gives its Indices result (flat over the unpadded input,
N and C included) only when `return_indices` is 1. MaxPool of an integer tensor
quantized per tensor keeps its quant parameters (a max commutes with them).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ir.dtypes import DType
from ir.errors import IRError
from ir.ops.common import accumulation_dtype, expect_float, like
from ir.ops.registry import Attr, AttrKind, define_op
from ir.ops.window import Window
from ir.types import TensorType

WINDOW_ATTRS = {
    "kernel_shape": Attr(AttrKind.INTS),
    "strides": Attr(AttrKind.INTS),
    "pads": Attr(AttrKind.INTS),
    "dilations": Attr(AttrKind.INTS),
    "ceil_mode": Attr(AttrKind.INT, 0),
}


def _input(types: Sequence[TensorType | None]) -> TensorType:
    x = types[0]
    assert x is not None
    if x.rank < 3:
        raise IRError(f"X must be (N, C, spatial...), got {x}")
    return x


def _pooled_type(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> TensorType:
    x = _input(types)
    window = Window.from_attrs(attrs)
    return TensorType(x.dtype, (*x.shape[:2], *window.output_shape(x.shape[2:])))


def _float_pool_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    expect_float(_input(types), "X")
    return [_pooled_type(types, attrs)]


def _max_pool_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    y = _pooled_type(types, attrs)
    quant = _input(types).quant
    if quant is not None and quant.axis is None:  # a max of per-tensor quantized integers keeps their scale
        y = TensorType(y.dtype, y.shape, quant=quant)
    if y.dtype is DType.BOOL:
        raise IRError("MaxPool does not take bool tensors")
    if attrs["storage_order"] not in (0, 1):
        raise IRError(
            f"storage_order must be 0 (row major) or 1 (column major), got {attrs['storage_order']}"
        )
    return [y, like(y, dtype=DType.I64)] if attrs["return_indices"] else [y]


def _lowest(dtype: np.dtype) -> Any:
    return -np.inf if np.issubdtype(dtype, np.floating) else np.iinfo(dtype).min


def _max_pool_compute(args: Sequence[np.ndarray | None], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    x = args[0]
    assert x is not None
    window = Window.from_attrs(attrs)
    out = window.output_shape(x.shape[2:])
    work = x.astype(accumulation_dtype(x.dtype), copy=False) if x.dtype.kind not in "iu" else x
    padded = window.pad(work, _lowest(work.dtype))
    best = np.full((*x.shape[:2], *out), _lowest(work.dtype), dtype=work.dtype)
    winner = np.zeros(best.shape, dtype=np.int64) if attrs["return_indices"] else None
    for flat, view in window.slices(padded, out):
        if winner is None:
            np.maximum(best, view, out=best)
            continue
        greater = view > best
        np.copyto(best, view, where=greater)
        winner[greater] = flat
    y = best.astype(x.dtype, copy=False)
    if winner is None:
        return [y]
    return [y, _flat_input_indices(winner, window, out, x.shape, attrs["storage_order"])]


def _flat_input_indices(
    winner: np.ndarray, window: Window, out: Sequence[int], shape: Sequence[int], storage_order: int
) -> np.ndarray:
    """Turn each window's winning kernel position into a flat index of the unpadded input."""
    positions = np.unravel_index(winner, window.kernel)
    spatial = shape[2:]
    coords = []
    for dim, (p, s, d, begin) in enumerate(
        zip(positions, window.strides, window.dilations, window.pads_begin, strict=True)
    ):
        starts = (np.arange(out[dim]) * s - begin).reshape((-1,) + (1,) * (len(out) - dim - 1))
        coords.append(starts + p * d)
    order = reversed(range(len(spatial))) if storage_order else range(len(spatial))
    index = np.zeros(winner.shape, dtype=np.int64)
    for dim in order:
        index = index * spatial[dim] + coords[dim]
    plane = int(np.prod(spatial))
    base = np.arange(shape[0] * shape[1], dtype=np.int64).reshape(shape[0], shape[1], *([1] * len(spatial)))
    return index + base * plane


def _average_pool_compute(args: Sequence[np.ndarray | None], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    x = args[0]
    assert x is not None
    window = Window.from_attrs(attrs)
    total = _window_sum(x.astype(accumulation_dtype(x.dtype), copy=False), window)
    counts = window.valid_counts(x.shape[2:], bool(attrs["count_include_pad"]))
    return [(total / counts).astype(x.dtype, copy=False)]


def _lp_pool_compute(args: Sequence[np.ndarray | None], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    x = args[0]
    assert x is not None
    p = attrs["p"]
    window = Window.from_attrs(attrs)
    total = _window_sum(np.abs(x.astype(accumulation_dtype(x.dtype), copy=False)) ** p, window)
    return [(total ** (1.0 / p)).astype(x.dtype, copy=False)]


def _window_sum(x: np.ndarray, window: Window) -> np.ndarray:
    out = window.output_shape(x.shape[2:])
    total = np.zeros((*x.shape[:2], *out), dtype=x.dtype)
    for _, view in window.slices(window.pad(x, 0), out):
        total += view
    return total


define_op(
    "MaxPool",
    family="pooling",
    operands=["X"],
    attrs={**WINDOW_ATTRS, "return_indices": Attr(AttrKind.INT, 0), "storage_order": Attr(AttrKind.INT, 0)},
    infer=_max_pool_infer,
    compute=_max_pool_compute,
    doc="Max over each window; with return_indices, also the flat input index of each max "
    "(storage_order 1: spatial dims column major).",
)

define_op(
    "AveragePool",
    family="pooling",
    operands=["X"],
    attrs={**WINDOW_ATTRS, "count_include_pad": Attr(AttrKind.INT, 0)},
    infer=_float_pool_infer,
    compute=_average_pool_compute,
    doc="Mean over each window; the divisor counts explicit pads only when count_include_pad is 1.",
)

define_op(
    "LpPool",
    family="pooling",
    operands=["X"],
    attrs={**WINDOW_ATTRS, "p": Attr(AttrKind.INT, 2)},
    infer=_float_pool_infer,
    compute=_lp_pool_compute,
    doc="(sum of |x|^p over each window)^(1/p); pads add nothing.",
)


def _global_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    x = _input(types)
    if x.dtype is DType.BOOL:
        raise IRError("global pooling does not take bool tensors")
    return [like(x, shape=(*x.shape[:2], *([1] * (x.rank - 2))))]


def _global(name: str, reduce: Any, doc: str, attrs: Mapping[str, Attr] | None = None) -> None:
    def compute(args: Sequence[np.ndarray | None], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        x = args[0]
        assert x is not None
        axes = tuple(range(2, x.ndim))
        result = reduce(x.astype(accumulation_dtype(x.dtype), copy=False), axes, attrs)
        return [np.asarray(result).astype(x.dtype, copy=False)]

    define_op(
        name, family="pooling", operands=["X"], attrs=attrs, infer=_global_infer, compute=compute, doc=doc
    )


_global(
    "GlobalAveragePool",
    lambda x, axes, attrs: x.mean(axis=axes, keepdims=True),
    "Mean over all spatial dims (kept as size 1).",
)
_global(
    "GlobalMaxPool",
    lambda x, axes, attrs: x.max(axis=axes, keepdims=True),
    "Max over all spatial dims (kept as size 1).",
)
_global(
    "GlobalLpPool",
    lambda x, axes, attrs: (np.abs(x) ** attrs["p"]).sum(axis=axes, keepdims=True) ** (1.0 / attrs["p"]),
    "(sum of |x|^p over all spatial dims)^(1/p), kept as size 1.",
    {"p": Attr(AttrKind.INT, 2)},
)
