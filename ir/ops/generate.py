"""Op family: generate — ops whose result comes from attributes alone (no operands).

Rule: the result's shape and dtype are attributes, so these nodes fold to
constants whenever they are small; they stay in the IR only when folding them
would store a large constant.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ir.dtypes import DType
from ir.errors import IRError
from ir.ops.registry import Attr, AttrKind, define_op
from ir.types import TensorType

FAMILY = "generate"


def _constant_of_shape_infer(
    types: Sequence[TensorType | None], attrs: Mapping[str, Any]
) -> list[TensorType]:
    shape = tuple(attrs["shape"])
    if any(d < 0 for d in shape):
        raise IRError(f"shape {list(shape)} has a negative dimension")
    return [TensorType(attrs["dtype"], shape)]


define_op(
    "ConstantOfShape",
    family=FAMILY,
    operands=[],
    attrs={
        "shape": Attr(AttrKind.INTS),
        "value": Attr(AttrKind.FLOAT, 0.0),
        "dtype": Attr(AttrKind.DTYPE, DType.F32),
    },
    infer=_constant_of_shape_infer,
    compute=lambda args, attrs: [
        np.full(attrs["shape"], np.array(attrs["value"]).astype(attrs["dtype"].numpy))
    ],
    doc="A tensor of `shape` and `dtype` filled with `value`.",
)


def range_length(start: float, limit: float, delta: float) -> int:
    """ONNX Range's element count: max(ceil((limit - start) / delta), 0)."""
    if delta == 0:
        raise IRError("Range delta must not be 0")
    return max(math.ceil((limit - start) / delta), 0)


def _range_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    dtype = attrs["dtype"]
    if dtype is DType.BOOL:
        raise IRError("Range cannot make a bool tensor")
    return [TensorType(dtype, (range_length(attrs["start"], attrs["limit"], attrs["delta"]),))]


def _range(args: Sequence[np.ndarray | None], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    dtype: DType = attrs["dtype"]
    start, limit, delta = attrs["start"], attrs["limit"], attrs["delta"]
    count = range_length(start, limit, delta)
    if dtype.is_integer:
        values = int(start) + np.arange(count, dtype=np.int64) * int(delta)
    else:
        values = start + np.arange(count, dtype=np.float64) * delta
    return [values.astype(dtype.numpy)]


define_op(
    "Range",
    family=FAMILY,
    operands=[],
    attrs={
        "start": Attr(AttrKind.FLOAT),
        "limit": Attr(AttrKind.FLOAT),
        "delta": Attr(AttrKind.FLOAT),
        "dtype": Attr(AttrKind.DTYPE),
    },
    infer=_range_infer,
    compute=_range,
    doc="start, start+delta, ... while before `limit`, as a 1-D tensor of `dtype`.",
)
