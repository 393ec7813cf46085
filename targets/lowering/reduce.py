"""Reduce-family kernels: reductions over axes, ArgMax/ArgMin, Softmax/LogSoftmax/Hardmax and TopK.

Rule: a kernel views its operand with adjacent dims of the same kind merged
(same bytes, C order): reductions see alternating kept / reduced groups
(size-1 dims dropped), the one-axis ops see (outer, axis, inner). Elements are
widened to their compute dtype (f16/bf16 -> f32, bool -> u8, so that the
max / min of an empty set is False / True as in the reference) and results
rounded once, as ir/ops/reduce.py computes them (integers accumulate in their
own dtype and wrap; float max/min propagate NaN). One-axis ops work row by
row: every helper stage (the max, the sum of exponentials, the ranks) is
computed at the fused (outer, inner) row loop, so its buffer is one row, and
the rows run in parallel when the operand is large. Reductions run parallel
over the kept axes with the innermost kept axis vectorised under the
reduction loops (on loop-nest targets a max / min over the innermost group in lane partials:
targets/lowering/reduce_lanes.py); `decompose_reduction` is always the last schedule step.
TopK ranks every element against its row (ties: lower index first; NaN is
the largest), O(axis²) per row, and gathers the k best: no sort function of
libtvm_runtime is needed. On OpenCL no CPU schedule runs (its thread rules schedule the compute),
and rows of at least the schedule table's `plain_extremes_from` elements take their float max/min
in `extreme`'s plain form (work-group reductions need reducers TVM recognises).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from tvm import te, tirx

from ir.dtypes import DType
from ir.graph import Node
from targets.lowering.elementwise import PARALLEL_MIN_ELEMENTS, schedule_flat, vector_lanes
from targets.lowering.kernel import KernelArg, LoweredKernel, LoweringError, kernel_name, snapshot
from targets.lowering.pointwise import Expr, dtype_of, float_to_int, fmax, fmin, narrow, storage_dtype, widen
from targets.lowering.reduce_lanes import lane_reduction
from targets.lowering.registry import lowering
from targets.lowering.softmax_rows import last_axis_softmax
from targets.schedules import schedules_of
from targets.target import TargetDescription

TEMPLATE_VERSION = 7  # 2: bool computes in u8 (empty-set max/min); 3: f16 softmax rounds each step;
# 4: the f16 softmax sum is exact (f64), rounded once; 5: f32 last-axis Softmax by softmax_rows.py;
# 6: rows shorter than two full vectors by softmax_rows.py in narrower vectors (SSD's 21 classes: 8);
# 7: max/min over the innermost group in lane partials (reduce_lanes.py)
# (OpenCL's computes, e.g. `extreme`'s plain forms, are keyed by their own hash: targets/opencl/build.py)


def _c(value: Any, dtype: str) -> Expr:
    return te.const(value, dtype)


def compute_of(dtype: DType) -> str:
    if dtype is DType.BOOL:
        return "uint8"
    return "float32" if dtype in (DType.F16, DType.BF16) else dtype.numpy.name


def load(x: Any, index: Sequence[Expr], dtype: DType) -> Expr:
    """An operand element in its compute dtype."""
    value = widen(x(*index), dtype)
    return value.astype("uint8") if dtype is DType.BOOL else value


def store(value: Expr, dtype: DType) -> Expr:
    """A compute-dtype result as `dtype`'s storage (float results into integers truncate)."""
    if dtype.is_integer and dtype_of(value).startswith("float"):
        return float_to_int(value, storage_dtype(dtype))
    return tirx.NE(value, _c(0, dtype_of(value))) if dtype is DType.BOOL else narrow(value, dtype)


def lowest(dtype: str) -> Any:
    return -math.inf if dtype.startswith("float") else int(np.iinfo(dtype).min)


def highest(dtype: str) -> Any:
    return math.inf if dtype.startswith("float") else int(np.iinfo(dtype).max)


