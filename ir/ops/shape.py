"""Op family: shape — ops that move, copy or pad elements without computing new values.

Rule: every attribute is resolved and explicit (the ONNX frontend resolves
Reshape's 0/-1, negative axes, default perms and Split sizes), so inference only
checks the attributes against the operand types and never guesses. Axes are
non-negative; Unsqueeze's axes count in the result's rank.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ir.errors import IRError
from ir.ops.common import broadcast_shapes, like, same_dtype
from ir.ops.registry import Attr, AttrKind, define_op
from ir.types import TensorType

FAMILY = "shape"
PAD_MODES = ("constant", "reflect", "edge", "wrap")


def check_axes(axes: Sequence[int], rank: int, what: str = "axes") -> None:
    """Resolved axes: each in [0, rank), none repeated."""
    if any(not 0 <= a < rank for a in axes):
        raise IRError(f"{what} {list(axes)} must lie in [0, {rank}) (resolved, non-negative)")
    if len(set(axes)) != len(axes):
        raise IRError(f"{what} {list(axes)} repeat an axis")


def arg(args: Sequence[np.ndarray | None], index: int = 0) -> np.ndarray:
    """Operand `index`'s array (present: the schema requires it)."""
    array = args[index]
    assert array is not None
    return array


def _first(types: Sequence[TensorType | None]) -> TensorType:
    first = types[0]
    assert first is not None
    return first


# -- Reshape, Flatten ---------------------------------------------------------
def _reshape_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    x, shape = _first(types), tuple(attrs["shape"])
    if any(d < 0 for d in shape):
        raise IRError(f"shape {list(shape)} must be explicit (no -1; the frontend resolves it)")
    if math.prod(shape) != x.size:
        raise IRError(f"cannot reshape {x} ({x.size} elements) to {list(shape)}")
    return [like(x, shape=shape)]


define_op(
    "Reshape",
    family=FAMILY,
    operands=["data"],
    attrs={"shape": Attr(AttrKind.INTS)},
    infer=_reshape_infer,
    compute=lambda args, attrs: [arg(args).reshape(attrs["shape"])],
    doc="The data with the explicit final `shape` (same element count, C order).",
    view=True,
)


def _flatten_shape(shape: Sequence[int], axis: int) -> tuple[int, int]:
    return math.prod(shape[:axis]), math.prod(shape[axis:])


def _flatten_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    x, axis = _first(types), attrs["axis"]
    if not 0 <= axis <= x.rank:
        raise IRError(f"axis {axis} must lie in [0, {x.rank}]")
    return [like(x, shape=_flatten_shape(x.shape, axis))]


define_op(
    "Flatten",
    family=FAMILY,
    operands=["input"],
    attrs={"axis": Attr(AttrKind.INT, 1)},
    infer=_flatten_infer,
    compute=lambda args, attrs: [arg(args).reshape(_flatten_shape(arg(args).shape, attrs["axis"]))],
    doc="A 2-D view: dims before `axis` multiplied into rows, the rest into columns.",
    view=True,
)


# -- Transpose, Squeeze, Unsqueeze ------------------------------------------
def _transpose_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    x, perm = _first(types), tuple(attrs["perm"])
    if sorted(perm) != list(range(x.rank)):
        raise IRError(f"perm {list(perm)} is not a permutation of the {x.rank} axes of {x}")
    return [like(x, shape=tuple(x.shape[p] for p in perm))]


define_op(
    "Transpose",
    family=FAMILY,
    operands=["data"],
    attrs={"perm": Attr(AttrKind.INTS)},
    infer=_transpose_infer,
    compute=lambda args, attrs: [np.transpose(arg(args), attrs["perm"]).copy()],
    doc="Result axis i is operand axis perm[i].",
)


def _squeeze_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    x, axes = _first(types), attrs["axes"]
    check_axes(axes, x.rank)
    if any(x.shape[a] != 1 for a in axes):
        raise IRError(f"cannot squeeze axes {list(axes)} of {x}: their size is not 1")
    return [like(x, shape=tuple(d for i, d in enumerate(x.shape) if i not in axes))]


