"""Op family: image resampling and block rearrangement (Resize, DepthToSpace, SpaceToDepth).

Rule: Resize carries its output shape explicitly (`sizes`, one per axis) and
the `scales` its coordinate mapping uses (one per axis; the converter derives
them from ONNX's scales/sizes/axes/keep_aspect_ratio_policy), plus `roi`
(starts then ends, one per axis) for tf_crop_and_resize, so inference is a
copy. Depth/space ops work on NCHW with a `blocksize` and mode DCR or CRD.
The sampling math lives in `ir.ops.resampling`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ir.errors import IRError
from ir.ops.common import like
from ir.ops.registry import Attr, AttrKind, define_op
from ir.ops.resampling import COORDINATE_MODES, MODES, NEAREST_MODES, resize
from ir.types import TensorType


def _choice(attrs: Mapping[str, Any], key: str, allowed: Sequence[str]) -> None:
    if attrs[key] not in allowed:
        raise IRError(f"{key} '{attrs[key]}' is not one of {', '.join(allowed)}")


def _resize_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    x = types[0]
    assert x is not None
    _choice(attrs, "mode", MODES)
    _choice(attrs, "coordinate_transformation_mode", COORDINATE_MODES)
    _choice(attrs, "nearest_mode", NEAREST_MODES)
    sizes, scales, roi = attrs["sizes"], attrs["scales"], attrs.get("roi")
    if len(sizes) != x.rank or len(scales) != x.rank:
        raise IRError(f"sizes {list(sizes)} and scales {list(scales)} need one entry per axis of {x}")
    if any(s < 0 for s in sizes) or any(not s > 0 for s in scales):
        raise IRError(f"sizes {list(sizes)} must be >= 0 and scales {list(scales)} > 0")
    if any(out > 0 and size == 0 for out, size in zip(sizes, x.shape, strict=True)):
        raise IRError(f"cannot resize an empty axis of {x} to sizes {list(sizes)}")
    if roi is not None and len(roi) != 2 * x.rank:
        raise IRError(f"roi {list(roi)} needs {2 * x.rank} entries (starts then ends)")
    if attrs["mode"] != "nearest" and not (x.dtype.is_float or x.dtype.is_integer):
        raise IRError(f"{attrs['mode']} resize needs a numeric tensor, got {x}")
    if attrs["mode"] == "nearest" and attrs["antialias"]:
        raise IRError("antialias applies to linear and cubic modes only")
    return [like(x, shape=tuple(sizes))]


define_op(
    "Resize",
    family="image",
    operands=["X"],
    attrs={
        "sizes": Attr(AttrKind.INTS),
        "scales": Attr(AttrKind.FLOATS),
        "roi": Attr(AttrKind.FLOATS, None),
        "mode": Attr(AttrKind.STR, "nearest"),
        "coordinate_transformation_mode": Attr(AttrKind.STR, "half_pixel"),
        "nearest_mode": Attr(AttrKind.STR, "round_prefer_floor"),
        "cubic_coeff_a": Attr(AttrKind.FLOAT, -0.75),
        "exclude_outside": Attr(AttrKind.INT, 0),
        "extrapolation_value": Attr(AttrKind.FLOAT, 0.0),
        "antialias": Attr(AttrKind.INT, 0),
    },
    infer=_resize_infer,
    compute=lambda args, attrs: [resize(args[0], attrs)],  # type: ignore[arg-type]
    doc="Resize X to `sizes` by nearest, linear or cubic sampling (ONNX-19 semantics).",
)

BLOCK_ATTRS = {"blocksize": Attr(AttrKind.INT), "mode": Attr(AttrKind.STR, "DCR")}


def _block_check(x: TensorType, attrs: Mapping[str, Any]) -> int:
    _choice(attrs, "mode", ("DCR", "CRD"))
    block = attrs["blocksize"]
    if x.rank != 4:
        raise IRError(f"expects an NCHW tensor, got {x}")
    if block < 1:
        raise IRError(f"blocksize must be >= 1, got {block}")
    return int(block)


def _depth_to_space_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    x = types[0]
    assert x is not None
    block = _block_check(x, attrs)
    n, c, h, w = x.shape
    if c % (block * block):
        raise IRError(f"channels {c} are not divisible by blocksize² = {block * block}")
    return [like(x, shape=(n, c // (block * block), h * block, w * block))]


def _depth_to_space(args: Sequence[np.ndarray | None], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    x = args[0]
    assert x is not None
    n, c, h, w = x.shape
    b = attrs["blocksize"]
    if attrs["mode"] == "DCR":
        blocks = x.reshape(n, b, b, c // (b * b), h, w).transpose(0, 3, 4, 1, 5, 2)
    else:
        blocks = x.reshape(n, c // (b * b), b, b, h, w).transpose(0, 1, 4, 2, 5, 3)
    return [np.ascontiguousarray(blocks).reshape(n, c // (b * b), h * b, w * b)]


def _space_to_depth_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    x = types[0]
    assert x is not None
    block = _block_check(x, attrs)
    n, c, h, w = x.shape
    if h % block or w % block:
        raise IRError(f"height {h} and width {w} must be multiples of blocksize {block}")
    return [like(x, shape=(n, c * block * block, h // block, w // block))]


def _space_to_depth(args: Sequence[np.ndarray | None], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    x = args[0]
    assert x is not None
    n, c, h, w = x.shape
    b = attrs["blocksize"]
    blocks = x.reshape(n, c, h // b, b, w // b, b)
    order = (0, 3, 5, 1, 2, 4) if attrs["mode"] == "DCR" else (0, 1, 3, 5, 2, 4)
    return [np.ascontiguousarray(blocks.transpose(order)).reshape(n, c * b * b, h // b, w // b)]


define_op(
    "DepthToSpace", family="image", operands=["input"], attrs=BLOCK_ATTRS,
    infer=_depth_to_space_infer, compute=_depth_to_space,
    doc="Move blocks of channels into blocksize×blocksize spatial tiles (DCR or CRD order).",
)
define_op(
    "SpaceToDepth", family="image", operands=["input"], attrs=BLOCK_ATTRS,
    infer=_space_to_depth_infer, compute=_space_to_depth,
    doc="Move blocksize×blocksize spatial tiles into channels (the inverse of DepthToSpace).",
)
