"""The end-to-end compile: model -> passes -> kernels -> static plan -> one kernel library -> `NAME.hai/`.

Rule: `compile_model` does the steps in this order and nothing else: load the
model (input shapes), run the pipeline (the user's passes, `layout` then `fuse`
when those passes are registered, then `plan-memory` with graph inputs outside the arena) with the
target's facts in the pass context, lower every kernel group, build the static
plan (checked for hazards), compile the kernels (cached; hai_compiler/progress.py
shows each stage), link them (or the entry's objects) with the final plan's digest
(runtime/plan_digest.py), account for the plan's memory against the budget
(targets/plan/memory_budget.py: the planned peak goes into the plan) and write
the artifact. The static plan is targets/plan/'s; this module only orders. When the plan with its
weights resident does not fit the budget, the same lowering is planned paged
(targets/plan/paging.py) in the most frames the budget leaves: the pipeline runs
once. Only when the weights as loaded cannot stay resident beside the runtime does
that one pipeline split weights larger than a page (`split-weights`), so that
each fits a frame. Nothing time- or path-dependent reaches the artifact, so the same model
and options give the same bytes.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path
from typing import Any

from hai_compiler.compiler.options import (
    CompileOptions,
    load_graph,
    model_name,
    profile_target_of,
    resolve_compile_target,
)
from hai_compiler.progress import stage
from ir import Graph
from runtime.artifact import TargetInfo
from targets.lowering.copy import copy_kernel
from targets.plan.device_memory import DevicePlan, host_bytes, plan_device_memory
from targets.plan.entry_plan import with_entry
from targets.plan.kernels import kernel_groups, lower_groups
from targets.plan.memory_budget import MemoryAccount, account, frames_within, too_small
from targets.plan.paging import WeightLayout, cut_weights, page_size_holding, paging_of, with_paging
from targets.plan.static_plan import PlanBuilder, StaticPlan


@dataclasses.dataclass
class CompileResult:
    """What a compile made: the artifact path, the final graph, the plan and each step's kernel."""

    path: Path
    graph: Graph
    plan: StaticPlan
    groups: list[Any]  # ir.fusion.FusionGroup of each kernel step
    target: Any  # TargetDescription
    seconds: float
    cache_hits: int = 0
    memory_account: MemoryAccount | None = None  # the planned peak's terms (memory_budget.py)
    memory_budget: int | None = None  # the budget checked against, in bytes
    device_plan: DevicePlan | None = None  # a device's own memory (targets/plan/device_memory.py)

    @property
    def memory(self) -> dict[str, int]:
        from passes.memory_check import memory_report

        return memory_report(self.graph)


def target_info(target: Any) -> TargetInfo:
    """The manifest's `TargetInfo` of the TargetDescription `target` (what the plan digest covers)."""
    return TargetInfo(target.name, target.arch, target.cpu, tuple(sorted(target.features)))


def hai_version() -> str:
    from hai_compiler.distribution import version

    return version()


def tvm_version() -> str:
    import tvm

    return str(tvm.__version__)


def registered(pass_name: str) -> bool:
    from passes.registry import available_passes

    return pass_name in available_passes()


def fuse_registered() -> bool:
    return registered("fuse")


def run_passes(graph: Graph, options: CompileOptions, target: Any, page_size: int | None = None) -> Graph:
    """The compile pipeline (CompileOptions.pipeline); `page_size`: split weights larger than a page."""
    from hai_compiler.driver import InstrumentOptions, make_instruments, run_pipeline
    from passes.manager import PassContext
    from targets.registry import get_target

    ctx = PassContext(target=get_target(target.name).facts(target))
    instruments = make_instruments(
        InstrumentOptions(dump_dir=Path(options.dump_ir) if options.dump_ir else None)
    )
    pipeline = options.pipeline(fuse_registered(), registered("layout"), page_size)
    return run_pipeline(graph, pipeline, instruments, verify_each=options.verify_each, ctx=ctx)


def compile_kernels(kernels: list[Any], target: Any) -> tuple[list[Path], int]:
    """The object file of every distinct kernel (compiled one by one through the cache, reporting
    progress) and the cache hits."""
    from targets.llvm_build import unique_kernels
    from targets.registry import get_target

    kernel_object = get_target(target.name).kernel_object
    chosen = unique_kernels(kernels)
    objects, hits = [], 0
    with stage("compiling kernels", total=len(chosen)) as advance:
        for kernel in chosen:
            path, hit = kernel_object(kernel, target)
            objects.append(path)
            hits += int(hit)
            advance(kernel.name)
    return objects, hits


