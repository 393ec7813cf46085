"""Element types of HAI IR and their numpy storage types.

Every dtype has a short name used in `.hir` text (`f32`, `i8`, ...), a numpy
dtype used by the reference interpreter (sub-byte and bfloat16 types come from
`ml_dtypes`), and a bit width. Imports numpy and ml_dtypes only.
"""

from __future__ import annotations

import enum

import ml_dtypes
import numpy as np


class DType(enum.Enum):
    """An element type; `value` is its `.hir` spelling."""

    F32 = "f32"
    F16 = "f16"
    BF16 = "bf16"
    F64 = "f64"
    I4 = "i4"
    I8 = "i8"
    U8 = "u8"
    I16 = "i16"
    I32 = "i32"
    I64 = "i64"
    BOOL = "bool"

    @property
    def numpy(self) -> np.dtype:
        return _TO_NUMPY[self]

    @property
    def bits(self) -> int:
        return _BITS[self]

    @property
    def is_float(self) -> bool:
        return self in (DType.F32, DType.F16, DType.BF16, DType.F64)

    @property
    def is_integer(self) -> bool:
        return not self.is_float and self is not DType.BOOL

    @classmethod
    def parse(cls, text: str) -> DType:
        try:
            return cls(text)
        except ValueError:
            names = ", ".join(d.value for d in cls)
            raise ValueError(f"unknown dtype '{text}' (expected one of {names})") from None

    @classmethod
    def from_numpy(cls, dtype: np.dtype | type) -> DType:
        key = np.dtype(dtype)
        for member, np_dtype in _TO_NUMPY.items():
            if np_dtype == key:
                return member
        raise ValueError(f"numpy dtype {key} has no HAI IR dtype")

    def __str__(self) -> str:
        return self.value


_TO_NUMPY: dict[DType, np.dtype] = {
    DType.F32: np.dtype(np.float32),
    DType.F16: np.dtype(np.float16),
    DType.BF16: np.dtype(ml_dtypes.bfloat16),
    DType.F64: np.dtype(np.float64),
    DType.I4: np.dtype(ml_dtypes.int4),
    DType.I8: np.dtype(np.int8),
    DType.U8: np.dtype(np.uint8),
    DType.I16: np.dtype(np.int16),
    DType.I32: np.dtype(np.int32),
    DType.I64: np.dtype(np.int64),
    DType.BOOL: np.dtype(np.bool_),
}

_BITS = {
    DType.F32: 32, DType.F16: 16, DType.BF16: 16, DType.F64: 64, DType.I4: 4, DType.I8: 8,
    DType.U8: 8, DType.I16: 16, DType.I32: 32, DType.I64: 64, DType.BOOL: 8,
}
