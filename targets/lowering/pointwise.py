"""Pointwise IR ops as TE expressions of their operands' elements, matching the IR references exactly.

Rule: every elementwise and activation op is written once, in a table
(`UNARY`, `BINARY`, `VARIADIC`) or as one of the special forms below (Where,
Cast, Identity), as a function of expressions in the op's *compute* dtype:
f16 and bf16 operands are widened to f32 and the result is rounded once at the
end, as ir/ops/pointwise.py's references do; other dtypes compute in
themselves (integers wrap like numpy; integer Div/Mod never trap: a zero
divisor gives 0 and MIN / -1 wraps, as numpy does). `node_expr(node,
operands)` takes the operands' elements in their storage dtype and gives the
result's element in its storage dtype. bf16 is stored as its uint16 bit
pattern and i4 as one uint8 per element (the low nibble, as ml_dtypes stores
it), because numpy cannot hand ml_dtypes arrays to DLPack: `storage_dtype`
names the kernel's view of a value (every template's, project-wide),
`widen`/`narrow` convert the bits (bf16: round to nearest even, like
ml_dtypes; i4 computes in i8 and wraps into its nibble, like the reference).
Float min/max propagate NaN like numpy.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from tvm import te, tirx

from ir.dtypes import DType
from ir.graph import Node
from targets.lowering.vector_math import erf, exp, tanh

Expr = Any


def dtype_of(expr: Expr) -> str:
    """An expression's dtype name (TVM 0.27 calls it `ty`; a tensor element knows its tensor's dtype)."""
    return str(expr.ty) if hasattr(expr, "ty") else str(expr.dtype)


def is_float(expr: Expr) -> bool:
    return dtype_of(expr).startswith("float")


def _c(value: float | int | bool, like: Expr) -> Expr:
    return te.const(value, dtype_of(like))


# ---- storage and compute dtypes ---------------------------------------------------------------


_STORAGE = {DType.BF16: "uint16", DType.I4: "uint8"}
_COMPUTE = {DType.F16: "float32", DType.BF16: "float32", DType.I4: "int8"}


def storage_dtype(dtype: DType) -> str:
    """The dtype a kernel buffer of an IR `dtype` value has (bf16: its uint16 bits; i4: one uint8 each)."""
    return _STORAGE.get(dtype, dtype.numpy.name)


def compute_dtype(dtype: DType) -> str:
    """The dtype a kernel computes an IR `dtype` value in (f32 for f16 and bf16, i8 for i4)."""
    return _COMPUTE.get(dtype, dtype.numpy.name)


def widen(x: Expr, dtype: DType) -> Expr:
    """A storage element of an IR `dtype` value, in its compute dtype."""
    if dtype is DType.BF16:
        return tirx.reinterpret("float32", x.astype("uint32") << te.const(16, "uint32"))
    if dtype is DType.I4:  # the low nibble, sign-extended
        return (x << te.const(4, "uint8")).astype("int8") >> te.const(4, "int8")
    return x.astype("float32") if dtype is DType.F16 else x


def narrow(x: Expr, dtype: DType) -> Expr:
    """A compute-dtype (or any float) element rounded to IR `dtype`'s storage (bf16: nearest even bits)."""
    if dtype is DType.BF16:
        bits = tirx.reinterpret("uint32", x.astype("float32"))
        even = (bits >> te.const(16, "uint32")) & te.const(1, "uint32")
        rounded = (bits + te.const(0x7FFF, "uint32") + even) >> te.const(16, "uint32")
        quiet_nan = (bits >> te.const(16, "uint32")) | te.const(0x40, "uint32")
        return tirx.Select(te.isnan(x), quiet_nan, rounded).astype("uint16")
    if dtype is DType.I4:  # wrap into the low nibble, as ml_dtypes' astype from i8
        wide = float_to_int(x, "int32") if is_float(x) else x.astype("int32")
        return (wide & te.const(15, "int32")).astype("uint8")
    if dtype is DType.F16 and dtype_of(x) == "float64":
        x = to_f32_odd(x)  # x86 has no direct f64 -> f16 conversion (it would be a libgcc call)
    target = storage_dtype(dtype)
    return x if dtype_of(x) == target else x.astype(target)


