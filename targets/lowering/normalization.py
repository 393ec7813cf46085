"""BatchNormalization, InstanceNormalization, GroupNormalization, LayerNormalization and LpNormalization.

Rule: the kernel views X as rows x a reduced extent (Instance: (N, C, S); Group:
(N, G, C/G * S); Layer: (outer, inner); Lp: (outer, axis, inner); BatchNorm:
(N, C, S) with no reduction), same bytes as the IR value. Statistics are two
reductions as the reference takes them: the mean, then the mean of squared
deviations (no E[x^2] - mean^2 shortcut), in f32 for half floats; the result is
`(x - mean) * (1 / sqrt(var + epsilon)) * scale + bias`, cast back to X's dtype,
with any fused elementwise epilogue applied at the IR index. BatchNorm folds
its four vectors into a per-channel factor and shift first, as the reference.
LayerNorm writes Mean and InvStdDev too when return_stats is set.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

from tvm import te

from ir.graph import Node, Value
from targets.lowering.elementwise import Epilogue, broadcast_index, epilogue_args
from targets.lowering.generic import (
    FLOATS,
    PARALLEL_MIN_WORK,
    Param,
    check_dtypes,
    extent,
    make_kernel,
    operand_param,
    output_param,
    schedule_injective,
    schedule_reduce,
    spatial_and_reduce,
    work_dtype,
)
from targets.lowering.kernel import LoweredKernel, unravel
from targets.lowering.pointwise import narrow
from targets.lowering.registry import lowering
from targets.target import TargetDescription

Index = Sequence[Any]


class View:
    """How a normalization sees X: `shape` (rows..., reduced) and the IR index of a view index."""

    def __init__(self, shape: Sequence[int], to_ir: Callable[[Index], list[Any]]) -> None:
        self.shape = tuple(int(d) for d in shape)
        self.to_ir = to_ir


def channel_view(x: Value, groups: int) -> tuple[View, Callable[[Index], Any]]:
    """(N, G, C/G * S) view and the channel of a view index."""
    n, c = x.type.shape[:2]
    spatial = tuple(x.type.shape[2:])
    s = math.prod(spatial)
    per_group = c // groups

    def channel(i: Index) -> Any:
        return i[1] * per_group + i[2] // s if per_group > 1 else i[1]

    def to_ir(i: Index) -> list[Any]:
        return [i[0], channel(i), *unravel(i[2] % s if per_group > 1 else i[2], spatial)]

    return View((n, groups, per_group * s), to_ir), channel


class Stats:
    """Mean and deviation reductions of x over its last view dim (stages `sum` and `squares`)."""

    def __init__(self, x: Any, view: View, work: str, epsilon: float) -> None:
        rows, extent = view.shape[:-1], view.shape[-1]
        self.x, self.work, self.epsilon = x, work, epsilon
        self.inv_n = te.const(1.0 / extent, work)
        r = te.reduce_axis((0, extent), "r")
        self.total = te.compute(rows, lambda *i: te.sum(x[(*i, r)].astype(work), axis=r), name="sum")
        r2 = te.reduce_axis((0, extent), "r2")

        def deviation(*i: Any) -> Any:
            d = x[(*i, r2)].astype(work) - self.mean(i)
            return te.sum(d * d, axis=r2)

        self.squares = te.compute(rows, deviation, name="squares")

    def mean(self, rows: Index) -> Any:
        return self.total[tuple(rows)] * self.inv_n

    def inv_std(self, rows: Index) -> Any:
        var = self.squares[tuple(rows)] * self.inv_n
        return te.const(1.0, self.work) / te.sqrt(var + te.const(self.epsilon, self.work))

    def normalized(self, i: Index) -> Any:
        rows = tuple(i[:-1])
        return (self.x[tuple(i)].astype(self.work) - self.mean(rows)) * self.inv_std(rows)


def schedule_row_reduce(sch: Any, name: str, lanes: int, size: int) -> None:
    """A statistic over each row as `width` partial sums a row (rfactor: one vector add per step, not a
    latency-bound scalar chain), then across them; rows in parallel. `width`: a full or half vector
    dividing the row's extent (at least two steps); other extents: `schedule_reduce`."""
    block = sch.get_sblock(name)
    spatial, reduce = spatial_and_reduce(sch, block)
    length = extent(sch, reduce[0]) if len(reduce) == 1 else 0
    width = next((w for w in (lanes, lanes // 2) if w > 1 and length % w == 0 and length >= 2 * w), None)
    if not spatial or width is None:
        schedule_reduce(sch, name, lanes, size)
        return
    _, lane = sch.split(reduce[0], [None, width])
    partial = sch.rfactor(lane, len(spatial))
    rows = sch.get_loops(block)[: len(spatial)]
    row = sch.fuse(*rows) if len(rows) > 1 else rows[0]
    sch.compute_at(partial, row)
    if size >= PARALLEL_MIN_WORK:
        sch.parallel(row)
    inner, (steps,) = spatial_and_reduce(sch, partial)
    sch.reorder(steps, inner[-1])
    sch.vectorize(inner[-1])
    sch.decompose_reduction(partial, steps)
    sch.decompose_reduction(block, sch.get_loops(block)[-1])


def affine_params(node: Node, names: Sequence[str]) -> list[Param | None]:
    params: list[Param | None] = []
    for index, name in enumerate(names, start=1):
        value = node.operands[index] if index < len(node.operands) else None
        params.append(None if value is None else operand_param(value, name))
    return params


def assemble(
    node: Node,
    target: TargetDescription,
    epilogue: Sequence[Node],
    *,
    op: str,
    x: Param,
    view: View,
    value: Callable[[Index], Any],
    params: Sequence[Param | None],
    reductions: Sequence[str],
    extra_outputs: Sequence[tuple[Any, Value]] = (),
    workload: dict[str, Any],
) -> LoweredKernel:
    """The kernel writing `value(view index)` (work dtype) as Y in the view, then extra outputs."""
    x_v, result = node.operands[0], node.results[0]
    assert x_v is not None
    dtype = result.type.dtype.numpy.name
    chain = Epilogue.build(result, epilogue)
    out = te.compute(
        view.shape, lambda *i: chain.apply(narrow(value(i), result.type.dtype), view.to_ir(i)), name="out"
    )
    extra, extra_args = epilogue_args(chain)
    all_params = [
        x,
        *[p for p in params if p is not None],
        *[Param(t, a) for t, a in zip(extra, extra_args)],
        output_param(out, chain.result or result),
        *[output_param(t, v) for t, v in extra_outputs],
    ]
    lanes = target.vector_lanes_f32
    size = math.prod(view.shape)
    workload = {
        **workload,
        "x": list(x_v.type.shape),
        "dtype": dtype,
        "view": list(view.shape),
        "operands": [None if p is None else [p.arg.role, list(p.arg.shape)] for p in params],
        "epilogue": chain.describe(),
        "lanes": lanes,
        "reduce": "lane-partials",  # schedule_row_reduce (the scalar-chain reduction had no field)
    }

    def schedule(sch: Any) -> None:
        for name in reductions:
            schedule_row_reduce(sch, name, lanes, size)
        schedule_injective(sch, "out", lanes, size)
        for index in range(len(extra_outputs)):
            schedule_injective(sch, f"stat{index}", lanes, size)

    flops = size * (2 + 3 * len(reductions)) + chain.flops(result.type.size)
    return make_kernel(node, op, workload, all_params, flops, schedule, epilogue=epilogue)


def lower_channel_norm(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], groups: int
) -> LoweredKernel:
    x_v = node.operands[0]
    assert x_v is not None
    work = work_dtype(check_dtypes(node, FLOATS))
    view, channel = channel_view(x_v, groups)
    x_param = operand_param(x_v, "x", view.shape, role="input")
    x = x_param.tensor
    stats = Stats(x, view, work, float(node.attrs["epsilon"]))
    scale, bias = affine_params(node, ["scale", "bias"])
    assert scale is not None and bias is not None

    def value(i: Index) -> Any:
        c = channel(i)
        return stats.normalized(i) * scale.tensor[c].astype(work) + bias.tensor[c].astype(work)

    return assemble(
        node,
        target,
        epilogue,
        op=node.op.lower(),
        x=x_param,
        view=view,
        value=value,
        params=[scale, bias],
        reductions=["sum", "squares"],
        workload={"op": node.op, "groups": groups, "epsilon": node.attrs["epsilon"]},
    )


@lowering("InstanceNormalization")
def lower_instance_norm(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    x_v = node.operands[0]
    assert x_v is not None
    return lower_channel_norm(node, target, epilogue, x_v.type.shape[1])


@lowering("GroupNormalization")
def lower_group_norm(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    return lower_channel_norm(node, target, epilogue, int(node.attrs["num_groups"]))


@lowering("BatchNormalization")
def lower_batch_norm(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    x_v = node.operands[0]
    assert x_v is not None
    work = work_dtype(check_dtypes(node, FLOATS))
    view, channel = channel_view(x_v, x_v.type.shape[1])
    x_param = operand_param(x_v, "x", view.shape, role="input")
    x = x_param.tensor
    scale, bias, mean, var = affine_params(node, ["scale", "bias", "mean", "var"])
    assert scale is not None and bias is not None and mean is not None and var is not None
    eps = te.const(float(node.attrs["epsilon"]), work)

    def read(p: Param, c: Any) -> Any:
        return p.tensor[c].astype(work)

    def value(i: Index) -> Any:
        c = channel(i)
        factor = read(scale, c) / te.sqrt(read(var, c) + eps)
        shift = read(bias, c) - read(mean, c) * factor
        return x[tuple(i)].astype(work) * factor + shift

    return assemble(
        node,
        target,
        epilogue,
        op="batchnorm",
        x=x_param,
        view=view,
        value=value,
        params=[scale, bias, mean, var],
        reductions=[],
        workload={"op": node.op, "epsilon": node.attrs["epsilon"]},
    )


@lowering("LayerNormalization")
def lower_layer_norm(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    x_v = node.operands[0]
    assert x_v is not None
    dtype = check_dtypes(node, FLOATS)
    work = work_dtype(dtype)
    axis = int(node.attrs["axis"])
    outer_dims, inner_dims = tuple(x_v.type.shape[:axis]), tuple(x_v.type.shape[axis:])
    view = View(
        (math.prod(outer_dims), math.prod(inner_dims)),
        lambda i: [*unravel(i[0], outer_dims), *unravel(i[1], inner_dims)],
    )
    x_param = operand_param(x_v, "x", view.shape, role="input")
    x = x_param.tensor
    stats = Stats(x, view, work, float(node.attrs["epsilon"]))
    scale, bias = affine_params(node, ["scale", "bias"])
    assert scale is not None

    def read(p: Param | None, i: Index) -> Any:
        if p is None:
            return te.const(0.0, work)
        inner = unravel(i[1], inner_dims)
        return p.tensor[tuple(broadcast_index(p.tensor.shape, inner))].astype(work)

    def value(i: Index) -> Any:
        return stats.normalized(i) * read(scale, i) + read(bias, i)

    extra = []
    if node.attrs["return_stats"]:
        rows = (view.shape[0],)
        mean_t, inv_t = node.results[1].type.dtype, node.results[2].type.dtype
        mean = te.compute(rows, lambda r: narrow(stats.mean((r,)), mean_t), name="stat0")
        inv = te.compute(rows, lambda r: narrow(stats.inv_std((r,)), inv_t), name="stat1")
        extra = [(mean, node.results[1]), (inv, node.results[2])]
    return assemble(
        node,
        target,
        epilogue,
        op="layernorm",
        x=x_param,
        view=view,
        value=value,
        params=[scale, bias],
        reductions=["sum", "squares"],
        extra_outputs=extra,
        workload={
            "op": node.op,
            "axis": axis,
            "epsilon": node.attrs["epsilon"],
            "stats": node.attrs["return_stats"],
        },
    )


@lowering("LpNormalization")
def lower_lp_norm(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    x_v = node.operands[0]
    assert x_v is not None
    dtype = check_dtypes(node, FLOATS)
    work = work_dtype(dtype)
    axis, p = int(node.attrs["axis"]), int(node.attrs["p"])
    shape = tuple(x_v.type.shape)
    outer, inner = math.prod(shape[:axis]), math.prod(shape[axis + 1 :])
    view = View(
        (outer, shape[axis], inner),
        lambda i: [*unravel(i[0], shape[:axis]), i[1], *unravel(i[2], shape[axis + 1 :])],
    )
    x_param = operand_param(x_v, "x", view.shape, role="input")
    x = x_param.tensor
    r = te.reduce_axis((0, shape[axis]), "r")

    def term(o: Any, i: Any) -> Any:
        v = x[o, r, i].astype(work)
        return te.abs(v) if p == 1 else v * v

    norm = te.compute((outer, inner), lambda o, i: te.sum(term(o, i), axis=r), name="norm")

    def value(i: Index) -> Any:
        n = norm[i[0], i[2]] if p == 1 else te.sqrt(norm[i[0], i[2]])
        zero = te.const(0.0, work)
        return te.if_then_else(n == zero, zero, x[tuple(i)].astype(work) / n)

    return assemble(
        node,
        target,
        epilogue,
        op="lpnorm",
        x=x_param,
        view=view,
        value=value,
        params=[],
        reductions=["norm"],
        workload={"op": node.op, "axis": axis, "p": p},
    )
