"""Tensor types: static shape, dtype, and the facts later stages attach.

A `TensorType` is immutable and compared by value. Besides shape and dtype it
carries optional quantization parameters, a device placement, a physical
storage `layout` and memory-plan facts (arena offset, page id); passes derive
new types with `with_(...)`. The shape is always the logical one: a layout only
says in which order the same elements are stored (`"NHWC"`: a rank-4 logical
NCHW tensor stored channels-last), so inference, the interpreter and byte sizes
never look at it.
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


LAYOUTS: dict[str, tuple[int, ...]] = {"NHWC": (0, 2, 3, 1)}
"""Physical storage orders besides the logical one: the permutation of the logical axes as stored."""


@dataclasses.dataclass(frozen=True)
class TensorType:
    """A tensor's static type and the placement/memory facts attached to it."""

    dtype: DType
    shape: tuple[int, ...]
    quant: QuantParams | None = None
    device: str | None = None
    offset: int | None = None
    page: int | None = None
    layout: str | None = None  # None: stored in the logical order of `shape`; else a key of LAYOUTS

    def __post_init__(self) -> None:
        if any((not isinstance(d, int)) or d < 0 for d in self.shape):
            raise ValueError(f"tensor shape {self.shape} must be non-negative integers")
        if self.layout is not None:
            perm = LAYOUTS.get(self.layout)
            if perm is None:
                raise ValueError(f"unknown layout {self.layout!r} (known: {', '.join(LAYOUTS)})")
            if len(perm) != len(self.shape):
                raise ValueError(f"layout {self.layout} needs rank {len(perm)}, not shape {self.shape}")

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

    @property
    def stored_shape(self) -> tuple[int, ...]:
        """The shape in storage order: `shape` permuted by the layout (`shape` itself without one)."""
        if self.layout is None:
            return self.shape
        return tuple(self.shape[axis] for axis in LAYOUTS[self.layout])

    def with_(self, **changes: Any) -> TensorType:
        return dataclasses.replace(self, **changes)

    def same_tensor(self, other: TensorType) -> bool:
        """Equal dtype and shape (ignoring placement, layout and memory-plan facts)."""
        return self.dtype == other.dtype and self.shape == other.shape

    def __str__(self) -> str:
        return f"{self.dtype}[{','.join(map(str, self.shape))}]"