def to_f32_odd(x: Expr) -> Expr:
    """An f64 `x` as f32 rounded to odd (toward zero, then the last bit set when inexact), so that rounding
    it on to f16 rounds `x` itself to nearest even, as numpy's direct f64 -> f16 cast does: f32 keeps
    more than the 2 extra bits this needs, where a nearest f32 can land on an f16 tie and round twice."""
    nearest = x.astype("float32")
    back = nearest.astype("float64")
    bits = tirx.reinterpret("uint32", nearest)
    one = te.const(1, "uint32")
    toward_zero = tirx.Select(tirx.abs(back) > tirx.abs(x), bits - one, bits)
    odd = tirx.Select(tirx.NE(back, x), toward_zero | one, bits)  # NaN stays NaN (|1 keeps it quiet)
    return tirx.reinterpret("float32", odd)


# ---- shared pieces ----------------------------------------------------------------------------


def vector_isnan(x: Expr) -> Expr:
    """isnan(x) as integer bit tests, which TVM vectorises (its `te.isnan` becomes gathers and scalars)."""
    bits = {"float32": ("int32", 0x7FFFFFFF, 0x7F800000), "float64": ("int64", 2**63 - 1, 0x7FF0 << 48)}
    if dtype_of(x) not in bits:
        return te.isnan(x)
    int_type, magnitude, infinity = bits[dtype_of(x)]
    return (tirx.reinterpret(int_type, x) & tirx.const(magnitude, int_type)) > tirx.const(infinity, int_type)


def fmax(a: Expr, b: Expr) -> Expr:
    """numpy.maximum: a NaN operand wins (integers: plain max)."""
    return tirx.Select(vector_isnan(a) | (a > b), a, b) if is_float(a) else te.max(a, b)


def fmin(a: Expr, b: Expr) -> Expr:
    """numpy.minimum: a NaN operand wins (integers: plain min)."""
    return tirx.Select(vector_isnan(a) | (a < b), a, b) if is_float(a) else te.min(a, b)


def _xor(p: Expr, q: Expr) -> Expr:
    """Boolean xor (TVM's NE on two bools emits a float compare)."""
    return tirx.Or(tirx.And(p, tirx.Not(q)), tirx.And(tirx.Not(p), q))


def _equal(a: Expr, b: Expr) -> Expr:
    """a == b; bools compare as int8 (TVM's EQ on bools emits a float compare)."""
    if dtype_of(a) == "bool":
        a, b = a.astype("int8"), b.astype("int8")
    return tirx.EQ(a, b)


def _select(cond: Expr, a: Expr, b: Expr) -> Expr:
    return tirx.Select(cond, a, b)


def _sigmoid(x: Expr) -> Expr:
    return _c(1, x) / (_c(1, x) + exp(-x))


def _softplus(x: Expr) -> Expr:
    """log(1 + exp(x)) without overflow: max(x, 0) + log1p(exp(-|x|))."""
    return te.max(x, _c(0, x)) + tirx.log1p(exp(-te.abs(x)))


def _expm1(x: Expr) -> Expr:
    return exp(x) - _c(1, x)


def _sinh(x: Expr) -> Expr:
    """sinh without a scalar libm call (LLVM cannot vectorise tirx.sinh): a short series near 0."""
    e = exp(x)
    series = x + x * x * x * (_c(1 / 6, x) + x * x * _c(1 / 120, x))
    return _select(te.abs(x) < _c(0.25, x), series, (e - _c(1, x) / e) * _c(0.5, x))


