"""The OpenCL GEMM-family schedule: the `acc` reduction block of the shared GEMM and conv computes
tiled over work-groups, with the operand tiles staged in local memory.

Rule: the computes of Conv, ConvTranspose, MatMul and Gemm (targets/lowering/) reduce into a block
named `acc`, followed by their epilogue. Its spatial axes that index the weights are "channels",
the others "positions" (the batch among them); both are fused, and the reduction axes too, and
`acc`'s buffer is laid out as (positions, channels) so a tile's accumulators are one exact range.
A work-group computes a tile of up to `TILE_THREADS` x `TILE_THREADS` work-items, each some
positions x channels accumulated in private memory (`split_tiles`: dividing the extents, so no
tile is partial, and aligned to rows and images, so no staged read spans a whole one; smaller
tiles where the largest would leave fewer than `GROUPS_PER_UNIT` work-groups a compute unit); each
step over `depth` reduction elements (`depth_of`: up to `MAX_DEPTH`, dividing the reduction and
aligned to its axes) first copies the tile's inputs and weights into local memory, all work-items
of the group sharing the copy (cooperative fetch). A producer of `acc` (the padding) is computed the same
way, per step into local memory through its condition: the padded input never exists in global
memory. The epilogue is applied where each work-item writes its accumulators back (one device
kernel), except where the output reads only part of `acc` (padded columns or channels): there
`acc` is written to global memory and the epilogue runs flat (`flat.flat_bind_unbound`). Where
TVM's bounds of the private accumulators still come out loose, `acc` accumulates in global memory
(`tiled_schedule`). A compute without such a block, or with no channel or no position axis (a
GEMV), is not taken (ValueError): the family's next rule runs. The scheduled function records its
tile (`hai.tile`: extents, work-items x per work-item, depth, private, global stages).
"""

from __future__ import annotations

import itertools
import json
import math
from typing import Any

from targets.opencl.tir_walk import acc_block, lowered_allocations

TILE_THREADS = 16
"""Work-items along each of the two tile axes (16 x 16 = 256 a work-group)."""
PER_THREAD = (4, 2, 1)
"""Positions (and channels) one work-item may accumulate (`split_tiles` picks among them)."""
PRIVATE_BYTES = max(PER_THREAD) ** 2 * 4
"""Private accumulators of one work-item at most (`PER_THREAD` squared floats)."""
GROUPS_PER_UNIT = 2
"""Work-groups a tiling aims at per compute unit, where the problem has that many (smaller tiles then)."""
MAX_DEPTH = 64
"""Reduction elements staged in local memory per step at most (`depth_of`)."""


def aligned(tile: int, bounds: list[int]) -> bool:
    """Whether a tile of `tile` consecutive fused indices stays inside one stretch of each boundary
    (the fused axes' suffix products: a row, a plane, an image) or covers whole ones: TVM then bounds
    the tile's reads exactly, where a tile across a boundary stages a whole row or image."""
    return all(bound % tile == 0 or tile % bound == 0 for bound in bounds)


def items_of(extent: int, bounds: list[int], threads: int) -> int:
    """Work-items along a tile axis: the most, up to `threads`, whose tile of one element each divides
    `extent` and is aligned to `bounds`."""
    return max(t for t in range(1, threads + 1) if extent % t == 0 and aligned(t, bounds))


