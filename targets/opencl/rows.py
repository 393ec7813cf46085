"""The `Rows` rule: the reduction family's rows reduced across work-items, a long row a work-group.

Rule: a kernel whose reductions each run over at least `ROW_MIN` elements a row (Softmax and
LogSoftmax over 6625 classes, LayerNorm, last-axis ReduceMax/Sum/Mean, a global pool's plane...)
is scheduled by dlight's
`GeneralReduction`: the row's spatial axes are the work-group, 256 work-items stride the row (a
coalesced read a step), each reduction (the max, the sum of exponentials...) ends in TVM's
cross-thread allreduce, a tree in local memory, and the normalising pointwise pass runs in the
same work-group. That allreduce needs reducers TVM recognises: the NaN-propagating max/min are
plain `max`/`min` reductions plus a NaN/-inf flag on OpenCL (`extreme`, targets/lowering/reduce.py).
Shorter rows (a squeeze-excite block's global pool over a small plane, rec's attention Softmax over
40 positions) share a work-group: `ROW_THREADS` work-items (fewer for rows shorter than that) reduce
a row across them, and the work-group holds as many rows as keep at least one work-group per
compute unit, dividing the rows (a partial work-group would wait at the allreduce's barriers inside
a branch). A kernel whose blocks are not rows reduced then finished (the reductions over the same
trailing axes, the last block element-wise over the rows or over their elements, reading each row's
results at that row: not a Softmax over a middle axis) is refused
(ValueError), as is a row of one element, so the family's next rules take it: dlight's `Reduction`
and `GeneralReduction`, else `Fallback`.
"""

from __future__ import annotations

import math
from typing import Any

ROW_MIN = 256
"""The fewest elements a row for a work-group a row: GeneralReduction's 256 work-items each get one."""
ROW_SHORTEST = 2
"""The fewest elements a row this rule reduces across work-items (a row of one is a copy)."""
ROW_THREADS = 32
"""The work-items reducing one short row together (a sub-group of NVIDIA's, AMD's half wavefront)."""


def row_length(func: Any) -> int:
    """The shortest row any reduction block of `func` reduces (the product of its reduction extents);
    0 when it has none."""
    from tvm import s_tir

    from targets.opencl.tir_walk import walk

    lengths = [
        math.prod(int(v.dom.extent) for v in node.iter_vars if int(v.iter_type) == 2)
        for node in walk(func.body)
        if isinstance(node, s_tir.SBlock) and any(int(v.iter_type) == 2 for v in node.iter_vars)
    ]
    return min(lengths, default=0)


def rows_schedule(func: Any, tvm_target: Any, compute_units: int = 0) -> Any:
    """`func` (a PrimFunc named by its `global_symbol`) with a work-group a row, or several short rows
    a work-group aiming at `compute_units` work-groups (module doc)."""
    import tvm
    import tvm.s_tir.dlight as dl

    length = row_length(func)
    if length < ROW_SHORTEST:
        raise ValueError(f"rows of {length} elements: nothing to reduce across work-items")
    if length < ROW_MIN:
        return short_rows_schedule(func, tvm_target, length, compute_units)
    name = str(func.attrs["global_symbol"])
    with tvm_target:
        return dl.ApplyDefaultSchedule(dl.gpu.GeneralReduction())(tvm.IRModule({name: func}))[name]


def short_rows_schedule(func: Any, tvm_target: Any, length: int, compute_units: int) -> Any:
    """Rows of `length` < ROW_MIN elements, `threads_per_row` work-items each (threadIdx.x) and
    `rows_per_group` rows a work-group (threadIdx.y); the reductions' results in local memory."""
    from tvm import s_tir, tirx
    from tvm.s_tir.dlight.analysis import normalize_prim_func
    from tvm.s_tir.dlight.base import try_inline_contiguous_spatial

    sch = s_tir.Schedule(func)
    infos = try_inline_contiguous_spatial(sch, normalize_prim_func(sch))
    if not infos or len(infos) < 2:
        raise ValueError("not rows reduced then finished")
    kind = infos[0].dom_kind()
    lead, trail = len(kind) - len(kind.lstrip("S")), len(kind) - len(kind.rstrip("R"))
    last = infos[-1]
    finished = len(last.dom_kind()) in (lead, len(kind)) and last.is_injective()
    if not (lead and trail and lead + trail == len(kind) and finished):
        raise ValueError("not rows reduced then finished")
    if any(info.dom_kind() != kind for info in infos[1:-1]):
        raise ValueError("the reductions run over different axes")
    extents = [int(i.dom) for i in infos[0].iters]
    if [int(i.dom) for i in last.iters][:lead] != extents[:lead]:
        raise ValueError("the last block does not finish the reduced rows")
    if not _reads_its_row(sch, infos, lead):
        raise ValueError("the last block reads other rows' results than its own")
    if len(last.dom_kind()) == lead:  # one result a row: a unit loop where the row's elements are
        zeros = [tirx.const(0, "int32")] * trail
        sch.transform_block_layout(last.block_rv, tirx.IndexMap.from_func(lambda *i: [*i, *zeros], ndim=lead))
    rows = math.prod(extents[:lead])
    tx = min(ROW_THREADS, 1 << (length - 1).bit_length())
    ty = rows_per_group(rows, int(tvm_target.attrs["max_num_threads"]) // tx, compute_units)
    loops = sch.get_loops(last.block_rv)
    group, row = sch.split(sch.fuse(*loops[:lead]), [None, ty])
    sch.bind(group, "blockIdx.x")
    sch.bind(row, "threadIdx.y")
    _spread(sch, sch.fuse(*loops[lead:]), tx)
    for info in reversed(infos[:-1]):
        for index, _ in enumerate(sch.get(info.block_rv).writes):
            sch.set_scope(info.block_rv, buffer_index=index, storage_scope="shared")
        sch.compute_at(info.block_rv, row, preserve_unit_loops=True)
        _spread(sch, sch.fuse(*sch.get_loops(info.block_rv)[-trail:]), tx)
    return sch.mod["main"]


def _reads_its_row(sch: Any, infos: list[Any], lead: int) -> bool:
    """Whether the last block reads the reductions' results at its own first `lead` iterators (the
    row it finishes), not across them (a Softmax over a middle axis reads (o, i) from (o, j, i))."""
    from tvm import tirx

    last = sch.get(infos[-1].block_rv)
    row = [v.var for v in last.iter_vars[:lead]]
    reduced = [w.source for info in infos[:-1] for w in sch.get(info.block_rv).writes]
    for read in last.reads:
        if any(read.source.same_as(b) for b in reduced):
            index = [r.min for r in read.region if not isinstance(r.min, tirx.IntImm)]
            if len(index) != lead or not all(i.same_as(v) for i, v in zip(index, row, strict=True)):
                return False
    return True


def rows_per_group(rows: int, most: int, compute_units: int) -> int:
    """The most rows a work-group (a power of two dividing `rows`, at most `most`) that still leaves at
    least `compute_units` work-groups, else 1."""
    count = 1
    while count * 2 <= most and rows % (count * 2) == 0 and rows // (count * 2) >= compute_units:
        count *= 2
    return count


def _spread(sch: Any, loop: Any, threads: int) -> None:
    """`loop` strided over `threads` work-items (threadIdx.x), each walking its share serially."""
    steps, lane = sch.split(loop, [None, threads])
    sch.reorder(lane, steps)
    sch.bind(lane, "threadIdx.x")
