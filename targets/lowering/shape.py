"""Templates of the shape family: copies of views, Transpose, Concat, Split, Pad, Expand, Tile.

Rule: each op is one TE compute per result that reads its operand at a
clamped, explicitly computed index (see `movement`). Views (Reshape, Flatten,
Squeeze, Unsqueeze, Identity) get a plain copy over the result's shape, for
the cases where the driver needs one (a view of a graph input or constant that
is a graph output). Transpose merges axes that stay adjacent first, so equal
data movement shares one kernel and the innermost loop is as long as it can be.
Relayout (the layout pass's NCHW <-> NHWC) is the same transpose of its stored
elements: (N, C, H*W) <-> (N, H*W, C). Concat joins along the stored axis (the last one for
an NHWC channel Concat) by copying contiguous runs with whole vectors (`concat_runs`), never
an element-wise select (which would read every part at every index); on thread-bound targets
(OpenCL) it is a compute reading each element through a lazy `if_then_else`. Split cuts along
the stored axis too.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from tvm import te, tirx

from ir.graph import Node
from ir.types import LAYOUTS
from targets.lowering.elementwise import PARALLEL_MIN_ELEMENTS
from targets.lowering.kernel import LoweredKernel
from targets.lowering.movement import KernelBuilder, clamp, literal
from targets.lowering.pointwise import storage_dtype
from targets.lowering.registry import lowering
from targets.schedules import schedules_of
from targets.target import TargetDescription


@lowering("Reshape", "Flatten", "Squeeze", "Unsqueeze", "Identity")
def lower_copy(node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str) -> LoweredKernel:
    """The operand's bytes copied into the result (both viewed with the result's shape)."""
    if node.op == "Identity" and epilogue:
        from targets.lowering.elementwise import lower_elementwise

        return lower_elementwise(node, target, epilogue, layout)
    k = KernelBuilder(node, target, epilogue)
    shape = node.results[0].type.shape
    x = k.operand(0, shape)
    out = te.compute(shape, lambda *i: x[i], name="out")
    return k.finish([out], contiguous=True, workload={"op": "copy", "attrs": {}})


def collapse_transpose(shape: Sequence[int], perm: Sequence[int]) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """An equivalent (shape, perm) with size-1 axes dropped and axes that stay adjacent merged."""
    kept = [a for a in range(len(shape)) if shape[a] != 1]
    order = [a for a in perm if shape[a] != 1]
    groups: list[list[int]] = []
    for a in order:
        if groups and groups[-1][-1] + 1 == a:
            groups[-1].append(a)
        else:
            groups.append([a])
    by_source = sorted(groups, key=lambda g: g[0])
    new_shape = tuple(math.prod(shape[a] for a in g) for g in by_source)
    new_perm = tuple(by_source.index(g) for g in groups)
    assert math.prod(new_shape) == math.prod(shape[a] for a in kept)
    return new_shape, new_perm


@lowering("Transpose")
def lower_transpose(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    src = node.operands[0]
    assert src is not None
    return transpose_kernel(KernelBuilder(node, target, epilogue), src.type.shape, node.attrs["perm"])


@lowering("Relayout")
def lower_relayout(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    """The operand's elements permuted from its storage order into the result's (a tiled transpose)."""
    src, dst = node.operands[0], node.results[0]
    assert src is not None
    source_order = LAYOUTS.get(src.type.layout or "", tuple(range(src.type.rank)))
    dest_order = LAYOUTS.get(dst.type.layout or "", tuple(range(dst.type.rank)))
    perm = [source_order.index(axis) for axis in dest_order]
    return transpose_kernel(KernelBuilder(node, target, epilogue), src.type.stored_shape, perm)


def transpose_kernel(k: KernelBuilder, source: Sequence[int], perm: Sequence[int]) -> LoweredKernel:
    """The kernel writing operand 0 (stored as `source`) transposed by `perm`."""
    shape, perm = collapse_transpose(source, perm)
    if not shape:
        shape, perm = (1,), (0,)
    x = k.operand(0, shape)
    out_shape = tuple(shape[p] for p in perm)

    def read(*i):
        index = [0] * len(shape)
        for position, axis in enumerate(perm):
            index[axis] = i[position]
        return x[tuple(index)]

    out = te.compute(out_shape, read, name="out")
    inner = perm.index(len(perm) - 1)
    if inner != len(perm) - 1 and out_shape[inner] % TILE == 0 and out_shape[-1] % TILE == 0:
        return k.finish(
            [out],
            schedule=lambda sch, block, t: _schedule_tiled(sch, block, inner, math.prod(out_shape)),
            workload={"attrs": {"shape": shape, "perm": perm}, "tile": TILE},
        )
    return k.finish(
        [out], contiguous=perm[-1] == len(perm) - 1, workload={"attrs": {"shape": shape, "perm": perm}}
    )


TILE = 8  # a TILE x TILE block: source rows read as vectors along the output's strided axis


def _schedule_tiled(sch, block, inner: int, elements: int) -> None:  # noqa: ANN001
    """Tile the output axis that is contiguous in the source (`inner`) and the last one; each tile
    reads TILE-element vectors of the source and writes TILE rows of the output."""
    loops = list(sch.get_loops(block))
    io, ii = sch.split(loops[inner], [None, TILE])
    jo, ji = sch.split(loops[-1], [None, TILE])
    outer = [io if n == inner else loop for n, loop in enumerate(loops[:-1])] + [jo]
    sch.reorder(*outer, ii, ji)
    sch.unroll(ii)
    sch.vectorize(ji)
    if elements >= PARALLEL_MIN_ELEMENTS:
        sch.parallel(sch.fuse(*outer))


@lowering("Concat")
def lower_concat(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    """Along the stored axis (a channel Concat of an NHWC region joins along the last one): every
    part's elements copied as contiguous runs (`concat_runs`), never an element-wise select."""
    k = KernelBuilder(node, target, epilogue)
    out_type = node.results[0].type
    order = LAYOUTS.get(out_type.layout or "", tuple(range(out_type.rank)))
    axis = order.index(node.attrs["axis"])
    present = [(i, v.type.stored_shape) for i, v in enumerate(node.operands) if v is not None]
    if not schedules_of(target).loop_nests:  # OpenCL: a compute its thread rules bind
        return concat_compute(k, present, out_type.stored_shape, axis)
    return concat_runs(k, present, out_type.stored_shape, axis)


