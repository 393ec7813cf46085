"""Op family: elementwise arithmetic, math, comparison, logic, selection and casts.

Rule: results broadcast their operands' shapes (numpy rules); arithmetic keeps
the operands' common dtype (Pow: the base's), comparisons and tests give bool,
Cast gives its `to` dtype. Semantics are ONNX's newest: integer Div truncates
toward zero, Mod follows the divisor's sign unless `fmod=1`, Round is half to even.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ir.dtypes import DType
from ir.ops.common import as_dtype, broadcast_shapes, like, same_as_first, same_dtype
from ir.ops.pointwise import Accepts, binary, check_dtype, erf, required, unary, variadic
from ir.ops.registry import Attr, AttrKind, define_op
from ir.types import TensorType

# ---- arithmetic -------------------------------------------------------------------------------


def _divide(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Division; integers truncate toward zero as in C."""
    if a.dtype.kind not in "iu":
        return np.divide(a, b)
    quotient = np.floor_divide(a, b)
    inexact = (np.remainder(a, b) != 0) & ((a < 0) ^ (b < 0))
    return quotient + inexact.astype(quotient.dtype)


def _modulo(a: np.ndarray, b: np.ndarray, fmod: int) -> np.ndarray:
    return np.fmod(a, b) if fmod else np.mod(a, b)


