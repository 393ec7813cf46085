"""Resize's sampling math: coordinate transforms, kernels and the separable per-axis resample.

Rule: Resize is separable, so an N-D resize is a 1-D resample along each axis
in turn, each one vectorised over the whole tensor (a gather per kernel tap).
The formulas are ONNX's (opset 19): an output index maps to a source
coordinate by `coordinate_transformation_mode`, where `length_resized` is
`scale * length_original` (a float); nearest picks one source index by
`nearest_mode`; linear/cubic weight the taps `floor(x) + k` by the kernel at
their distance from x (stretched by the scale when antialiasing a
downsample); source indices outside the input read its edge, unless
`exclude_outside` drops them and renormalises.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from typing import Any

import ml_dtypes
import numpy as np

COORDINATE_MODES = (
    "half_pixel", "half_pixel_symmetric", "pytorch_half_pixel", "align_corners", "asymmetric",
    "tf_crop_and_resize",
)
NEAREST_MODES = ("round_prefer_floor", "round_prefer_ceil", "floor", "ceil")
MODES = ("nearest", "linear", "cubic")


def source_coordinates(
    mode: str, out_len: int, in_len: int, scale: float, roi: tuple[float, float]
) -> np.ndarray:
    """The source coordinate of every output index along one axis (float64)."""
    y = np.arange(out_len, dtype=np.float64)
    resized = scale * in_len
    if mode == "align_corners":
        return np.zeros(out_len) if resized == 1 else y * (in_len - 1) / (resized - 1)
    if mode == "asymmetric":
        return y / scale
    if mode == "tf_crop_and_resize":
        start, end = roi
        if resized == 1:
            return np.full(out_len, (end - start) * (in_len - 1) / 2 + start * (in_len - 1))
        return y * (end - start) * (in_len - 1) / (resized - 1) + start * (in_len - 1)
    if mode == "pytorch_half_pixel":
        return np.full(out_len, -0.5) if resized == 1 else (y + 0.5) / scale - 0.5
    if mode == "half_pixel":
        return (y + 0.5) / scale - 0.5
    if mode == "half_pixel_symmetric":
        offset = in_len / 2 * (1 - out_len / resized)
        return offset + (y + 0.5) / scale - 0.5
    raise AssertionError(mode)


def nearest_indices(x: np.ndarray, nearest_mode: str) -> np.ndarray:
    """The source index nearest mode picks for each coordinate (not yet clamped)."""
    base = np.floor(x)
    frac = x - base
    if nearest_mode == "round_prefer_floor":
        return (base + (frac > 0.5)).astype(np.int64)
    if nearest_mode == "round_prefer_ceil":
        return (base + (frac >= 0.5)).astype(np.int64)
    if nearest_mode == "floor":
        return base.astype(np.int64)
    if nearest_mode == "ceil":
        return np.ceil(x).astype(np.int64)
    raise AssertionError(nearest_mode)


def _linear_kernel(d: np.ndarray, a: float) -> np.ndarray:
    return np.clip(1 - np.abs(d), 0, 1)


def _cubic_kernel(d: np.ndarray, a: float) -> np.ndarray:
    d = np.abs(d)
    near = ((a + 2) * d - (a + 3)) * d * d + 1
    far = ((a * d - 5 * a) * d + 8 * a) * d - 4 * a
    return np.where(d <= 1, near, np.where(d < 2, far, 0.0))


KERNELS: dict[str, tuple[Callable[[np.ndarray, float], np.ndarray], int]] = {
    "linear": (_linear_kernel, 1),
    "cubic": (_cubic_kernel, 2),
}
"""mode -> (kernel of the distance and cubic_coeff_a, support radius)."""


def tap_weights(
    x: np.ndarray, in_len: int, scale: float, attrs: Mapping[str, Any]
) -> tuple[np.ndarray, np.ndarray]:
    """Source indices [out, taps] (clamped to the input) and their weights for linear/cubic."""
    kernel, support = KERNELS[attrs["mode"]]
    stretch = min(scale, 1.0) if attrs["antialias"] else 1.0
    first = math.floor(-support / stretch) + 1
    taps = np.arange(first, 2 - first)
    index = np.floor(x).astype(np.int64)[:, None] + taps[None, :]
    weights = kernel((index - x[:, None]) * stretch, attrs["cubic_coeff_a"])
    if attrs["antialias"]:
        weights = weights / weights.sum(axis=1, keepdims=True)
    if attrs["exclude_outside"]:
        weights = np.where((index < 0) | (index >= in_len), 0.0, weights)
        total = weights.sum(axis=1, keepdims=True)
        weights = weights / np.where(total == 0, 1.0, total)
    return np.clip(index, 0, in_len - 1), weights


def resample_axis(data: np.ndarray, axis: int, out_len: int, scale: float, roi: tuple[float, float],
                  attrs: Mapping[str, Any]) -> np.ndarray:
    """Resize `data` along one axis; nearest keeps the dtype, linear/cubic work in float64."""
    in_len = data.shape[axis]
    coord_mode = attrs["coordinate_transformation_mode"]
    x = source_coordinates(coord_mode, out_len, in_len, scale, roi)
    if attrs["mode"] == "nearest":
        index = np.clip(nearest_indices(x, attrs["nearest_mode"]), 0, max(in_len - 1, 0))
        result = np.take(data, index, axis=axis)
    else:
        index, weights = tap_weights(x, in_len, scale, attrs)
        result = _weighted_taps(data.astype(np.float64, copy=False), axis, index, weights)
    if coord_mode == "tf_crop_and_resize":
        outside = ((x < 0) | (x > in_len - 1)).reshape(_along(axis, out_len, data.ndim))
        fill = saturate(np.asarray(attrs["extrapolation_value"]), result.dtype)
        result = np.where(outside, fill, result)
    return result


def _along(axis: int, length: int, rank: int) -> tuple[int, ...]:
    return (1,) * axis + (length,) + (1,) * (rank - axis - 1)


def _weighted_taps(source: np.ndarray, axis: int, index: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """sum over taps of source[index[:, tap]] * weights[:, tap] along `axis`, in place where it can."""
    shape = _along(axis, index.shape[0], source.ndim)
    result = np.take(source, index[:, 0], axis=axis)
    result *= weights[:, 0].reshape(shape)
    scratch = np.empty_like(result)
    for tap in range(1, index.shape[1]):
        np.take(source, index[:, tap], axis=axis, out=scratch)
        scratch *= weights[:, tap].reshape(shape)
        result += scratch
    return result


def is_identity(out_len: int, in_len: int, scale: float, roi: tuple[float, float], coord_mode: str) -> bool:
    """Whether resampling one axis would copy it unchanged."""
    crop = coord_mode == "tf_crop_and_resize" and not (math.isclose(roi[0], 0) and math.isclose(roi[1], 1))
    return out_len == in_len and math.isclose(scale, 1.0) and not crop


def saturate(array: np.ndarray, dtype: np.dtype) -> np.ndarray:
    """Cast computed values to `dtype` as ONNX does: integers round half to even, all clamp to range.

    A float64 `array` may be overwritten (callers pass their own scratch results).
    """
    dtype = np.dtype(dtype)
    if array.dtype == dtype:
        return array
    if dtype.kind in "iu" or dtype == ml_dtypes.int4:
        ints = ml_dtypes.iinfo(dtype)
        return np.clip(np.round(array), ints.min, ints.max).astype(dtype)
    if dtype.kind == "b":
        return array.astype(dtype)
    floats = ml_dtypes.finfo(dtype)
    scratch = array if array.dtype == np.float64 else None
    return np.clip(array, float(floats.min), float(floats.max), out=scratch).astype(dtype)


def resize(data: np.ndarray, attrs: Mapping[str, Any]) -> np.ndarray:
    """The whole Resize: one `resample_axis` per axis that changes."""
    rank = data.ndim
    roi = attrs.get("roi") or (0.0,) * rank + (1.0,) * rank
    result = data
    for axis in range(rank):
        axis_roi = (roi[axis], roi[rank + axis])
        out_len, scale = attrs["sizes"][axis], attrs["scales"][axis]
        if is_identity(out_len, data.shape[axis], scale, axis_roi, attrs["coordinate_transformation_mode"]):
            continue
        result = resample_axis(result, axis, out_len, scale, axis_roi, attrs)
    return saturate(result, data.dtype)