def link_plan(objects: list[Path], static: StaticPlan, layout: WeightLayout, target: Any) -> Path | None:
    """The kernel library of `static`: `objects` linked with the digest of its target, plan and weights'
    table as the artifact will hold them, weights where `layout` puts them (runtime/plan_digest.py;
    `planned_peak_bytes`, set from this library's size afterwards, is not covered). A plan without
    steps (every output a view of an input) needs no library: None."""
    from runtime.plan_digest import plan_digest
    from targets.artifact import resolve_weight_slots
    from targets.registry import get_target

    if not objects:
        return None
    plan = resolve_weight_slots(static.plan, layout[0])
    digest = plan_digest(target_info(target), plan, static.inputs, static.outputs, *layout)
    with stage("linking the kernel library"):
        return get_target(target.name).link(objects, target, digest)


@dataclasses.dataclass
class BuiltPlan:
    """A graph lowered and planned: its kernel groups, the static plan, the library, the weights' layout
    in `weights.bin` and the memory account (its planned peak already in `static.plan`)."""

    graph: Graph
    groups: list[Any]
    static: StaticPlan
    library: Path | None  # linked with the plan's digest (link_plan)
    layout: WeightLayout
    memory: MemoryAccount
    hits: int
    device: DevicePlan | None = None  # the device's own memory, once planned (with_device_plan)


def compile_model(model: Any, output: str | Path, options: CompileOptions) -> CompileResult:
    """Compile `model` (.onnx/.hir path, ModelProto or Graph) into the artifact directory `output`."""
    from hai_compiler.driver import graph_text
    from runtime.artifact import CompilerInfo
    from targets.artifact import ManifestParts, write_artifact
    from targets.registry import get_target

    start = time.perf_counter()
    with stage("loading the model"):
        graph = load_graph(model, options)
    name = model_name(model, graph)
    with stage("describing the target"):
        profile = profile_target_of(options)
        target = resolve_compile_target(options, profile)
    memory_plan = options.memory_plan()
    built = with_device_plan(build_within_budget(graph, name, options, target, memory_plan), options,
                             target, name, memory_plan[0])  # fmt: skip
    static = built.static
    parts = ManifestParts(
        name=name,
        compiler=CompilerInfo(hai_version(), tvm_version(), options.manifest_options(profile)),
        target=target_info(target),
        inputs=static.inputs,
        outputs=static.outputs,
        plan=static.plan,
    )
    libraries = {get_target(target.name).device: built.library} if built.library is not None else {}
    with stage("writing the artifact"):
        path = write_artifact(
            output, parts, static.weights, libraries, graph_text(built.graph),
            tvm_runtime=get_target(target.name).tvm_runtime(target), layout=built.layout,
        )  # fmt: skip
    seconds = time.perf_counter() - start
    return CompileResult(path, built.graph, static, built.groups, target, seconds, built.hits, built.memory,
                         memory_plan[0], built.device)  # fmt: skip


def with_device_plan(
    built: BuiltPlan, options: CompileOptions, target: Any, name: str, budget: int | None
) -> BuiltPlan:
    """`built` with its device memory planned and recorded (targets/plan/device_memory.py: none for
    the host CPU), and the device driver's buffers in host memory added to its planned peak, which must
    still fit the host `budget`."""
    static = built.static
    device = plan_device_memory(
        static.plan, built.memory.weights, built.library, target, options.device_budget_bytes, name
    )
    if device is None:
        return built
    memory = dataclasses.replace(
        built.memory, device=host_bytes(device, target, static.inputs, static.outputs)
    )
    if budget is not None and memory.planned_peak > budget:
        raise too_small(budget, memory, name, None)
    plan = dataclasses.replace(
        static.plan, planned_peak_bytes=memory.planned_peak, device_memory=(device.record,)
    )
    return dataclasses.replace(
        built, static=dataclasses.replace(static, plan=plan), memory=memory, device=device
    )


def build_within_budget(
    graph: Graph,
    name: str,
    options: CompileOptions,
    target: Any,
    memory_plan: tuple[int | None, int],
) -> BuiltPlan:
    """The resident plan when it fits the budget (or there is none), else the paged plan, both from
    the one lowering (module doc); when neither fits, a `MemoryBudgetError` names the least of the
    two peaks (the resident plan is then built to know its peak exactly). `memory_plan`: the budget
    (None: unbounded) and page size of the pipeline's plan-memory pass."""
    budget, page_size = memory_plan
    lowered = lower_and_plan(graph, options, target, page_size if must_page(graph, target, budget) else None)
    if budget is None:
        return build_resident(lowered, options, target)
    resident = None
    if weight_bytes(lowered.graph) + target.runtime_baseline_bytes <= budget:
        resident = build_resident(lowered, options, target)
        if resident.memory.planned_peak <= budget:
            return resident
    paged = build_paged(lowered, options, target, budget, page_size)
    if isinstance(paged, BuiltPlan):
        return paged
    if resident is None:  # built to name its exact peak in the error
        resident = build_resident(lowered, options, target)
    least = min(paged, resident.memory, key=lambda m: m.planned_peak)
    raise too_small(budget, least, name, resident.memory)


