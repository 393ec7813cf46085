"""Op family: reductions along axes, arg-reductions, softmax-likes and TopK.

Rule: axes are explicit and non-negative in the IR (the frontend resolves ONNX
defaults, negative axes and `noop_with_empty_axes`): a reduce op reduces exactly
its `axes` (none listed: nothing is reduced) and keeps them as 1s when
`keepdims=1`. Softmax, LogSoftmax and Hardmax work along one `axis` (ONNX 13+
semantics) and round every step to the operand's dtype, as ONNX's reference
does. Reducing an empty set gives the reduction's identity (0, 1, -inf, the
dtype's minimum, ...).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ir.dtypes import DType
from ir.errors import IRError
from ir.ops.common import as_dtype, like
from ir.ops.pointwise import Accepts, check_dtype, evaluate, widened
from ir.ops.registry import Attr, AttrKind, define_op
from ir.types import TensorType


def check_axis(axis: int, rank: int, what: str = "axis") -> int:
    """An IRError unless `axis` is an explicit (non-negative) axis of a rank-`rank` tensor."""
    if not 0 <= axis < rank:
        raise IRError(f"{what} {axis} is not in [0, {rank}) (IR axes are non-negative)")
    return axis


def reduced_shape(shape: Sequence[int], axes: Sequence[int], keepdims: int) -> tuple[int, ...]:
    """The shape left after reducing `axes` (checked explicit and distinct)."""
    for a in axes:
        check_axis(a, len(shape), "axes entry")
    if len(set(axes)) != len(axes):
        raise IRError(f"axes {list(axes)} repeat an axis")
    if keepdims:
        return tuple(1 if i in axes else d for i, d in enumerate(shape))
    return tuple(d for i, d in enumerate(shape) if i not in axes)


# ---- reductions along axes --------------------------------------------------------------------

ReduceFn = Callable[[np.ndarray, tuple[int, ...], bool], np.ndarray]


def _lowest(dtype: np.dtype) -> Any:
    return False if dtype == np.bool_ else np.iinfo(dtype).min if dtype.kind in "iu" else -np.inf


def _highest(dtype: np.dtype) -> Any:
    return True if dtype == np.bool_ else np.iinfo(dtype).max if dtype.kind in "iu" else np.inf


def _sum(x: np.ndarray, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
    return np.sum(x, axis=axes, keepdims=keepdims, dtype=x.dtype)


def _mean(x: np.ndarray, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
    count = math.prod(x.shape[a] for a in axes)
    return np.divide(_sum(x, axes, keepdims), count)


def _log_sum_exp(x: np.ndarray, axes: tuple[int, ...], keepdims: bool) -> np.ndarray:
    if x.size == 0 or not axes:
        return np.log(_sum(np.exp(x), axes, keepdims))
    finite = np.where(np.isinf(x), -np.inf, x)
    shift = np.max(finite, axis=axes, keepdims=True)
    shift = np.where(np.isfinite(shift), shift, 0)
    total = np.log(np.sum(np.exp(x - shift), axis=axes, keepdims=True)) + shift
    return total if keepdims else np.squeeze(total, axis=axes)


_REDUCTIONS: list[tuple[str, ReduceFn, Accepts, str]] = [
    ("ReduceSum", _sum, "number", "Sum over axes."),
    ("ReduceMean", _mean, "number", "Mean over axes (integers truncate toward zero)."),
    ("ReduceProd", lambda x, a, k: np.prod(x, axis=a, keepdims=k, dtype=x.dtype), "number", "Product."),
    (
        "ReduceMax",
        lambda x, a, k: np.max(x, axis=a, keepdims=k, initial=_lowest(x.dtype)),
        "any",
        "Maximum over axes (an empty set gives the dtype's lowest value).",
    ),
    (
        "ReduceMin",
        lambda x, a, k: np.min(x, axis=a, keepdims=k, initial=_highest(x.dtype)),
        "any",
        "Minimum over axes (an empty set gives the dtype's highest value).",
    ),
    ("ReduceL1", lambda x, a, k: _sum(np.abs(x), a, k), "number", "Sum of absolute values."),
    ("ReduceL2", lambda x, a, k: np.sqrt(_sum(x * x, a, k)), "number", "Square root of the sum of squares."),
    ("ReduceSumSquare", lambda x, a, k: _sum(x * x, a, k), "number", "Sum of squares."),
    ("ReduceLogSum", lambda x, a, k: np.log(_sum(x, a, k)), "float", "Log of the sum."),
    ("ReduceLogSumExp", _log_sum_exp, "float", "Log of the sum of exponentials (max-shifted)."),
]

_REDUCE_ATTRS = {"axes": Attr(AttrKind.INTS), "keepdims": Attr(AttrKind.INT, 1)}


def _reduce_infer(
    accepts: Accepts,
) -> Callable[[Sequence[TensorType | None], Mapping[str, Any]], list[TensorType]]:
    def infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
        data = types[0]
        assert data is not None
        check_dtype(data, accepts, "operand data")
        return [like(data, shape=reduced_shape(data.shape, attrs["axes"], attrs["keepdims"]))]

    return infer


def _declare_reduction(name: str, fn: ReduceFn, accepts: Accepts, doc: str) -> None:
    def compute(args: Sequence[np.ndarray | None], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        x = args[0]
        assert x is not None
        dtype = DType.from_numpy(x.dtype)
        call = {"a": tuple(attrs["axes"]), "k": bool(attrs["keepdims"])}
        return [evaluate(lambda v, a, k: np.asarray(fn(v, a, k)), [x], call, dtype)]

    define_op(
        name,
        family="reduce",
        operands=["data"],
        attrs=_REDUCE_ATTRS,
        infer=_reduce_infer(accepts),
        compute=compute,
        doc=doc,
    )


for _name, _fn, _accepts, _doc in _REDUCTIONS:
    _declare_reduction(_name, _fn, _accepts, _doc)

# ---- arg-reductions ---------------------------------------------------------------------------


def _arg_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    data = types[0]
    assert data is not None
    check_dtype(data, "number", "operand data")
    shape = reduced_shape(data.shape, [check_axis(attrs["axis"], data.rank)], attrs["keepdims"])
    return [TensorType(DType.I64, shape)]


def _declare_arg(name: str, pick: Callable[..., np.ndarray], doc: str) -> None:
    def compute(args: Sequence[np.ndarray | None], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        x = widened(args[0])  # type: ignore[arg-type]
        axis = attrs["axis"]
        if attrs["select_last_index"]:
            index = x.shape[axis] - 1 - pick(np.flip(x, axis), axis=axis, keepdims=True)
        else:
            index = pick(x, axis=axis, keepdims=True)
        return [as_dtype(index if attrs["keepdims"] else np.squeeze(index, axis), DType.I64)]

    define_op(
        name,
        family="reduce",
        operands=["data"],
        attrs={
            "axis": Attr(AttrKind.INT, 0),
            "keepdims": Attr(AttrKind.INT, 1),
            "select_last_index": Attr(AttrKind.INT, 0),
        },
        infer=_arg_infer,
        compute=compute,
        doc=doc,
    )


_declare_arg("ArgMax", np.argmax, "Index (i64) of the first (or last) maximum along axis.")
_declare_arg("ArgMin", np.argmin, "Index (i64) of the first (or last) minimum along axis.")

# ---- softmax-likes ----------------------------------------------------------------------------


def _axis_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    x = types[0]
    assert x is not None
    check_dtype(x, "float", "operand input")
    check_axis(attrs["axis"], x.rank)
    return [like(x)]


def _rounded(fn: Callable[[np.ndarray], np.ndarray], x: np.ndarray) -> np.ndarray:
    """`fn(x)` (exp or log) in x's dtype. numpy's own f16 exp and log vary with the CPU (on AVX-512 hosts
    SIMD routines 1-3 ULP off the correctly rounded value), so f16 goes through f64 and rounds once."""
    return fn(x.astype(np.float64)).astype(x.dtype) if x.dtype == np.float16 else fn(x)


def _row_sum(x: np.ndarray, axis: int) -> np.ndarray:
    """The sum along `axis` in x's dtype: f16 exactly (in f64; numpy's own f16 sum rounds in f32 in an
    order of its own), rounded once; bf16 as ml_dtypes sums it, rounding every partial sum."""
    if x.dtype == np.float16:
        return np.sum(x, axis=axis, keepdims=True, dtype=np.float64).astype(x.dtype)
    return np.sum(x, axis=axis, keepdims=True)


def _softmax(x: np.ndarray, axis: int) -> np.ndarray:
    exp = _rounded(np.exp, x - np.max(x, axis=axis, keepdims=True))
    return exp / _row_sum(exp, axis)


def _log_softmax(x: np.ndarray, axis: int) -> np.ndarray:
    shifted = x - np.max(x, axis=axis, keepdims=True)
    return shifted - _rounded(np.log, _row_sum(_rounded(np.exp, shifted), axis))


def _hardmax(x: np.ndarray, axis: int) -> np.ndarray:
    out = np.zeros_like(x)
    if x.size:
        np.put_along_axis(out, np.argmax(x, axis=axis, keepdims=True), 1, axis=axis)
    return out


def _in_own_dtype(fn: Callable[[np.ndarray, int], np.ndarray]) -> Callable[..., list[np.ndarray]]:
    """Softmax-likes round every step to the operand's dtype, as ONNX's reference does for f16."""

    def compute(args: Sequence[np.ndarray | None], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        x = args[0]
        assert x is not None
        if x.size == 0:
            return [x]
        with np.errstate(all="ignore"):
            return [fn(x, attrs["axis"]).astype(x.dtype, copy=False)]

    return compute


_AXIS_OPS: list[tuple[str, Callable[[np.ndarray, int], np.ndarray], str]] = [
    ("Softmax", _softmax, "exp(x - max) / sum(exp(x - max)) along axis."),
    ("LogSoftmax", _log_softmax, "(x - max) - log(sum(exp(x - max))) along axis."),
    ("Hardmax", _hardmax, "1 at the first maximum along axis, 0 elsewhere."),
]

for _name, _axis_fn, _doc in _AXIS_OPS:
    define_op(
        _name,
        family="reduce",
        operands=["input"],
        attrs={"axis": Attr(AttrKind.INT)},
        infer=_axis_infer,
        compute=_in_own_dtype(_axis_fn),
        doc=_doc,
    )

# ---- TopK -------------------------------------------------------------------------------------


def _topk_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    x = types[0]
    assert x is not None
    check_dtype(x, "number", "operand X")
    axis, k = check_axis(attrs["axis"], x.rank), attrs["k"]
    if not 0 <= k <= x.shape[axis]:
        raise IRError(f"k={k} is not in [0, {x.shape[axis]}] (the size of axis {axis})")
    shape = tuple(k if i == axis else d for i, d in enumerate(x.shape))
    return [TensorType(x.dtype, shape), TensorType(DType.I64, shape)]


def _topk(args: Sequence[np.ndarray | None], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    x = args[0]
    assert x is not None
    axis, k, largest = attrs["axis"], attrs["k"], attrs["largest"]
    wide = widened(x)
    position = np.indices(x.shape)[axis]
    # sort by value, ties by position; flipping a "largest" sort keeps the lower index first
    order = np.lexsort((-position if largest else position, wide), axis=axis)
    if largest:
        order = np.flip(order, axis=axis)
    order = np.take(order, np.arange(k), axis=axis)
    return [np.take_along_axis(x, order, axis=axis), order.astype(np.int64)]


define_op(
    "TopK",
    family="reduce",
    operands=["X"],
    attrs={
        "k": Attr(AttrKind.INT),
        "axis": Attr(AttrKind.INT),
        "largest": Attr(AttrKind.INT, 1),
        "sorted": Attr(AttrKind.INT, 1),
    },
    infer=_topk_infer,
    compute=_topk,
    doc="The k largest (or smallest) elements along axis and their i64 indices; ties: lower index first.",
)
