"""Shared pieces of the straightforward (non-GEMM) templates: dtypes, argument order, simple schedules.

Rule: a template builds TE placeholders paired with the `KernelArg` each binds
(`Param`), and `make_kernel` orders them the lowering contract's way (inputs,
then weights, then outputs, each group in the order given), builds the
PrimFunc, applies the template's schedule and names the kernel from its
workload. Arithmetic happens in `work_dtype` (f32 for f16/bf16, as the IR
references compute), results are rounded back with `pointwise.narrow` into the
result's storage dtype (what an `Epilogue` reads, too). Kernel arguments are
storage-typed like every template's (`pointwise.storage_dtype`: bf16 as its
uint16 bits): `operand_param` decodes a bf16 operand in a stage that
`make_kernel` inlines, so a template reads every operand as a number. `schedule_injective` and
`schedule_reduce` are the two generic schedules: outer loops fused and
parallel when the work is large, innermost output dim vectorised when it
divides into the target's lanes.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from tvm import te

from ir.dtypes import DType
from ir.graph import Node, Value
from targets.lowering.kernel import KernelArg, LoweredKernel, LoweringError, kernel_name, snapshot
from targets.lowering.pointwise import storage_dtype, widen

FLOATS = ("float32", "float16", "bfloat16", "float64")
"""Storage dtypes of the float tensors the generic templates take (bf16 reaches kernels as uint16 bits)."""

PARALLEL_MIN_WORK = 1 << 14  # multiply-adds (or elements) below which a parallel launch does not pay
ROLE_ORDER = {"input": 0, "weight": 1, "output": 2}
HALF = ("float16", "bfloat16")


def row_lanes(extent: int, lanes: int) -> int | None:
    """The widest vector (<= lanes, >= 4) that divides a row of `extent` floats."""
    return next((v for v in (lanes, lanes // 2, lanes // 4) if v >= 4 and extent % v == 0), None)


def work_dtype(dtype: str) -> str:
    """The dtype a template computes in: f32 for half floats, the dtype itself otherwise."""
    return "float32" if dtype in HALF else dtype


def dtype_name(value: Value) -> str:
    return value.type.dtype.numpy.name


def lowest(dtype: str) -> Any:
    """The identity of max for `dtype` (-inf for floats)."""
    if dtype.startswith("float") or dtype == "bfloat16":
        return te.const(-math.inf, dtype)
    return te.min_value(dtype)


def check_dtypes(node: Node, allowed: Sequence[str]) -> str:
    """The result dtype of `node`, or a LoweringError naming it when no template handles it."""
    dtype = dtype_name(node.results[0])
    if dtype not in allowed:
        raise LoweringError(f"node {node.name!r}: the CPU {node.op} template does not take {dtype}")
    return dtype


@dataclass(frozen=True)
class Param:
    """A TE tensor and the kernel argument it binds.

    `placeholder` is the kernel's parameter when the template reads a decoded stage
    (`tensor`, inlined by `make_kernel`) instead: a bf16 operand's uint16 bits.
    """

    tensor: Any
    arg: KernelArg
    placeholder: Any = None

    @property
    def parameter(self) -> Any:
        return self.tensor if self.placeholder is None else self.placeholder


def operand_param(
    value: Value, name: str, shape: Sequence[int] | None = None, role: str | None = None
) -> Param:
    """A placeholder for an IR operand: a weight when it is a constant, else a run-time input (or `role`).

    A bf16 operand is a uint16 parameter read through a decoding stage of f32 numbers."""
    view = tuple(int(d) for d in (value.type.shape if shape is None else shape))
    dtype = value.type.dtype
    role = role or ("weight" if value.is_constant else "input")
    arg = KernelArg(value.name, role, view, storage_dtype(dtype))
    if dtype is not DType.BF16:
        return Param(te.placeholder(view, arg.dtype, name=name), arg)
    bits = te.placeholder(view, arg.dtype, name=name)
    return Param(te.compute(view, lambda *i: widen(bits(*i), dtype), name=f"{name}_decoded"), arg, bits)


def output_param(tensor: Any, value: Value) -> Param:
    """The output `tensor`, which must hold `value`'s storage dtype (round with `pointwise.narrow`)."""
    shape = tuple(int(d) for d in tensor.shape)
    arg = KernelArg(value.name, "output", shape, storage_dtype(value.type.dtype))
    if str(tensor.dtype) != arg.dtype:
        computed = tensor.dtype
        raise LoweringError(f"output %{value.name}: the template computes {computed}, not {arg.dtype}")
    return Param(tensor, arg)


