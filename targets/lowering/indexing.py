"""Templates of the indexing family: Slice, Gather, GatherElements, GatherND, ScatterND, Trilu, OneHot.

Rule: index tensors are read, wrapped (negative counts from the end, as the
reference does) and clamped into the axis by `movement.index_value`, so a bad
index reads an edge element instead of crashing (the reference raises; a
kernel cannot). ScatterND is the one imperative kernel: a copy of the data,
then the updates applied one by one in order, so duplicate indices behave as
the reference's sequential loop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from tvm import te, tirx

from ir.dtypes import DType
from ir.graph import Node
from targets.lowering.kernel import LoweredKernel, LoweringError
from targets.lowering.movement import KernelBuilder, decode, index_value, literal, storage_dtype
from targets.lowering.registry import lowering
from targets.target import TargetDescription


@lowering("Slice")
def lower_slice(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    k = KernelBuilder(node, target, epilogue)
    x = k.operand(0)
    specs = {a: (s, st) for a, s, st in zip(node.attrs["axes"], node.attrs["starts"], node.attrs["steps"])}

    def read(*i):
        return x[tuple(specs[a][0] + v * specs[a][1] if a in specs else v for a, v in enumerate(i))]

    out = te.compute(node.results[0].type.shape, read, name="out")
    last = x.ndim - 1
    return k.finish([out], contiguous=last not in specs or specs[last][1] == 1)


@lowering("Gather")
def lower_gather(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    k = KernelBuilder(node, target, epilogue)
    data, indices = k.operand(0), k.operand(1)
    axis, rank = node.attrs["axis"], len(indices.shape)
    size = int(data.shape[axis])

    def read(*i):
        where = index_value(indices[i[axis : axis + rank]], k.dtype(1), size)
        return data[(*i[:axis], where, *i[axis + rank :])]

    out = te.compute(node.results[0].type.shape, read, name="out")
    return k.finish([out], contiguous=axis < data.ndim - 1)


@lowering("GatherElements")
def lower_gather_elements(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    k = KernelBuilder(node, target, epilogue)
    data, indices = k.operand(0), k.operand(1)
    axis = node.attrs["axis"]
    size = int(data.shape[axis])

    def read(*i):
        where = index_value(indices[i], k.dtype(1), size)
        return data[(*i[:axis], where, *i[axis + 1 :])]

    return k.finish([te.compute(node.results[0].type.shape, read, name="out")])


@lowering("GatherND")
def lower_gather_nd(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    k = KernelBuilder(node, target, epilogue)
    data, indices = k.operand(0), k.operand(1)
    batch, lookup = node.attrs["batch_dims"], len(indices.shape) - 1
    depth = int(indices.shape[-1])
    sizes = [int(d) for d in data.shape[batch : batch + depth]]

    def read(*i):
        picked = [index_value(indices[(*i[:lookup], j)], k.dtype(1), n) for j, n in enumerate(sizes)]
        return data[(*i[:batch], *picked, *i[lookup:])]

    out = te.compute(node.results[0].type.shape, read, name="out")
    return k.finish([out], contiguous=lookup < len(node.results[0].type.shape))


_REDUCE = {
    "add": lambda a, b: a + b,
    "mul": lambda a, b: a * b,
    "max": lambda a, b: tirx.max(a, b),
    "min": lambda a, b: tirx.min(a, b),
}


@lowering("ScatterND")
def lower_scatter_nd(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    """Copy the data, then apply each update slice in order (serial: later updates win)."""
    from tvm.script.ir_builder import IRBuilder
    from tvm.script.ir_builder import tirx as T

    k = KernelBuilder(node, target, epilogue)
    dtype, reduction = k.dtype(0), node.attrs["reduction"]
    if reduction != "none" and dtype in (DType.BF16, DType.I4, DType.BOOL):
        raise LoweringError(
            f"node {node.name!r}: ScatterND reduction {reduction!r} on {dtype} is not supported"
        )
    data_type, indices_type = (v.type for v in node.operands[:2] if v is not None)
    shape, depth = data_type.shape, indices_type.shape[-1]
    count, piece = math.prod(indices_type.shape[:-1]), math.prod(shape[depth:])
    total = math.prod(shape)
    data, indices = k.operand(0, (total,)), k.operand(1, (count, depth))
    updates = k.operand(2, (count * piece,))
    out = te.placeholder((total,), storage_dtype(dtype), name="out")
    with IRBuilder() as ib:
        with T.prim_func():
            T.func_name("scatter_nd")
            bufs = {t.op.name: T.arg(t.op.name, T.Buffer(t.shape, t.dtype)) for t in [*k.parameters(), out]}
            src, where, new, dst = (bufs[t.op.name] for t in (data, indices, updates, out))
            with T.serial(0, total) as e:
                T.buffer_store(dst, src[e], [e])
            with T.serial(0, count) as u:
                base = 0
                for j in range(depth):
                    position = index_value(where[u, j], k.dtype(1), shape[j])
                    base = base + position * (math.prod(shape[j + 1 : depth]) * piece)
                with T.serial(0, piece) as e:
                    value = new[u * piece + e]
                    if reduction != "none":
                        value = _REDUCE[reduction](dst[base + e], value)
                    T.buffer_store(dst, value, [base + e])
    return k.finish([out], func=ib.get())


@lowering("Trilu")
def lower_trilu(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    k = KernelBuilder(node, target, epilogue)
    x = k.operand(0)
    upper, diagonal = node.attrs["upper"], node.attrs["k"]
    zero = literal(0, k.dtype())

    def read(*i):
        offset = i[-1] - i[-2]
        keep = offset >= diagonal if upper else offset <= diagonal
        return tirx.Select(keep, x[i], zero)

    return k.finish([te.compute(node.results[0].type.shape, read, name="out")], contiguous=True)


@lowering("OneHot")
def lower_one_hot(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    k = KernelBuilder(node, target, epilogue)
    indices, values = k.operand(0), k.operand(1)
    depth, axis, index_type = node.attrs["depth"], node.attrs["axis"], k.dtype(0)

    def read(*i):
        raw = decode(indices[(*i[:axis], *i[axis + 1 :])], index_type)
        hot = tirx.Cast("int64", raw)  # float indices truncate toward zero, as the reference's np.trunc
        hot = tirx.Select(hot < 0, hot + depth, hot)
        return tirx.Select(hot == tirx.Cast("int64", i[axis]), values[1], values[0])

    return k.finish([te.compute(node.results[0].type.shape, read, name="out")])