NAN_MAX = te.comm_reducer(fmax, lambda t: _c(lowest(str(t)), str(t)), name="nan_max")
NAN_MIN = te.comm_reducer(fmin, lambda t: _c(highest(str(t)), str(t)), name="nan_min")
PROD = te.comm_reducer(lambda a, b: a * b, lambda t: _c(1, str(t)), name="prod")


def extreme(
    kept: Sequence[int],
    element: Callable[[Sequence[Expr]], tuple[Expr, list[Any]]],
    largest: bool,
    name: str,
    plain: bool,
    dtype: str,
) -> Any:
    """The NaN-propagating max (`largest`) or min over each kept index of `element(i)` = (value, its
    reduce axes), values in compute `dtype`. One `nan_max`/`nan_min` reduction; or, where `plain` and
    the values are floats, TVM's plain max/min reducers, which its cross-thread reductions recognise
    (the select of `fmax` is none of its reducers): `{name}_flag`, the highest of each value's class
    (`_extreme_class`: 3 NaN, 2 the far infinity, 1 finite, 0 the empty extreme's infinity), and
    `{name}_m`, the extreme of the finite values (OpenCL's `max` is undefined on infinities and NaN);
    the result is NaN, the far infinity, that extreme or the empty one by the flag, as `nan_max`."""
    pick = NAN_MAX if largest else NAN_MIN
    if not plain or not dtype.startswith("float"):
        return te.compute(kept, lambda *i: pick(*element(i)), name=name)
    far = _c(highest(dtype) if largest else lowest(dtype), dtype)
    empty = _c(lowest(dtype) if largest else highest(dtype), dtype)
    finfo = np.finfo(dtype)
    edge = _c(float(finfo.min if largest else finfo.max), dtype)  # TVM's own identity of max/min

    def flag(*i: Expr) -> Expr:
        v, axes = element(i)
        return te.max(_extreme_class(v, far, empty), axis=axes)

    def bound(*i: Expr) -> Expr:
        v, axes = element(i)
        finite = tirx.Select(_extreme_class(v, far, empty) == 1, v, edge)
        return te.max(finite, axis=axes) if largest else te.min(finite, axis=axes)

    flags = te.compute(kept, flag, name=f"{name}_flag")
    bounds = te.compute(kept, bound, name=f"{name}_m")
    nan = _c(math.nan, dtype)

    def result(*i: Expr) -> Expr:
        f = flags(*i)
        return tirx.Select(f == 3, nan, tirx.Select(f == 2, far, tirx.Select(f == 1, bounds(*i), empty)))

    return te.compute(kept, result, name=name)


def _extreme_class(v: Expr, far: Expr, empty: Expr) -> Expr:
    """3 for NaN, 2 for the `far` infinity, 0 for the `empty` one, 1 for a finite `v` (int32)."""
    level = tirx.Select(
        tirx.EQ(v, far), _c(2, "int32"), tirx.Select(tirx.EQ(v, empty), _c(0, "int32"), _c(1, "int32"))
    )
    return tirx.Select(is_nan(v), _c(3, "int32"), level)


def own(value: Expr, dtype: DType) -> Expr:
    """`value` (compute dtype) rounded to half-float `dtype` and widened back: the softmax family's
    reference rounds every step (shift, exp, sum, log, quotient) to the operand's dtype."""
    return widen(narrow(value, dtype), dtype) if dtype in (DType.F16, DType.BF16) else value


BF16_SUM = te.comm_reducer(lambda a, b: own(a + b, DType.BF16), lambda t: _c(0, str(t)), name="bf16_sum")


def exact_sum(value: Expr, axis: Any) -> Expr:
    """The sum of f16 steps (f32 holding f16 values) in f64, where it is exact: f16 values are multiples
    of 2^-24 below 2^16, so any row under 2^29 elements sums without rounding, in any order."""
    return te.sum(value.astype("float64"), axis=axis)


