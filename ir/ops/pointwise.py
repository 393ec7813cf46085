"""Declaration helpers for pointwise ops (elementwise and activation families).

Rule: a pointwise op's result broadcasts its operands' shapes (numpy rules) and
has the operands' common dtype unless the declaration names another (bool for
comparisons). Each helper checks the dtype class the op accepts, so a bad
operand is an IRError naming the operand. References compute half and
sub-byte types in a wider numpy type (f16/bf16 in f32, i4 in i8) and round the
result back, which is what one correctly rounded op on the narrow type gives.
Every op declared here is `pointwise` (ir/ops/registry.py); a unary or binary
one that accepts numbers and keeps their dtype is also an `epilogue` op, which a
kernel may apply to its result, unless its declaration says `epilogue=False`
(a variadic one only where it says `epilogue=True`).
This module declares no op itself.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

import numpy as np

from ir.dtypes import DType
from ir.errors import IRError
from ir.ops.common import as_dtype, broadcast_shapes, same_dtype
from ir.ops.registry import Attr, define_op
from ir.types import TensorType

Accepts = Literal["float", "number", "signed", "bool", "any"]
"""The dtype class an operand must be in: floats, anything but bool, signed numbers, bool, any."""

_WIDER: dict[DType, np.dtype] = {
    DType.F16: np.dtype(np.float32),
    DType.BF16: np.dtype(np.float32),
    DType.I4: np.dtype(np.int8),
}


def check_dtype(t: TensorType, accepts: Accepts, what: str) -> None:
    """An IRError naming `what` unless `t`'s dtype is in the class `accepts`."""
    dtype = t.dtype
    ok = {
        "float": dtype.is_float,
        "number": dtype is not DType.BOOL,
        "signed": dtype.is_float or dtype in (DType.I4, DType.I8, DType.I16, DType.I32, DType.I64),
        "bool": dtype is DType.BOOL,
        "any": True,
    }[accepts]
    if not ok:
        kind = {"float": "a float", "number": "a numeric", "signed": "a signed numeric", "bool": "a bool"}
        raise IRError(f"{what} must be {kind[accepts]} tensor, got {t}")


def required(args: Sequence[np.ndarray | None]) -> list[np.ndarray]:
    """The operand arrays of an op that has no optional operands."""
    assert all(a is not None for a in args)
    return [a for a in args if a is not None]


_ERF = np.frompyfunc(math.erf, 1, 1)


def erf(x: np.ndarray) -> np.ndarray:
    """The Gauss error function in float64 (numpy has none; math.erf is exact to the last bit)."""
    return np.asarray(_ERF(np.asarray(x, np.float64)), np.float64)


def widened(array: np.ndarray) -> np.ndarray:
    """`array` in the numpy type its reference arithmetic runs in."""
    wider = _WIDER.get(DType.from_numpy(array.dtype))
    return array.astype(wider) if wider is not None else array


def evaluate(
    fn: Callable[..., Any], arrays: Sequence[np.ndarray], attrs: Mapping[str, Any], dtype: DType
) -> np.ndarray:
    """Run `fn(*arrays, **attrs)` in the widened types and cast the result to `dtype`."""
    with np.errstate(all="ignore"):
        return as_dtype(fn(*(widened(a) for a in arrays), **attrs), dtype)


AttrCheck = Callable[[Mapping[str, Any]], None]
"""Validates an op's attributes at inference time (raises IRError)."""