def _cosh(x: Expr) -> Expr:
    e = exp(x)
    return (e + _c(1, x) / e) * _c(0.5, x)


def _hard_sigmoid(x: Expr, alpha: float, beta: float) -> Expr:
    return fmin(fmax(x * _c(alpha, x) + _c(beta, x), _c(0, x)), _c(1, x))


def _gelu(x: Expr, approximate: str) -> Expr:
    if approximate == "tanh":
        inner = _c(math.sqrt(2 / math.pi), x) * (x + _c(0.044715, x) * x * x * x)
        return _c(0.5, x) * x * (_c(1, x) + tanh(inner))
    return _c(0.5, x) * x * (_c(1, x) + erf(x * _c(1 / math.sqrt(2), x)))


def _sign(x: Expr) -> Expr:
    zero_or_nan = x if is_float(x) else _c(0, x)
    negative = _c(-1, x) if not dtype_of(x).startswith("uint") else _c(0, x)
    return _select(x > _c(0, x), _c(1, x), _select(x < _c(0, x), negative, zero_or_nan))


def _bound(value: float, x: Expr) -> Expr:
    """A Clip bound in x's dtype; integer bounds beyond the type's range saturate (NaN gives 0)."""
    dtype = np.dtype(dtype_of(x))
    if dtype.kind not in "iu":
        return _c(value, x)
    info = np.iinfo(dtype)
    if math.isnan(value):
        return _c(0, x)
    return _c(info.max if value >= info.max else info.min if value <= info.min else int(value), x)


def _clip(x: Expr, low: float | None, high: float | None) -> Expr:
    if low is not None:
        x = fmax(x, _bound(low, x))
    if high is not None:
        x = fmin(x, _bound(high, x))
    return x


def _is_inf(x: Expr, negative: int, positive: int) -> Expr:
    hits = [te.isinf(x) & (x < _c(0, x))] * bool(negative) + [te.isinf(x) & (x > _c(0, x))] * bool(positive)
    return tirx.Or(*hits) if len(hits) == 2 else hits[0] if hits else te.const(False, "bool")


def _safe_divisor(a: Expr, b: Expr, special: Expr, fn: Callable[[Expr, Expr], Expr]) -> Expr:
    """fn(a, b) for integers without a trap: b == 0 gives 0 and b == -1 gives `special` (numpy's results)."""
    signed = dtype_of(b).startswith("int")
    bad = tirx.EQ(b, _c(0, b)) | tirx.EQ(b, _c(-1, b)) if signed else tirx.EQ(b, _c(0, b))
    result = fn(a, _select(bad, _c(1, b), b))
    if signed:
        result = _select(tirx.EQ(b, _c(-1, b)), special, result)
    return _select(tirx.EQ(b, _c(0, b)), _c(0, a), result)


def _divide(a: Expr, b: Expr) -> Expr:
    return a / b if is_float(a) else _safe_divisor(a, b, _c(0, a) - a, tirx.truncdiv)


def _modulo(a: Expr, b: Expr, fmod: int) -> Expr:
    if not is_float(a):
        return _safe_divisor(a, b, _c(0, a), tirx.truncmod if fmod else tirx.floormod)
    dtype = dtype_of(a)
    rem = tirx.call_pure_extern(dtype, "fmodf" if dtype == "float32" else "fmod", a, b)  # libm, exact
    if fmod:
        return rem
    wrong_sign = tirx.NE(rem, _c(0, a)) & _xor(rem < _c(0, a), b < _c(0, b))
    return _select(wrong_sign, rem + b, rem)  # numpy.mod: the divisor's sign


def _power(a: Expr, b: Expr) -> Expr:
    if is_float(a) and isinstance(b, tirx.FloatImm | tirx.IntImm) and float(b.value) == 2.0:
        return a * a  # LayerNorm's variance: exact as pow, and no pow() call where a device has no fast one
    if is_float(a):
        return te.power(a, b.astype(dtype_of(a)))
    # integer bases go through f64 (exact below 2**53; numpy wraps beyond, and so may differ)
    return float_to_int(te.power(a.astype("float64"), b.astype("float64")), dtype_of(a))


