"""OpenCL thread schedules: each kernel's shared compute bound to work-groups and work-items, per op family.

Rule: the computes are the shared templates' (`LoweredKernel.compute`, targets/lowering/); only how they
map onto the device is OpenCL's. Each op family tries its rules in order (the GEMM family first HAI's:
`IntGemm` (int_gemm.py) for the integer anchors, on OpenCL's integer dot products where the device has
them, `Tiled` (tiled.py); then TVM's dlight GPU rules: `Matmul` tiles GEMM-like blocks in local memory
with vectorised loads; the reduction family first HAI's `Rows` (rows.py: each long row of a softmax,
norm, reduction or global pool a work-group, short rows several a work-group, reduced across
work-items), then dlight's `Reduction` (a lone reduction within a work-group) and `GeneralReduction` for
the kernels whose blocks are not such rows; dlight's `Fallback` fuses the spatial axes of each block
into work-groups of the device's size) and keeps the first whose result binds every statement to
`blockIdx`/`threadIdx`; `Fallback` closes every family. A kernel whose every rule fails, or whose
schedule leaves a statement unbound (it would compile silently into host code), is refused naming the
kernel and its nodes; a rule whose lowered kernels declare more local memory than the device has is not
kept (`check_local_memory`: the next rule runs). `launch_sizes` reads each device kernel's global and
local sizes from the schedule (TVM records them nowhere else).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from targets.lowering.kernel import LoweredKernel, LoweringError
from targets.opencl.tir_walk import lowered_allocations, walk

GEMM_OPS = frozenset({"gemm", "bmm", "conv", "convt", "matmul", "convint", "matmulint"})
REDUCTION_OPS = frozenset({
    "softmax", "logsoftmax", "reducemean", "reducesum", "reducemax", "reducemin", "reduceprod",
    "reducel2", "reducel1", "reducesumsquare", "reducelogsumexp", "global_pool", "layernorm",
    "instancenormalization", "groupnorm", "lpnorm", "argmax", "argmin",
})  # fmt: skip
FAMILY_RULES: dict[str, tuple[str, ...]] = {
    "gemm": ("IntGemm", "Tiled", "Matmul", "GEMV", "Fallback", "Flat"),
    "reduction": ("Rows", "Reduction", "GeneralReduction", "Fallback", "Flat"),
    "pointwise": ("Fused", "Flat", "Fallback"),
}
"""The rules each family tries, in order: HAI's GEMM rules, `Fused` (a reduction and its epilogue
in one kernel: depthwise convs, windowed pools; flat.py), `Rows` (rows.py: rows reduced across
work-items, global pools included) before dlight's rules, then `Flat` (`flat_schedule`), which
takes any TE compute dlight cannot normalise (e.g. clamped gathers)."""


class ThreadBindingError(LoweringError):
    """A kernel whose schedule leaves work outside `blockIdx`/`threadIdx` (it would run on the host)."""


@dataclass(frozen=True)
class LaunchSize:
    """One device kernel's NDRange: `global_size` work-items in work-groups of `local_size` (x, y, z)."""

    global_size: tuple[int, int, int]
    local_size: tuple[int, int, int]


def family_of(kernel: LoweredKernel) -> str:
    """The kernel's family by its op (its name is `hai_<op>_<hash>`, targets/lowering/kernel.py)."""
    op = kernel.name[len("hai_") : -len("_0123456789abcdef")]
    if op in GEMM_OPS:
        return "gemm"
    if op in REDUCTION_OPS:
        return "reduction"
    return "pointwise"


def describe(kernel: LoweredKernel) -> str:
    return f"kernel {kernel.name} ({', '.join(kernel.sources) or 'copy'})"


