"""MatMulInteger with a constant (K, N) weight as the integer GEMM core (targets/lowering/integer_gemm.py).

Rule: X (..., K) is viewed as rows (P, K) (P the product of its leading dims)
and the result (..., N) as (P, N), the IR bytes in both. A u8 X whose K is a
multiple of the step's depth (4; 8 for arm64's 2-row `usmmla` step, which these
rows, one matrix's, allow) is read in place; otherwise a "pad" stage copies it into
xq[P, Kp] u8 (i8 shifted by +128, the tail filled with the u8 zero point).
Each tile adds the corrected bias (ctab row 0) and runs the fused epilogue at
the result's logical index, channels (N) innermost and vectorised.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import numpy as np
from tvm import te

from ir.graph import Node
from targets.lowering.conv_geometry import finish_kernel
from targets.lowering.conv_integer import activation_zero, as_u8, bias_array
from targets.lowering.elementwise import Epilogue, epilogue_signature, output_arg
from targets.lowering.integer_gemm import (
    LANES,
    choose_int_knobs,
    corrected_bias,
    dot_step,
    fused_tables,
    pack_integer_weights,
    packed_table_stage,
    schedule_integer_gemm,
    weight_at,
    weight_placeholder,
)
from targets.lowering.kernel import KernelArg, LoweredKernel, LoweringError, arg, unravel
from targets.lowering.tiling import padded
from targets.target import TargetDescription


def lower_matmul_integer(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    x_v, w_v = node.operands[0], node.operands[1]
    assert x_v is not None and w_v is not None
    if not w_v.is_constant:
        raise LoweringError(f"node {node.name!r}: MatMulInteger weights must be constants to be packed")
    shift, zero = activation_zero(x_v)
    k, n = w_v.type.shape
    result_shape = node.results[0].type.shape
    rows = math.prod(x_v.type.shape[:-1])
    chain = Epilogue.build(node.results[0], epilogue)
    chain.tables = tables = fused_tables(chain.nodes, len(result_shape) - 1)
    knobs = choose_int_knobs(target, rows, n, rows * k * n, paired_rows=True)
    step = dot_step(target, knobs)
    depth = step.depth
    kp = padded(k, depth)
    x = te.placeholder((rows, k), x_v.type.dtype.numpy.name, name="x")
    in_place = shift == 0 and kp == k
    if in_place:
        xq = x
    else:
        xq = te.compute((rows, kp), lambda p, c: te.if_then_else(
            c < k, as_u8(x[p, te.min(c, k - 1)], shift), te.const(zero, "uint8")), name="pad")  # fmt: skip
    wp = weight_placeholder(kp, n, 1 + len(tables.rows), depth)
    tables.ctab = ctab = packed_table_stage(wp, kp, 1 + len(tables.rows))
    rc4, rci = te.reduce_axis((0, kp // depth), "c4"), te.reduce_axis((0, depth), "ci")

    def dot(_: Any, p: Any, o: Any) -> Any:
        product = xq[p, rc4 * depth + rci].astype("int32") * weight_at(wp, o, rc4, rci).astype("int32")
        return te.sum(product, axis=[rc4, rci])

    acc = te.compute((1, rows, wp.shape[0] * wp.shape[2]), dot, name="acc")
    params, args, result = matmul_output(node, chain, x, wp, ctab, lambda p, o: acc[0, p, o])
    table_rows = list(tables.rows)
    pack = matmul_packer(node, table_rows, zero + step.shift, depth)
    workload = {
        "op": "matmul_integer",
        "rows": rows,
        "k": k,
        "n": n,
        "result": list(result_shape),
        "x": [str(x_v.type.dtype), zero],
        "tables": len(table_rows),
        "epilogue": chain.describe(),
        "knobs": knobs.to_json(),
    }
    flops = 2 * rows * k * n + chain.flops(result.type.size)
    stages = [] if in_place else ["pad"]
    schedule = partial(
        schedule_integer_gemm, knobs=knobs, stages=stages, vector_out=True, channels=n, dot=step
    )
    return finish_kernel(node, epilogue, "matmulint", workload, schedule, params, args, flops, "any", pack)


def matmul_output(
    node: Node, chain: Epilogue, x: Any, wp: Any, ctab: Any, acc_at: Callable[[Any, Any], Any]
) -> tuple[Any, Any, Any]:
    """(params, args, result) of a MatMulInteger whose GEMM value at (row, o) is `acc_at`: the "out"
    stage adds ctab row 0 (the corrected bias) and runs the fused epilogue at the result's index."""
    x_v, w_v = node.operands[0], node.operands[1]
    assert x_v is not None and w_v is not None
    result_shape = node.results[0].type.shape
    rows, n = math.prod(x_v.type.shape[:-1]), w_v.type.shape[1]
    result = chain.result or node.results[0]

    def finish(p: Any, o: Any) -> Any:
        return chain.apply(ctab[0, o] + acc_at(p, o), (*unravel(p, result_shape[:-1]), o))

    out = te.compute((rows, n), finish, name="out")
    anchor = [
        (x, arg(x_v, "input", x.shape)),
        (wp, KernelArg(w_v.name, "weight", tuple(int(d) for d in wp.shape), "int8")),
    ]
    output = KernelArg(result.name, "output", (rows, n), output_arg(result).dtype)
    params, args = epilogue_signature(anchor, chain, out, output)
    return params, args, result


def matmul_packer(
    node: Node, rows: Sequence[np.ndarray], zero: int, depth: int, k_step: int = 0, m_step: int = LANES
) -> Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]:
    """Packs the (K, N) weight with the corrected bias for u8 zero point `zero` and the tables' `rows`."""
    w_v, bias = node.operands[1], bias_array(node)
    assert w_v is not None
    name, (k, n) = w_v.name, w_v.type.shape

    def pack(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        packed = {key: np.ascontiguousarray(a) for key, a in arrays.items()}
        w_ko = np.asarray(arrays[name], np.int8).reshape(k, n)
        words = [corrected_bias(w_ko, bias, zero), *rows]
        packed[name] = pack_integer_weights(w_ko, words, depth, k_step, m_step)
        return packed

    return pack
