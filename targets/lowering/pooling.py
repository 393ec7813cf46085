"""MaxPool, AveragePool, LpPool and their Global forms as one windowed reduction over N-D spatial dims.

Rule: an output element reduces its window (kernel positions as reduce axes)
straight from the unpadded input; positions outside it (explicit pads and the
extra end room ceil_mode adds) read the reduction's identity, so no padded
copy is made. AveragePool divides by a closed-form count of the positions that
read input (or explicit pads, with count_include_pad). MaxPool's Indices are a
second reduction: the first kernel position (row-major) whose value equals the
max, turned into a flat index of the input (storage_order 1: spatial dims
column major). Global pools are the same reduction with the whole spatial
extent as the window. Half floats compute in f32; MaxPool also takes integers.
An f32 GlobalAveragePool/GlobalMaxPool whose plane holds at least one vector reads
the plane flat instead: a few vector accumulators walk it, folded into one
number per channel, the ragged end added as scalars (MaxPool's last step instead ends at the
plane's end, re-reading a few positions: no scalar tail); NHWC (a channels-last region) walks the
plane with a few channel vectors accumulating at once. On a thread-bound target (OpenCL: no loop
nests) an NCHW global average/max pool is instead one plain sum or max per (n, c) over the plane,
its scale and epilogue in the same kernel, for the thread rules to spread over work-items
(targets/opencl/rows.py). f32 1-D/2-D MaxPool/AveragePool without
Indices go to the separable vectorised template (pool_window.py), NCHW or NHWC.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from tvm import te, tirx

from ir.graph import Node
from ir.ops.window import Window
from targets.lowering.elementwise import Epilogue, epilogue_args
from targets.lowering.generic import (
    FLOATS,
    PARALLEL_MIN_WORK,
    Param,
    check_dtypes,
    lowest,
    make_kernel,
    operand_param,
    output_param,
    row_lanes,
    schedule_injective,
    schedule_reduce,
    work_dtype,
)
from targets.lowering.kernel import LoweredKernel, LoweringError
from targets.lowering.pointwise import narrow
from targets.lowering.pool_window import lower_window_pool, takes_window_template, valid_count
from targets.lowering.registry import lowering
from targets.schedules import schedules_of
from targets.target import TargetDescription

INTEGERS = ("int8", "uint8", "int16", "int32", "int64")
GLOBAL = {"GlobalAveragePool": "AveragePool", "GlobalMaxPool": "MaxPool", "GlobalLpPool": "LpPool"}


def window_of(node: Node) -> Window:
    """The node's window; a Global pool's covers the whole spatial extent."""
    x = node.operands[0]
    assert x is not None
    if node.op in GLOBAL:
        spatial = x.type.shape[2:]
        rank = len(spatial)
        return Window(tuple(spatial), (1,) * rank, (0,) * (2 * rank), (1,) * rank)
    return Window.from_attrs(node.attrs)


class WindowReader:
    """Reads x at (n, c, output index, kernel position), with a fill value outside the input."""

    def __init__(self, x: Any, window: Window, spatial: Sequence[int]) -> None:
        self.x, self.window, self.dims = x, window, window.dims(spatial)

    def coords(self, out: Sequence[Any], ks: Sequence[Any]) -> list[Any]:
        return [o * d.stride + k * d.dilation - d.begin for d, o, k in zip(self.dims, out, ks, strict=True)]

    def inside(self, coords: Sequence[Any]) -> Any:
        checks = []
        for d, p in zip(self.dims, coords, strict=True):
            if d.begin > 0:
                checks.append(p >= 0)
            checks.append(p < d.size)
        return te.all(*checks)

    def read(self, n: Any, c: Any, out: Sequence[Any], ks: Sequence[Any], work: str, fill: Any) -> Any:
        coords = self.coords(out, ks)
        value = self.x[(n, c, *coords)].astype(work)
        return te.if_then_else(self.inside(coords), value, fill)


def lp_power(x: Any, p: int) -> Any:
    """|x|^p for an integer p (repeated products, as numpy's integer power)."""
    a = te.abs(x)
    result = a
    for _ in range(p - 1):
        result = result * a
    return result


def flat_index(reader: WindowReader, out: Sequence[Any], ks: Sequence[Any], storage_order: int) -> Any:
    coords = reader.coords(out, ks)
    order = range(len(coords) - 1, -1, -1) if storage_order else range(len(coords))
    index = te.const(0, "int64")
    for dim in order:
        index = index * reader.dims[dim].size + coords[dim].astype("int64")
    return index


@lowering("MaxPool", "AveragePool", "LpPool", *GLOBAL)
def lower_pool(node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str) -> LoweredKernel:
    kind = GLOBAL.get(node.op, node.op)
    dtype = check_dtypes(node, FLOATS + INTEGERS if kind == "MaxPool" else FLOATS)
    if takes_window_template(node):
        return lower_window_pool(node, target, epilogue, layout)
    x_shape = node.operands[0].type.shape  # type: ignore[union-attr]
    plane = math.prod(x_shape[2:])
    if node.op in GLOBAL and kind != "LpPool" and layout != "NHWC" and not schedules_of(target).loop_nests:
        return lower_global_rows(node, epilogue, kind, dtype)
    vector_global = node.op in GLOBAL and kind != "LpPool" and dtype == "float32"
    if vector_global and layout == "NHWC":
        return lower_global_channels(node, target, epilogue, kind)
    if vector_global and plane >= target.vector_lanes_f32:
        return lower_global_vector(node, target, epilogue, kind)
    x_v = node.operands[0]
    assert x_v is not None
    attrs = node.attrs
    window = window_of(node)
    spatial = tuple(x_v.type.shape[2:])
    result = node.results[0]
    out_shape = tuple(result.type.shape)
    work = work_dtype(dtype)
    x_param = operand_param(x_v, "x", role="input")
    x = x_param.tensor
    reader = WindowReader(x, window, spatial)
    ks = [te.reduce_axis((0, k), f"k{i}") for i, k in enumerate(window.kernel)]
    with_indices = kind == "MaxPool" and bool(attrs.get("return_indices", 0))
    if with_indices and epilogue:
        raise LoweringError(f"node {node.name!r}: MaxPool with Indices takes no fused epilogue")
    p = int(attrs.get("p", 2))

    def reduce(n: Any, c: Any, *o: Any) -> Any:
        if kind == "MaxPool":
            return te.max(reader.read(n, c, o, ks, work, lowest(work)), axis=ks)
        value = reader.read(n, c, o, ks, work, te.const(0, work))
        return te.sum(lp_power(value, p) if kind == "LpPool" else value, axis=ks)

    acc = te.compute(out_shape, reduce, name="acc")
    chain = Epilogue.build(result, epilogue)

    def finish(n: Any, c: Any, *o: Any) -> Any:
        value = acc[(n, c, *o)]
        if kind == "AveragePool":
            include = bool(attrs.get("count_include_pad", 0))
            value = value / valid_count(window, spatial, o, include).astype(work)
        elif kind == "LpPool":
            value = te.power(value, te.const(1.0 / p, work))
        return chain.apply(narrow(value, result.type.dtype), (n, c, *o))

    out = te.compute(out_shape, finish, name="out")
    params = [x_param]
    extra, extra_args = epilogue_args(chain)
    params += [Param(t, a) for t, a in zip(extra, extra_args)]
    params.append(output_param(out, chain.result or result))
    if with_indices:
        indices = indices_compute(x, acc, reader, node, out_shape, work)
        params.append(output_param(indices, node.results[1]))
    size = math.prod(out_shape) * math.prod(window.kernel)
    workload = {
        "op": "pool",
        "kind": kind,
        "x": list(x_v.type.shape),
        "dtype": dtype,
        "window": [list(window.kernel), list(window.strides), list(window.pads), list(window.dilations)],
        "out": list(out_shape),
        "attrs": {k: attrs.get(k) for k in ("count_include_pad", "p", "return_indices", "storage_order")},
        "epilogue": chain.describe(),
        "lanes": target.vector_lanes_f32,
    }
    lanes = target.vector_lanes_f32

    def schedule(sch: Any) -> None:
        if with_indices:  # the index search re-reads the window: keep the max in memory
            schedule_reduce(sch, "acc", lanes, size)
            schedule_injective(sch, "out", lanes, size)
            schedule_reduce(sch, "first", lanes, size, consumers=["indices"])
        else:
            schedule_reduce(sch, "acc", lanes, size, consumers=["out"])

    flops = size + chain.flops(math.prod(out_shape))
    return make_kernel(node, "pool", workload, params, flops, schedule, epilogue=epilogue)


def indices_compute(
    x: Any, acc: Any, reader: WindowReader, node: Node, out_shape: Sequence[int], work: str
) -> Any:
    """Flat input index of the first kernel position holding the window's max (as the reference)."""
    kernel = reader.window.kernel
    total = math.prod(kernel)
    ks2 = [te.reduce_axis((0, k), f"j{i}") for i, k in enumerate(kernel)]
    storage_order = int(node.attrs.get("storage_order", 0))
    plane = math.prod(d.size for d in reader.dims)
    channels = int(x.shape[1])

    def first(n: Any, c: Any, *o: Any) -> Any:
        flat = te.const(0, "int32")
        for k, size in zip(ks2, kernel, strict=True):
            flat = flat * size + k
        value = reader.read(n, c, o, ks2, work, lowest(work))
        hit = value == acc[(n, c, *o)]
        return te.min(te.if_then_else(hit, flat, te.const(total, "int32")), axis=ks2)

    winner = te.compute(tuple(out_shape), first, name="first")

    def index(n: Any, c: Any, *o: Any) -> Any:
        w = te.if_then_else(winner[(n, c, *o)] == total, 0, winner[(n, c, *o)])
        pos, rest = [], w
        for size in reversed(kernel):
            pos.append(rest % size)
            rest = te.floordiv(rest, size)
        base = (n.astype("int64") * channels + c.astype("int64")) * plane
        return base + flat_index(reader, o, pos[::-1], storage_order)

    return te.compute(tuple(out_shape), index, name="indices")


def lower_global_vector(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], kind: str
) -> LoweredKernel:
    """f32 global average/max pool over the flattened plane with `width` vector accumulators per channel."""
    x_v, result = node.operands[0], node.results[0]
    assert x_v is not None
    n, c, *spatial = (int(d) for d in x_v.type.shape)
    plane, lanes = math.prod(spatial), target.vector_lanes_f32
    width = next(k * lanes for k in (4, 2, 1) if plane >= k * lanes)
    overlap = kind == "MaxPool"  # the last step ends at the plane's end, re-reading some: max allows it
    steps = -(-plane // width) if overlap else plane // width
    x_param = operand_param(x_v, "x", shape=(n, c, plane), role="input")
    x = x_param.tensor
    j = te.reduce_axis((0, steps), "j")
    fold = te.max if kind == "MaxPool" else te.sum

    def start(step: Any) -> Any:
        return te.min(step * width, plane - width) if overlap and plane % width else step * width

    part = te.compute((n, c, width), lambda a, b, lane: fold(x[a, b, start(j) + lane], axis=j), name="part")
    k = te.reduce_axis((0, width), "k")
    acc = te.compute((n, c), lambda a, b: fold(part[a, b, k], axis=k), name="acc")
    chain = Epilogue.build(result, epilogue)

    def finish(a: Any, b: Any, *o: Any) -> Any:
        value = acc[a, b]
        for t in range(plane if overlap else steps * width, plane):
            value = te.max(value, x[a, b, t]) if kind == "MaxPool" else value + x[a, b, t]
        if kind == "AveragePool":
            value = value / te.const(plane, "float32")
        return chain.apply(value, (a, b, *o))

    out = te.compute(tuple(result.type.shape), finish, name="out")
    extra, extra_args = epilogue_args(chain)
    params = [x_param, *(Param(t, a) for t, a in zip(extra, extra_args))]
    params.append(output_param(out, chain.result or result))
    workload = {
        "op": "global_pool",
        "kind": kind,
        "x": list(x_v.type.shape),
        "width": width,
        "lanes": lanes,
        "epilogue": chain.describe(),
    }

    def schedule(sch: Any) -> None:
        block = sch.get_sblock("part")
        a, b, lane, jj = sch.get_loops(block)
        channels = sch.fuse(a, b)
        sch.reorder(channels, jj, lane)
        vectors, vector_lane = sch.split(lane, [None, lanes])
        sch.unroll(vectors)
        sch.vectorize(vector_lane)
        sch.set_scope(block, 0, "local")
        sch.reverse_compute_at(sch.get_sblock("acc"), channels)
        sch.reverse_compute_at(sch.get_sblock("out"), channels)
        if n * c * plane >= 16 * PARALLEL_MIN_WORK and n * c > 1:  # adds stream fast: stay serial longer
            sch.parallel(channels)
        sch.decompose_reduction(block, jj)

    flops = n * c * plane + chain.flops(math.prod(result.type.shape))
    return make_kernel(node, "pool", workload, params, flops, schedule, epilogue=epilogue)


def lower_global_rows(node: Node, epilogue: Sequence[Node], kind: str, dtype: str) -> LoweredKernel:
    """A global average/max pool (NCHW) as the thread rules want it (OpenCL): one plain sum or max per
    (n, c) over the flattened plane, then the mean's scale and the epilogue per channel, with no CPU
    schedule (targets/opencl/threads.py schedules `compute`: a work-group per plane, or several
    planes a work-group when they are short)."""
    x_v, result = node.operands[0], node.results[0]
    assert x_v is not None
    n, c, *spatial = (int(d) for d in x_v.type.shape)
    plane, work = math.prod(spatial), work_dtype(dtype)
    x_param = operand_param(x_v, "x", shape=(n, c, plane), role="input")
    x = x_param.tensor
    p = te.reduce_axis((0, plane), "p")
    fold = te.max if kind == "MaxPool" else te.sum
    acc = te.compute((n, c), lambda a, b: fold(x[a, b, p].astype(work), axis=p), name="acc")
    chain = Epilogue.build(result, epilogue)
    corner = [tirx.const(0, "int32")] * len(spatial)

    def finish(a: Any, b: Any) -> Any:
        value = acc[a, b]
        if kind == "AveragePool":
            value = value / te.const(plane, work)
        return chain.apply(narrow(value, result.type.dtype), (a, b, *corner))

    out = te.compute((n, c), finish, name="out")
    extra, extra_args = epilogue_args(chain)
    params = [x_param, *(Param(t, a) for t, a in zip(extra, extra_args))]
    params.append(output_param(out, chain.result or result))
    workload = {"op": "global_pool", "kind": kind, "x": list(x_v.type.shape), "dtype": dtype,
                "form": "rows", "epilogue": chain.describe()}  # fmt: skip
    flops = n * c * plane + chain.flops(n * c)
    return make_kernel(node, "global_pool", workload, params, flops, lambda sch: None, epilogue=epilogue)


CHANNEL_VECTORS = 4  # NHWC global pool: channel vectors accumulated at once (independent add chains)


def lower_global_channels(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], kind: str
) -> LoweredKernel:
    """f32 global average/max pool of an NHWC (n, h, w, c) input into its (n, 1, 1, c) result: each
    tile of up to CHANNEL_VECTORS channel vectors accumulates in registers over the whole plane."""
    x_v, result = node.operands[0], node.results[0]
    assert x_v is not None and x_v.type.rank == 4
    n, c, h, w = (int(d) for d in x_v.type.shape)
    plane = h * w
    x_param = operand_param(x_v, "x", shape=(n, plane, c), role="input")
    x = x_param.tensor
    p = te.reduce_axis((0, plane), "p")
    fold = te.max if kind == "MaxPool" else te.sum
    acc = te.compute((n, c), lambda a, b: fold(x[a, p, b], axis=p), name="acc")
    chain = Epilogue.build(result, epilogue, layout="NHWC")

    def finish(a: Any, y: Any, xx: Any, b: Any) -> Any:
        value = acc[a, b]
        if kind == "AveragePool":
            value = value / te.const(plane, "float32")
        return chain.apply(value, (a, b, y, xx))

    out = te.compute((n, 1, 1, c), finish, name="out")
    extra, extra_args = epilogue_args(chain)
    params = [x_param, *(Param(t, a) for t, a in zip(extra, extra_args))]
    params.append(output_param(out, chain.result or result))
    vl = row_lanes(c, schedules_of(target).vector(target, 4).lanes)
    together = next(k for k in (CHANNEL_VECTORS, 2, 1) if vl is None or (c // vl) % k == 0)
    workload = {
        "op": "global_pool",
        "kind": kind,
        "layout": "NHWC",
        "x": list(x_v.type.shape),
        "lanes": vl,
        "together": together,
        "epilogue": chain.describe(),
    }

    def schedule(sch: Any) -> None:
        block = sch.get_sblock("acc")
        a, b, pp = sch.get_loops(block)
        if vl is None:
            sch.reorder(a, pp, b)
            tile, inner = a, None
        else:
            tile_c, vectors, lane = sch.split(b, [None, together, vl])
            sch.reorder(a, tile_c, pp, vectors, lane)
            tile, inner = sch.fuse(a, tile_c), lane
            sch.unroll(vectors)
            sch.vectorize(lane)
        sch.set_scope(block, 0, "local")
        sch.reverse_compute_at(sch.get_sblock("out"), tile)
        if inner is not None:
            _, lane_out = sch.split(sch.get_loops(sch.get_sblock("out"))[-1], [None, vl])
            sch.vectorize(lane_out)
        if n * c * plane >= 16 * PARALLEL_MIN_WORK and (vl is None or n * c // (vl * together) > 1):
            sch.parallel(tile)
        sch.decompose_reduction(block, pp)

    flops = n * c * plane + chain.flops(math.prod(result.type.shape))
    return make_kernel(node, "pool", workload, params, flops, schedule, epilogue=epilogue)