def divergent_barriers(source: str) -> list[str]:
    """The device kernels of `source` (TVM's OpenCL C: one statement or block opener per line) with a
    `barrier(` nested in an `if`/`else` whose condition reads `get_local_id`."""
    found: list[str] = []
    kernel, blocks = "", []  # the enclosing blocks' openers, outermost first
    for line in source.splitlines():
        text = line.strip()
        if text.startswith("}"):
            opener = blocks.pop() if blocks else ""
            if text.startswith("} else") and text.endswith("{"):
                blocks.append(opener)  # the else branch diverges on the if's condition
            continue
        if text.startswith("__kernel void"):
            kernel = text.split("(")[0].split()[-1]
        if text.startswith("barrier(") and any("get_local_id" in b for b in blocks if b.startswith("if")):
            if kernel not in found:
                found.append(kernel)
        if text.endswith("{"):
            blocks.append(text)
    return found


def check_converged(lib: Any) -> None:
    """Refuse (ValueError: the family's next rule runs) a compiled rule whose device kernel waits at
    a work-group barrier inside a branch on the work-item id: the work-items that skip it never
    arrive, and a GPU hangs there (a CPU device such as PoCL runs it)."""
    if lib.mod.imports and (divergent := divergent_barriers(lib.mod.imports[0].inspect_source())):
        raise ValueError(
            f"device kernel {divergent[0]} waits at a barrier inside a branch on the work-item id"
        )


def thread_schedule(
    kernel: LoweredKernel, tvm_target: Any, int8_dot: bool = False, compute_units: int = 0
) -> tuple[Any, Any]:
    """The compute of `kernel` scheduled onto work-groups by its family's first rule that binds it whole
    and compiles: the scheduled PrimFunc (its attribute `hai.schedule` names the rule) and TVM's
    module of it. `int8_dot`: the device has integer dot products (int_gemm.py); `compute_units`: the
    device's, which the tiled rule's work-group count aims at (tiled.py; 0: unknown)."""
    import tvm
    import tvm.s_tir as s_tir
    import tvm.s_tir.dlight as dl

    from targets.opencl.flat import flat_schedule, fused_schedule
    from targets.opencl.int_gemm import int_gemm_schedule
    from targets.opencl.legalize import legalize
    from targets.opencl.rows import rows_schedule
    from targets.opencl.tiled import tiled_schedule

    if kernel.compute is None:
        raise ThreadBindingError(
            f"{describe(kernel)}: its template records no compute to schedule for OpenCL"
        )
    func = kernel.compute.with_attr("global_symbol", kernel.name)
    if not _has_root(s_tir.Schedule(func)):
        raise ThreadBindingError(
            f"{describe(kernel)}: op {kernel.workload.get('op', '?')} has no OpenCL schedule yet (its "
            f"template writes a CPU loop nest, not a compute)"
        )
    failures = []
    threads = int(tvm_target.attrs["max_num_threads"])
    for rule_name in FAMILY_RULES[family_of(kernel)]:
        try:
            if rule_name == "Flat":
                scheduled = flat_schedule(func, threads, compute_units)
            elif rule_name == "Fused":
                scheduled = fused_schedule(func, threads, compute_units)
            elif rule_name == "IntGemm":
                scheduled = int_gemm_schedule(func, threads, int8_dot)
            elif rule_name == "Rows":
                scheduled = rows_schedule(func, tvm_target, compute_units)
            elif rule_name == "Tiled":
                weights = frozenset(a.name for a in weight_args(kernel, func))
                scheduled = tiled_schedule(func, weights, tvm_target, compute_units)
            else:
                with tvm_target:
                    rule = getattr(dl.gpu, rule_name)()
                    scheduled = dl.ApplyDefaultSchedule(rule)(tvm.IRModule({kernel.name: func}))[kernel.name]
            check_bound(scheduled, kernel)
            scheduled = legalize(scheduled)
            check_local_memory(scheduled, tvm_target)
            lib = tvm.compile(tvm.IRModule({kernel.name: scheduled}), target=tvm_target)
            check_converged(lib)
            return scheduled.with_attr("hai.schedule", rule_name), lib
        except Exception as exc:  # a rule that does not take this compute, or whose result fails to lower
            failures.append(f"{rule_name}: {_last_line(exc)}")
    raise ThreadBindingError(f"{describe(kernel)}: no OpenCL thread schedule fits ({'; '.join(failures)})")


def weight_args(kernel: LoweredKernel, func: Any) -> list[Any]:
    """The parameter buffers of `func` that are the kernel's weights (arguments are in order)."""
    return [buffer for buffer, arg in zip(func.params, kernel.args, strict=True) if arg.role == "weight"]


