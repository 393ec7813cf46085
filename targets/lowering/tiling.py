"""The register-tiled GEMM schedule shared by MatMul/Gemm and convolution templates.

Rule: an anchor's accumulator block has loops `outer..., m, n, reduce...` where
`n` runs over a packed weight panel (contiguous `nb` floats per k) and `m` over
rows that broadcast one scalar each per k. The schedule keeps an `mi x nb`
accumulator tile in registers (`nb` = a few SIMD vectors), walks every panel
outermost so it stays in cache (inside bands of rows where the template asks for them:
each thread then writes whole bands, which the next kernel's row tasks read on
the same thread), runs tiles in parallel, computes the output
(epilogue) block right after each tile, and decomposes the reduction last
(TVM 0.27 refuses vectorize after `decompose_reduction`). The knobs (GemmKnobs,
targets/schedules.py) are chosen by the target family's schedule table from its
vector width and register count, and go into the workload key.
"""

from __future__ import annotations

from typing import Any

from targets.lowering.generic import row_lanes
from targets.schedules import ROW_PREFERENCE, GemmKnobs, schedules_of
from targets.target import TargetDescription


def choose_knobs(target: TargetDescription, m: int, n: int, rows: int | None = None) -> GemmKnobs:
    """The target family's GEMM knobs (targets/schedules.py) for `m` rows (or a tile of `rows`) by `n`."""
    return schedules_of(target).gemm(target, m, n, rows)


MIN_TILE_ROWS = 3
"""A tile of fewer rows (the rule found no larger divisor of m, e.g. ViT's 197 tokens) is load-bound:
`padded_rows` pads m to the preferred tile height instead."""


def padded_rows(target: TargetDescription, m: int, n: int) -> tuple[GemmKnobs, int]:
    """The GEMM knobs for `m` rows by `n` and the rows to compute: `m` itself when the rule's tile has
    at least MIN_TILE_ROWS rows (or m is that small), else m padded to the first preferred height
    (the template reads the padded rows clamped to the last real one and writes the `m` real rows)."""
    knobs = choose_knobs(target, m, n)
    if knobs.mi >= MIN_TILE_ROWS or m <= ROW_PREFERENCE[0]:
        return knobs, m
    return choose_knobs(target, m, n, rows=ROW_PREFERENCE[0]), padded(m, ROW_PREFERENCE[0])


def padded(n: int, nb: int) -> int:
    return -(-n // nb) * nb


def output_lanes(columns: int, knobs: GemmKnobs) -> int | None:
    """The vector width a row-major tile's output block is written in, `columns` the `n` extent its
    panels cover: whole vectors where panels divide it; where one panel is wider than it (its loop has
    no predicate), the widest vector dividing it (24 channels: 3 of 8); else None (a partial last
    panel: scalar stores)."""
    if columns % knobs.nb == 0:
        return knobs.lanes
    if columns < knobs.nb:
        return row_lanes(columns, knobs.lanes)
    return None


def schedule_gemm(
    sch: Any,
    acc: str,
    out: str,
    knobs: GemmKnobs,
    out_lanes: int | None,
    band: tuple[int, int] | None = None,
) -> None:
    """Schedule accumulator block `acc` (loops outer..., m, n, reduce...) and its output block `out`.

    `out_lanes`: the output block's innermost loop is the `n` dim and is vectorised this wide
    (row-major GEMM and NHWC: `output_lanes`); None where it is not (NCHW conv writes columns).
    `band` = (axis, count): the row loop `axis` of (outer..., m's tile loop) is split into `count`
    contiguous bands outside the panels, so each thread of the pool computes whole bands of rows
    over every panel (the module rule's panel order holds within a band).
    """
    block = sch.get_sblock(acc)
    loops = sch.get_loops(block)
    n_reduce = sum(1 for it in sch.get(block).iter_vars if int(it.iter_type) == 2)
    spatial, reduce = loops[: len(loops) - n_reduce], loops[len(loops) - n_reduce :]
    *outer, m, n = spatial
    mo, mi = sch.split(m, [None, knobs.mi])
    no, ni = sch.split(n, [None, knobs.nb])
    rows, head = [*outer, mo], [no]
    if band is not None:
        axis, count = band
        bands, rows[axis] = sch.split(rows[axis], [count, None])
        head = [bands, no]
    sch.reorder(*head, *rows, *reduce, mi, ni)
    tile = sch.fuse(*head, *rows)
    sch.set_scope(block, 0, "local")
    out_block = sch.get_sblock(out)
    sch.reverse_compute_at(out_block, tile)
    sch.parallel(tile)
    sch.unroll(mi)
    nv, lane = sch.split(ni, [None, knobs.lanes])
    sch.unroll(nv)
    sch.vectorize(lane)
    if out_lanes is not None:
        inner = sch.get_loops(out_block)[-1]
        _, lane_out = sch.split(inner, [None, out_lanes])
        sch.vectorize(lane_out)
    sch.decompose_reduction(block, reduce[0])
