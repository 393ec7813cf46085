"""Op family: attention, `FusedAttention`, a HAI composite op that the `fuse-attention` pass forms (named
apart from ONNX's opset-23 `Attention`, whose inputs and attributes differ: the importer must never
take one for the other).

Rule: FusedAttention(Q, Kt, V, mask?) = softmax(scale * (Q @ Kt) + mask, last axis) @ V, where Q is
(..., M, D), Kt the keys already transposed (..., D, N), V (..., N, E), all three with the same batch
dims, and the optional additive mask broadcasts to the scores (..., M, N). The result is (..., M, E)
in Q's float dtype; the products and the softmax are taken in f32 at least (half floats widen), so
the op computes what MatMul -> Mul(scale) -> Add(mask) -> Softmax -> MatMul computes, up to rounding.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ir.errors import IRError
from ir.ops.common import accumulation_dtype, broadcasts_to, expect_float, same_dtype
from ir.ops.registry import Attr, AttrKind, define_op
from ir.types import TensorType


def attention_shapes(q: Sequence[int], kt: Sequence[int], v: Sequence[int]) -> tuple[int, ...] | None:
    """The scores' shape (..., M, N) when Q, Kt and V fit the rule (same batch dims, inner dims
    agree), else None."""
    if len(q) < 2 or len(kt) != len(q) or len(v) != len(q):
        return None
    batch = tuple(q[:-2])
    if tuple(kt[:-2]) != batch or tuple(v[:-2]) != batch or q[-1] != kt[-2] or kt[-1] != v[-2]:
        return None
    return (*batch, q[-2], kt[-1])


def _infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    q, kt, v, mask = (*types, None)[:4]
    assert q is not None and kt is not None and v is not None
    dtype = same_dtype([q, kt, v, mask], "Q, Kt, V and mask")
    expect_float(q, "Q")
    scores = attention_shapes(q.shape, kt.shape, v.shape)
    if scores is None:
        raise IRError(f"Q {list(q.shape)}, Kt {list(kt.shape)} and V {list(v.shape)} do not fit (..., M, D), "
                      "(..., D, N), (..., N, E) with one batch shape")  # fmt: skip
    if mask is not None and not broadcasts_to(mask.shape, scores):
        raise IRError(f"mask {list(mask.shape)} does not broadcast to the scores {list(scores)}")
    return [TensorType(dtype, (*scores[:-1], v.shape[-1]))]


def _compute(args: Sequence[np.ndarray | None], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    q, kt, v, mask = (*args, None)[:4]
    assert q is not None and kt is not None and v is not None
    work = accumulation_dtype(q.dtype)
    scores = np.matmul(q.astype(work), kt.astype(work)) * work.type(attrs["scale"])
    if mask is not None:
        scores = scores + mask.astype(work)
    with np.errstate(all="ignore"):
        shifted = np.exp(scores - scores.max(axis=-1, keepdims=True))
        weights = shifted / shifted.sum(axis=-1, keepdims=True)
    return [np.matmul(weights, v.astype(work)).astype(q.dtype, copy=False)]


define_op(
    "FusedAttention",
    family="attention",
    operands=["Q", "Kt", "V", "mask?"],
    attrs={"scale": Attr(AttrKind.FLOAT, 1.0)},
    infer=_infer,
    compute=_compute,
    doc="softmax(scale * (Q @ Kt) + mask, last axis) @ V over equal batch dims (the fuse-attention pass).",
)
