"""Attention (ir/ops/attention.py) as one kernel: per tile of query rows, the scores, their softmax and
the product with V stay in a tile-sized buffer; nothing of the (..., M, N) scores reaches memory.

Rule: the batch dims flatten to T heads; a tile is `mi` query rows of one head (the GEMM's row rule,
`tiling.padded_rows`: M padded to whole tiles when no tile height of 3 or more divides it, the padded
rows reading the last query and never written), and tiles run in parallel. In a tile:

1. S = Q Kt over keys padded to Np (whole register panels, `panel`): register-tiled like the GEMM
   (targets/lowering/tiling.py), `mi` rows x a panel of key columns, vectorised along the keys;
2. Z = scale * S + mask, -inf on the padded keys; its softmax rows as softmax_rows.py takes them
   (row max and sum in `lanes` partial values, P = exp(Z - max) vectorised);
3. O = P V over the N real keys, vectorised along V's columns (padded to Ep, and all Ep computed:
   `whole_columns`), then O / sum.

Kt and V are read in place when N (and E) are whole vectors; otherwise a pad stage copies them with
zero columns first. f32 only (the pass forms f32 Attention nodes only).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from tvm import te, tirx

from ir.graph import Node
from targets.lowering.elementwise import broadcast_index
from targets.lowering.kernel import (
    KernelArg,
    LoweredKernel,
    LoweringError,
    arg,
    kernel_name,
    snapshot,
    unravel,
)
from targets.lowering.registry import lowering
from targets.lowering.softmax_rows import STAGES, schedule_softmax, softmax_stages, tile_loops
from targets.lowering.tiling import padded, padded_rows
from targets.lowering.vector_math import FORM
from targets.target import TargetDescription

VERSION = 3  # 2: panels of at least two vectors where padding allows (PANEL_PADDING); 3: O on all Ep
PANEL_PADDING = 9 / 8
"""A register panel may pad the columns to at most this times their whole-vector width: ViT's 197 keys
take 2-vector panels over 224 columns (8 accumulators of a 4-row tile), not 1-vector ones over 208
(4 accumulators, latency-bound)."""


def padded_columns(source: Any, columns: int, total: int, name: str, fill: float = 0.0) -> Any:
    """`source` with its last dim of `columns` padded by `fill` to `total` (itself when equal).
    `if_then_else`, not Select: the padded positions must not be read."""
    if columns == total:
        return source
    shape = [int(x) for x in source.shape[:-1]]

    def element(*index: Any) -> Any:
        *lead, c = index
        return tirx.if_then_else(c < columns, source[(*lead, c)], te.const(fill, "float32"))

    return te.compute((*shape, total), element, name=name)


def panel(columns: int, lanes: int, vectors: int) -> tuple[int, int]:
    """(panel width, padded columns): the widest panel of at most `vectors` vectors whose padding
    stays within PANEL_PADDING of the whole-vector width."""
    limit = padded(columns, lanes) * PANEL_PADDING
    width = next(v * lanes for v in range(vectors, 0, -1) if padded(columns, v * lanes) <= limit)
    return width, padded(columns, width)


@lowering("FusedAttention")
def lower_attention(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    import tvm.s_tir as s_tir

    q_v, kt_v, v_v, mask_v = (*node.operands, None)[:4]
    assert q_v is not None and kt_v is not None and v_v is not None
    result = node.results[0]
    if epilogue or result.type.dtype.numpy.name != "float32":
        raise LoweringError(f"node {node.name!r}: Attention is lowered for f32 without an epilogue only")
    *batch, m_dim, d_dim = q_v.type.shape
    n_dim, e_dim = v_v.type.shape[-2:]
    heads = math.prod(batch)
    lanes = target.vector_lanes_f32 or 1
    knobs, mp = padded_rows(target, m_dim, n_dim)
    mi, vectors = knobs.mi, knobs.vectors
    (key_panel, np_), (column_panel, ep) = panel(n_dim, lanes, vectors), panel(e_dim, lanes, vectors)

    q = te.placeholder((heads, m_dim, d_dim), "float32", name="Q")
    kt = te.placeholder((heads, d_dim, n_dim), "float32", name="Kt")
    v = te.placeholder((heads, n_dim, e_dim), "float32", name="V")
    mask = te.placeholder(tuple(mask_v.type.shape), "float32", name="mask") if mask_v is not None else None
    kp = padded_columns(kt, n_dim, np_, "Kp")
    vp = padded_columns(v, e_dim, ep, "Vp")

    d = te.reduce_axis((0, d_dim), name="d")

    def query(t: Any, i: Any, k: Any) -> Any:
        return q[t, i if mp == m_dim else te.min(i, m_dim - 1), k]  # padded rows: the last, unwritten

    s = te.compute((heads, mp, np_), lambda t, i, j: te.sum(query(t, i, d) * kp[t, d, j], axis=d), name="S")
    scale = te.const(float(node.attrs["scale"]), "float32")

    keyed_mask = mask_v is not None and mask_v.type.shape[-1:] == (n_dim,)  # the mask varies along the keys
    bias = padded_columns(mask, n_dim, np_, "mask_p", -math.inf) if keyed_mask else None

    def z(t: Any, i: Any, j: Any) -> Any:
        """scale * S + mask; -inf on padded keys (from the padded mask, or a Select reading nothing)."""
        value = s[t, i, j] * scale
        index = [*unravel(t, batch), i if mp == m_dim else te.min(i, m_dim - 1), j]
        if bias is not None:
            return value + bias[tuple(broadcast_index(bias.shape, index))]
        if mask is not None:
            value = value + mask[tuple(broadcast_index(mask.shape, index))]
        return value if np_ == n_dim else tirx.Select(j < n_dim, value, te.const(-math.inf, "float32"))

    p, row_sum = softmax_stages((heads, mp), np_, lanes, z)
    r = te.reduce_axis((0, n_dim), name="r")
    o = te.compute((heads, mp, ep), lambda t, i, c: te.sum(p[t, i, r] * vp[t, r, c], axis=r), name="O")
    out = te.compute((heads, m_dim, e_dim), lambda t, i, c: o[t, i, c] / row_sum[t, i], name="out")

    placeholders = [q, kt, v, *([mask] if mask is not None else []), out]
    compute = te.create_prim_func(placeholders)
    workload = {
        "op": "attention",
        "q": list(q_v.type.shape),
        "kt": list(kt_v.type.shape),
        "v": list(v_v.type.shape),
        "mask": list(mask_v.type.shape) if mask_v is not None else None,
        "scale": float(node.attrs["scale"]),
        "lanes": lanes,
        "mi": mi,
        "rows": mp,
        "vectors": vectors,
        "exp": FORM,
        "version": VERSION,
    }
    name = kernel_name("attention", workload)
    sch = s_tir.Schedule(snapshot(compute))
    pads = [x.op.name for x, y in ((kp, kt), (vp, v), (bias, mask)) if x is not None and x is not y]
    schedule(sch, mi, lanes, (key_panel, np_), (column_panel, ep), pads)
    args = [arg(q_v, "input", q.shape), arg(kt_v, "input", kt.shape), arg(v_v, "input", v.shape)]
    if mask_v is not None:
        args.append(arg(mask_v, "weight" if mask_v.is_constant else "input", mask_v.type.shape))
    args.append(KernelArg(result.name, "output", (heads, m_dim, e_dim), "float32"))
    flops = 2 * heads * m_dim * (np_ * d_dim + n_dim * ep) + 8 * heads * m_dim * np_
    return LoweredKernel(
        name,
        sch.mod["main"].with_attr("global_symbol", name),
        tuple(args),
        flops,
        (node.name,),
        workload,
        layout="any",
        compute=compute,
    )


def schedule(
    sch: Any, mi: int, lanes: int, keys: tuple[int, int], columns: tuple[int, int], pads: Sequence[str]
) -> None:
    """Tiles of `mi` rows of one head in parallel, every stage of the tile computed inside it; `keys`
    and `columns`: the (panel width, padded count) of the scores' and the result's columns."""
    np_, ep = keys[1], columns[1]
    out = sch.get_sblock("out")
    t, i, c = sch.get_loops(out)
    io, ii = sch.split(i, [None, mi])
    tile = sch.fuse(t, io)
    sch.parallel(tile)
    if ep != int(sch.get(out).iter_vars[2].dom.extent):
        whole_columns(sch, out, ep)
    for stage in reversed(("S", *STAGES, "O")):
        sch.compute_at(sch.get_sblock(stage), tile)
    for stage in ("S", "O"):
        sch.set_scope(sch.get_sblock(stage), 0, "local")
    register_tile(sch, "S", mi, np_, keys[0], lanes)
    register_tile(sch, "O", mi, ep, columns[0], lanes)
    schedule_softmax(sch, mi, np_, lanes)
    if ep == int(sch.get(out).iter_vars[2].dom.extent):
        _, vec = sch.split(c, [None, lanes])
        sch.vectorize(vec)
    for pad in pads:
        loops = sch.get_loops(sch.get_sblock(pad))
        sch.parallel(sch.fuse(*loops[:-1]) if len(loops) > 2 else loops[0])


def whole_columns(sch: Any, out: Any, ep: int) -> None:
    """`out` reads all `ep` padded columns of O, so that O computed at the tile covers whole vectors.
    Inferred from `out`, which keeps the E real columns only, O's rows x columns loop would split into
    vectors across rows (`// E`, `% E` per lane: gathers, scalar code; ppocr_rec's heads of dim 15
    ran 2.7x slower so)."""
    reads = [r.source.name for r in sch.get(out).reads]
    sch.annotate_buffer_access(out, reads.index("O"), "read", lambda t, i, c: (t, i, (0, ep)))


def register_tile(sch: Any, stage: str, mi: int, columns: int, nb: int, lanes: int) -> None:
    """`stage`'s rows x columns x reduction under the tile as mi x nb register tiles."""
    block = sch.get_sblock(stage)
    (row, co, nv, lane), reduce = tile_loops(sch, block, [mi, columns // nb, nb // lanes, lanes])
    sch.reorder(co, *reduce, row, nv, lane)
    sch.unroll(row)
    sch.unroll(nv)
    sch.vectorize(lane)
    sch.decompose_reduction(block, reduce[0] if reduce else row)