def split_tiles(axes: list[tuple[int, list[int]]], threads: int, groups: int) -> list[tuple[int, int]]:
    """(work-items, per work-item) along each tile axis, given as (extent, boundaries): the most
    work-items that divide it (aligned), then the most elements per work-item (`PER_THREAD`, aligned)
    that still leave at least `groups` work-groups; where none does, one element each (the most
    work-groups a full work-group gives)."""
    items = [items_of(extent, bounds, threads) for extent, bounds in axes]
    choices = [
        [e for e in PER_THREAD if extent % (i * e) == 0 and aligned(i * e, bounds)]
        for (extent, bounds), i in zip(axes, items, strict=True)
    ]
    best: list[int] | None = None
    for each in itertools.product(*choices):
        count = math.prod(extent // (i * e) for (extent, _), i, e in zip(axes, items, each, strict=True))
        if count >= groups and (best is None or _work(each) > _work(best)):
            best = list(each)
    chosen = best if best is not None else [min(c) for c in choices]
    return list(zip(items, chosen, strict=True))


def _work(each: Any) -> tuple[int, int]:
    """How much one work-item accumulates (then the evener split): the larger tile wins."""
    return math.prod(each), -max(each)


def tiled_schedule(func: Any, weights: frozenset[str], target: Any, compute_units: int = 0) -> Any:
    """`func` with its `acc` block tiled (module doc); a ValueError when the rule does not apply.

    TVM bounds the private accumulators and the staged tiles by interval analysis, which can be
    loose on fused positions (a tile of 64 positions across rows of 320 once gave 204480 private
    floats a work-item): where the lowered kernel's private accumulators are larger than the tile,
    `acc` accumulates in global memory instead. Whether the staged tiles fit the device's local
    memory once lowered is the family-wide check of threads.py. `compute_units`: the device's (0:
    unknown), for the work-group count the tiles aim at (`GROUPS_PER_UNIT` a unit).
    """
    local_bytes = int(target.attrs["max_shared_memory_per_block"])
    groups = GROUPS_PER_UNIT * compute_units
    scheduled = _tiled(func, weights, local_bytes, groups, private=True)
    lowered = lowered_allocations(scheduled, target).values()
    if any(scopes.get("local", 0) > PRIVATE_BYTES for scopes in lowered):
        scheduled = _tiled(func, weights, local_bytes, groups, private=False)
    return scheduled


def _tiled(func: Any, weights: frozenset[str], local_bytes: int, groups: int, private: bool) -> Any:
    from targets.opencl.flat import flat_bind_unbound

    sch, acc = acc_block(func)
    block = sch.get(acc)
    loops = sch.get_loops(acc)
    if len(loops) != len(block.iter_vars):
        raise ValueError("acc's loops are not its iteration variables")
    used = {str(v) for read in block.reads if str(read.source) in weights for r in read.region
            for v in _vars(r.min)}  # fmt: skip
    kinds = [(int(iv.iter_type), str(iv.var) in used) for iv in block.iter_vars]
    positions = [
        loop for loop, (kind, weighted) in zip(loops, kinds, strict=True) if kind == 0 and not weighted
    ]
    channels = [loop for loop, (kind, weighted) in zip(loops, kinds, strict=True) if kind == 0 and weighted]
    reductions = [loop for loop, (kind, _) in zip(loops, kinds, strict=True) if kind == 2]
    if not positions or not channels or not reductions:
        raise ValueError("acc is not a GEMM (positions x channels x reduction)")
    producers = [sch.get(b).writes[0].source.name for b in sch.get_producers(acc)]
    sizes = [[int(sch.get(loop).extent) for loop in axis] for axis in (positions, channels, reductions)]
    _flatten_acc(sch, acc, kinds)
    spatial = [(str(iv.var), w) for iv, (k, w) in zip(block.iter_vars, kinds, strict=True) if k == 0]
    names = [{name for name, w in spatial if w == weighted} for weighted in (False, True)]
    axes = [(math.prod(e), _bounds(e) + _mod_bounds(block, n)) for e, n in zip(sizes[:2], names, strict=True)]
    (p_items, p_each), (q_items, q_each) = split_tiles(axes, TILE_THREADS, groups)
    extents = [math.prod(e) for e in sizes]
    depth = depth_of(extents[2], _bounds(sizes[2]), (p_items * p_each + q_items * q_each) * 4, local_bytes)
    # whole rows or images of a tile, and whole taps of a step, are loops of their own (never divided)
    tiles = (p_items * p_each, q_items * q_each, depth)
    outer, groups_of, kept = (
        _cut(axis, size, tile)
        for axis, size, tile in zip((positions, channels, reductions), sizes, tiles, strict=True)
    )
    sch.reorder(*positions, *channels, *reductions)
    inner = (positions[outer:], channels[groups_of:], reductions[kept:])
    p, q, k = (sch.fuse(*g) if len(g) > 1 else g[0] for g in inner)
    pb, pt, pi = sch.split(p, [None, p_items, p_each])
    qb, qt, qi = sch.split(q, [None, q_items, q_each])
    ko, ki = sch.split(k, [None, depth])
    blocks = [*positions[:outer], *channels[:groups_of], pb, qb]
    sch.reorder(*blocks, pt, qt, *reductions[:kept], ko, ki, pi, qi)
    sch.bind(sch.fuse(*blocks), "blockIdx.x")
    sch.bind(pt, "threadIdx.y")
    sch.bind(qt, "threadIdx.x")
    if private:
        stage = sch.cache_write(acc, 0, "local")
        sch.reverse_compute_at(stage, qt)
        _inline_epilogue(sch, stage)
    for name in producers:  # the padded input: computed per step into local memory, never in global
        producer = sch.get_sblock(name)
        sch.set_scope(producer, 0, "shared")
        sch.compute_at(producer, ko)
        _share_fetch(sch, producer, ko, p_items, q_items)
    for index, read in enumerate(sch.get(acc).reads):
        if read.source.scope() != "shared":
            shared = sch.cache_read(acc, index, "shared")
            sch.compute_at(shared, ko)
            _share_fetch(sch, shared, ko, p_items, q_items)
    sch.decompose_reduction(acc, reductions[0] if kept else ko)
    flat_bind_unbound(sch, TILE_THREADS * TILE_THREADS)
    tile = {"positions": [extents[0], p_items, p_each], "channels": [extents[1], q_items, q_each],
            "reduction": [extents[2], depth], "private": private,
            "global_stages": [str(b.name) for b in _global_stages(sch)]}  # fmt: skip
    return sch.mod["main"].with_attr("hai.tile", json.dumps(tile))


def depth_of(reduction: int, bounds: list[int], bytes_per_element: int, local_bytes: int) -> int:
    """Reduction elements staged per step: the most, up to `MAX_DEPTH`, that divide the reduction,
    are aligned to its fused axes' `bounds` (a step reads whole input channels of one tap, or whole
    taps) and stage at most half the device's local memory (`bytes_per_element`: the tile's inputs
    and weights for one element); fewer steps, fewer barriers (a 3 x 3 x 3 stem conv: one step of 27,
    not 27 of 1). A ValueError when not even one element fits."""
    fits = [d for d in range(1, MAX_DEPTH + 1) if d * bytes_per_element <= local_bytes // 2]
    if not fits:
        raise ValueError("the tiles do not fit the device's local memory")
    return max(d for d in fits if reduction % d == 0 and aligned(d, bounds))


def _cut(loops: list[Any], extents: list[int], tile: int) -> int:
    """How many of the outer `loops` stay loops of their own: the rest, fused, is the shortest run of
    inner ones whose extents a tile of `tile` divides (its index then never crosses them)."""
    return max(i for i in range(len(loops)) if math.prod(extents[i:]) % tile == 0)


def _bounds(extents: list[int]) -> list[int]:
    """The boundaries of fused axes of `extents` (outermost first): each inner axes' product."""
    return [math.prod(extents[i:]) for i in range(1, len(extents))]


def _flatten_acc(sch: Any, acc: Any, kinds: list[tuple[int, bool]]) -> None:
    """`acc`'s buffer as (positions, channels), each its axes fused in order: a tile's accumulators are
    then one range of each, which TVM bounds exactly (across rows or images, the fused index's
    divisions made the bounds of a private tile span whole planes)."""
    block = sch.get(acc)
    extents = [int(iv.dom.extent) for iv in block.iter_vars]
    spatial = [(e, weighted) for e, (kind, weighted) in zip(extents, kinds, strict=True) if kind == 0]

    def fused(index: tuple[Any, ...], weighted: bool) -> Any:
        flat: Any = 0
        for value, (extent, w) in zip(index, spatial, strict=True):
            if w == weighted:
                flat = flat * extent + value
        return flat

    sch.transform_layout(acc, ("write", 0), lambda *i: (fused(i, False), fused(i, True)))


def _inline_epilogue(sch: Any, stage: Any) -> None:
    """The epilogue (bias, activations, the output's layout) applied where each work-item writes its
    accumulators back, so `acc` never reaches global memory; left a kernel of its own where TVM
    cannot (an output that reads only part of `acc`)."""
    for consumer in sch.get_consumers(stage):
        try:
            sch.reverse_compute_inline(consumer)
        except Exception:  # noqa: BLE001, S112  (TVM's ScheduleError: not injective; stays flat)
            continue


def _share_fetch(sch: Any, block: Any, ko: Any, p_items: int, q_items: int) -> None:
    """`block`'s loops under `ko` fused and spread over the work-group (cooperative fetch)."""
    staged = sch.get_loops(block)
    after = next(i for i, loop in enumerate(staged) if sch.get(loop).same_as(sch.get(ko))) + 1
    fetch = sch.fuse(*staged[after:]) if len(staged) - after > 1 else staged[after]
    _, ty, tx = sch.split(fetch, [None, p_items, q_items])
    sch.bind(ty, "threadIdx.y")
    sch.bind(tx, "threadIdx.x")


def _global_stages(sch: Any) -> list[Any]:
    """The buffers in global memory that the schedule's blocks pass between them (module doc)."""
    root = sch.get(sch.get_sblock("root"))
    return [buf for buf in root.alloc_buffers if buf.scope() == "global"]


def _mod_bounds(block: Any, names: set[str]) -> list[int]:
    """The divisors of the `floormod`s of `block`'s read indices over the variables `names` (a packed
    weight's panel `o % 4`, a flat position's column `p % ow`): boundaries a tile must align to, else
    TVM bounds its reads over every panel or row."""
    from tvm import tirx

    found: list[int] = []
    pending = [r.min for read in block.reads for r in read.region]
    while pending:
        node = pending.pop()
        if isinstance(node, tirx.FloorMod) and isinstance(node.b, tirx.IntImm):
            if {str(v) for v in _vars(node.a)} & names and int(node.b) not in found:
                found.append(int(node.b))
        for name in ("a", "b", "value"):
            child = getattr(node, name, None)
            if child is not None:
                pending.append(child)
    return found


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
