"""A max or min over the innermost axis in lane partials: the reduction LLVM cannot vectorise itself.

Rule: ReduceMax / ReduceMin whose one reduced group of dims is the innermost (a whole-tensor
reduction included, as onnxruntime's DynamicQuantizeLinear range takes), `extent` a multiple of the
vector lanes and at least two vectors, take `lanes` partial values per kept index, one vector step
per `lanes` elements, then the max / min across the lanes. The reducer propagates NaN and is exact
in any order, so the result equals the serial reduction's; a serial one is a select chain a cycle
or more per element. Kept rows run in parallel when the kernel may.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from tvm import te

Expr = Any


def lane_reduction(
    kept: Sequence[int], extent: int, lanes: int, value: Callable[..., Expr], reducer: Any
) -> tuple[Any, Callable[[Any, bool], None]]:
    """The "out" stage reducing `value(*kept index, j)` over j < `extent` by `reducer`, and its
    schedule (given whether kept rows may run in parallel)."""
    ro = te.reduce_axis((0, extent // lanes), name="ro")
    partial = te.compute(
        (*kept, lanes), lambda *i: reducer(value(*i[:-1], ro * lanes + i[-1]), axis=ro), name="lanes"
    )
    xl = te.reduce_axis((0, lanes), name="xl")
    out = te.compute(tuple(kept), lambda *i: reducer(partial[(*i, xl)], axis=xl), name="out")

    def schedule(sch: Any, parallel: bool) -> None:
        block, finish = sch.get_sblock("lanes"), sch.get_sblock("out")
        rows = sch.get_loops(finish)[: len(kept)]
        if rows:
            row = sch.fuse(*rows) if len(rows) > 1 else rows[0]
            sch.compute_at(block, row)
            if parallel:
                sch.parallel(row)
        lane, step = sch.get_loops(block)[-2:]
        sch.reorder(step, lane)
        sch.vectorize(lane)
        sch.decompose_reduction(block, step)
        sch.decompose_reduction(finish, sch.get_loops(finish)[-1])

    return out, schedule
