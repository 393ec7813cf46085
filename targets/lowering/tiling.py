"""The register-tiled GEMM schedule shared by MatMul/Gemm and convolution templates.

Rule: an anchor's accumulator block has loops `outer..., m, n, reduce...` where
`n` runs over a packed weight panel (contiguous `nb` floats per k) and `m` over
rows that broadcast one scalar each per k. The schedule keeps an `mi x nb`
accumulator tile in registers (`nb` = a few SIMD vectors), walks every panel
outermost so it stays in cache, runs tiles in parallel, computes the output
(epilogue) block right after each tile, and decomposes the reduction last
(TVM 0.27 refuses vectorize after `decompose_reduction`). Knobs are chosen
from the target's vector width and register count, and go into the workload key.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from targets.target import TargetDescription

ROW_PREFERENCE = (4, 6, 8, 3, 5, 2, 7, 1)


@dataclass(frozen=True)
class GemmKnobs:
    """Tile knobs: `mi` rows x `nb` columns (= `vectors` x `lanes`) of accumulators."""

    mi: int
    nb: int
    lanes: int

    @property
    def vectors(self) -> int:
        return self.nb // self.lanes

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


def choose_knobs(target: TargetDescription, m: int, n: int, rows: int | None = None) -> GemmKnobs:
    """Rows dividing `m` (or given `rows`), then as many column vectors as the registers hold (at most 4)."""
    lanes = target.vector_lanes_f32
    registers = 32 if "avx512f" in target.features else 16
    mi = rows if rows is not None else next(r for r in ROW_PREFERENCE if m % r == 0)
    vectors = 4
    while vectors > 1 and mi * vectors + vectors + 1 > registers:
        vectors -= 1
    vectors = max(1, min(vectors, -(-n // lanes)))
    for v in range(vectors, 0, -1):  # prefer a panel width that divides n (no padded tail tile)
        if n % (v * lanes) == 0:
            vectors = v
            break
    return GemmKnobs(mi=mi, nb=vectors * lanes, lanes=lanes)


def padded(n: int, nb: int) -> int:
    return -(-n // nb) * nb


def schedule_gemm(sch: Any, acc: str, out: str, knobs: GemmKnobs, vector_out: bool) -> None:
    """Schedule accumulator block `acc` (loops outer..., m, n, reduce...) and its output block `out`.

    `vector_out`: the output block's innermost loop is the `n` dim and may be
    vectorised (true for row-major GEMM and NHWC; NCHW conv writes columns).
    """
    block = sch.get_sblock(acc)
    loops = sch.get_loops(block)
    n_reduce = sum(1 for it in sch.get(block).iter_vars if int(it.iter_type) == 2)
    spatial, reduce = loops[: len(loops) - n_reduce], loops[len(loops) - n_reduce :]
    *outer, m, n = spatial
    mo, mi = sch.split(m, [None, knobs.mi])
    no, ni = sch.split(n, [None, knobs.nb])
    sch.reorder(no, *outer, mo, *reduce, mi, ni)
    tile = sch.fuse(no, *outer, mo)
    sch.set_scope(block, 0, "local")
    out_block = sch.get_sblock(out)
    sch.reverse_compute_at(out_block, tile)
    sch.parallel(tile)
    sch.unroll(mi)
    nv, lane = sch.split(ni, [None, knobs.lanes])
    sch.unroll(nv)
    sch.vectorize(lane)
    if vector_out:
        inner = sch.get_loops(out_block)[-1]
        _, lane_out = sch.split(inner, [None, knobs.lanes])
        sch.vectorize(lane_out)
    sch.decompose_reduction(block, reduce[0])
