"""Tensor types: static shape, dtype, and the facts later stages attach.

A `TensorType` is immutable and compared by value. Besides shape and dtype it
carries optional quantization parameters, a device placement and memory-plan
facts (arena offset, page id); passes derive new types with `with_(...)`.
Imports numpy only (through dtypes).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

from ir.dtypes import DType


@dataclasses.dataclass(frozen=True)
class QuantParams:
    """Affine quantization: real = (q - zero_point) * scale.

    One entry per tensor (`axis` None), per channel along `axis`, or per group
    of `group_size` elements along `axis`.
    """

    scale: tuple[float, ...]
    zero_point: tuple[int, ...]
    axis: int | None = None
    group_size: int | None = None

    def __post_init__(self) -> None:
        if len(self.scale) != len(self.zero_point):
            raise ValueError("quantization scale and zero_point differ in length")
        if len(self.scale) > 1 and self.axis is None:
            raise ValueError("per-channel quantization needs an axis")


@dataclasses.dataclass(frozen=True)
class TensorType:
    """A tensor's static type and the placement/memory facts attached to it."""

    dtype: DType
    shape: tuple[int, ...]
    quant: QuantParams | None = None
    device: str | None = None
    offset: int | None = None
    page: int | None = None

    def __post_init__(self) -> None:
        if any((not isinstance(d, int)) or d < 0 for d in self.shape):
            raise ValueError(f"tensor shape {self.shape} must be non-negative integers")

    @property
    def rank(self) -> int:
        return len(self.shape)

    @property
    def size(self) -> int:
        return math.prod(self.shape)

    @property
    def nbytes(self) -> int:
        """Bytes the tensor occupies in memory: one per element for the sub-byte i4 (unpacked,
        as numpy/ml_dtypes and the kernels hold it; packed INT4 weights get their own type)."""
        return self.size * max(self.dtype.bits, 8) // 8

    def with_(self, **changes: Any) -> TensorType:
        return dataclasses.replace(self, **changes)

    def same_tensor(self, other: TensorType) -> bool:
        """Equal dtype and shape (ignoring placement and memory-plan facts)."""
        return self.dtype == other.dtype and self.shape == other.shape

    def __str__(self) -> str:
        return f"{self.dtype}[{','.join(map(str, self.shape))}]"
