"""MatMul and Gemm as a register-tiled, vectorised, parallel GEMM with the weight panel packed ahead.

Rule: when B is a constant (the usual fully-connected layer) it is packed at
compile time into panels `Bp[N/nb, K, nb]` (zero-padded to a whole panel), and
A's leading dims are flattened into rows: the kernel views A as (M, K) and the
output as (M, N). Otherwise (B computed at run time, e.g. attention) the kernel
reads B in place, batch dims flattened and broadcast. Gemm folds alpha, beta*C
and the fused epilogue into the output block. Layout-free: the activation
layout does not matter to a GEMM. These fast paths are fp32; other dtypes,
1-D operands, other batch broadcasts and Gemm with a run-time B go to the
general template (matmul_general.py).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from tvm import te

from ir.graph import Node, Value
from targets.lowering.bf16_gemm import bf16_weight
from targets.lowering.bf16_tiles import lower_bf16_layer_matmul
from targets.lowering.elementwise import Epilogue, Operand, epilogue_args, epilogue_signature
from targets.lowering.kernel import (
    KernelArg,
    LoweredKernel,
    LoweringError,
    arg,
    kernel_name,
    snapshot,
    unravel,
)
from targets.lowering.matmul_general import general_product
from targets.lowering.registry import lowering
from targets.lowering.tiling import choose_knobs, padded, padded_rows, schedule_gemm
from targets.lowering.weight_only import decode_at_use, has_packable_weight, weight_source
from targets.schedules import GemmKnobs
from targets.target import TargetDescription


def pack_panels(b: np.ndarray, nb: int) -> np.ndarray:
    """(K, N) -> (ceil(N/nb), K, nb), zero-padded: each panel's k-row is `nb` contiguous floats."""
    k, n = b.shape
    np_ = padded(n, nb)
    full = np.zeros((k, np_), dtype=b.dtype)
    full[:, :n] = b
    return np.ascontiguousarray(full.reshape(k, np_ // nb, nb).transpose(1, 0, 2))


def packed_gemm(
    node: Node,
    target: TargetDescription,
    epilogue: Sequence[Node],
    *,
    a: Value,
    b: Value,
    trans_a: bool,
    trans_b: bool,
    alpha: float,
    c: Value | None,
    beta: float,
) -> LoweredKernel:
    """out[m, n] = epilogue(alpha * sum_k A'[m, k] B'[k, n] + beta * C[m, n]) with B' packed."""
    import tvm.s_tir as s_tir

    result = node.results[0]
    out_shape = result.type.shape
    k_dim = b.type.shape[1] if trans_b else b.type.shape[-2]
    n_dim = out_shape[-1]
    m_dim = math.prod(out_shape[:-1])
    knobs, mp = padded_rows(target, m_dim, n_dim)
    np_ = padded(n_dim, knobs.nb)
    a_shape = a.type.shape if trans_a else (m_dim, k_dim)
    a_t = te.placeholder(a_shape, "float32", name="A")
    nb = knobs.nb

    def panels(weight: np.ndarray) -> np.ndarray:
        matrix = weight.reshape(weight.shape[-2:])
        return pack_panels(matrix.T if trans_b else matrix, nb)

    b_src = weight_source(node, (np_ // nb, k_dim, nb), panels, 1, "Bp", inline=decode_at_use(m_dim))
    b_t = b_src.tensor
    k = te.reduce_axis((0, k_dim), name="k")

    def a_at(i: Any, kk: Any) -> Any:
        row = i if mp == m_dim else te.min(i, m_dim - 1)  # padded rows repeat the last (never written)
        return a_t[kk, row] if trans_a else a_t[row, kk]

    acc = te.compute((mp, np_), lambda i, j: te.sum(a_at(i, k) * b_t[j // nb, k, j % nb], axis=k), name="acc")
    chain = Epilogue.build(result, epilogue)
    bias = Operand(c, tensor=te.placeholder(c.type.shape, "float32", name="C")) if c is not None else None
    batch = out_shape[:-1]

    def finish(i: Any, j: Any) -> Any:
        index = [*unravel(i, batch), j]
        value = acc[i, j]
        if alpha != 1.0:
            value = value * te.const(alpha, "float32")
        if bias is not None and beta != 0.0:
            value = value + bias.read(index, "float32") * te.const(beta, "float32")
        return chain.apply(value, index)

    out = te.compute((m_dim, n_dim), finish, name="out")
    anchor = [(a_t, arg(a, "input", a_shape)), *b_src.params]
    if bias is not None and c is not None:
        anchor.append((bias.tensor, arg(c, "weight" if c.is_constant else "input", c.type.shape)))
    output = KernelArg((chain.result or result).name, "output", (m_dim, n_dim), str(out.dtype))
    params, args = epilogue_signature(anchor, chain, out, output)
    workload = {
        "op": "gemm",
        "a": list(a.type.shape),
        "b": list(b.type.shape),
        "out": list(out_shape),
        "trans_a": trans_a,
        "trans_b": trans_b,
        "alpha": alpha,
        "beta": beta,
        "c": list(c.type.shape) if c is not None else None,
        "c_const": bool(c is not None and c.is_constant),
        "epilogue": chain.describe(),
        "knobs": knobs.to_json(),
        **({"rows": mp} if mp != m_dim else {}),
    }
    name = kernel_name("gemm", b_src.add_to(workload))
    compute = te.create_prim_func(params)
    sch = s_tir.Schedule(snapshot(compute))
    b_src.schedule(sch, knobs.lanes)
    schedule_gemm(sch, "acc", "out", knobs, out_lanes=knobs.lanes if n_dim % knobs.nb == 0 else None)

    def pack(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        packed = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()}
        packed.update(b_src.pack(arrays))
        return packed

    flops = 2 * m_dim * n_dim * k_dim + chain.flops(m_dim * n_dim)
    sources = (node.name, *(n.name for n in epilogue))
    return LoweredKernel(
        name,
        sch.mod["main"].with_attr("global_symbol", name),
        args,
        flops,
        sources,
        workload,
        layout="any",
        pack_weights=pack,
        compute=compute,
        notes={"knobs": knobs},
    )


def batched_matmul(node: Node, target: TargetDescription, epilogue: Sequence[Node]) -> LoweredKernel:
    """MatMul with B computed at run time: out[b, m, n] over flattened, broadcast batch dims."""
    import tvm.s_tir as s_tir

    a, b = node.operands[0], node.operands[1]
    assert a is not None and b is not None
    result = node.results[0]
    if a.type.rank < 2 or b.type.rank < 2:
        raise LoweringError(f"node {node.name!r}: 1-D MatMul operands with a run-time B are not lowered yet")
    m_dim, k_dim, n_dim = a.type.shape[-2], a.type.shape[-1], b.type.shape[-1]
    batch = result.type.shape[:-2]
    total = math.prod(batch)
    views = []
    for v in (a, b):
        vb = math.prod(v.type.shape[:-2])
        if vb not in (1, total) or (
            vb == total and tuple(v.type.shape[:-2]) != tuple(batch)[-len(v.type.shape[:-2]) :]
        ):
            raise LoweringError(
                f"node {node.name!r}: batch broadcast {v.type.shape} -> {batch} is not lowered yet"
            )
        views.append((vb, *v.type.shape[-2:]))
    knobs = choose_knobs(target, m_dim, n_dim)
    lanes = next(x for x in (knobs.lanes, 8, 4, 2, 1) if n_dim % x == 0)
    knobs = GemmKnobs(knobs.mi, lanes * max(1, min(knobs.vectors, n_dim // lanes)), lanes)
    while n_dim % knobs.nb:
        knobs = GemmKnobs(knobs.mi, knobs.nb - lanes, lanes)
    a_t = te.placeholder(views[0], "float32", name="A")
    b_t = te.placeholder(views[1], "float32", name="B")
    k = te.reduce_axis((0, k_dim), name="k")
    pick_a = (lambda i: i) if views[0][0] == total else (lambda i: 0)
    pick_b = (lambda i: i) if views[1][0] == total else (lambda i: 0)
    acc = te.compute(
        (total, m_dim, n_dim),
        lambda t, i, j: te.sum(a_t[pick_a(t), i, k] * b_t[pick_b(t), k, j], axis=k),
        name="acc",
    )
    chain = Epilogue.build(result, epilogue)
    out = te.compute(
        (total, m_dim, n_dim),
        lambda t, i, j: chain.apply(acc[t, i, j], [*unravel(t, batch), i, j]),
        name="out",
    )
    extra, extra_args = epilogue_args(chain)
    workload = {
        "op": "batched_matmul",
        "a": list(a.type.shape),
        "b": list(b.type.shape),
        "epilogue": chain.describe(),
        "knobs": knobs.to_json(),
    }
    name = kernel_name("bmm", workload)
    compute = te.create_prim_func([a_t, b_t, *extra, out])
    sch = s_tir.Schedule(snapshot(compute))
    schedule_gemm(sch, "acc", "out", knobs, out_lanes=knobs.lanes)
    args = (
        arg(a, "input", views[0]),
        arg(b, "input", views[1]),
        *extra_args,
        KernelArg((chain.result or result).name, "output", (total, m_dim, n_dim), str(out.dtype)),
    )
    flops = 2 * total * m_dim * n_dim * k_dim + chain.flops(result.type.size)
    return LoweredKernel(
        name,
        sch.mod["main"].with_attr("global_symbol", name),
        args,
        flops,
        (node.name, *(n.name for n in epilogue)),
        workload,
        layout="any",
        notes={"knobs": knobs},
        compute=compute,
    )


def simple_batches(a: Value, b: Value, batch: Sequence[int]) -> bool:
    """Whether `batched_matmul` takes these operands: rank >= 2, each batch either 1 or the result's."""
    if a.type.rank < 2 or b.type.rank < 2:
        return False
    total = math.prod(batch)
    for v in (a, b):
        lead = tuple(v.type.shape[:-2])
        broadcast = math.prod(lead) == 1
        if not broadcast and (math.prod(lead) != total or lead != tuple(batch)[len(batch) - len(lead) :]):
            return False
    return True


def fp32(node: Node) -> bool:
    return node.results[0].type.dtype.numpy.name == "float32"


@lowering("MatMul")
def lower_matmul(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    a, b = node.operands[0], node.operands[1]
    assert a is not None and b is not None
    if bf16_weight(node) is not None and a.type.rank >= 2:
        return lower_bf16_layer_matmul(node, target, epilogue)
    one_weight_matrix = has_packable_weight(node) and b.type.rank >= 2 and math.prod(b.type.shape[:-2]) == 1
    if fp32(node) and one_weight_matrix and a.type.rank >= 2:
        return packed_gemm(
            node, target, epilogue, a=a, b=b, trans_a=False, trans_b=False, alpha=1.0, c=None, beta=0.0
        )
    if fp32(node) and simple_batches(a, b, node.results[0].type.shape[:-2]):
        return batched_matmul(node, target, epilogue)
    return general_product(node, target, epilogue)


def plain_gemm(options: Mapping[str, Any]) -> bool:
    """A Gemm the bf16 GEMM computes: A @ B(') + a 1-D constant bias C, alpha and beta 1, no transA."""
    c = options["c"]
    ones = options["alpha"] == 1.0 and options["beta"] == 1.0
    return not options["trans_a"] and ones and (c is None or (c.is_constant and c.type.rank == 1))


@lowering("Gemm")
def lower_gemm(node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str) -> LoweredKernel:
    a, b, c = (list(node.operands) + [None])[:3]
    assert a is not None and b is not None
    attrs = node.attrs
    options = {
        "trans_a": bool(attrs["transA"]),
        "trans_b": bool(attrs["transB"]),
        "alpha": float(attrs["alpha"]),
        "c": c,
        "beta": float(attrs["beta"]),
    }
    if bf16_weight(node) is not None and plain_gemm(options):
        return lower_bf16_layer_matmul(node, target, epilogue, trans_b=options["trans_b"])
    if fp32(node) and has_packable_weight(node):
        return packed_gemm(node, target, epilogue, a=a, b=b, **options)
    return general_product(node, target, epilogue, **options)
