"""Op family: normalizations (BatchNormalization in inference form, Instance, Layer, Group, Lp).

Rule: statistics are taken in f32 at least (half floats are widened) and the
result has X's dtype. Axes are non-negative attributes. BatchNormalization is
the inference form only (running mean and variance are operands); training
never reaches the IR. GroupNormalization takes per-channel scale and bias
(ONNX opset 21); LayerNormalization gives Mean and InvStdDev only when
`return_stats` is 1.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ir.errors import IRError
from ir.ops.common import accumulation_dtype, broadcasts_to, expect_float, like, present, same_dtype
from ir.ops.registry import Attr, AttrKind, define_op
from ir.types import TensorType

EPSILON = {"epsilon": Attr(AttrKind.FLOAT, 1e-5)}


def _channel_input(types: Sequence[TensorType | None], names: Sequence[str]) -> TensorType:
    """Check X is float (N, C, ...) and every other operand is a per-channel vector of X's dtype."""
    x = types[0]
    assert x is not None
    same_dtype(types, "X and its parameters")
    expect_float(x, "X")
    if x.rank < 2:
        raise IRError(f"X must be (N, C, ...), got {x}")
    for name, t in zip(names, types[1:], strict=False):
        if t is not None and t.shape != (x.shape[1],):
            raise IRError(f"{name} {t} must have shape [{x.shape[1]}] (one entry per channel of X {x})")
    return x


def _per_channel(array: np.ndarray, rank: int, dtype: np.dtype) -> np.ndarray:
    return array.astype(dtype, copy=False).reshape(-1, *([1] * (rank - 2)))


def _batch_norm_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    return [like(_channel_input(types, ["scale", "B", "mean", "var"]))]


