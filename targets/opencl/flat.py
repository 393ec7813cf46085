"""The `Flat` OpenCL schedule: any TE compute, each block's spatial loops fused into work-groups.

Rule: blocks are inlined where TVM can (into their consumer, else their producer); each remaining
block's spatial loops are fused and split into work-groups of `threads` work-items, its reduction loops
running serially in each work-item. A block too small to give each of the device's compute units a
work-group that wide gets narrower ones (down to `GROUP_MIN` work-items): a small element-wise kernel
then runs on more compute units rather than in a few full work-groups. It takes computes dlight cannot
normalise and binds the blocks other rules leave (targets/opencl/tiled.py's epilogue). `Fused`
(`fused_schedule`) is the same for a reduction and its element-wise epilogue, the reduction computed in
each work-item's private memory.
"""

from __future__ import annotations

from typing import Any

GROUP_MIN = 64
"""The narrowest flat work-group: two NVIDIA warps, one AMD wavefront."""


def flat_schedule(func: Any, threads: int, compute_units: int = 0) -> Any:
    """Every block of a TE compute inlined where it can be, each remaining one bound flat (`flat_bind`)."""
    import tvm.s_tir as s_tir

    sch = s_tir.Schedule(flat_schedule_inlined(func))
    for block in sch.get_child_blocks(sch.get_sblock("root")):
        flat_bind(sch, block, threads, compute_units)
    return sch.mod["main"]


def fused_schedule(func: Any, threads: int, compute_units: int = 0) -> Any:
    """A reduction and the epilogue that reads it element for element (a depthwise conv's window sums
    then bias and activation, a pool and its divisor) as one kernel: the epilogue bound flat, each
    work-item accumulating its element in private memory first (dlight's `Fallback` makes two
    kernels, the sums read-modify-written in a global scratch per tap, then read back). A ValueError
    for any other shape: the family's next rule runs."""
    import tvm.s_tir as s_tir

    sch = s_tir.Schedule(flat_schedule_inlined(func))
    blocks = list(sch.get_child_blocks(sch.get_sblock("root")))
    kinds = [{int(v.iter_type) for v in sch.get(block).iter_vars} for block in blocks]
    if len(blocks) != 2 or 2 not in kinds[0] or 2 in kinds[1]:
        raise ValueError("not one reduction followed by its epilogue")
    producer, consumer = blocks
    if _spatial_size(sch, producer) < _spatial_size(sch, consumer):
        raise ValueError("the epilogue reads each reduced element more than once")
    flat_bind(sch, consumer, threads, compute_units)
    sch.compute_at(producer, sch.get_loops(consumer)[-1])
    sch.set_scope(producer, 0, "local")
    return sch.mod["main"]


def flat_schedule_inlined(func: Any) -> Any:
    """`func` with every block but the last inlined where TVM can (into its consumer, else its
    producer)."""
    import tvm.s_tir as s_tir

    sch = s_tir.Schedule(func)
    for block in list(sch.get_child_blocks(sch.get_sblock("root")))[:-1]:
        for inline in (sch.compute_inline, sch.reverse_compute_inline):
            try:
                inline(block)
                break
            except Exception:  # noqa: S112  (a block that cannot be inlined keeps its own nest)
                continue
    return sch.mod["main"]


def _spatial_size(sch: Any, block: Any) -> int:
    size = 1
    for v in sch.get(block).iter_vars:
        if int(v.iter_type) == 0:
            size *= int(v.dom.extent)
    return size


def flat_bind_unbound(sch: Any, threads: int) -> None:
    """Every block under the root that a rule left without a thread binding (the producers and the
    epilogue of the block it tiled) bound flat (`flat_bind`)."""
    for block in sch.get_child_blocks(sch.get_sblock("root")):
        if not any(sch.get(loop).thread_binding is not None for loop in sch.get_loops(block)):
            flat_bind(sch, block, threads)


def flat_bind(sch: Any, block: Any, threads: int, compute_units: int = 0) -> None:
    """`block`'s spatial loops fused into work-groups of `threads` work-items, fewer where that leaves
    compute units idle (`group_width`); its reduction loops run serially in each work-item."""
    loops = sch.get_loops(block)
    spatial = sum(1 for v in sch.get(block).iter_vars if int(v.iter_type) == 0)
    if spatial == 0 or len(loops) < spatial:
        loop = sch.add_unit_loop(block)
    else:
        loop = sch.fuse(*loops[:spatial]) if spatial > 1 else loops[0]
    width = group_width(int(sch.get(loop).extent), threads, compute_units)
    outer, inner = sch.split(loop, [None, width])
    sch.bind(outer, "blockIdx.x")
    sch.bind(inner, "threadIdx.x")


def group_width(extent: int, threads: int, compute_units: int) -> int:
    """Work-items a work-group for `extent` flat ones: `threads` (at most `extent`), halved (rounded up
    to a multiple of `GROUP_MIN`) while that leaves fewer work-groups than `compute_units`."""
    width = min(threads, extent)
    while width > GROUP_MIN and -(-extent // width) < compute_units:
        width = -(-width // (2 * GROUP_MIN)) * GROUP_MIN
    return width