def _variadic_mean(values: Sequence[Expr]) -> Expr:
    total = _fold(lambda a, b: a + b, values)
    return total / _c(len(values), total)


def _fold(fn: Callable[[Expr, Expr], Expr], values: Sequence[Expr]) -> Expr:
    total = values[0]
    for v in values[1:]:
        total = fn(total, v)
    return total


# ---- the tables -------------------------------------------------------------------------------

UnaryFn = Callable[[Expr, Mapping[str, Any]], Expr]
BinaryFn = Callable[[Expr, Expr, Mapping[str, Any]], Expr]


def _math(fn: Callable[[Expr], Expr]) -> UnaryFn:
    return lambda x, a: fn(x)


UNARY: dict[str, UnaryFn] = {
    "Identity": lambda x, a: x,
    "Neg": lambda x, a: _c(0, x) - x,
    "Abs": lambda x, a: x if dtype_of(x).startswith("uint") else _select(x < _c(0, x), _c(0, x) - x, x),
    "Sign": lambda x, a: _sign(x),
    "Reciprocal": lambda x, a: _c(1, x) / x,
    "Clip": lambda x, a: _clip(x, a.get("min"), a.get("max")),
    "Not": lambda x, a: tirx.Not(x),
    "IsNaN": lambda x, a: te.isnan(x),
    "IsInf": lambda x, a: _is_inf(x, a["detect_negative"], a["detect_positive"]),
    "Relu": lambda x, a: fmax(x, _c(0, x)),
    "LeakyRelu": lambda x, a: _select(x < _c(0, x), x * _c(a["alpha"], x), x),
    "Sigmoid": lambda x, a: _sigmoid(x),
    "HardSigmoid": lambda x, a: _hard_sigmoid(x, a["alpha"], a["beta"]),
    "HardSwish": lambda x, a: x * _hard_sigmoid(x, 1 / 6, 0.5),
    "Gelu": lambda x, a: _gelu(x, a.get("approximate", "none")),
    "Elu": lambda x, a: _select(x > _c(0, x), x, _c(a["alpha"], x) * _expm1(x)),
    "Selu": lambda x, a: _c(a["gamma"], x) * _select(x > _c(0, x), x, _c(a["alpha"], x) * _expm1(x)),
    "Softplus": lambda x, a: _softplus(x),
    "Softsign": lambda x, a: x / (_c(1, x) + te.abs(x)),
    "Celu": lambda x, a: (
        te.max(x, _c(0, x)) + te.min(_c(0, x), _c(a["alpha"], x) * _expm1(x / _c(a["alpha"], x)))
    ),
    "ThresholdedRelu": lambda x, a: _select(x > _c(a["alpha"], x), x, _c(0, x)),
    "Swish": lambda x, a: x * _sigmoid(x * _c(a.get("alpha", 1.0), x)),
    "Mish": lambda x, a: x * tanh(_softplus(x)),
    **{
        name: _math(fn)
        for name, fn in {
            "Floor": te.floor,
            "Ceil": te.ceil,
            "Round": te.round,  # nearbyint: halves to even
            "Exp": exp,
            "Log": te.log,
            "Sqrt": te.sqrt,
            "Erf": erf,
            "Tanh": tanh,
            "Sin": te.sin,
            "Cos": te.cos,
            "Tan": te.tan,
            "Asin": te.asin,
            "Acos": te.acos,
            "Atan": te.atan,
            "Sinh": _sinh,
            "Cosh": _cosh,
            "Asinh": te.asinh,
            "Acosh": te.acosh,
            "Atanh": te.atanh,
        }.items()
    },
}

