"""Templates of the indexing family: Slice, Gather, GatherElements, GatherND, ScatterND,
ScatterElements, Trilu, OneHot.

Rule: index tensors are read, wrapped (negative counts from the end, as the
reference does) and clamped into the axis by `movement.index_value`, so a bad
index reads an edge element instead of crashing (the reference raises; a
kernel cannot). The scatters are the imperative kernels (one `_serial_scatter`):
a copy of the data, then the updates applied one by one in order, so duplicate
indices behave as the reference's sequential loop.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

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


@lowering("ScatterND", loop_nest=True)
def lower_scatter_nd(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    """Copy the data, then apply each update slice in order (serial: later updates win)."""
    data_type, indices_type = (v.type for v in node.operands[:2] if v is not None)
    shape, depth = data_type.shape, indices_type.shape[-1]
    count, piece = math.prod(indices_type.shape[:-1]), math.prod(shape[depth:])

    def offset(where: Any, u: Any, index_type: DType) -> Any:
        base = 0
        for j in range(depth):
            position = index_value(where[u, j], index_type, shape[j])
            base = base + position * (math.prod(shape[j + 1 : depth]) * piece)
        return base

    return _serial_scatter(node, target, epilogue, (count, depth), piece, offset, "scatter_nd")


@lowering("ScatterElements", loop_nest=True)
def lower_scatter_elements(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    """Copy the data, then apply each update element in order; its index replaces position `axis`."""
    data_type, indices_type = (v.type for v in node.operands[:2] if v is not None)
    shape, positions, axis = data_type.shape, indices_type.shape, node.attrs["axis"]
    strides = [math.prod(shape[d + 1 :]) for d in range(len(shape))]

    def offset(where: Any, u: Any, index_type: DType) -> Any:
        base, rest = 0, u
        for d in reversed(range(len(shape))):
            coordinate = rest % positions[d] if d else rest
            if d == axis:
                coordinate = index_value(where[u], index_type, shape[d])
            base = base + coordinate * strides[d]
            rest = rest // positions[d]
        return base

    return _serial_scatter(node, target, epilogue, (math.prod(positions),), 1, offset, "scatter_elements")


def _serial_scatter(
    node: Node,
    target: TargetDescription,
    epilogue: Sequence[Node],
    indices_view: tuple[int, ...],
    piece: int,
    offset: Callable[[Any, Any, DType], Any],
    name: str,
) -> LoweredKernel:
    """The scatter kernel: the data copied to the output, then for each update u (serial, in order)
    its `piece` contiguous elements written (or reduced) at `offset(indices, u, index dtype)`."""
    from tvm.script.ir_builder import IRBuilder
    from tvm.script.ir_builder import tirx as T

    k = KernelBuilder(node, target, epilogue)
    dtype, reduction = k.dtype(0), node.attrs["reduction"]
    if reduction != "none" and dtype in (DType.BF16, DType.I4, DType.BOOL):
        raise LoweringError(
            f"node {node.name!r}: {node.op} reduction {reduction!r} on {dtype} is not supported"
        )
    count, total = indices_view[0], math.prod(node.results[0].type.shape)
    data, indices = k.operand(0, (total,)), k.operand(1, indices_view)
    updates = k.operand(2, (count * piece,))
    out = te.placeholder((total,), storage_dtype(dtype), name="out")
    with IRBuilder() as ib:
        with T.prim_func():
            T.func_name(name)
            bufs = {t.op.name: T.arg(t.op.name, T.Buffer(t.shape, t.dtype)) for t in [*k.parameters(), out]}
            src, where, new, dst = (bufs[t.op.name] for t in (data, indices, updates, out))
            with T.serial(0, total) as e:
                T.buffer_store(dst, src[e], [e])
            with T.serial(0, count) as u:
                base = offset(where, u, k.dtype(1))
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
