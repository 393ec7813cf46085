"""Op family: elementwise arithmetic, comparison and logic (numpy broadcasting).

Rule: results broadcast their operands' shapes; arithmetic keeps the operands'
common dtype, comparisons give bool.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ir.dtypes import DType
from ir.ops.common import as_dtype, broadcast_shapes, like, same_as_first, same_dtype
from ir.ops.registry import define_op
from ir.types import TensorType


def _binary_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    dtype = same_dtype(types)
    return [TensorType(dtype, broadcast_shapes(*(t.shape for t in types if t is not None)))]


def binary(name: str, fn: Callable[[np.ndarray, np.ndarray], np.ndarray], doc: str) -> None:
    """Declare a broadcasting binary op whose result has the operands' dtype."""

    def compute(args: Sequence[np.ndarray | None], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        a, b = args
        return [as_dtype(fn(a, b), DType.from_numpy(a.dtype))]

    define_op(name, family="elementwise", operands=["A", "B"], infer=_binary_infer, compute=compute, doc=doc)


binary("Add", np.add, "A + B, broadcasting.")

define_op(
    "Identity",
    family="elementwise",
    operands=["input"],
    infer=same_as_first,
    compute=lambda args, attrs: [args[0]],
    doc="The operand itself.",
)
