"""The `Rows` rule: one work-group per row for the reduction family's kernels with long rows.

Rule: a kernel whose reductions each run over at least `ROW_MIN` elements a row (Softmax and
LogSoftmax over 6625 classes, LayerNorm, last-axis ReduceMax/Sum/Mean...) is scheduled by dlight's
`GeneralReduction`: the row's spatial axes are the work-group, 256 work-items stride the row (a
coalesced read a step), each reduction (the max, the sum of exponentials...) ends in TVM's
cross-thread allreduce, a tree in local memory, and the normalising pointwise pass runs in the
same work-group. That allreduce needs reducers TVM recognises: the NaN-propagating max/min are
plain `max`/`min` reductions plus a NaN/-inf flag on OpenCL (`extreme`, targets/lowering/reduce.py).
A kernel with shorter rows is refused (ValueError), so the family's next rules take it: dlight's
`GeneralReduction` itself where TVM recognises its reducers (sums: a LayerNorm's), else `Fallback`
(one work-item a row: a NaN-propagating max keeps its one select reduction there).
"""

from __future__ import annotations

import math
from typing import Any

ROW_MIN = 256
"""The fewest elements a row for a work-group a row: GeneralReduction's 256 work-items each get one."""


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


def rows_schedule(func: Any, tvm_target: Any) -> Any:
    """`func` (a PrimFunc named by its `global_symbol`) with a work-group a row (module doc)."""
    import tvm
    import tvm.s_tir.dlight as dl

    length = row_length(func)
    if length < ROW_MIN:
        raise ValueError(f"rows of {length} elements, fewer than {ROW_MIN}: a work-item a row serves them")
    name = str(func.attrs["global_symbol"])
    with tvm_target:
        return dl.ApplyDefaultSchedule(dl.gpu.GeneralReduction())(tvm.IRModule({name: func}))[name]
