"""ONNX converters: image family (Resize of every opset, Upsample → Resize).

Rule: Resize's roi/scales/sizes inputs and its axes and keep_aspect_ratio_policy
become the IR's explicit full-rank `sizes`, `scales` and `roi` attributes,
computed as the ONNX reference does: given sizes, a scale is size / input
(or, under not_larger / not_smaller, the min / max of those over the axes and
sizes round half up); given scales, a size is floor(input * scale) with the
product rounded to float32 first, as onnxruntime computes it (the ONNX reference
multiplies in float64, so 20 × 0.7f gives 13 there and 14 here and in onnxruntime). Resize-10
and Upsample-7/9 use the asymmetric transform (nearest: floor), as their
spec's `output[i] = input[floor(i / scale)]` says; on downsampled axes
Resize-10 rounds up instead, as onnxruntime does.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hai_compiler.onnx_import.converter import ConversionContext, converter
from ir import Value
from ir.errors import IRError
from ir.ops.common import normalize_axes

LEGACY_ATTRS = {"coordinate_transformation_mode": "asymmetric", "nearest_mode": "floor"}
"""How Resize-10 and Upsample map coordinates, in the newest Resize's terms."""


@converter("Resize")
def convert_resize(ctx: ConversionContext) -> Sequence[Value | None]:
    attrs = dict(ctx.attrs)
    if ctx.opset < 11:
        scales, sizes, roi = _present(ctx.static_input(1, "scales")), None, None
        attrs.update(LEGACY_ATTRS)
    else:
        roi = _present(ctx.static_input(1, "roi"))
        scales = _present(ctx.static_input(2, "scales"))
        sizes = _present(ctx.static_input(3, "sizes"))
    axes = attrs.pop("axes", None)
    policy = attrs.pop("keep_aspect_ratio_policy", "stretch")
    if attrs.get("coordinate_transformation_mode") != "tf_crop_and_resize":
        roi = None
    attrs.update(resolve_resize(ctx, scales, sizes, roi, axes, policy))
    if ctx.opset < 11 and attrs.get("mode", "nearest") == "nearest":
        return _legacy_nearest(ctx, attrs)
    return ctx.emit("Resize", [ctx.input(0)], attrs)


def _legacy_nearest(ctx: ConversionContext, attrs: dict[str, Any]) -> Sequence[Value | None]:
    """Resize-10 nearest as onnxruntime runs it: floor(i / scale), but ceil on downsampled axes.

    Nearest resampling is separable, so the downsampled axes go through a
    first Resize (nearest_mode ceil) and the others through a second (floor).
    """
    x = ctx.input(0)
    assert x is not None
    scales, sizes = attrs["scales"], attrs["sizes"]
    down = [a for a, s in enumerate(scales) if s < 1]
    rest = [a for a, s in enumerate(scales) if s >= 1]
    value = x
    for nearest_mode, axes in (("ceil", down), ("floor", rest)):
        unchanged = all(scales[a] == 1 and sizes[a] == x.type.shape[a] for a in axes)
        if not axes or (value is not x and unchanged):
            continue
        step = dict(attrs, nearest_mode=nearest_mode)
        step["scales"] = [scales[a] if a in axes else 1.0 for a in range(len(scales))]
        step["sizes"] = [sizes[a] if a in axes else value.type.shape[a] for a in range(len(sizes))]
        (value,) = ctx.emit("Resize", [value], step)
    return [value]


@converter("Upsample")
def convert_upsample(ctx: ConversionContext) -> Sequence[Value | None]:
    attrs = dict(ctx.attrs)
    scales = attrs.pop("scales", None) if ctx.opset < 9 else ctx.static_input(1, "scales")
    if attrs.get("mode", "nearest") not in ("nearest", "linear"):
        raise ctx.fail(f"mode '{attrs['mode']}' is not supported (nearest or linear)")
    attrs.update(LEGACY_ATTRS)
    attrs.update(resolve_resize(ctx, _present(scales), None, None, None, "stretch"))
    return ctx.emit("Resize", [ctx.input(0)], attrs)


def _present(array: Any) -> np.ndarray | None:
    """An optional shape input: None when absent or empty (ONNX's way of leaving one out)."""
    if array is None:
        return None
    array = np.asarray(array)
    return array if array.size else None


def resolve_resize(
    ctx: ConversionContext,
    scales: np.ndarray | None,
    sizes: np.ndarray | None,
    roi: np.ndarray | None,
    axes: Sequence[int] | None,
    policy: str,
) -> dict[str, Any]:
    """The IR's full-rank sizes, scales (and roi) from ONNX's inputs and attributes."""
    x = ctx.input(0)
    assert x is not None
    shape, rank = x.type.shape, x.type.rank
    try:
        axes = list(normalize_axes(axes, rank)) if axes is not None else list(range(rank))
    except IRError as exc:
        raise ctx.fail(str(exc)) from None
    full_scales, full_sizes = [1.0] * rank, list(shape)
    if sizes is not None:
        _check_length(ctx, "sizes", sizes, len(axes))
        ratios = [int(s) / shape[a] if shape[a] else 1.0 for s, a in zip(sizes.tolist(), axes, strict=True)]
        if policy in ("not_larger", "not_smaller"):
            scale = min(ratios) if policy == "not_larger" else max(ratios)
            ratios = [scale] * len(axes)
            sizes = np.array([int(scale * shape[a] + 0.5) for a in axes])
        elif policy != "stretch":
            raise ctx.fail(f"keep_aspect_ratio_policy '{policy}' is not stretch, not_larger or not_smaller")
        for axis, ratio, size in zip(axes, ratios, sizes.tolist(), strict=True):
            full_scales[axis], full_sizes[axis] = ratio, int(size)
    elif scales is not None:
        _check_length(ctx, "scales", scales, len(axes))
        for axis, scale in zip(axes, scales.astype(np.float64).tolist(), strict=True):
            if not scale > 0:
                raise ctx.fail(f"scales {scales.tolist()} must be positive")
            size = np.float32(scale) * np.float32(shape[axis])
            full_scales[axis], full_sizes[axis] = scale, int(np.floor(size))
    else:
        raise ctx.fail("needs either scales or sizes")
    resolved: dict[str, Any] = {"scales": full_scales, "sizes": full_sizes}
    if roi is not None:
        _check_length(ctx, "roi", roi, 2 * len(axes))
        full_roi = [0.0] * rank + [1.0] * rank
        values = roi.astype(np.float64).tolist()
        for i, axis in enumerate(axes):
            full_roi[axis], full_roi[rank + axis] = values[i], values[len(axes) + i]
        resolved["roi"] = full_roi
    return resolved


def _check_length(ctx: ConversionContext, what: str, array: np.ndarray, expected: int) -> None:
    if array.ndim != 1 or array.size != expected:
        raise ctx.fail(f"{what} {array.tolist()} must have {expected} entries")