def _batch_norm_compute(args: Sequence[np.ndarray | None], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    x, scale, bias, mean, var = args
    assert x is not None and scale is not None and bias is not None and mean is not None and var is not None
    acc = accumulation_dtype(x.dtype)
    factor = scale.astype(acc) / np.sqrt(var.astype(acc) + acc.type(attrs["epsilon"]))
    shift = bias.astype(acc) - mean.astype(acc) * factor
    y = x.astype(acc, copy=False) * _per_channel(factor, x.ndim, acc) + _per_channel(shift, x.ndim, acc)
    return [y.astype(x.dtype, copy=False)]


define_op(
    "BatchNormalization",
    family="normalization",
    operands=["X", "scale", "B", "mean", "var"],
    attrs=EPSILON,
    infer=_batch_norm_infer,
    compute=_batch_norm_compute,
    doc="Inference batch norm: (X - mean) / sqrt(var + epsilon) * scale + B, per channel (axis 1).",
)


def _standardize(x: np.ndarray, axes: tuple[int, ...], epsilon: float) -> tuple[np.ndarray, ...]:
    """(x - mean) * inv_std over `axes`, with the mean and inv_std (kept dims), in x's dtype."""
    mean = x.mean(axis=axes, keepdims=True)
    centered = x - mean
    inv_std = 1.0 / np.sqrt((centered * centered).mean(axis=axes, keepdims=True) + x.dtype.type(epsilon))
    return centered * inv_std, mean, inv_std


def _instance_norm_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    x = _channel_input(types, ["scale", "B"])
    if x.rank < 3:
        raise IRError(f"X must be (N, C, spatial...), got {x}")
    return [like(x)]


def _instance_norm_compute(args: Sequence[np.ndarray | None], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    x, scale, bias = args
    assert x is not None and scale is not None and bias is not None
    acc = accumulation_dtype(x.dtype)
    normed, _, _ = _standardize(x.astype(acc), tuple(range(2, x.ndim)), attrs["epsilon"])
    y = normed * _per_channel(scale, x.ndim, acc) + _per_channel(bias, x.ndim, acc)
    return [y.astype(x.dtype, copy=False)]


define_op(
    "InstanceNormalization",
    family="normalization",
    operands=["X", "scale", "B"],
    attrs=EPSILON,
    infer=_instance_norm_infer,
    compute=_instance_norm_compute,
    doc="Standardize each (n, c) over the spatial dims, then scale and shift per channel.",
)


def _group_norm_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    x = _channel_input(types, ["scale", "bias"])
    groups = attrs["num_groups"]
    if groups < 1 or x.shape[1] % groups:
        raise IRError(f"num_groups {groups} must be >= 1 and divide the {x.shape[1]} channels of X {x}")
    return [like(x)]


def _group_norm_compute(args: Sequence[np.ndarray | None], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    x, scale, bias = args
    assert x is not None and scale is not None and bias is not None
    acc = accumulation_dtype(x.dtype)
    grouped = x.astype(acc).reshape(x.shape[0], attrs["num_groups"], -1)
    normed, _, _ = _standardize(grouped, (2,), attrs["epsilon"])
    y = normed.reshape(x.shape) * _per_channel(scale, x.ndim, acc) + _per_channel(bias, x.ndim, acc)
    return [y.astype(x.dtype, copy=False)]


define_op(
    "GroupNormalization",
    family="normalization",
    operands=["X", "scale", "bias"],
    attrs={**EPSILON, "num_groups": Attr(AttrKind.INT)},
    infer=_group_norm_infer,
    compute=_group_norm_compute,
    doc="Standardize each of num_groups channel groups per sample, then scale and shift per channel.",
)


def _layer_norm_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    x, scale, bias = types[0], types[1], present(types, 2)
    assert x is not None and scale is not None
    same_dtype([x, scale, bias], "X, Scale and B")
    expect_float(x, "X")
    axis = attrs["axis"]
    if not 0 <= axis < x.rank:
        raise IRError(f"axis {axis} must be in [0, {x.rank}) for X {x}")
    for name, t in (("Scale", scale), ("B", bias)):
        if t is not None and not broadcasts_to(t.shape, x.shape[axis:]):
            raise IRError(
                f"{name} {t} does not broadcast to the normalized dims {list(x.shape[axis:])} of X {x}"
            )
    y = like(x)
    if not attrs["return_stats"]:
        return [y]
    stats = like(x, shape=(*x.shape[:axis], *([1] * (x.rank - axis))))
    return [y, stats, stats]


def _layer_norm_compute(args: Sequence[np.ndarray | None], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    x, scale, bias = args[0], args[1], args[2] if len(args) > 2 else None
    assert x is not None and scale is not None
    acc = accumulation_dtype(x.dtype)
    normed, mean, inv_std = _standardize(x.astype(acc), tuple(range(attrs["axis"], x.ndim)), attrs["epsilon"])
    y = normed * scale.astype(acc)
    if bias is not None:
        y = y + bias.astype(acc)
    results = [y, mean, inv_std] if attrs["return_stats"] else [y]
    return [r.astype(x.dtype, copy=False) for r in results]


define_op(
    "LayerNormalization",
    family="normalization",
    operands=["X", "Scale", "B?"],
    attrs={**EPSILON, "axis": Attr(AttrKind.INT), "return_stats": Attr(AttrKind.INT, 0)},
    infer=_layer_norm_infer,
    compute=_layer_norm_compute,
    doc="Standardize over dims axis.. of X, then * Scale + B; with return_stats also Mean and InvStdDev.",
)


def _lp_norm_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    x = types[0]
    assert x is not None
    expect_float(x, "input")
    if not 0 <= attrs["axis"] < x.rank:
        raise IRError(f"axis {attrs['axis']} must be in [0, {x.rank}) for input {x}")
    if attrs["p"] not in (1, 2):
        raise IRError(f"p must be 1 or 2, got {attrs['p']}")
    return [like(x)]


def _lp_norm_compute(args: Sequence[np.ndarray | None], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    x = args[0]
    assert x is not None
    work = x.astype(accumulation_dtype(x.dtype))
    norm = np.linalg.norm(work, ord=attrs["p"], axis=attrs["axis"], keepdims=True)
    y = np.divide(work, norm, out=np.zeros_like(work), where=norm != 0)
    return [y.astype(x.dtype, copy=False)]


define_op(
    "LpNormalization",
    family="normalization",
    operands=["input"],
    attrs={"axis": Attr(AttrKind.INT), "p": Attr(AttrKind.INT, 2)},
    infer=_lp_norm_infer,
    compute=_lp_norm_compute,
    doc="input divided by its L1 or L2 norm along axis (0 where the norm is 0).",
)
