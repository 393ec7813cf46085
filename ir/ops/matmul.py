"""Op family: matrix products (MatMul with numpy semantics, Gemm).

Rule: MatMul follows numpy.matmul (1-D operands are promoted and the promoted
dim dropped, batch dims broadcast); Gemm is alpha * A' B' + beta * C on 2-D
operands with C broadcast to (M, N). Results keep the operands' dtype; half
floats accumulate in f32 and narrow integers in i64.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ir.dtypes import DType
from ir.errors import IRError
from ir.ops.common import accumulation_dtype, broadcast_shapes, broadcasts_to, present, same_dtype
from ir.ops.registry import Attr, AttrKind, define_op
from ir.types import TensorType


def _product_dtype(dtype: np.dtype) -> np.dtype:
    """The dtype a reference product computes in (wide enough not to lose what the result keeps)."""
    if dtype.kind in "iu" and dtype.itemsize < 4:
        return np.dtype(np.int64)
    return accumulation_dtype(dtype)


def _numeric(dtype: DType, what: str) -> DType:
    if dtype is DType.BOOL:
        raise IRError(f"{what} must be numeric, got bool")
    return dtype


def matmul_shape(a: Sequence[int], b: Sequence[int]) -> tuple[int, ...]:
    """numpy.matmul's result shape; an IRError naming both shapes when they do not fit."""
    if not a or not b:
        raise IRError(f"MatMul operands must have rank >= 1, got {list(a)} and {list(b)}")
    a2 = (1, *a) if len(a) == 1 else tuple(a)
    b2 = (*b, 1) if len(b) == 1 else tuple(b)
    if a2[-1] != b2[-2]:
        raise IRError(f"A {list(a)} and B {list(b)}: inner dims differ ({a2[-1]} vs {b2[-2]})")
    batch = broadcast_shapes(a2[:-2], b2[:-2])
    return (*batch, *a2[-2:-1][: len(a) - 1], *b2[-1:][: len(b) - 1])


def _matmul_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    a, b = types[0], types[1]
    assert a is not None and b is not None
    dtype = _numeric(same_dtype([a, b], "A and B"), "A and B")
    return [TensorType(dtype, matmul_shape(a.shape, b.shape))]


def _matmul_compute(args: Sequence[np.ndarray | None], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    a, b = args[0], args[1]
    assert a is not None and b is not None
    work = _product_dtype(a.dtype)
    y = np.matmul(a.astype(work, copy=False), b.astype(work, copy=False))
    return [np.asarray(y).astype(a.dtype, copy=False)]


define_op(
    "MatMul",
    family="matmul",
    operands=["A", "B"],
    infer=_matmul_infer,
    compute=_matmul_compute,
    doc="numpy.matmul: (..., M, K) x (..., K, N) -> (..., M, N); batch dims broadcast, 1-D promoted.",
)


def _gemm_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    a, b, c = types[0], types[1], present(types, 2)
    assert a is not None and b is not None
    dtype = _numeric(same_dtype([a, b, c], "A, B and C"), "A, B and C")
    if a.rank != 2 or b.rank != 2:
        raise IRError(f"A {a} and B {b} must be 2-D")
    m, k = a.shape[::-1] if attrs["transA"] else a.shape
    k_b, n = b.shape[::-1] if attrs["transB"] else b.shape
    if k != k_b:
        raise IRError(
            f"A {a} (transA={attrs['transA']}) and B {b} (transB={attrs['transB']}): "
            f"inner dims differ ({k} vs {k_b})"
        )
    if c is not None:
        if not broadcasts_to(c.shape, (m, n)):
            raise IRError(f"C {c} does not broadcast to the result shape [{m}, {n}]")
    return [TensorType(dtype, (m, n))]


def _gemm_compute(args: Sequence[np.ndarray | None], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    a, b, c = args[0], args[1], args[2] if len(args) > 2 else None
    assert a is not None and b is not None
    work = _product_dtype(a.dtype)
    a_work = a.astype(work, copy=False)
    b_work = b.astype(work, copy=False)
    a_work = a_work.T if attrs["transA"] else a_work
    b_work = b_work.T if attrs["transB"] else b_work
    alpha, beta = attrs["alpha"], attrs["beta"]
    y = a_work @ b_work
    if alpha != 1.0:
        y = y * (alpha if work.kind == "f" else work.type(alpha))
    if c is not None and beta != 0.0:
        c_work = c.astype(work, copy=False)
        y = y + (c_work if beta == 1.0 else c_work * (beta if work.kind == "f" else work.type(beta)))
    return [np.broadcast_to(y, (a_work.shape[0], b_work.shape[1])).astype(a.dtype)]


define_op(
    "Gemm",
    family="matmul",
    operands=["A", "B", "C?"],
    attrs={
        "alpha": Attr(AttrKind.FLOAT, 1.0),
        "beta": Attr(AttrKind.FLOAT, 1.0),
        "transA": Attr(AttrKind.INT, 0),
        "transB": Attr(AttrKind.INT, 0),
    },
    infer=_gemm_infer,
    compute=_gemm_compute,
    doc="alpha * A' @ B' + beta * C, where X' is X transposed when transX is 1; C broadcasts to (M, N).",
)