def _squeeze(args: Sequence[np.ndarray | None], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    x = args[0]
    assert x is not None
    return [x.reshape(tuple(d for i, d in enumerate(x.shape) if i not in attrs["axes"]))]


define_op(
    "Squeeze",
    family=FAMILY,
    operands=["data"],
    attrs={"axes": Attr(AttrKind.INTS)},
    infer=_squeeze_infer,
    compute=_squeeze,
    doc="Removes the listed size-1 axes.",
    view=True,
)


def unsqueezed_shape(shape: Sequence[int], axes: Sequence[int]) -> tuple[int, ...]:
    """`shape` with a 1 inserted at each of `axes` (axes of the result, resolved)."""
    rank = len(shape) + len(axes)
    check_axes(axes, rank)
    rest = iter(shape)
    return tuple(1 if i in axes else next(rest) for i in range(rank))


define_op(
    "Unsqueeze",
    family=FAMILY,
    operands=["data"],
    attrs={"axes": Attr(AttrKind.INTS)},
    infer=lambda types, attrs: [
        like(_first(types), shape=unsqueezed_shape(_first(types).shape, attrs["axes"]))
    ],
    compute=lambda args, attrs: [arg(args).reshape(unsqueezed_shape(arg(args).shape, attrs["axes"]))],
    doc="Inserts size-1 axes at `axes` (positions in the result).",
    view=True,
)


# -- Concat, Split ------------------------------------------------------------
def _concat_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    if not types or any(t is None for t in types):
        raise IRError("Concat needs at least one operand, none absent")
    shapes = [t.shape for t in types if t is not None]
    dtype, axis, rank = same_dtype(types), attrs["axis"], len(shapes[0])
    check_axes([axis], rank, "axis")
    for shape in shapes:
        if len(shape) != rank or any(
            a != b for i, (a, b) in enumerate(zip(shape, shapes[0], strict=True)) if i != axis
        ):
            raise IRError(f"operand shapes {[list(s) for s in shapes]} differ outside axis {axis}")
    out = list(shapes[0])
    out[axis] = sum(s[axis] for s in shapes)
    return [TensorType(dtype, tuple(out))]


define_op(
    "Concat",
    family=FAMILY,
    operands=["inputs*"],
    attrs={"axis": Attr(AttrKind.INT)},
    infer=_concat_infer,
    compute=lambda args, attrs: [np.concatenate(list(args), axis=attrs["axis"])],
    doc="The operands joined along `axis`.",
)


def _split_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    x, axis, sizes = _first(types), attrs["axis"], attrs["split"]
    check_axes([axis], x.rank, "axis")
    if not sizes or any(s < 0 for s in sizes) or sum(sizes) != x.shape[axis]:
        raise IRError(f"split sizes {list(sizes)} must be non-negative and sum to dim {axis} of {x}")
    shapes = [x.shape[:axis] + (s,) + x.shape[axis + 1 :] for s in sizes]
    return [like(x, shape=s) for s in shapes]


def _split(args: Sequence[np.ndarray | None], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    x, axis = args[0], attrs["axis"]
    assert x is not None
    bounds = np.cumsum(attrs["split"])[:-1]
    return [p.copy() for p in np.split(x, bounds, axis=axis)]


define_op(
    "Split",
    family=FAMILY,
    operands=["input"],
    attrs={"axis": Attr(AttrKind.INT, 0), "split": Attr(AttrKind.INTS)},
    infer=_split_infer,
    compute=_split,
    doc="Consecutive pieces along `axis` of the given sizes; one result per piece.",
)


# -- Expand, Tile ---------------------------------------------------------
def _expand_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    x, shape = _first(types), tuple(attrs["shape"])
    if broadcast_shapes(x.shape, shape) != shape:
        raise IRError(f"shape {list(shape)} is not the broadcast of {x} with itself (resolve it first)")
    return [like(x, shape=shape)]


define_op(
    "Expand",
    family=FAMILY,
    operands=["input"],
    attrs={"shape": Attr(AttrKind.INTS)},
    infer=_expand_infer,
    compute=lambda args, attrs: [np.broadcast_to(arg(args), attrs["shape"]).copy()],
    doc="The operand broadcast to `shape`, the final (already broadcast) result shape.",
)


def _tile_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    x, repeats = _first(types), attrs["repeats"]
    if len(repeats) != x.rank or any(r < 0 for r in repeats):
        raise IRError(f"repeats {list(repeats)} must be {x.rank} non-negative counts for {x}")
    return [like(x, shape=tuple(d * r for d, r in zip(x.shape, repeats, strict=True)))]


define_op(
    "Tile",
    family=FAMILY,
    operands=["input"],
    attrs={"repeats": Attr(AttrKind.INTS)},
    infer=_tile_infer,
    compute=lambda args, attrs: [
        np.tile(arg(args), attrs["repeats"]) if arg(args).ndim else arg(args).copy()
    ],
    doc="The operand repeated `repeats[i]` times along each axis i.",
)


# -- Pad ----------------------------------------------------------------------
def _pad_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    x, pads, mode = _first(types), attrs["pads"], attrs["mode"]
    if mode not in PAD_MODES:
        raise IRError(f"mode '{mode}' is not one of {', '.join(PAD_MODES)}")
    if len(pads) != 2 * x.rank:
        raise IRError(f"pads {list(pads)} must hold {2 * x.rank} values (all begins, then all ends) for {x}")
    shape = tuple(d + b + e for d, b, e in zip(x.shape, pads[: x.rank], pads[x.rank :], strict=True))
    if any(d < 0 for d in shape):
        raise IRError(f"pads {list(pads)} crop more than {x} holds")
    if mode != "constant":
        for d, b, e in zip(x.shape, pads[: x.rank], pads[x.rank :], strict=True):
            if (b > 0 or e > 0) and d + min(b, 0) + min(e, 0) == 0:
                raise IRError(f"mode '{mode}' cannot pad an axis that is empty after cropping ({x})")
    return [like(x, shape=shape)]


def _pad(args: Sequence[np.ndarray | None], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    x, pads, mode = args[0], attrs["pads"], attrs["mode"]
    assert x is not None
    begins, ends = pads[: x.ndim], pads[x.ndim :]
    crop = tuple(
        slice(-b if b < 0 else 0, d + e if e < 0 else d)
        for d, b, e in zip(x.shape, begins, ends, strict=True)
    )
    width = [(max(b, 0), max(e, 0)) for b, e in zip(begins, ends, strict=True)]
    x = x[crop]
    if mode == "constant":
        value = np.array(attrs["value"]).astype(x.dtype)
        return [np.pad(x, width, mode="constant", constant_values=value)]
    return [np.pad(x, width, mode=mode)]


define_op(
    "Pad",
    family=FAMILY,
    operands=["data"],
    attrs={
        "pads": Attr(AttrKind.INTS),
        "mode": Attr(AttrKind.STR, "constant"),
        "value": Attr(AttrKind.FLOAT, 0.0),
    },
    infer=_pad_infer,
    compute=_pad,
    doc="Pads (negative: crops) each axis by pads[i] before and pads[rank+i] after; "
    "mode constant (with `value`), reflect, edge or wrap.",
)
