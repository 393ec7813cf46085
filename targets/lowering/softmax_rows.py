"""Softmax over rows of whole vectors, vectorised: shared by the Attention kernel and f32 Softmax over
the last axis.

Rule: the logits z(*row, j) run over `columns` (a multiple of `lanes`), -inf at padded positions (so
their exp is 0). The row max and the row sum are each taken as `chains` x `lanes` partial values a
row: the row cut into `chains` equal runs of whole vectors, one vector step per run and `lanes`
columns, the runs' steps interleaved (no latency-bound scalar chain, nor a single vector chain on a
long row), then across the partials; P = exp(z - max) with vector_math's exp, vectorised, and the
output P times the reciprocal of the row sum (one division a row, as onnxruntime's MLAS scales its
softmax). The stages (`STAGES`) are computed under a tile loop of `rows` rows; `schedule_softmax`
schedules them there. `last_axis_softmax` is the f32 Softmax kernel over a last axis of at least two
vectors (one row a tile, the row padded by a -inf copy, copied a vector at a time; `row_chains` runs).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from tvm import te, tirx

from targets.lowering import vector_math

STAGES = ("max_lanes", "row_max", "P", "sum_lanes", "row_sum")
LONG_ROW, MAX_CHAINS = 32, 8
"""A row of 32 vectors or more is reduced in up to 8 runs, as many as divide its vectors (a vector max
or add waits about 4 cycles for the one before it, so one chain leaves the unit idle)."""
Expr = Any


def row_chains(vectors: int) -> int:
    """The runs a row of `vectors` vectors is reduced in (module rule)."""
    return max(c for c in range(1, MAX_CHAINS + 1) if vectors % c == 0) if vectors >= LONG_ROW else 1


def softmax_stages(
    rows: Sequence[int], columns: int, lanes: int, z: Callable[..., Any], chains: int = 1
) -> tuple[Any, Any]:
    """(P, row sum) over logits `z(*row, j)`: P unnormalised (exp(z - max)), the sum of each row's P;
    partial q = run * lanes + lane of `chains` runs."""
    shape, run = tuple(rows), columns // lanes // chains

    def column(q: Expr, step: Expr) -> Expr:
        return (q // lanes * run + step) * lanes + q % lanes

    ro = te.reduce_axis((0, run), name="ro")
    partial_max = te.compute(
        (*shape, chains * lanes), lambda *i: te.max(z(*i[:-1], column(i[-1], ro)), axis=ro), name="max_lanes"
    )
    xl = te.reduce_axis((0, chains * lanes), name="xl")
    row_max = te.compute(shape, lambda *i: te.max(partial_max[(*i, xl)], axis=xl), name="row_max")
    p = te.compute((*shape, columns), lambda *i: vector_math.exp(z(*i) - row_max[tuple(i[:-1])]), name="P")
    rs = te.reduce_axis((0, run), name="rs")
    partial_sum = te.compute(
        (*shape, chains * lanes),
        lambda *i: te.sum(p[(*i[:-1], column(i[-1], rs))], axis=rs),
        name="sum_lanes",
    )
    xs = te.reduce_axis((0, chains * lanes), name="xs")
    row_sum = te.compute(shape, lambda *i: te.sum(partial_sum[(*i, xs)], axis=xs), name="row_sum")
    return p, row_sum


def schedule_softmax(sch: Any, rows: int, columns: int, lanes: int, chains: int = 1) -> None:
    """The STAGES, already computed at a tile loop of `rows` rows: partial max/sum vectorised over the
    lanes, the runs unrolled inside a step, P over its columns."""
    for stage in ("max_lanes", "sum_lanes"):
        block = sch.get_sblock(stage)
        (row, chain, lane), reduce = tile_loops(sch, block, [rows, chains, lanes])
        sch.reorder(row, *reduce, chain, lane)
        sch.unroll(chain)
        sch.vectorize(lane)
        sch.decompose_reduction(block, reduce[0] if reduce else row)
    block = sch.get_sblock("P")
    (_, _, vec), _ = tile_loops(sch, block, [rows, columns // lanes, lanes])
    sch.vectorize(vec)
    for stage in ("row_max", "row_sum"):
        block = sch.get_sblock(stage)
        (row,), reduce = tile_loops(sch, block, [rows])
        sch.decompose_reduction(block, reduce[0] if reduce else row)


def tile_loops(sch: Any, block: Any, extents: Sequence[int]) -> tuple[list[Any], list[Any]]:
    """The spatial loops of `block` under the tile (compute_at drops unit loops and may split), fused
    and split again to `extents`; and its reduction loops."""
    loops = sch.get_loops(block)[1:]
    n_reduce = sum(1 for it in sch.get(block).iter_vars if int(it.iter_type) == 2 and int(it.dom.extent) > 1)
    spatial, reduce = loops[: len(loops) - n_reduce], loops[len(loops) - n_reduce :]
    if not spatial:  # every spatial extent is 1
        spatial = [sch.add_unit_loop(block)]
    fused = sch.fuse(*spatial) if len(spatial) > 1 else spatial[0]
    return list(sch.split(fused, list(extents))), list(reduce)


def last_axis_softmax(x: Any, lanes: int, parallel: bool) -> tuple[Any, Callable[[Any], None]]:
    """Softmax of `x` (rows, a, 1) over a, one row a tile (rows in parallel when `parallel`), a padded
    to whole vectors by a row copy with -inf: the output stage and its schedule."""
    rows, length = int(x.shape[0]), int(x.shape[1])
    columns = -(-length // lanes) * lanes
    if columns == length:
        z: Callable[..., Any] = lambda o, j: x[o, j, 0]  # noqa: E731
        stages: tuple[str, ...] = STAGES
    else:
        lowest = te.const(-math.inf, "float32")
        padded = te.compute(
            (rows, columns), lambda o, j: tirx.if_then_else(j < length, x[o, j, 0], lowest), name="x_p"
        )
        z = lambda o, j: padded[o, j]  # noqa: E731
        stages = ("x_p", *STAGES)
    chains = row_chains(columns // lanes)
    p, total = softmax_stages((rows,), columns, lanes, z, chains)
    one = te.const(1.0, "float32")
    out = te.compute((rows, length, 1), lambda o, j, i: p[o, j] * (one / total[o]), name="out")

    def schedule(sch: Any) -> None:
        row, j, i = sch.get_loops(sch.get_sblock("out"))
        if parallel:
            sch.parallel(row)
        for stage in reversed(stages):
            sch.compute_at(sch.get_sblock(stage), row)
        schedule_softmax(sch, 1, columns, lanes, chains)
        if columns != length:  # the -inf copy a vector at a time
            (_, vec), _ = tile_loops(sch, sch.get_sblock("x_p"), [columns // lanes, lanes])
            sch.vectorize(vec)
        if columns == length:
            _, vec = sch.split(sch.fuse(j, i), [None, lanes])
            sch.vectorize(vec)

    return out, schedule