def make_kernel(
    node: Node,
    op: str,
    workload: dict[str, Any],
    params: Sequence[Param],
    flops: int,
    schedule: Callable[[Any], None],
    *,
    epilogue: Sequence[Node] = (),
    pack: Any = None,
    func: Any = None,
) -> LoweredKernel:
    """The LoweredKernel of `params` (any order; sorted by role here) scheduled by `schedule`.

    `func`: an already written PrimFunc (parameters in the sorted order) instead of a TE graph.
    """
    import tvm.s_tir as s_tir

    ordered = sorted(params, key=lambda p: ROLE_ORDER[p.arg.role])
    name = kernel_name(op, workload)
    compute = func
    if func is None:
        compute = te.create_prim_func([p.parameter for p in ordered])
        sch = s_tir.Schedule(snapshot(compute))
        for p in ordered:
            if p.placeholder is not None:
                sch.compute_inline(sch.get_sblock(p.tensor.op.name))
        schedule(sch)
        func = sch.mod["main"]
    extra = {} if pack is None else {"pack_weights": pack}
    return LoweredKernel(
        name,
        func.with_attr("global_symbol", name),
        tuple(p.arg for p in ordered),
        int(flops),
        (node.name, *(n.name for n in epilogue)),
        workload,
        layout="any",
        compute=compute,
        **extra,
    )


def spatial_and_reduce(sch: Any, block: Any) -> tuple[list[Any], list[Any]]:
    loops = sch.get_loops(block)
    n_reduce = sum(1 for it in sch.get(block).iter_vars if int(it.iter_type) == 2)
    return list(loops[: len(loops) - n_reduce]), list(loops[len(loops) - n_reduce :])


def extent(sch: Any, loop: Any) -> int:
    return int(sch.get(loop).extent)


def schedule_injective(sch: Any, block_name: str, lanes: int, work: int | None = None) -> Any:
    """Fuse all loops; vectorise by `lanes` when the innermost dim allows; parallel when large.

    Returns the outer (parallel or serial) loop; None for a 0-d or empty block (nothing to schedule)."""
    block = sch.get_sblock(block_name)
    loops = sch.get_loops(block)
    if not loops or any(extent(sch, loop) == 0 for loop in loops):
        return None
    inner = extent(sch, loops[-1])
    total = math.prod(extent(sch, loop) for loop in loops)
    if inner % lanes == 0:
        outer_loops = loops[:-1]
        _, lane = sch.split(loops[-1], [None, lanes])
        sch.vectorize(lane)
        outer_loops = sch.get_loops(block)[:-1]
    else:
        outer_loops = loops
    outer = sch.fuse(*outer_loops) if len(outer_loops) > 1 else outer_loops[0]
    if (work if work is not None else total) >= PARALLEL_MIN_WORK and extent(sch, outer) > 1:
        sch.parallel(outer)
    return outer


def schedule_reduce(sch: Any, block_name: str, lanes: int, work: int, consumers: Sequence[str] = ()) -> None:
    """A reduction block (spatial loops, then reduce loops): outer spatial loops fused and parallel,
    the innermost spatial loop vectorised inside the reduction when it divides into `lanes`, the
    accumulator kept local, and each `consumers` block computed right after its tile."""
    block = sch.get_sblock(block_name)
    spatial, reduce = spatial_and_reduce(sch, block)
    vector = len(spatial) > 1 and extent(sch, spatial[-1]) % lanes == 0 and extent(sch, spatial[-1]) >= lanes
    if vector:
        lead, last = spatial[:-1], spatial[-1]
        mid, lane = sch.split(last, [None, lanes])
        sch.reorder(*lead, mid, *reduce, lane)
        outer = sch.fuse(*lead, mid)
    else:
        outer = sch.fuse(*spatial) if len(spatial) > 1 else spatial[0]
        lane = None
    if consumers:
        sch.set_scope(block, 0, "local")
        for name in consumers:
            sch.reverse_compute_at(sch.get_sblock(name), outer)
            if vector:
                c_inner = sch.get_loops(sch.get_sblock(name))[-1]
                if extent(sch, c_inner) % lanes == 0:
                    _, c_lane = sch.split(c_inner, [None, lanes])
                    sch.vectorize(c_lane)
    if work >= PARALLEL_MIN_WORK and extent(sch, outer) > 1:
        sch.parallel(outer)
    if lane is not None:
        sch.vectorize(lane)
    if reduce:
        sch.decompose_reduction(block, reduce[0])