def summed(dtype: DType) -> Any:
    """The sum the reference takes of a `dtype` array (ir/ops/reduce.py): f16 exactly (rounded once, by
    `own`), bf16 element by element as ml_dtypes does, rounding every partial sum."""
    return {DType.F16: exact_sum, DType.BF16: BF16_SUM}.get(dtype, te.sum)


def is_nan(x: Expr) -> Expr:
    return te.isnan(x) if dtype_of(x).startswith("float") else te.const(False, "bool")


class Kernel:
    """The pieces every template here shares: the operand placeholder, the workload name, the args."""

    def __init__(self, node: Node, target: TargetDescription, epilogue: Sequence[Node], view: Sequence[int]):
        if epilogue:
            raise LoweringError(f"node {node.name!r} ({node.op}) takes no fused epilogue")
        x = node.operands[0]
        assert x is not None
        if x.type.dtype is DType.I4:
            raise LoweringError(f"node {node.name!r}: sub-byte dtypes (i4) have no {node.op} kernel")
        self.node, self.target, self.value = node, target, x
        self.dtype = x.type.dtype
        self.threads_bound = not schedules_of(target).loop_nests  # OpenCL: thread rules take `compute`
        self.plain_from = schedules_of(target).plain_extremes_from
        self.x = te.placeholder(tuple(view), storage_dtype(self.dtype), name="x")

    def finish(self, outputs: Sequence[Any], schedule: Callable[[Any], None], work: int) -> LoweredKernel:
        import tvm.s_tir as s_tir

        node = self.node
        role = "weight" if self.value.is_constant else "input"
        args = [KernelArg(self.value.name, role, _shape(self.x), storage_dtype(self.dtype))]
        args += [
            KernelArg(r.name, "output", _shape(t), storage_dtype(r.type.dtype))
            for r, t in zip(node.results, outputs, strict=True)
        ]
        workload = {
            "op": node.op,
            "attrs": {k: v for k, v in sorted(node.attrs.items())},
            "args": [[a.role, list(a.shape), a.dtype] for a in args],
            "dtype": str(self.dtype),
            "vector_bytes": self.target.vector_bytes,
            "version": TEMPLATE_VERSION,
        }
        name = kernel_name(node.op, workload)
        compute = te.create_prim_func([self.x, *outputs]).with_attr("global_symbol", name)
        sch = s_tir.Schedule(snapshot(compute))
        if not self.threads_bound:  # OpenCL's rules schedule `compute` (targets/opencl/threads.py)
            schedule(sch)
        func = sch.mod["main"].with_attr("global_symbol", name)
        return LoweredKernel(
            name, func, tuple(args), work, (node.name,), workload, layout="any", compute=compute
        )

    def plain(self, length: int) -> bool:
        """Whether rows of `length` elements take `extreme`'s plain reducers (`plain_extremes_from`)."""
        return 0 < self.plain_from <= length

    def parallel_ok(self) -> bool:
        return self.value.type.size >= PARALLEL_MIN_ELEMENTS


def _shape(t: Any) -> tuple[int, ...]:
    return tuple(int(d) for d in t.shape)


# ---- reductions over axes ---------------------------------------------------------------------


def groups(shape: Sequence[int], axes: Sequence[int]) -> list[tuple[int, bool]]:
    """(extent, reduced) for runs of adjacent dims of one kind; size-1 dims are dropped."""
    out: list[tuple[int, bool]] = []
    for i, d in enumerate(shape):
        if d == 1:
            continue
        reduced = i in axes
        if out and out[-1][1] == reduced:
            out[-1] = (out[-1][0] * d, reduced)
        else:
            out.append((d, reduced))
    return out or [(1, False)]


Map = Callable[[Expr], Expr]
Finish = Callable[[Expr, int], Expr]


def _mean(total: Expr, count: int) -> Expr:
    if dtype_of(total).startswith("float"):
        return total / _c(count, dtype_of(total))
    return tirx.truncdiv(total, _c(max(count, 1), dtype_of(total)))


def _to_float(x: Expr) -> Expr:
    return x if dtype_of(x).startswith("float") else x.astype("float64")