def must_page(graph: Graph, target: Any, budget: int | None) -> bool:
    """Whether the model's weights, as loaded, cannot stay resident within `budget` beside the
    runtime: then the pipeline splits weights larger than a page (`split-weights`) so that each fits
    one page frame. Otherwise weights stay whole; when the resident plan then exceeds the budget the
    same lowering is paged, in pages widened to hold the largest weight (targets/plan/paging.py)."""
    return budget is not None and weight_bytes(graph) + target.runtime_baseline_bytes > budget


def weight_bytes(graph: Graph) -> int:
    return sum(value.type.nbytes for value in graph.constants.values())


@dataclasses.dataclass(frozen=True)
class Lowered:
    """The graph after the pipeline, its kernel groups, the static plan (every step on the target's
    device) and the steps' kernel objects: what the resident and the paged plan are both built from."""

    graph: Graph
    groups: list[Any]
    static: StaticPlan
    objects: list[Path]
    hits: int


def lower_and_plan(graph: Graph, options: CompileOptions, target: Any, page_size: int | None) -> Lowered:
    """Passes (weights over `page_size` split), kernels, the static plan and the kernel objects."""
    from targets.registry import get_target

    with stage("running passes"):
        graph = run_passes(graph, options, target, page_size)
    with stage("lowering kernels"):
        groups = kernel_groups(graph)
        kernels = lower_groups(groups, target)
        device = get_target(target.name).device
        copy = lambda source, dest: copy_kernel(source, dest, target)  # noqa: E731
        builder = PlanBuilder(graph, copy, device, target.buffer_alignment)
        static = builder.build(kernels, groups)
    objects, hits = compile_kernels(static.kernels, target)
    return Lowered(graph, groups, static, objects, hits)


def build_resident(lowered: Lowered, options: CompileOptions, target: Any) -> BuiltPlan:
    """The plan with every weight resident in `weights.bin`, with its one-call entry when it can."""
    from targets.artifact import layout_weights

    layout = layout_weights(lowered.static.weights, target.buffer_alignment)
    with stage("building the entry call"):
        static, entry_objects = with_entry(lowered.static, options.entry, target, layout)
    library = link_plan(entry_objects or lowered.objects, static, layout, target)
    memory = plan_account(static, library, layout[1], target)
    static = dataclasses.replace(
        static, plan=dataclasses.replace(static.plan, planned_peak_bytes=memory.planned_peak)
    )
    return BuiltPlan(lowered.graph, lowered.groups, static, library, layout, memory, lowered.hits)


def build_paged(
    lowered: Lowered, options: CompileOptions, target: Any, budget: int, page_size: int
) -> BuiltPlan | MemoryAccount:
    """The plan with weights paged through the most frames the budget leaves (targets/plan/
    paging.py), fewer when its segment library turns out larger; when even the fewest frames any
    schedule needs do not fit, the account of that smallest paged plan instead."""
    from targets.artifact import layout_weights

    static, steps_objects = lowered.static, lowered.objects
    weights = layout_weights(static.weights)[0]
    page_size = page_size_holding(weights, page_size)
    pages = cut_weights(static.plan.steps, weights, page_size)
    fewest = dataclasses.replace(
        static, plan=with_paging(static.plan, paging_of(pages, pages.smallest_frames))
    )
    fewest_library = link_plan(steps_objects, fewest, pages.layout, target)
    base = plan_account(fewest, fewest_library, 0, target)  # all but frames
    frames = min(pages.pages.pages, frames_within(budget, base, page_size))
    memory = base
    while frames >= pages.smallest_frames:
        paged = dataclasses.replace(static, plan=with_paging(static.plan, paging_of(pages, frames)))
        with stage(f"building the entry calls ({frames} page frames)"):
            paged, entry_objects = with_entry(paged, options.entry, target, pages.layout)
        library = link_plan(entry_objects or steps_objects, paged, pages.layout, target)
        memory = plan_account(paged, library, 0, target)
        if memory.planned_peak <= budget:
            paged = dataclasses.replace(
                paged, plan=dataclasses.replace(paged.plan, planned_peak_bytes=memory.planned_peak)
            )
            return BuiltPlan(
                lowered.graph, lowered.groups, paged, library, pages.layout, memory, lowered.hits
            )
        frames -= -(-(memory.planned_peak - budget) // page_size)
    return memory.with_pool(pages.smallest_frames, page_size)  # with the last library tried


def plan_account(static: StaticPlan, library: Path | None, weights_size: int, target: Any) -> MemoryAccount:
    """The memory account of `static` with this library and `weights.bin` size (memory_budget.py)."""
    kernels = library.stat().st_size if library is not None else 0
    return account(
        static.plan, weights_size, static.inputs, static.outputs, kernels,
        target.runtime_baseline_bytes, target.runtime_bytes_per_call,
    )  # fmt: skip