BINARY: dict[str, BinaryFn] = {
    "Add": lambda a, b, at: a + b,
    "Sub": lambda a, b, at: a - b,
    "Mul": lambda a, b, at: a * b,
    "Div": lambda a, b, at: _divide(a, b),
    "Mod": lambda a, b, at: _modulo(a, b, at.get("fmod", 0)),
    "Pow": lambda a, b, at: _power(a, b),
    "Max": lambda a, b, at: fmax(a, b),
    "Min": lambda a, b, at: fmin(a, b),
    "Equal": lambda a, b, at: _equal(a, b),
    "Greater": lambda a, b, at: a > b,
    "Less": lambda a, b, at: a < b,
    "GreaterOrEqual": lambda a, b, at: a >= b,
    "LessOrEqual": lambda a, b, at: a <= b,
    "And": lambda a, b, at: tirx.And(a, b),
    "Or": lambda a, b, at: tirx.Or(a, b),
    "Xor": lambda a, b, at: _xor(a, b),
    "PRelu": lambda x, s, at: _select(x < _c(0, x), x * s, x),
}

VARIADIC: dict[str, Callable[[Sequence[Expr]], Expr]] = {
    "Sum": lambda vs: _fold(lambda a, b: a + b, vs),
    "Max": lambda vs: _fold(fmax, vs),
    "Min": lambda vs: _fold(fmin, vs),
    "Mean": _variadic_mean,
}

SPECIAL = ("Where", "Cast")
POINTWISE_OPS = frozenset({*UNARY, *BINARY, *VARIADIC, *SPECIAL})


def vectorizable(node: Node) -> bool:
    """Whether LLVM can vectorise `node`'s expression (float Mod calls libm's scalar fmod)."""
    return not (node.op == "Mod" and node.results[0].type.dtype.is_float)


# ---- casts ------------------------------------------------------------------------------------


def float_to_int(x: Expr, target: str) -> Expr:
    """numpy's float -> integer astype on x86: truncate to i32 (i64 for 64-bit targets), then wrap."""
    wide = "int64" if target in ("int64", "uint64") else "int32"
    return x.astype(wide).astype(target) if wide != target else x.astype(target)


def cast(x: Expr, source: DType, to: DType) -> Expr:
    """An element of a `source` value (storage dtype) converted to `to` (storage dtype), like numpy astype."""
    if source is to:
        return x
    value = widen(x, source)
    if to is DType.BOOL:
        return tirx.NE(value, _c(0, value)) if source is not DType.BOOL else value
    if source is DType.BOOL:
        value = value.astype("int8")
    if to.is_float:
        if not source.is_float and to in (DType.F16, DType.BF16):
            value = value.astype("float32")
        return narrow(value.astype(compute_dtype(to)) if not is_float(value) else value, to)
    if to is DType.I4:
        return narrow(value, to)
    if is_float(value):
        return float_to_int(value, storage_dtype(to))
    return value.astype(storage_dtype(to))


# ---- one node ---------------------------------------------------------------------------------


def node_expr(node: Node, operands: Sequence[Expr]) -> Expr:
    """The element of `node`'s result (storage dtype) from its operands' elements (storage dtypes)."""
    op = node.op
    result = node.results[0].type.dtype
    dtypes = [v.type.dtype for v in node.operands if v is not None]
    if op == "Cast":
        return cast(operands[0], dtypes[0], node.attrs["to"])
    if op in ("Where", "Identity"):
        return operands[-1] if op == "Identity" else _select(operands[0], operands[1], operands[2])
    wide = [widen(x, d) for x, d in zip(operands, dtypes, strict=True)]
    if op in UNARY:
        value = UNARY[op](wide[0], node.attrs)
    elif op in VARIADIC and (len(wide) != 2 or op not in BINARY):
        value = VARIADIC[op](wide)
    else:
        value = BINARY[op](wide[0], wide[1], node.attrs)
    return narrow(value, result)
