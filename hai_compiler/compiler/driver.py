"""The end-to-end compile: model -> passes -> kernels -> static plan -> one kernel library -> `NAME.hai/`.

Rule: `compile_model` does the steps in this order and nothing else: load the
model (input shapes), run the pipeline (the user's passes, `layout` then `fuse`
when those passes are registered, then `plan-memory` with graph inputs outside the arena) with the
target's facts in the pass context, lower every kernel group, build the static
plan (checked for hazards), compile the kernels (cached; `progress` hears of
each), account for the plan's memory against the budget (memory_budget.py: the
planned peak goes into the plan) and write the artifact. Nothing time- or path-dependent reaches the
artifact, so the same model and options give the same bytes.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from hai_compiler.compiler.copy_kernel import copy_kernel
from hai_compiler.compiler.entry_plan import with_entry
from hai_compiler.compiler.kernels import kernel_groups, lower_groups
from hai_compiler.compiler.memory_budget import MemoryAccount, account, check_budget
from hai_compiler.compiler.options import (
    CompileOptions,
    load_graph,
    model_name,
    profile_target_of,
    resolve_compile_target,
)
from hai_compiler.compiler.plan import PlanBuilder, StaticPlan
from ir import Graph
from runtime.artifact import ExecutionPlan

TARGET_ARCH = {"x86": "x86_64", "arm64": "aarch64"}
Progress = Callable[[str, int, int], None]  # (kernel name, done, total)


@dataclasses.dataclass
class CompileResult:
    """What a compile made: the artifact path, the final graph, the plan and each step's kernel."""

    path: Path
    graph: Graph
    plan: StaticPlan
    groups: list[Any]  # passes.fusion.FusionGroup of each kernel step
    target: Any  # TargetDescription
    seconds: float
    cache_hits: int = 0
    memory_account: MemoryAccount | None = None  # the planned peak's terms (memory_budget.py)
    memory_budget: int | None = None  # the budget checked against, in bytes

    @property
    def memory(self) -> dict[str, int]:
        from passes.memory_check import memory_report

        return memory_report(self.graph)


def hai_version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("hai-compiler")
    except PackageNotFoundError:  # pragma: no cover - running from a source tree without metadata
        return "0+unknown"


def tvm_version() -> str:
    import tvm

    return str(tvm.__version__)


def registered(pass_name: str) -> bool:
    from passes.registry import available_passes

    return pass_name in available_passes()


def fuse_registered() -> bool:
    return registered("fuse")


def run_passes(graph: Graph, options: CompileOptions, target: Any) -> Graph:
    from hai_compiler.driver import InstrumentOptions, make_instruments, run_pipeline
    from passes.manager import PassContext

    ctx = PassContext(target=target.to_pass_context())
    instruments = make_instruments(
        InstrumentOptions(dump_dir=Path(options.dump_ir) if options.dump_ir else None)
    )
    pipeline = options.pipeline(fuse_registered(), registered("layout"))
    return run_pipeline(graph, pipeline, instruments, verify_each=options.verify_each, ctx=ctx)


def build_library(kernels: list[Any], target: Any, progress: Progress | None) -> tuple[Path | None, int]:
    """The kernel library (compiled kernel by kernel through the cache, reporting progress) and cache hits.

    A plan without steps (every output a view of an input) needs no library: None.
    """
    from targets.build import build_kernels, kernel_object, unique_kernels

    if not kernels:
        return None, 0
    chosen = unique_kernels(kernels)
    hits = 0
    for done, kernel in enumerate(chosen, 1):
        _, hit = kernel_object(kernel, target)
        hits += int(hit)
        if progress is not None:
            progress(kernel.name, done, len(chosen))
    return build_kernels(kernels, target), hits


def compile_model(
    model: Any, output: str | Path, options: CompileOptions, progress: Progress | None = None
) -> CompileResult:
    """Compile `model` (.onnx/.hir path, ModelProto or Graph) into the artifact directory `output`."""
    from runtime.artifact import CompilerInfo, TargetInfo
    from targets.artifact import ManifestParts, write_artifact

    start = time.perf_counter()
    graph = load_graph(model, options)
    name = model_name(model, graph)
    profile = profile_target_of(options)
    target = resolve_compile_target(options, profile)
    graph = run_passes(graph, options, target)
    groups = kernel_groups(graph)
    kernels = lower_groups(groups, target)
    static = PlanBuilder(graph, lambda source, dest: copy_kernel(source, dest, target)).build(kernels, groups)
    library, hits = build_library(static.kernels, target, progress)
    static, entry_library = with_entry(static, options.entry, target)
    library = entry_library or library
    memory, static.plan = budgeted_plan(static, library, target, options.budget_bytes, name)
    parts = ManifestParts(
        name=name,
        compiler=CompilerInfo(hai_version(), tvm_version(), options.manifest_options(profile)),
        target=TargetInfo(
            target.name, TARGET_ARCH.get(target.name, target.name), target.cpu, tuple(sorted(target.features))
        ),
        inputs=static.inputs,
        outputs=static.outputs,
        plan=static.plan,
    )
    from hai_compiler.driver import graph_text

    libraries = {"cpu": library} if library is not None else {}
    path = write_artifact(output, parts, static.weights, libraries, graph_text(graph))
    seconds = time.perf_counter() - start
    return CompileResult(path, graph, static, groups, target, seconds, hits, memory, options.budget_bytes)


def budgeted_plan(
    static: StaticPlan, library: Path | None, target: Any, budget: int | None, name: str
) -> tuple[MemoryAccount, ExecutionPlan]:
    """The plan's memory account, checked against `budget` (a MemoryBudgetError when it does not fit),
    and the plan with its planned peak recorded."""
    from targets.artifact import layout_weights

    layout, size = layout_weights(static.weights)
    kernels = library.stat().st_size if library is not None else 0
    baseline = target.runtime_baseline_bytes
    memory = account(static.plan, layout, size, static.inputs, static.outputs, kernels, baseline)
    check_budget(memory, budget, name)
    return memory, dataclasses.replace(static.plan, planned_peak_bytes=memory.planned_peak)