def concat_compute(
    k: KernelBuilder, present: Sequence[tuple[int, Sequence[int]]], shape: Sequence[int], axis: int
) -> LoweredKernel:
    """A Concat as a compute for thread-bound targets: each element read from the one part that holds
    it, through a lazy `if_then_else` (only the taken branch reads: a Select would read every part)."""
    parts = [(k.operand(i, s), s[axis]) for i, s in present]
    parts = [(t, n) for t, n in parts if n > 0] or parts[:1]
    offsets = [sum(n for _, n in parts[:j]) for j in range(len(parts))]

    def read(*i: Any) -> Any:
        value = None
        for (tensor, size), start in reversed(list(zip(parts, offsets, strict=True))):
            index = list(i)
            index[axis] = clamp(i[axis] - start, size)
            here = tensor[tuple(index)]
            value = here if value is None else tirx.if_then_else(i[axis] < start + size, here, value)
        return value

    return k.finish([te.compute(tuple(shape), read, name="out")])


def concat_runs(
    k: KernelBuilder, present: Sequence[tuple[int, Sequence[int]]], shape: Sequence[int], axis: int
) -> LoweredKernel:
    """A Concat as copies of contiguous runs, each by whole vectors (the rest element by element).

    Along the last axis (an NHWC region's channel Concat) each output row is the parts' rows one
    after another, rows in parallel; along another axis each part's slices of that axis (runs of
    the axes after it) are copied in parallel, one loop per part. A select between the parts per
    element would read every part at every index: TVM's simplifier drops the clamps of a Select's
    branches under its condition, so those reads left the parts' bytes (PP-OCR det's FPN Concat).
    `present`: (operand index, stored shape) of each part."""
    from tvm.script.ir_builder import IRBuilder
    from tvm.script.ir_builder import tirx as T

    dtype = storage_dtype(k.node.results[0].type.dtype)
    lanes = 1 if dtype == "bool" else max(k.target.vector_bytes // np.dtype(dtype).itemsize, 1)
    rows, inner, total = math.prod(shape[:axis]), math.prod(shape[axis + 1 :]), shape[axis]
    parts = [(k.operand(i, (rows * s[axis] * inner,)), s[axis]) for i, s in present]
    out = te.placeholder((math.prod(shape),), dtype, name="out")
    parallel = T.parallel if math.prod(shape) >= PARALLEL_MIN_ELEMENTS else T.serial
    with IRBuilder() as ib:
        with T.prim_func():
            T.func_name("concat_runs")
            buffers = {t: T.arg(t.op.name, T.Buffer(t.shape, t.dtype)) for t in k.parameters()}
            dst = T.arg(out.op.name, T.Buffer(out.shape, out.dtype))
            if inner == 1:
                with parallel(0, rows) as row:
                    start = 0
                    for tensor, size in parts:
                        _copy_run(dst, row * total + start, buffers[tensor], row * size, size, lanes)
                        start += size
            else:
                start = 0
                for tensor, size in parts:
                    if size:
                        with parallel(0, rows * size) as b:
                            at = tirx.floordiv(b, size) * total + start + tirx.floormod(b, size)
                            _copy_run(dst, at * inner, buffers[tensor], b * inner, inner, lanes)
                    start += size
    # flat args alone would name Concats of equal sizes but other row splits alike (one kernel for both)
    workload = {"path": "runs", "rows": rows, "inner": inner, "parts": [size for _, size in parts]}
    return k.finish([out], func=ib.get(), workload=workload)


def _copy_run(dst: Any, dst_at: Any, src: Any, src_at: Any, length: int, lanes: int) -> None:
    """`length` elements from `src[src_at:]` to `dst[dst_at:]`: whole vectors of `lanes`, then the rest."""
    from tvm.script.ir_builder import tirx as T

    whole = length - length % lanes if lanes > 1 else 0
    if whole:
        with T.serial(0, whole // lanes) as b:
            v = tirx.BufferLoad(src, [tirx.Ramp(src_at + b * lanes, 1, lanes)])
            T.buffer_store(dst, v, [tirx.Ramp(dst_at + b * lanes, 1, lanes)])
    if length > whole:
        with T.serial(0, length - whole) as t:
            T.buffer_store(dst, src[src_at + whole + t], [dst_at + whole + t])


@lowering("Split")
def lower_split(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    """One kernel writing every piece, along the stored axis (a channel Split of an NHWC region splits
    the last one: each piece's rows are contiguous runs of the operand's)."""
    k = KernelBuilder(node, target, epilogue)
    x_type = node.operands[0].type  # type: ignore[union-attr]
    x = k.operand(0, x_type.stored_shape)
    order = LAYOUTS.get(x_type.layout or "", tuple(range(x_type.rank)))
    axis, sizes = order.index(node.attrs["axis"]), node.attrs["split"]

    def piece(start: int):
        return lambda *i: x[tuple(v + start if a == axis else v for a, v in enumerate(i))]

    outputs = [
        te.compute(r.type.stored_shape, piece(sum(sizes[:j])), name=f"out{j}")
        for j, r in enumerate(node.results)
    ]
    return k.finish(outputs, contiguous=axis != x.ndim - 1 or x_type.layout is not None)


def _pad_source(o, begin: int, end: int, size: int, mode: str):
    """(source index, inside?) of output index `o` along one axis of `size`, padded by `begin`/`end`."""
    crop, pad = max(-begin, 0), max(begin, 0)
    length = size - crop - max(-end, 0)
    p = o - pad
    inside = tirx.all(p >= 0, p < length)
    if mode == "edge":
        p = clamp(p, length)
    elif mode == "wrap":
        p = tirx.floormod(p, length)
    elif mode == "reflect":
        period = max(2 * (length - 1), 1)
        q = tirx.floormod(p, period)
        p = tirx.Select(q >= length, period - q, q) if length > 1 else q * 0
    else:
        p = clamp(p, length)
    return p + crop, inside


@lowering("Pad")
def lower_pad(node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str) -> LoweredKernel:
    k = KernelBuilder(node, target, epilogue)
    x = k.operand(0)
    pads, mode = node.attrs["pads"], node.attrs["mode"]
    rank = x.ndim
    fill = literal(node.attrs["value"], k.dtype())

    def read(*i):
        sources = [_pad_source(i[a], pads[a], pads[rank + a], int(x.shape[a]), mode) for a in range(rank)]
        value = x[tuple(s for s, _ in sources)]
        if mode != "constant":
            return value
        return tirx.Select(tirx.all(*[inside for _, inside in sources]), value, fill)

    out = te.compute(node.results[0].type.shape, read, name="out")
    contiguous = rank > 0 and pads[rank - 1] == 0 and pads[2 * rank - 1] == 0
    return k.finish([out], contiguous=contiguous)


@lowering("Expand", "Tile")
def lower_broadcast(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    """Expand (numpy broadcasting) and Tile (index modulo the operand's size)."""
    k = KernelBuilder(node, target, epilogue)
    x = k.operand(0)
    shape = [int(d) for d in x.shape]
    out_shape = node.results[0].type.shape
    offset = len(out_shape) - len(shape)

    def read(*i):
        tail = i[offset:]
        if node.op == "Tile":
            return x[tuple(v if d == o else tirx.floormod(v, d) for v, d, o in zip(tail, shape, out_shape))]
        return x[tuple(0 if d == 1 else v for v, d in zip(tail, shape, strict=True))]

    out = te.compute(out_shape, read, name="out")
    contiguous = bool(shape) and shape[-1] == out_shape[-1]
    return k.finish([out], contiguous=contiguous)