def IDENTITY(total: Expr, count: int) -> Expr:  # noqa: N802 - a marker compared by identity
    return total


REDUCTIONS: dict[str, tuple[Map, Any, Finish]] = {
    "ReduceSum": (lambda v: v, te.sum, IDENTITY),
    "ReduceMean": (lambda v: v, te.sum, _mean),
    "ReduceProd": (lambda v: v, PROD, IDENTITY),
    "ReduceMax": (lambda v: v, NAN_MAX, IDENTITY),
    "ReduceMin": (lambda v: v, NAN_MIN, IDENTITY),
    "ReduceL1": (lambda v: tirx.Select(v < _c(0, dtype_of(v)), _c(0, dtype_of(v)) - v, v), te.sum, IDENTITY),
    "ReduceL2": (lambda v: v * v, te.sum, lambda s, n: te.sqrt(_to_float(s))),
    "ReduceSumSquare": (lambda v: v * v, te.sum, IDENTITY),
    "ReduceLogSum": (lambda v: v, te.sum, lambda s, n: te.log(s)),
}


@lowering(*REDUCTIONS, "ReduceLogSumExp")
def lower_reduce(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    x_value = node.operands[0]
    assert x_value is not None
    shape, axes = x_value.type.shape, tuple(node.attrs["axes"])
    parts = groups(shape, axes)
    k = Kernel(node, target, epilogue, [d for d, _ in parts])
    kept = [d for d, r in parts if not r]
    count = math.prod(shape[a] for a in axes)
    result = node.results[0].type.dtype

    def index(out_idx: Sequence[Expr], red: Sequence[Any]) -> list[Expr]:
        it_out, it_red = iter(out_idx), iter(red)
        return [next(it_red) if r else next(it_out) for _, r in parts]

    def reduce_axes() -> list[Any]:
        return [te.reduce_axis((0, d), name=f"r{i}") for i, (d, r) in enumerate(parts) if r]

    lanes = vector_lanes(target, [str(k.x.dtype)])
    last, last_reduced = parts[-1]
    innermost = last_reduced and sum(r for _, r in parts) == 1 and last % lanes == 0 and last >= 2 * lanes
    lane_partials = innermost and not k.threads_bound  # loop nests only (OpenCL: `extreme`, thread rules)
    same_dtype = compute_of(k.dtype) == storage_dtype(result)
    if node.op in ("ReduceMax", "ReduceMin") and lane_partials and same_dtype:
        reducer = REDUCTIONS[node.op][1]
        out, schedule = lane_reduction(kept, last, lanes, lambda *i: load(k.x, i, k.dtype), reducer)
        return k.finish([out], lambda sch: schedule(sch, k.parallel_ok()), math.prod(shape))
    if node.op == "ReduceLogSumExp":
        out, stages = _log_sum_exp(k, kept, index, reduce_axes, result, count)
    else:
        pre, reducer, finish = REDUCTIONS[node.op]
        direct = finish is IDENTITY and compute_of(k.dtype) == storage_dtype(result)

        def element(i: Sequence[Expr]) -> tuple[Expr, list[Any]]:
            red = reduce_axes()
            return pre(load(k.x, index(i, [r.var for r in red]), k.dtype)), red

        def body(*i: Expr) -> Expr:
            value, red = element(i)
            return reducer(value, axis=red) if red else value

        name = "out" if direct else "total"
        if reducer in (NAN_MAX, NAN_MIN) and any(r for _, r in parts):
            total = extreme(kept, element, reducer is NAN_MAX, name, k.plain(count), compute_of(k.dtype))
        else:
            total = te.compute(kept, body, name=name)
        out = (
            total
            if direct
            else te.compute(kept, lambda *i: store(finish(total(*i), count), result), name="out")
        )
        stages = [] if direct else ["total"]
    n_red = sum(r for _, r in parts)
    return k.finish([out], lambda sch: _schedule_reduce(sch, k, stages, parts, n_red), math.prod(shape))


def _log_sum_exp(
    k: Kernel, kept: list[int], index: Callable, reduce_axes: Callable, result: DType, count: int
) -> tuple[Any, list[str]]:
    """log(sum(exp(x - shift))) + shift, shift = the max of the finite elements (0 if none), per ir/ops."""

    def finite(i: Sequence[Expr]) -> tuple[Expr, list[Any]]:
        red = reduce_axes()
        v = load(k.x, index(i, [r.var for r in red]), k.dtype)
        return tirx.Select(te.isinf(v), _c(-math.inf, dtype_of(v)), v), red

    if reduce_axes():
        peak = extreme(kept, finite, True, "peak", k.plain(count), compute_of(k.dtype))
    else:
        peak = te.compute(kept, lambda *i: finite(i)[0], name="peak")

    def shift(i: Sequence[Expr]) -> Expr:
        p = peak(*i)
        return tirx.Select(te.isinf(p) | te.isnan(p), _c(0, dtype_of(p)), p)

    def exp_sum(*i: Expr) -> Expr:
        red = reduce_axes()
        v = load(k.x, index(i, [r.var for r in red]), k.dtype)
        return te.sum(te.exp(v - shift(i)), axis=red) if red else te.exp(v - shift(i))

    total = te.compute(kept, exp_sum, name="total")
    out = te.compute(kept, lambda *i: store(te.log(total(*i)) + shift(i), result), name="out")
    return out, ["peak", "total"]


def _schedule_reduce(
    sch: Any, k: Kernel, stages: Sequence[str], parts: list[tuple[int, bool]], n_red: int
) -> None:
    """Kept axes parallel; with the last group kept, it goes under the reduction loops, vectorised."""
    out = sch.get_sblock("out")
    blocks = [sch.get_sblock(s) for s in stages]
    if n_red == 0:  # empty axes: an elementwise kernel
        for block in reversed(blocks):
            sch.compute_inline(block)
        schedule_flat(sch, out, vector_lanes(k.target, [str(k.x.dtype)]), math.prod(d for d, _ in parts))
        return
    n_kept = len(parts) - n_red
    if not parts[-1][1] and len(blocks) <= 1:
        block = blocks[0] if blocks else out
        loops = sch.get_loops(block)
        spatial, red = loops[:n_kept], loops[n_kept:]
        sch.reorder(*spatial[:-1], *red, spatial[-1])
        if blocks and n_kept > 1:
            sch.reverse_compute_at(out, spatial[-2])  # the finishing step runs row by row
        lanes = vector_lanes(k.target, [str(k.x.dtype)])
        if parts[-1][0] % lanes == 0:
            _, vec = sch.split(spatial[-1], [None, lanes])
            sch.vectorize(vec)
        if n_kept > 1 and k.parallel_ok():
            sch.parallel(sch.fuse(*spatial[:-1]) if n_kept > 2 else spatial[0])
        sch.decompose_reduction(block, red[0])
        return
    out_loops = sch.get_loops(out)
    if not blocks:  # `out` is the reduction itself: only its kept loops may run in parallel
        out_loops = out_loops[:n_kept]
    for block in reversed(blocks):
        if out_loops:
            sch.compute_at(block, out_loops[-1])
    if out_loops and k.parallel_ok():
        sch.parallel(sch.fuse(*out_loops) if len(out_loops) > 1 else out_loops[0])
    for block in [*blocks, out] if not blocks else blocks:
        loops = sch.get_loops(block)
        sch.decompose_reduction(block, loops[len(loops) - n_red])


# ---- one-axis ops: rows of (outer, axis, inner) -----------------------------------------------


def row_view(node: Node) -> tuple[int, int, int]:
    """(outer, axis, inner) extents of the operand around the op's `axis`."""
    x = node.operands[0]
    assert x is not None
    shape, axis = x.type.shape, node.attrs["axis"]
    return math.prod(shape[:axis]), shape[axis], math.prod(shape[axis + 1 :])


def _row_max(k: Kernel, a: int, name: str, largest: bool = True, plain: bool = True) -> Any:
    """Each row's NaN-propagating max (min); `plain`: in `extreme`'s plain form where rows are long."""

    def element(i: Sequence[Expr]) -> tuple[Expr, list[Any]]:
        r = te.reduce_axis((0, a), name="r")
        return load(k.x, (i[0], r, i[1]), k.dtype), [r]

    plain = plain and k.plain(a)
    return extreme((k.x.shape[0], k.x.shape[2]), element, largest, name, plain, compute_of(k.dtype))


def _matches(v: Expr, best: Expr) -> Expr:
    """v is the row's best value (NaN matches NaN, since a NaN anywhere is the best)."""
    return tirx.Or(tirx.EQ(v, best), tirx.And(is_nan(v), is_nan(best)))


def _best_index(k: Kernel, best: Any, a: int, last: bool, name: str) -> Any:
    """The first (or last) index along the axis holding the row's best value, as i64."""
    r = te.reduce_axis((0, a), name="r")
    sentinel = -1 if last else a
    pick = te.max if last else te.min

    def body(o: Expr, i: Expr) -> Expr:
        hit = _matches(load(k.x, (o, r, i), k.dtype), best[o, i])
        return pick(tirx.Select(hit, r.astype("int64"), _c(sentinel, "int64")), axis=r)

    return te.compute((k.x.shape[0], k.x.shape[2]), body, name=name)


@lowering("ArgMax", "ArgMin")
def lower_arg(node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str) -> LoweredKernel:
    outer, a, inner = row_view(node)
    k = Kernel(node, target, epilogue, (outer, a, inner))
    # no work-group rule takes the index reduction after it: the plain form would only add a launch
    best = _row_max(k, a, "best", node.op == "ArgMax", plain=False)
    out = _best_index(k, best, a, bool(node.attrs["select_last_index"]), "out")
    return k.finish([out], lambda sch: _schedule_rows(sch, k, ["best"], ["out"]), outer * a * inner)


@lowering("Softmax", "LogSoftmax", "Hardmax")
def lower_softmax(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    outer, a, inner = row_view(node)
    k = Kernel(node, target, epilogue, (outer, a, inner))
    lanes = vector_lanes(target, ["float32"])
    width = next((w for w in (lanes, lanes // 2, lanes // 4) if w >= 4 and a >= 2 * w), None)  # rows of 2+
    cpu_forms = schedules_of(target).loop_nests  # OpenCL schedules the plain compute (dlight)
    if node.op == "Softmax" and k.dtype is DType.F32 and inner == 1 and width is not None and cpu_forms:
        out, schedule = last_axis_softmax(k.x, width, k.parallel_ok())
        return k.finish([out], schedule, 4 * outer * a)
    best = _row_max(k, a, "best")
    dtype = k.dtype
    if node.op == "Hardmax":
        first = _best_index(k, best, a, False, "first")
        one, zero = (narrow(_c(v, compute_of(dtype)), dtype) for v in (1, 0))
        out = te.compute(
            k.x.shape,
            lambda o, j, i: tirx.Select(tirx.EQ(j.astype("int64"), first[o, i]), one, zero),
            name="out",
        )
        stages = ["best", "first"]
    else:
        r = te.reduce_axis((0, a), name="r")

        def shifted(o: Expr, j: Expr, i: Expr) -> Expr:
            return own(load(k.x, (o, j, i), dtype) - best[o, i], dtype)

        total = te.compute(
            (outer, inner),
            lambda o, i: summed(dtype)(own(te.exp(shifted(o, r, i)), dtype), axis=r),
            name="total",
        )

        def normalise(o: Expr, j: Expr, i: Expr) -> Expr:
            s, t = shifted(o, j, i), own(total[o, i], dtype)
            value = own(te.exp(s), dtype) / t if node.op == "Softmax" else s - own(te.log(t), dtype)
            return narrow(value, dtype)

        out = te.compute(k.x.shape, normalise, name="out")
        stages = ["best", "total"]
    return k.finish(
        [out], lambda sch: _schedule_rows(sch, k, stages, ["out"], inner == 1), 4 * outer * a * inner
    )


def _precedes(v_other: Expr, other: Expr, v: Expr, me: Expr, largest: bool) -> Expr:
    """Whether element `other` comes before `me` in TopK's order (NaN largest; ties: lower index first)."""
    a, b = (v_other, v) if largest else (v, v_other)
    nan_a, nan_b = is_nan(a), is_nan(b)
    beats = tirx.Or(tirx.And(nan_a, tirx.Not(nan_b)), a > b)
    tie = tirx.Or(tirx.EQ(v_other, v), tirx.And(nan_a, nan_b))
    return tirx.Or(beats, tirx.And(tie, other < me))


@lowering("TopK")
def lower_topk(node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str) -> LoweredKernel:
    outer, a, inner = row_view(node)
    k = Kernel(node, target, epilogue, (outer, a, inner))
    count, largest, dtype = node.attrs["k"], bool(node.attrs["largest"]), k.dtype
    r = te.reduce_axis((0, a), name="r")

    def rank(o: Expr, j: Expr, i: Expr) -> Expr:
        before = _precedes(load(k.x, (o, r, i), dtype), r, load(k.x, (o, j, i), dtype), j, largest)
        return te.sum(before.astype("int32"), axis=r)

    ranks = te.compute(k.x.shape, rank, name="rank")
    s = te.reduce_axis((0, a), name="s")
    indices = te.compute(
        (outer, count, inner),
        lambda o, j, i: te.sum(
            tirx.Select(tirx.EQ(ranks[o, s, i], j), s.astype("int64"), _c(0, "int64")), axis=s
        ),
        name="indices",
    )
    values = te.compute(
        (outer, count, inner), lambda o, j, i: k.x[o, indices[o, j, i].astype("int32"), i], name="values"
    )
    return k.finish([values, indices], lambda sch: _schedule_topk(sch, k), outer * inner * a * (a + count))


def _schedule_rows(
    sch: Any, k: Kernel, stages: Sequence[str], outs: Sequence[str], vector: bool = False
) -> None:
    """Rows (outer x inner, fused) parallel; helper stages per row; unit-stride axis loops vectorised."""
    out = sch.get_sblock(outs[0])
    loops = sch.get_loops(out)
    if len(loops) == 3:  # (o, axis, i) elementwise output: rows are (o, i)
        o, j, i = loops
        sch.reorder(o, i, j)
        row = sch.fuse(o, i)
        axis_loop = j
    else:  # (o, i [, reduce]) output of an arg-reduction
        row = sch.fuse(loops[0], loops[1])
        axis_loop = None
    blocks = [sch.get_sblock(s) for s in stages]
    for block in reversed(blocks):
        sch.compute_at(block, row)
    if axis_loop is not None and vector:
        lanes = vector_lanes(k.target, [str(k.x.dtype)])
        if int(k.x.shape[1]) % lanes == 0:
            _, vec = sch.split(axis_loop, [None, lanes])
            sch.vectorize(vec)
    if k.parallel_ok():
        sch.parallel(row)
    for block in [*blocks, *([] if axis_loop is not None else [out])]:
        sch.decompose_reduction(block, sch.get_loops(block)[-1])


def _schedule_topk(sch: Any, k: Kernel) -> None:
    """Rows parallel; ranks computed per row, then the k indices and values of that row."""
    indices, values = sch.get_sblock("indices"), sch.get_sblock("values")
    o, j, i, _ = sch.get_loops(indices)
    sch.reorder(o, i, j)
    row = sch.fuse(o, i)
    vo, vj, vi = sch.get_loops(values)
    sch.reorder(vo, vi, vj)
    sch.compute_at(sch.get_sblock("rank"), row)
    if k.parallel_ok():
        sch.parallel(row)
    rank = sch.get_sblock("rank")
    sch.decompose_reduction(rank, sch.get_loops(rank)[-1])
    sch.decompose_reduction(indices, sch.get_loops(indices)[-1])
