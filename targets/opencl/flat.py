"""The `Flat` OpenCL schedule: any TE compute, each block's spatial loops fused into work-groups.

Rule: blocks are inlined where TVM can (into their consumer, else their producer); each remaining
block's spatial loops are fused and split into work-groups of `threads` work-items, its reduction
loops running serially in each work-item. It takes computes dlight cannot normalise and binds the
blocks other rules leave (targets/opencl/tiled.py's epilogue).
"""

from __future__ import annotations

from typing import Any


def flat_schedule(func: Any, threads: int) -> Any:
    """Every block of a TE compute inlined where it can be, each remaining one bound flat (`flat_bind`)."""
    import tvm.s_tir as s_tir

    sch = s_tir.Schedule(func)
    for block in list(sch.get_child_blocks(sch.get_sblock("root")))[:-1]:
        for inline in (sch.compute_inline, sch.reverse_compute_inline):
            try:
                inline(block)
                break
            except Exception:  # noqa: S112  (a block that cannot be inlined keeps its own nest)
                continue
    for block in sch.get_child_blocks(sch.get_sblock("root")):
        flat_bind(sch, block, threads)
    return sch.mod["main"]


def flat_bind_unbound(sch: Any, threads: int) -> None:
    """Every block under the root that a rule left without a thread binding (the producers and the
    epilogue of the block it tiled) bound flat (`flat_bind`)."""
    for block in sch.get_child_blocks(sch.get_sblock("root")):
        if not any(sch.get(loop).thread_binding is not None for loop in sch.get_loops(block)):
            flat_bind(sch, block, threads)


def flat_bind(sch: Any, block: Any, threads: int) -> None:
    """`block`'s spatial loops fused into work-groups of `threads` work-items (its reduction loops run
    serially in each work-item)."""
    loops = sch.get_loops(block)
    spatial = sum(1 for v in sch.get(block).iter_vars if int(v.iter_type) == 0)
    if spatial == 0 or len(loops) < spatial:
        loop = sch.add_unit_loop(block)
    else:
        loop = sch.fuse(*loops[:spatial]) if spatial > 1 else loops[0]
    width = min(threads, int(sch.get(loop).extent))
    outer, inner = sch.split(loop, [None, width])
    sch.bind(outer, "blockIdx.x")
    sch.bind(inner, "threadIdx.x")
