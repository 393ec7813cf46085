"""Inference helpers shared by the op families (broadcasting, axes, dtype checks).

Families call these instead of writing their own, so every op reports the same
problems the same way (an IRError the builder prefixes with the node's name).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ir.dtypes import DType
from ir.errors import IRError
from ir.types import TensorType


def broadcast_shapes(*shapes: Sequence[int]) -> tuple[int, ...]:
    """Numpy (multidirectional) broadcasting of static shapes."""
    rank = max((len(s) for s in shapes), default=0)
    result = []
    for axis in range(rank):  # counted from the right, without arrays (any dims, even beyond memory)
        dims = {int(s[len(s) - rank + axis]) for s in shapes if len(s) - rank + axis >= 0} - {1}
        if len(dims) > 1:
            raise IRError(f"shapes {' and '.join(str(list(s)) for s in shapes)} do not broadcast")
        result.append(dims.pop() if dims else 1)
    return tuple(result)


def broadcasts_to(shape: Sequence[int], target: Sequence[int]) -> bool:
    """Whether `shape` broadcasts unidirectionally to `target` (Gemm's C, LayerNormalization's Scale)."""
    pairs = zip(reversed(shape), reversed(target), strict=False)
    return len(shape) <= len(target) and all(s in (1, t) for s, t in pairs)


def normalize_axis(axis: int, rank: int, what: str = "axis") -> int:
    """Map a possibly negative axis into [0, rank); an IRError when out of range."""
    if not -rank <= axis < rank:
        raise IRError(f"{what} {axis} is out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


def normalize_axes(axes: Sequence[int], rank: int, what: str = "axes") -> tuple[int, ...]:
    out = tuple(normalize_axis(a, rank, what) for a in axes)
    if len(set(out)) != len(out):
        raise IRError(f"{what} {list(axes)} repeat an axis")
    return out


def present(types: Sequence[TensorType | None], index: int) -> TensorType | None:
    """The type of operand `index`, or None when it is absent."""
    return types[index] if index < len(types) else None


def same_dtype(types: Sequence[TensorType | None], what: str = "operands") -> DType:
    """The common dtype of the present operands; an IRError when they differ."""
    dtypes = {t.dtype for t in types if t is not None}
    if len(dtypes) != 1:
        raise IRError(f"{what} must share one dtype, got {', '.join(sorted(map(str, dtypes)))}")
    return dtypes.pop()


def expect_float(t: TensorType, what: str = "operand") -> None:
    if not t.dtype.is_float:
        raise IRError(f"{what} must be a float tensor, got {t}")


def like(t: TensorType, **changes: Any) -> TensorType:
    """A fresh type (no placement or plan facts) with `t`'s dtype/shape unless changed."""
    return TensorType(changes.get("dtype", t.dtype), tuple(changes.get("shape", t.shape)))


def same_as_first(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    """Inference for ops whose one result has the first operand's dtype and shape."""
    first = types[0]
    assert first is not None
    return [like(first)]


def as_dtype(array: np.ndarray, dtype: DType) -> np.ndarray:
    """Cast a reference result to the IR dtype it must have."""
    return np.asarray(array).astype(dtype.numpy, copy=False)


def accumulation_dtype(dtype: DType | np.dtype) -> np.dtype:
    """The numpy dtype reference kernels compute in: f32 for f16/bf16, the dtype itself otherwise."""
    np_dtype = dtype.numpy if isinstance(dtype, DType) else np.dtype(dtype)
    return np.dtype(np.float32) if np_dtype in (DType.F16.numpy, DType.BF16.numpy) else np_dtype