def _power(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    if a.dtype.kind in "iu" and b.dtype.kind in "iu" and np.any(b < 0):
        return np.power(a.astype(np.float64), b)  # numpy refuses negative integer powers of integers
    return np.power(a, b)


binary("Add", np.add, "A + B.")
binary("Sub", np.subtract, "A - B.")
binary("Mul", np.multiply, "A * B.")
binary("Div", _divide, "A / B; integer division truncates toward zero.")
binary(
    "Mod",
    _modulo,
    "Remainder of A / B: sign of B (fmod=0) or of A (fmod=1, C fmod).",
    attrs={"fmod": Attr(AttrKind.INT, 0)},
)
binary("Pow", _power, "A ** B; B may have another dtype, the result has A's.", mixed=True)

variadic("Sum", np.add, "Sum of one or more operands.")
variadic("Max", np.maximum, "Elementwise maximum of one or more operands (NaN propagates).", epilogue=True)
variadic("Min", np.minimum, "Elementwise minimum of one or more operands (NaN propagates).", epilogue=True)
variadic(
    "Mean", np.add, "Mean of one or more float operands.", accepts="float", finish=lambda total, n: total / n
)

# ---- one-operand math -------------------------------------------------------------------------

_UNARY: list[tuple[str, Any, Accepts, str]] = [
    ("Neg", np.negative, "signed", "-X."),
    ("Abs", np.abs, "number", "|X|."),
    ("Sign", np.sign, "number", "-1, 0 or 1 by the sign of X."),
    ("Reciprocal", np.reciprocal, "float", "1 / X."),
    ("Floor", np.floor, "float", "Largest integer <= X."),
    ("Ceil", np.ceil, "float", "Smallest integer >= X."),
    ("Round", np.round, "float", "X rounded to the nearest integer, halves to even."),
    ("Exp", np.exp, "float", "e ** X."),
    ("Log", np.log, "float", "Natural logarithm of X."),
    ("Sqrt", np.sqrt, "float", "Square root of X."),
    ("Erf", erf, "float", "Gauss error function."),
    ("Sin", np.sin, "float", "Sine."),
    ("Cos", np.cos, "float", "Cosine."),
    ("Tan", np.tan, "float", "Tangent."),
    ("Asin", np.arcsin, "float", "Arcsine."),
    ("Acos", np.arccos, "float", "Arccosine."),
    ("Atan", np.arctan, "float", "Arctangent."),
    ("Sinh", np.sinh, "float", "Hyperbolic sine."),
    ("Cosh", np.cosh, "float", "Hyperbolic cosine."),
    ("Asinh", np.arcsinh, "float", "Inverse hyperbolic sine."),
    ("Acosh", np.arccosh, "float", "Inverse hyperbolic cosine."),
    ("Atanh", np.arctanh, "float", "Inverse hyperbolic tangent."),
]
for _name, _fn, _accepts, _doc in _UNARY:
    unary(_name, _fn, _doc, family="elementwise", accepts=_accepts)


def _clip(x: np.ndarray, min: float | None = None, max: float | None = None) -> np.ndarray:  # noqa: A002
    if min is not None:
        x = np.maximum(x, _bound(min, x.dtype))
    if max is not None:
        x = np.minimum(x, _bound(max, x.dtype))
    return x


def _bound(value: float, dtype: np.dtype) -> np.ndarray:
    """A clip bound in `dtype`; integer bounds beyond the type's range saturate."""
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        if math.isnan(value):
            return np.array(0, dtype)
        return np.array(
            info.max if value >= info.max else info.min if value <= info.min else int(value), dtype
        )
    return np.array(value, dtype)


unary(
    "Clip",
    _clip,
    "X limited to [min, max]; an absent bound does not limit. min > max gives max.",
    family="elementwise",
    accepts="number",
    attrs={"min": Attr(AttrKind.FLOAT, None), "max": Attr(AttrKind.FLOAT, None)},
)

# ---- comparisons, tests and logic -------------------------------------------------------------

binary("Equal", np.equal, "A == B.", accepts="any", result=DType.BOOL)
binary("Greater", np.greater, "A > B.", result=DType.BOOL)
binary("Less", np.less, "A < B.", result=DType.BOOL)
binary("GreaterOrEqual", np.greater_equal, "A >= B.", result=DType.BOOL)
binary("LessOrEqual", np.less_equal, "A <= B.", result=DType.BOOL)
binary("And", np.logical_and, "A and B.", accepts="bool")
binary("Or", np.logical_or, "A or B.", accepts="bool")
binary("Xor", np.logical_xor, "A xor B.", accepts="bool")
unary("Not", np.logical_not, "not X.", family="elementwise", accepts="bool")
unary("IsNaN", np.isnan, "Whether X is NaN.", family="elementwise", result=DType.BOOL)


def _is_inf(x: np.ndarray, detect_negative: int, detect_positive: int) -> np.ndarray:
    return (np.isneginf(x) & bool(detect_negative)) | (np.isposinf(x) & bool(detect_positive))


unary(
    "IsInf",
    _is_inf,
    "Whether X is an infinity of a detected sign.",
    family="elementwise",
    attrs={"detect_negative": Attr(AttrKind.INT, 1), "detect_positive": Attr(AttrKind.INT, 1)},
    result=DType.BOOL,
)

# ---- selection and conversion -----------------------------------------------------------------


def _where_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    condition, x, y = types
    assert condition is not None and x is not None and y is not None
    check_dtype(condition, "bool", "operand condition")
    dtype = same_dtype([x, y], "operands X and Y")
    return [TensorType(dtype, broadcast_shapes(condition.shape, x.shape, y.shape))]


def _where(args: Sequence[np.ndarray | None], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    condition, x, y = required(args)
    return [np.where(condition, x, y)]


define_op(
    "Where",
    family="elementwise",
    operands=["condition", "X", "Y"],
    infer=_where_infer,
    compute=_where,
    doc="X where condition holds, else Y (broadcasting all three).",
    pointwise=True,
)


def _cast_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    first = types[0]
    assert first is not None
    return [like(first, dtype=attrs["to"])]


def _cast(args: Sequence[np.ndarray | None], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    with np.errstate(all="ignore"):
        return [as_dtype(required(args)[0], attrs["to"])]


define_op(
    "Cast",
    family="elementwise",
    operands=["input"],
    attrs={"to": Attr(AttrKind.DTYPE)},
    infer=_cast_infer,
    compute=_cast,
    doc="The operand converted to dtype `to` (floats to integers truncate; nonzero is true).",
    pointwise=True,
)

define_op(
    "Identity",
    family="elementwise",
    operands=["input"],
    infer=same_as_first,
    compute=lambda args, attrs: required(args),
    doc="The operand itself.",
    view=True,
)
