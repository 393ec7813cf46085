"""The project's one quantization rule, and the numpy functions every stage uses to apply it.

Rule. A float `x` quantizes as ONNX's QuantizeLinear defines it:

    q = saturate(round_half_to_even(float32(x) / float32(scale)) + zero_point)

and the integer `x` of an already quantized tensor (e.g. an int32
accumulator) requantizes by one multiplication:

    q = saturate(round_half_to_even(float32(x) * m) + zero_point)

where the multiplier `m = float32(in_scale) / float32(out_scale)` is computed
once, at compile time: each scale rounded to float32 first (an accumulator's
scale x_scale * w_scale is its float32 product), then one float32 division.
Both are the arithmetic onnxruntime uses (its QuantizeLinear divides; its
QLinearConv / QLinearMatMul / QGemm multiply the accumulator by scales taken
in this order), so models quantized elsewhere round here as they do there: a
reciprocal multiplication or a quotient taken in float64 differs in the last
bit now and then, and that flips a value at a .5 tie by 1 LSB. Rounding is half
to even, then the zero point is added, then saturation to the dtype's range:
the reference interpreter and the compiled kernels apply exactly these
operations in this order, so integer paths agree bit for bit.

Dequantization is `float32(q - zero_point) * float32(scale)`.

Scales and zero points come one per tensor, one per channel along `axis`, or
(with `group_size`) one per group of `group_size` consecutive elements along
`axis` for every index of the other axes, flattened in C order of the shape
with `axis` replaced by the number of groups (the last group may be shorter).
Imports numpy and ir.dtypes/ir.types only.
"""

from __future__ import annotations

import math

import numpy as np

from ir.dtypes import DType
from ir.errors import IRError
from ir.types import QuantParams

QUANT_RANGES: dict[DType, tuple[int, int]] = {
    DType.I4: (-8, 7),
    DType.I8: (-128, 127),
    DType.U8: (0, 255),
    DType.I16: (-32768, 32767),
    DType.I32: (-(2**31), 2**31 - 1),
}
"""The integer dtypes a quantized tensor may have, and their saturation bounds."""


def quant_range(dtype: DType) -> tuple[int, int]:
    if dtype not in QUANT_RANGES:
        names = ", ".join(d.value for d in QUANT_RANGES)
        raise IRError(f"{dtype.value} cannot hold quantized values (use one of {names})")
    return QUANT_RANGES[dtype]


def group_count(length: int, group_size: int) -> int:
    return math.ceil(length / group_size)


def param_count(shape: tuple[int, ...], params: QuantParams) -> int:
    """How many scales `params` must have for a tensor of `shape`."""
    if params.axis is None:
        return 1
    if params.group_size is None:
        return shape[params.axis]
    groups = group_count(shape[params.axis], params.group_size)
    return math.prod(shape[: params.axis]) * groups * math.prod(shape[params.axis + 1 :])


def check_params(shape: tuple[int, ...], params: QuantParams, what: str) -> None:
    """An IRError naming `what` unless `params` fits a tensor of `shape`."""
    if params.axis is not None and not 0 <= params.axis < len(shape):
        raise IRError(f"{what}: quantization axis {params.axis} is outside rank {len(shape)}")
    if params.group_size is not None and (params.axis is None or params.group_size < 1):
        raise IRError(f"{what}: group_size {params.group_size} needs an axis and must be >= 1")
    expected = param_count(shape, params)
    if len(params.scale) != expected:
        raise IRError(f"{what}: {len(params.scale)} scale(s) for shape {list(shape)}, expected {expected}")
    if any(not (s > 0 and math.isfinite(s)) for s in params.scale):
        raise IRError(f"{what}: every scale must be a positive finite number")


def expand(values: tuple[float, ...] | tuple[int, ...] | np.ndarray, shape: tuple[int, ...],
           params: QuantParams, dtype: type) -> np.ndarray:  # fmt: skip
    """Per-tensor, per-channel or per-group values broadcast to every element of a `shape` tensor."""
    array: np.ndarray = np.asarray(values, dtype=dtype)
    if params.axis is None:
        return array.reshape(())
    axis = params.axis
    if params.group_size is None:
        return array.reshape([shape[axis] if i == axis else 1 for i in range(len(shape))])
    groups = group_count(shape[axis], params.group_size)
    grouped = array.reshape([groups if i == axis else d for i, d in enumerate(shape)])
    return np.repeat(grouped, params.group_size, axis=axis).take(range(shape[axis]), axis=axis)


