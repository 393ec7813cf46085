"""The general MatMul / Gemm template: numpy.matmul semantics and any dtype the reference takes.

Rule: 1-D operands are promoted as numpy does (A (K,) -> (1, K), B (K,) -> (K, 1)),
so the kernel views the result as (batch..., M, N) with the promoted dims kept
(same bytes as the IR value); batch dims broadcast per operand. Products
accumulate in the reference's dtype (f32 for half floats, i64 for integers
narrower than 32 bits, the dtype itself otherwise; integer results wrap on the
cast back, as numpy's astype). Gemm adds transA/transB, alpha, beta and a C that
broadcasts to (M, N); integer alpha/beta truncate as the reference's
`work.type(alpha)`. The accumulator vectorises along N; this is the fallback
behind the packed fp32 GEMM templates in matmul.py.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from tvm import te

from ir.graph import Node, Value
from targets.lowering.elementwise import Epilogue, broadcast_index, epilogue_args
from targets.lowering.generic import (
    Param,
    check_dtypes,
    make_kernel,
    operand_param,
    output_param,
    schedule_reduce,
    work_dtype,
)
from targets.lowering.kernel import LoweredKernel
from targets.lowering.pointwise import narrow
from targets.lowering.weight_only import weight_params
from targets.target import TargetDescription

DTYPES = ("float32", "float16", "bfloat16", "float64", "int8", "uint8", "int16", "int32", "int64")


def product_dtype(dtype: str) -> str:
    """The dtype the reference multiplies in (ir/ops/matmul.py's `_product_dtype`)."""
    if dtype in ("int8", "uint8", "int16"):
        return "int64"
    return work_dtype(dtype)


def scalar(value: float, dtype: str) -> Any:
    return te.const(value if dtype.startswith("float") else int(value), dtype)


def general_product(
    node: Node,
    target: TargetDescription,
    epilogue: Sequence[Node],
    *,
    trans_a: bool = False,
    trans_b: bool = False,
    alpha: float = 1.0,
    c: Value | None = None,
    beta: float = 0.0,
) -> LoweredKernel:
    """out = epilogue(alpha * A' B' + beta * C) for MatMul (numpy.matmul) and Gemm operands."""
    dtype = check_dtypes(node, DTYPES)
    work = product_dtype(dtype)
    a_v, b_v = node.operands[0], node.operands[1]
    assert a_v is not None and b_v is not None
    a_shape, b_shape = tuple(a_v.type.shape), tuple(b_v.type.shape)
    a2 = (1, *a_shape) if len(a_shape) == 1 else a_shape
    b2 = (*b_shape, 1) if len(b_shape) == 1 else b_shape
    m_dim = a2[-1] if trans_a else a2[-2]
    k_dim = a2[-2] if trans_a else a2[-1]
    n_dim = b2[-2] if trans_b else b2[-1]
    result = node.results[0]
    batch = tuple(result.type.shape[: result.type.rank - (len(a_shape) > 1) - (len(b_shape) > 1)])
    out_shape = (*batch, m_dim, n_dim)
    a = operand_param(a_v, "A", a2)
    stored = weight_params(node, "B")
    b, *b_parts = stored[1] if stored is not None else [operand_param(b_v, "B", b2)]
    k = te.reduce_axis((0, k_dim), "k")

    def read(p: Param, index: Sequence[Any], row: Any, col: Any, trans: bool) -> Any:
        lead = broadcast_index(p.tensor.shape[:-2], index) if len(p.tensor.shape) > 2 else []
        pair = (col, row) if trans else (row, col)
        return p.tensor[(*lead, *pair)].astype(work)

    def product(*i: Any) -> Any:
        *bi, row, col = i
        return te.sum(read(a, bi, row, k, trans_a) * read(b, bi, k, col, trans_b), axis=k)

    acc = te.compute(out_shape, product, name="acc")
    chain = Epilogue.build(result, epilogue, shape=result.type.shape)
    bias = operand_param(c, "C") if c is not None and beta != 0.0 else None

    def finish(*i: Any) -> Any:
        value = acc[i]
        if alpha != 1.0:
            value = value * scalar(alpha, work)
        if bias is not None:
            term = bias.tensor[tuple(broadcast_index(bias.tensor.shape, i))].astype(work)
            value = value + (term if beta == 1.0 else term * scalar(beta, work))
        return chain.apply(narrow(value, result.type.dtype), ir_index(i, len(a_shape), len(b_shape)))

    out = te.compute(out_shape, finish, name="out")
    extra, extra_args = epilogue_args(chain)
    params = [
        a,
        b,
        *b_parts,
        *([bias] if bias is not None else []),
        *[Param(t, x) for t, x in zip(extra, extra_args)],
        output_param(out, chain.result or result),
    ]
    macs = math.prod(out_shape) * k_dim
    lanes = target.vector_lanes_f32
    workload = {
        "op": "matmul_general",
        "a": [list(a_shape), a.arg.role],
        "b": [list(b_shape), b.arg.role],
        "dtype": dtype,
        "trans": [trans_a, trans_b],
        "alpha": alpha,
        "beta": beta,
        "c": None if bias is None else [list(bias.arg.shape), bias.arg.role],
        "epilogue": chain.describe(),
        "lanes": lanes,
    }
    if stored is not None:
        stored[0].add_to(workload)

    def schedule(sch: Any) -> None:
        schedule_reduce(sch, "acc", lanes, macs, consumers=["out"])

    flops = 2 * macs + chain.flops(math.prod(out_shape))
    pack = stored[0].pack_all if stored is not None else None
    return make_kernel(node, "mmg", workload, params, flops, schedule, epilogue=epilogue, pack=pack)


def ir_index(index: Sequence[Any], a_rank: int, b_rank: int) -> list[Any]:
    """The IR result index of a promoted (batch..., M, N) index (promoted 1-D dims dropped)."""
    *batch, row, col = index
    return [*batch, *([row] if a_rank > 1 else []), *([col] if b_rank > 1 else [])]