def pointwise_infer(
    names: Sequence[str],
    accepts: Sequence[Accepts],
    result: DType | None,
    mixed: bool = False,
    check: AttrCheck | None = None,
) -> Callable[[Sequence[TensorType | None], Mapping[str, Any]], list[TensorType]]:
    """Inference: check each operand's dtype class, broadcast the shapes.

    The result dtype is `result`, else the operands' common dtype (the first
    operand's when `mixed` allows the operands to differ).
    """

    def infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
        if check is not None:
            check(attrs)
        present = [t for t in types if t is not None]
        if not present:
            raise IRError("needs at least one operand")
        for i, t in enumerate(present):
            label = names[i] if len(names) > 1 else f"{names[0]}[{i}]" if len(present) > 1 else names[0]
            check_dtype(t, accepts[min(i, len(accepts) - 1)], f"operand {label}")
        dtype = present[0].dtype if mixed else same_dtype(present)
        return [TensorType(result or dtype, broadcast_shapes(*(t.shape for t in present)))]

    return infer


def result_dtype(arrays: Sequence[np.ndarray], result: DType | None) -> DType:
    return result or DType.from_numpy(arrays[0].dtype)


def keeps_numbers(*accepts: Accepts, result: DType | None = None) -> bool:
    """Whether an op over operands of the classes `accepts` computes numbers of their dtype."""
    return result is None and all(a not in ("bool", "any") for a in accepts)


def unary(
    name: str,
    fn: Callable[..., Any],
    doc: str,
    *,
    family: str,
    accepts: Accepts = "float",
    attrs: Mapping[str, Attr] | None = None,
    result: DType | None = None,
    check: AttrCheck | None = None,
    epilogue: bool = True,
) -> None:
    """Declare a one-operand op computing `fn(X, **attrs)` elementwise."""

    def compute(args: Sequence[np.ndarray | None], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        (x,) = required(args)
        return [evaluate(fn, [x], attrs, result_dtype([x], result))]

    define_op(
        name,
        family=family,
        operands=["X"],
        attrs=attrs,
        infer=pointwise_infer(["X"], [accepts], result, check=check),
        compute=compute,
        doc=doc,
        pointwise=True,
        epilogue=epilogue and keeps_numbers(accepts, result=result),
    )


def binary(
    name: str,
    fn: Callable[..., Any],
    doc: str,
    *,
    family: str = "elementwise",
    accepts: Accepts | tuple[Accepts, Accepts] = "number",
    attrs: Mapping[str, Attr] | None = None,
    result: DType | None = None,
    mixed: bool = False,
    epilogue: bool = True,
) -> None:
    """Declare a broadcasting two-operand op computing `fn(A, B, **attrs)`.

    `mixed` lets the operands' dtypes differ; the result then has A's dtype.
    """
    pair = accepts if isinstance(accepts, tuple) else (accepts, accepts)

    def compute(args: Sequence[np.ndarray | None], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        a, b = required(args)
        return [evaluate(fn, [a, b], attrs, result_dtype([a], result))]

    define_op(
        name,
        family=family,
        operands=["A", "B"],
        attrs=attrs,
        infer=pointwise_infer(["A", "B"], pair, result, mixed),
        compute=compute,
        doc=doc,
        pointwise=True,
        epilogue=epilogue and keeps_numbers(*pair, result=result),
    )


def variadic(
    name: str,
    fn: Callable[[np.ndarray, np.ndarray], np.ndarray],
    doc: str,
    *,
    accepts: Accepts = "number",
    finish: Callable[[np.ndarray, int], np.ndarray] | None = None,
    epilogue: bool = False,
) -> None:
    """Declare an op folding `fn` over one or more broadcasting operands (then `finish(total, n)`)."""

    def combine(*arrays: np.ndarray) -> np.ndarray:
        total = functools.reduce(fn, arrays)
        total = np.broadcast_to(total, broadcast_shapes(*(a.shape for a in arrays)))
        return finish(total, len(arrays)) if finish else total

    def compute(args: Sequence[np.ndarray | None], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        arrays = required(args)
        return [evaluate(combine, arrays, {}, result_dtype(arrays, None))]

    define_op(
        name,
        family="elementwise",
        operands=["inputs*"],
        infer=pointwise_infer(["inputs"], [accepts], None),
        compute=compute,
        doc=doc,
        pointwise=True,
        epilogue=epilogue,
    )
