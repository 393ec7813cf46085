"""Op family: indexing — ops that select or place elements by position or by index tensors.

Rule: positions that decide a shape (Slice's bounds, OneHot's depth) are
resolved attributes: Slice bounds are clamped into the axis the way
`resolve_slice` does it, so inference only divides. Index *tensors* (Gather,
ScatterND, ScatterElements, ...) are data operands of any integer dtype; negative indices count
from the end, and an index out of range is an IRError when the op runs.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ir.errors import IRError
from ir.ops.common import like
from ir.ops.registry import Attr, AttrKind, define_op
from ir.ops.shape import arg, check_axes
from ir.types import TensorType

FAMILY = "indexing"
SCATTER_REDUCTIONS = ("none", "add", "mul", "max", "min")


def _operand(types: Sequence[TensorType | None], index: int) -> TensorType:
    t = types[index]
    assert t is not None
    return t


def expect_indices(t: TensorType, what: str = "indices") -> None:
    if not t.dtype.is_integer:
        raise IRError(f"{what} must be an integer tensor, got {t}")


def wrap_indices(indices: np.ndarray, size: int | np.ndarray, what: str = "index") -> np.ndarray:
    """Indices in [-size, size) mapped into [0, size); any other index is an IRError."""
    indices = indices.astype(np.int64)
    bad = (indices < -size) | (indices >= size)
    if np.any(bad):
        raise IRError(f"{what} {int(indices[bad].flat[0])} is out of range for size {size}")
    return np.where(indices < 0, indices + size, indices)


# -- Slice --------------------------------------------------------------------
def resolve_slice(dim: int, start: int, end: int, step: int) -> tuple[int, int]:
    """ONNX Slice bounds (negative counts from the end, any magnitude) clamped as the ONNX spec says.

    With step > 0 the result is 0 <= start <= end <= dim; with step < 0 it is
    -1 <= end <= start <= dim - 1, where end -1 means "through index 0" (and
    start -1 only occurs, with an empty result, when dim is 0).
    """
    if step == 0:
        raise IRError("slice step must not be 0")
    start = start + dim if start < 0 else start
    end = end + dim if end < 0 else end
    if step > 0:
        start = min(max(start, 0), dim)
        return start, min(max(end, start), dim)
    start = min(max(start, 0), dim - 1)
    return start, min(max(end, -1), start)


def is_resolved_slice(dim: int, start: int, end: int, step: int) -> bool:
    if step > 0:
        return 0 <= start <= end <= dim
    return step < 0 and -1 <= end <= start <= dim - 1


def slice_length(start: int, end: int, step: int) -> int:
    return max(0, -(-(end - start) // step))


def _slice_specs(shape: Sequence[int], attrs: Mapping[str, Any]) -> list[tuple[int, int, int, int]]:
    starts, ends, axes, steps = (attrs[k] for k in ("starts", "ends", "axes", "steps"))
    if not len(starts) == len(ends) == len(axes) == len(steps):
        raise IRError(
            f"starts, ends, axes and steps differ in length ({len(starts)}, {len(ends)}, "
            f"{len(axes)}, {len(steps)})"
        )
    check_axes(axes, len(shape))
    for axis, start, end, step in zip(axes, starts, ends, steps, strict=True):
        if not is_resolved_slice(shape[axis], start, end, step):
            raise IRError(
                f"slice [{start}:{end}:{step}] of axis {axis} (size {shape[axis]}) "
                "is not resolved (clamped into the axis, see resolve_slice)"
            )
    return list(zip(axes, starts, ends, steps, strict=True))


def _slice_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    x = _operand(types, 0)
    shape = list(x.shape)
    for axis, start, end, step in _slice_specs(x.shape, attrs):
        shape[axis] = slice_length(start, end, step)
    return [like(x, shape=tuple(shape))]


def _slice(args: Sequence[np.ndarray | None], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    x = args[0]
    assert x is not None
    index = [slice(None)] * x.ndim
    for axis, start, end, step in zip(
        attrs["axes"], attrs["starts"], attrs["ends"], attrs["steps"], strict=True
    ):
        index[axis] = slice(start, None if end < 0 else end, step) if start >= 0 else slice(0, 0)
    return [np.array(x[tuple(index)])]


define_op(
    "Slice",
    family=FAMILY,
    operands=["data"],
    attrs={k: Attr(AttrKind.INTS) for k in ("starts", "ends", "axes", "steps")},
    infer=_slice_infer,
    compute=_slice,
    doc="Python-style slices [start:end:step] of the listed axes, bounds resolved (see resolve_slice).",
)


# -- Gather, GatherElements, GatherND ---------------------------------------
def _gather_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    data, indices, axis = _operand(types, 0), _operand(types, 1), attrs["axis"]
    expect_indices(indices)
    check_axes([axis], data.rank, "axis")
    return [like(data, shape=data.shape[:axis] + indices.shape + data.shape[axis + 1 :])]


def _gather(args: Sequence[np.ndarray | None], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    data, indices = args[0], args[1]
    assert data is not None and indices is not None
    axis = attrs["axis"]
    return [np.asarray(np.take(data, wrap_indices(indices, data.shape[axis]), axis=axis))]


define_op(
    "Gather",
    family=FAMILY,
    operands=["data", "indices"],
    attrs={"axis": Attr(AttrKind.INT, 0)},
    infer=_gather_infer,
    compute=_gather,
    doc="Slices of `data` along `axis` picked by `indices` (result: data[:axis] + indices + data[axis+1:]).",
)


def _gather_elements_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    data, indices, axis = _operand(types, 0), _operand(types, 1), attrs["axis"]
    expect_indices(indices)
    check_axes([axis], data.rank, "axis")
    if indices.rank != data.rank:
        raise IRError(f"indices {indices} must have the rank of data {data}")
    return [like(data, shape=indices.shape)]


def _gather_elements(args: Sequence[np.ndarray | None], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    data, indices = args[0], args[1]
    assert data is not None and indices is not None
    axis = attrs["axis"]
    indices = wrap_indices(indices, data.shape[axis])
    if indices.size == 0:
        return [np.empty(indices.shape, data.dtype)]
    grid = list(np.indices(indices.shape, sparse=True))
    grid[axis] = indices
    return [data[tuple(grid)]]


define_op(
    "GatherElements",
    family=FAMILY,
    operands=["data", "indices"],
    attrs={"axis": Attr(AttrKind.INT, 0)},
    infer=_gather_elements_infer,
    compute=_gather_elements,
    doc="out[i][j]... = data[...][indices[i][j]...][...], the index replacing position `axis`.",
)


def _gather_nd_shape(data: Sequence[int], indices: Sequence[int], batch: int) -> tuple[int, ...]:
    if not indices or not 1 <= indices[-1] <= len(data) - batch:
        raise IRError(f"last dim of indices {list(indices)} must lie in [1, {len(data) - batch}]")
    if tuple(data[:batch]) != tuple(indices[:batch]):
        raise IRError(f"data {list(data)} and indices {list(indices)} differ in their {batch} batch dims")
    return tuple(indices[:-1]) + tuple(data[batch + indices[-1] :])


def _gather_nd_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    data, indices, batch = _operand(types, 0), _operand(types, 1), attrs["batch_dims"]
    expect_indices(indices)
    if not 0 <= batch < min(data.rank, indices.rank):
        raise IRError(f"batch_dims {batch} must be below the ranks of data {data} and indices {indices}")
    return [like(data, shape=_gather_nd_shape(data.shape, indices.shape, batch))]


def _gather_nd(args: Sequence[np.ndarray | None], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    data, indices = args[0], args[1]
    assert data is not None and indices is not None
    batch = attrs["batch_dims"]
    out_shape = _gather_nd_shape(data.shape, indices.shape, batch)
    depth = indices.shape[-1]
    batches = math.prod(data.shape[:batch])
    flat_data = data.reshape((batches,) + data.shape[batch:])
    lookups = math.prod(indices.shape[batch:-1])
    flat_idx = wrap_indices(
        indices.reshape((batches, lookups, depth)), np.array(data.shape[batch : batch + depth])
    )
    pieces = [d[tuple(np.moveaxis(i, -1, 0))] for d, i in zip(flat_data, flat_idx, strict=True)]
    if not pieces:
        return [np.empty(out_shape, data.dtype)]
    return [np.stack(pieces).reshape(out_shape)]


define_op(
    "GatherND",
    family=FAMILY,
    operands=["data", "indices"],
    attrs={"batch_dims": Attr(AttrKind.INT, 0)},
    infer=_gather_nd_infer,
    compute=_gather_nd,
    doc="Slices of `data` addressed by the last axis of `indices` (ONNX GatherND, with batch dims).",
)


# -- ScatterND --------------------------------------------------------------
def _scatter_nd_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    data, indices, updates = (_operand(types, i) for i in range(3))
    expect_indices(indices)
    if attrs["reduction"] not in SCATTER_REDUCTIONS:
        raise IRError(f"reduction '{attrs['reduction']}' is not one of {', '.join(SCATTER_REDUCTIONS)}")
    if indices.rank == 0 or not 1 <= indices.shape[-1] <= data.rank:
        raise IRError(f"last dim of indices {indices} must lie in [1, {data.rank}]")
    expected = indices.shape[:-1] + data.shape[indices.shape[-1] :]
    if updates.shape != expected or updates.dtype != data.dtype:
        raise IRError(f"updates {updates} must be {data.dtype}[{','.join(map(str, expected))}]")
    return [like(data)]


_SCATTER_UFUNCS = {"add": np.add, "mul": np.multiply, "max": np.maximum, "min": np.minimum}


def _scatter_nd(args: Sequence[np.ndarray | None], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    data, indices, updates = args[0], args[1], args[2]
    assert data is not None and indices is not None and updates is not None
    out = data.copy()
    depth = indices.shape[-1]
    where = wrap_indices(indices.reshape(-1, depth), np.array(data.shape[:depth]))
    pieces = updates.reshape((where.shape[0],) + data.shape[depth:])
    ufunc = _SCATTER_UFUNCS.get(attrs["reduction"])
    for position, piece in zip(where, pieces, strict=True):
        key = tuple(position)
        out[key] = piece if ufunc is None else ufunc(out[key], piece)
    return [out]


define_op(
    "ScatterND",
    family=FAMILY,
    operands=["data", "indices", "updates"],
    attrs={"reduction": Attr(AttrKind.STR, "none")},
    infer=_scatter_nd_infer,
    compute=_scatter_nd,
    doc="A copy of `data` with the slices addressed by `indices` replaced (or reduced) by `updates`.",
)


# -- ScatterElements --------------------------------------------------------
def _scatter_elements_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    data, indices, updates = (_operand(types, i) for i in range(3))
    expect_indices(indices)
    if attrs["reduction"] not in SCATTER_REDUCTIONS:
        raise IRError(f"reduction '{attrs['reduction']}' is not one of {', '.join(SCATTER_REDUCTIONS)}")
    check_axes([attrs["axis"]], data.rank, "axis")
    if indices.rank != data.rank:
        raise IRError(f"indices {indices} must have the rank of data {data}")
    if updates.shape != indices.shape or updates.dtype != data.dtype:
        raise IRError(f"updates {updates} must be {data.dtype}[{','.join(map(str, indices.shape))}]")
    return [like(data)]


def _scatter_elements(args: Sequence[np.ndarray | None], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    data, indices, updates = args[0], args[1], args[2]
    assert data is not None and indices is not None and updates is not None
    axis, out = attrs["axis"], data.copy()
    where = np.indices(indices.shape).reshape(indices.ndim, -1)
    where[axis] = wrap_indices(indices, data.shape[axis]).reshape(-1)
    ufunc = _SCATTER_UFUNCS.get(attrs["reduction"])
    for position, value in zip(where.T, updates.reshape(-1), strict=True):
        key = tuple(position)
        out[key] = value if ufunc is None else ufunc(out[key], value)
    return [out]


define_op(
    "ScatterElements",
    family=FAMILY,
    operands=["data", "indices", "updates"],
    attrs={"axis": Attr(AttrKind.INT, 0), "reduction": Attr(AttrKind.STR, "none")},
    infer=_scatter_elements_infer,
    compute=_scatter_elements,
    doc="A copy of `data` where out[..][indices[i][j]..][..] (the index at `axis`) is replaced (or reduced) "
    "by updates[i][j].., applied in order.",
)


# -- Trilu, OneHot ----------------------------------------------------------
def _trilu_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    x = _operand(types, 0)
    if x.rank < 2:
        raise IRError(f"Trilu needs a tensor of rank 2 or more, got {x}")
    return [like(x)]


define_op(
    "Trilu",
    family=FAMILY,
    operands=["input"],
    attrs={"upper": Attr(AttrKind.INT, 1), "k": Attr(AttrKind.INT, 0)},
    infer=_trilu_infer,
    compute=lambda args, attrs: [
        (np.triu if attrs["upper"] else np.tril)(arg(args), attrs["k"]).astype(arg(args).dtype)
    ],
    doc="The upper (or lower) triangle of the last two axes from diagonal `k`; the rest zero.",
)


def _one_hot_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    indices, values, depth, axis = _operand(types, 0), _operand(types, 1), attrs["depth"], attrs["axis"]
    if values.shape != (2,):
        raise IRError(f"values must be [off, on], a tensor of shape [2], got {values}")
    if depth < 0:
        raise IRError(f"depth {depth} must not be negative")
    check_axes([axis], indices.rank + 1, "axis")
    return [TensorType(values.dtype, indices.shape[:axis] + (depth,) + indices.shape[axis:])]


def _one_hot(args: Sequence[np.ndarray | None], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    indices, values = args[0], args[1]
    assert indices is not None and values is not None
    depth, axis = attrs["depth"], attrs["axis"]
    indices = indices.astype(np.int64) if indices.dtype.kind in "iub" else np.trunc(indices).astype(np.int64)
    indices = np.where(indices < 0, indices + depth, indices)
    hot = np.expand_dims(indices, axis) == np.arange(depth).reshape((-1,) + (1,) * (indices.ndim - axis))
    return [np.where(hot, values[1], values[0]).astype(values.dtype)]


define_op(
    "OneHot",
    family=FAMILY,
    operands=["indices", "values"],
    attrs={"depth": Attr(AttrKind.INT), "axis": Attr(AttrKind.INT)},
    infer=_one_hot_infer,
    compute=_one_hot,
    doc="values[1] where the new axis `axis` equals the index (negative: + depth), else values[0].",
)