def multiplier(in_scale: np.ndarray | float, out_scale: np.ndarray | float) -> np.ndarray:
    """float32(in_scale) / float32(out_scale), divided in float32 (the module rule)."""
    return np.asarray(in_scale, np.float32) / np.asarray(out_scale, np.float32)


def saturate_round(x: np.ndarray, m: np.ndarray, zero_point: np.ndarray, dtype: DType) -> np.ndarray:
    """Requantization: saturate(round_half_to_even(float32(x) * m) + zero_point) as `dtype`."""
    return saturate(np.asarray(x).astype(np.float32) * m.astype(np.float32), zero_point, dtype)


def saturate(scaled: np.ndarray, zero_point: np.ndarray, dtype: DType) -> np.ndarray:
    """saturate(round_half_to_even(scaled) + zero_point) as `dtype`."""
    lo, hi = quant_range(dtype)
    rounded = np.rint(scaled).astype(np.int64) + zero_point.astype(np.int64)
    return np.clip(rounded, lo, hi).astype(dtype.numpy)


def quantize(
    x: np.ndarray, params: QuantParams, dtype: DType, in_scale: np.ndarray | None = None
) -> np.ndarray:
    """`x` (a float, or integers of scale `in_scale` broadcastable to it) quantized with `params`."""
    zero_point = expand(params.zero_point, x.shape, params, np.int64)
    if in_scale is None:
        scale = expand(params.scale, x.shape, params, np.float32)
        return saturate(np.asarray(x).astype(np.float32) / scale, zero_point, dtype)
    m = multiplier(in_scale, expand(params.scale, x.shape, params, np.float64))
    return saturate_round(x, m, zero_point, dtype)


def dequantize(q: np.ndarray, params: QuantParams) -> np.ndarray:
    """float32(q - zero_point) * float32(scale)."""
    scale = expand(params.scale, q.shape, params, np.float32)
    zero_point = expand(params.zero_point, q.shape, params, np.int64)
    return (q.astype(np.int64) - zero_point).astype(np.float32) * scale


def params_for_range(lo: float, hi: float, dtype: DType, *, symmetric: bool) -> tuple[float, int]:
    """(scale, zero_point) that map [lo, hi] (widened to hold 0) onto `dtype`'s range."""
    qmin, qmax = quant_range(dtype)
    lo, hi = min(float(lo), 0.0), max(float(hi), 0.0)
    if symmetric:
        bound = max(abs(lo), abs(hi))
        scale = bound / ((qmax - qmin) / 2) if bound > 0 else 1.0
        zero_point = 0 if qmin < 0 else (qmax + qmin + 1) // 2
        return scale, zero_point
    scale = (hi - lo) / (qmax - qmin) if hi > lo else 1.0
    zero_point = int(np.clip(round(qmin - lo / scale), qmin, qmax))
    return scale, zero_point


PRECISION_SOURCE_KEY = "precision_source"
"""Node annotation: where a quantized layer's precision came from, `imported` (the model came quantized)
or `hai` (HAI's quantize pass chose it); hai_compiler/compiler/layer_precision.py reports it."""

RANGE_PREFIX = "calibration.range."
"""Graph metadata key prefix of a value's calibrated range: `calibration.range.NAME` = "lo hi"."""


def record_range(metadata: dict[str, str], name: str, lo: float, hi: float) -> None:
    """Store the calibrated range of the value `name` in a graph's metadata (printed in `.hir`)."""
    metadata[RANGE_PREFIX + name] = f"{float(lo)!r} {float(hi)!r}"


def recorded_range(metadata: dict[str, str], name: str) -> tuple[float, float] | None:
    """The calibrated range of the value `name`, or None when calibration did not see it."""
    text = metadata.get(RANGE_PREFIX + name)
    if text is None:
        return None
    lo, hi = (float(part) for part in text.split())
    return lo, hi