def _last_line(exc: Exception) -> str:
    text = str(exc).strip()
    lines = [line for line in text.splitlines() if "Error" in line] or text.splitlines() or [repr(exc)]
    return lines[0].strip()[:300]


def _has_root(sch: Any) -> bool:
    try:
        sch.get_sblock("root")
    except Exception:
        return False
    return True


def top_statements(func: Any) -> list[Any]:
    """The statements at the root of `func`: under its root block, sequences flattened."""
    from tvm import s_tir, tirx

    body = func.body
    while isinstance(body, s_tir.SBlockRealize | s_tir.SBlock):
        body = body.block.body if isinstance(body, s_tir.SBlockRealize) else body.body
    out: list[Any] = []
    pending = [body]
    while pending:
        stmt = pending.pop(0)
        if isinstance(stmt, tirx.SeqStmt):
            pending[:0] = list(stmt.seq)
        else:
            out.append(stmt)
    return out


def is_thread_bound(stmt: Any) -> bool:
    from tvm import tirx

    return (
        isinstance(stmt, tirx.For)
        and stmt.kind == tirx.ForKind.THREAD_BINDING
        and stmt.thread_binding is not None
        and str(stmt.thread_binding.thread_tag).startswith(("blockIdx", "threadIdx"))
    )


def check_bound(func: Any, kernel: LoweredKernel) -> None:
    """Refuse a schedule with a statement outside any thread binding (module doc)."""
    unbound = [s for s in top_statements(func) if not is_thread_bound(s)]
    if unbound:
        raise ThreadBindingError(
            f"{describe(kernel)}: {len(unbound)} statement(s) are not bound to blockIdx/threadIdx and would "
            f"compile into host code; an OpenCL kernel must bind all its work to work-groups"
        )


def check_local_memory(func: Any, tvm_target: Any) -> None:
    """Refuse (ValueError: the family's next rule runs) a schedule whose lowered device kernels declare
    more local memory (`__local`, TVM's "shared" scope) than the device has: what TVM's pipeline
    allocates, not what the schedule meant (tir_walk.lowered_allocations)."""
    limit = int(tvm_target.attrs["max_shared_memory_per_block"])
    for name, scopes in lowered_allocations(func, tvm_target).items():
        if scopes.get("shared", 0) > limit:
            raise ValueError(
                f"device kernel {name} declares {scopes['shared']} bytes of local memory once lowered, "
                f"the device has {limit}"
            )


def launch_sizes(func: Any) -> list[LaunchSize]:
    """Each device kernel's launch size, in the order the kernels run (one per top-level nest)."""
    from tvm import tirx

    sizes = []
    for stmt in top_statements(func):
        extents: dict[str, int] = {}
        for node in walk(stmt):
            if isinstance(node, tirx.For) and node.kind == tirx.ForKind.THREAD_BINDING:
                tag = str(node.thread_binding.thread_tag)
                extents[tag] = max(extents.get(tag, 1), int(node.extent))
        local = tuple(extents.get(f"threadIdx.{a}", 1) for a in "xyz")
        groups = tuple(extents.get(f"blockIdx.{a}", 1) for a in "xyz")
        total = tuple(count * width for count, width in zip(groups, local, strict=True))
        sizes.append(LaunchSize(total, local))  # type: ignore[arg-type]
    return sizes


def buffer_names(func: Any) -> tuple[list[str], list[tuple[str, int]]]:
    """The names of `func`'s parameter buffers (in order) and of its global scratch buffers, with their
    bytes."""
    import numpy as np
    from tvm import s_tir

    params = [str(p.name) for p in func.params]
    scratch: list[tuple[str, int]] = []
    for node in walk(func.body):
        if isinstance(node, s_tir.SBlock):
            for buf in node.alloc_buffers:
                if buf.scope() == "global":
                    count = int(np.prod([int(d) for d in buf.shape], dtype=np.int64))
                    scratch.append((str(buf.name), count * np.dtype(str(buf.dtype)).itemsize))
    return params, scratch
