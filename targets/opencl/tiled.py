"""The OpenCL GEMM-family schedule: the `acc` reduction block of the shared GEMM and conv computes
tiled over work-groups, with the operand tiles staged in local memory.

Rule: the computes of Conv, ConvTranspose, MatMul and Gemm (targets/lowering/) reduce into a block
named `acc`, followed by their epilogue. Its spatial axes that index the weights are "channels",
the others "positions"; both are fused, and the reduction axes too. A work-group computes a tile of
`TILE_THREADS` x `TILE_THREADS` work-items, each `rows` positions x `cols` channels accumulated in
private memory (chosen to divide the extents, so no tile is partial and no staged read leaves its
tensor); each step over `depth` reduction elements first copies the tile's inputs and weights
into local memory, all work-items of the group sharing the copy (cooperative fetch). Producers of
`acc` (padding) stay blocks of their own, run flat (`flat.flat_bind_unbound`) like the epilogue: inlined,
the staged copy would read the unpadded tensor out of its bounds (the padding's condition guards
the product, not the copy). A compute
without such a block, or with no channel or no position axis (a GEMV), is not taken (ValueError):
the family's next rule runs.
"""

from __future__ import annotations

from typing import Any

from targets.opencl.tir_walk import acc_block, lowered_allocations

TILE_THREADS = 16
"""Work-items along each of the two tile axes (16 x 16 = 256 a work-group)."""
PER_THREAD = (4, 2, 1)
"""Positions (and channels) one work-item accumulates, the first that divides the extent."""
PRIVATE_BYTES = max(PER_THREAD) ** 2 * 4
"""Private accumulators of one work-item at most (`PER_THREAD` squared floats)."""
DEPTHS = (16, 8, 4, 2, 1)
"""Reduction elements staged in local memory per step, the first that divides the reduction."""


def split_of(extent: int, threads: int) -> tuple[int, int]:
    """(work-items, per work-item) dividing `extent`: as many work-items (up to `threads`) as divide
    it, then the most per work-item that still divides it."""
    items = max(t for t in range(1, threads + 1) if extent % t == 0)
    each = next(v for v in PER_THREAD if (extent // items) % v == 0)
    return items, each


def tiled_schedule(func: Any, weights: frozenset[str], target: Any) -> Any:
    """`func` with its `acc` block tiled (module doc); a ValueError when the rule does not apply.

    TVM bounds the private accumulators and the staged tiles by interval analysis, which can be
    loose on fused positions (a tile of 64 positions across rows of 320 once gave 204480 private
    floats a work-item): where the lowered kernel's private accumulators are larger than the tile,
    `acc` accumulates in global memory instead. Whether the staged tiles fit the device's local
    memory once lowered is the family-wide check of threads.py.
    """
    local_bytes = int(target.attrs["max_shared_memory_per_block"])
    scheduled = _tiled(func, weights, local_bytes, private=True)
    lowered = lowered_allocations(scheduled, target).values()
    if any(scopes.get("local", 0) > PRIVATE_BYTES for scopes in lowered):
        scheduled = _tiled(func, weights, local_bytes, private=False)
    return scheduled


def _tiled(func: Any, weights: frozenset[str], local_bytes: int, private: bool) -> Any:
    from targets.opencl.flat import flat_bind_unbound

    sch, acc = acc_block(func)
    block = sch.get(acc)
    loops = sch.get_loops(acc)
    if len(loops) != len(block.iter_vars):
        raise ValueError("acc's loops are not its iteration variables")
    used = {str(v) for read in block.reads if str(read.source) in weights for r in read.region
            for v in _vars(r.min)}  # fmt: skip
    axes = [
        (loop, int(iv.iter_type), str(iv.var) in used)
        for loop, iv in zip(loops, block.iter_vars, strict=True)
    ]
    positions = [loop for loop, kind, weighted in axes if kind == 0 and not weighted]
    channels = [loop for loop, kind, weighted in axes if kind == 0 and weighted]
    reductions = [loop for loop, kind, _ in axes if kind == 2]
    if not positions or not channels or not reductions:
        raise ValueError("acc is not a GEMM (positions x channels x reduction)")
    sch.reorder(*positions, *channels, *reductions)
    p, q, k = (sch.fuse(*g) if len(g) > 1 else g[0] for g in (positions, channels, reductions))
    (p_items, p_each), (q_items, q_each) = (split_of(int(sch.get(x).extent), TILE_THREADS) for x in (p, q))
    depth = next(d for d in DEPTHS if int(sch.get(k).extent) % d == 0)
    if (p_items * p_each + q_items * q_each) * depth * 4 > local_bytes:
        raise ValueError("the tiles do not fit the device's local memory")
    pb, pt, pi = sch.split(p, [None, p_items, p_each])
    qb, qt, qi = sch.split(q, [None, q_items, q_each])
    ko, ki = sch.split(k, [None, depth])
    sch.reorder(pb, qb, pt, qt, ko, ki, pi, qi)
    sch.bind(sch.fuse(pb, qb), "blockIdx.x")
    sch.bind(pt, "threadIdx.y")
    sch.bind(qt, "threadIdx.x")
    if private:
        stage = sch.cache_write(acc, 0, "local")
        sch.reverse_compute_at(stage, qt)
    for index in range(len(sch.get(acc).reads)):
        shared = sch.cache_read(acc, index, "shared")
        sch.compute_at(shared, ko)
        staged = sch.get_loops(shared)
        after = next(i for i, loop in enumerate(staged) if sch.get(loop).same_as(sch.get(ko))) + 1
        fetch = sch.fuse(*staged[after:]) if len(staged) - after > 1 else staged[after]
        _, ty, tx = sch.split(fetch, [None, p_items, q_items])
        sch.bind(ty, "threadIdx.y")
        sch.bind(tx, "threadIdx.x")
    sch.decompose_reduction(acc, ko)
    flat_bind_unbound(sch, TILE_THREADS * TILE_THREADS)
    return sch.mod["main"]


def _vars(expr: Any) -> list[Any]:
    """The variables an index expression reads."""
    from tvm import tirx

    found: list[Any] = []
    pending = [expr]
    while pending:
        node = pending.pop()
        if isinstance(node, tirx.Var):
            found.append(node)
            continue
        for name in ("a", "b", "value"):
            child = getattr(node, name, None)
            if child is not None:
                pending.append(child)
    return found
