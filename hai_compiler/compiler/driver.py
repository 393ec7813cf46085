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
each fits a frame. A target over several devices (`x86+opencl`: targets/device_targets.py) adds
`partition` to the pipeline with their device set (targets/device_models.py), lowers and compiles
each kernel for the device it is placed on, plans a transfer step per Transfer node and links one
library per device with the one digest (resident weights, no entry function); when the partition
places every node on one device, the compile is that device's alone (device_choice.py). Nothing time- or
path-dependent reaches the artifact, so the same model and options give the same bytes.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from hai_compiler.compiler.device_choice import choose_devices
from hai_compiler.compiler.options import (
    CompileOptionError,
    CompileOptions,
    load_graph,
    model_name,
    profile_target_of,
    resolve_compile_target,
    resolve_devices,
)
from hai_compiler.progress import stage
from ir import Graph, HaiError
from ir.devices import HOST
from ir.placement import node_device
from runtime.artifact import TargetInfo
from targets.device_targets import DeviceTargets
from targets.lowering.copy import copy_kernel
from targets.plan.device_memory import DevicePlan, host_bytes, plan_device_memory
from targets.plan.entry_plan import with_entry
from targets.plan.kernels import UnsupportedOpsError, kernel_groups, lower_groups
from targets.plan.memory_budget import MemoryAccount, account, frames_within, too_small
from targets.plan.paging import WeightLayout, cut_weights, page_size_holding, paging_of, with_paging
from targets.plan.static_plan import PlanBuilder, StaticPlan
from targets.registry import get_target


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
    devices: DeviceTargets | None = None  # each device's target, for a target over several devices
    partition: Any = None  # passes.partition.PartitionSummary when the graph was partitioned

    @property
    def memory(self) -> dict[str, int]:
        from passes.memory_check import memory_report

        return memory_report(self.graph)


def target_info(target: Any, devices: DeviceTargets | None = None) -> TargetInfo:
    """The manifest's `TargetInfo` of the TargetDescription `target` (what the plan digest covers); over
    several `devices`, named as --target spelled them (`x86+opencl:gpu`: runtime/device_names.py), with
    the host's arch, cpu and features."""
    name = devices.spelling if devices is not None else target.name
    return TargetInfo(name, target.arch, target.cpu, tuple(sorted(target.features)))


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


def run_passes(
    graph: Graph,
    options: CompileOptions,
    target: Any,
    page_size: int | None = None,
    devices: DeviceTargets | None = None,
    until: str | None = None,
) -> tuple[Graph, Any]:
    """The compile pipeline (CompileOptions.pipeline) and its pass context; `page_size`: split weights
    larger than a page; over several `devices`, `partition` splits the graph over their device set
    (targets/device_models.py); `until`: only the passes up to that one, without instruments."""
    from hai_compiler.driver import InstrumentOptions, make_instruments, run_pipeline
    from passes.manager import PassContext
    from targets.device_models import device_set

    ctx = PassContext(target=get_target(target.name).facts(target))
    if devices is not None:
        from hai_compiler.doctor import read_profile

        budgets = {name: options.device_budget_bytes for name in devices.names[1:]}
        profile = read_profile(options.hardware_profile) if options.hardware_profile is not None else None
        ctx.devices = device_set(devices, {HOST: options.budget_bytes, **budgets}, profile)
    instruments = make_instruments(
        InstrumentOptions(
            print_after=options.print_ir_after, dump_dir=Path(options.dump_ir) if options.dump_ir else None
        )
    )
    pipeline = options.pipeline(fuse_registered(), registered("layout"), page_size)
    if until is not None:
        names = [p.name for p in pipeline]
        pipeline, instruments = pipeline[: names.index(until) + 1], []
    graph = run_pipeline(graph, pipeline, instruments, verify_each=options.verify_each, ctx=ctx)
    return graph, ctx


def compile_kernels(kernels: list[Any], targets: Mapping[str, Any]) -> tuple[dict[str, list[Path]], int]:
    """The object files of every distinct kernel, by the device (`targets`: device -> description) whose
    library holds them (compiled one by one through the cache, reporting progress), and the cache
    hits. `kernels` are `(device, kernel)` pairs."""
    from targets.llvm_build import unique_kernels

    chosen = [(device, k) for device in targets
              for k in unique_kernels([k for d, k in kernels if d == device])]  # fmt: skip
    objects: dict[str, list[Path]] = {device: [] for device in targets}
    hits = 0
    with stage("compiling kernels", total=len(chosen)) as advance:
        for device, kernel in chosen:
            path, hit = get_target(targets[device].name).kernel_object(kernel, targets[device])
            objects[device].append(path)
            hits += int(hit)
            advance(kernel.name)
    return {device: paths for device, paths in objects.items() if paths}, hits


def link_plan(
    objects: Mapping[str, list[Path]],
    static: StaticPlan,
    layout: WeightLayout,
    target: Any,
    devices: DeviceTargets | None = None,
) -> dict[str, Path]:
    """The kernel library of each device of `static` (`objects` by device): its objects linked with the
    one digest of the target, plan and weights' table as the artifact will hold them, weights where
    `layout` puts them (runtime/plan_digest.py; `planned_peak_bytes`, set from the libraries' size
    afterwards, is not covered). A device without kernels (a plan without steps: every output a view of
    an input) has no library."""
    from runtime.plan_digest import plan_digest
    from targets.artifact import resolve_weight_slots

    plan = resolve_weight_slots(static.plan, layout[0])
    digest = plan_digest(target_info(target, devices), plan, static.inputs, static.outputs, *layout)
    libraries = {}
    for device, paths in objects.items():
        desc = device_target(device, target, devices)
        with stage(f"linking the {device} kernel library" if devices else "linking the kernel library"):
            libraries[device] = get_target(desc.name).link(paths, desc, digest)
    return libraries


def device_target(device: str, target: Any, devices: DeviceTargets | None) -> Any:
    """The description of the target whose kernels HAI device `device` runs."""
    if devices is None:
        return target
    return next(desc for name, desc in devices.devices if devices.runtime_device(name) == device)


@dataclasses.dataclass
class BuiltPlan:
    """A graph lowered and planned: its kernel groups, the static plan, the library, the weights' layout
    in `weights.bin` and the memory account (its planned peak already in `static.plan`)."""

    graph: Graph
    groups: list[Any]
    static: StaticPlan
    libraries: dict[str, Path]  # by device, linked with the plan's digest (link_plan)
    layout: WeightLayout
    memory: MemoryAccount
    hits: int
    device: DevicePlan | None = None  # the device's own memory, once planned (with_device_plan)
    partition: Any = None  # the partition pass's summary


def compile_model(model: Any, output: str | Path, options: CompileOptions) -> CompileResult:
    """Compile `model` (.onnx/.hir path, ModelProto or Graph) into the artifact directory `output`."""
    from hai_compiler.driver import graph_text
    from runtime.artifact import CompilerInfo
    from targets.artifact import ManifestParts, write_artifact

    start = time.perf_counter()
    with stage("loading the model"):
        graph = load_graph(model, options)
    name = model_name(model, graph)
    with stage("describing the target"):
        profile = profile_target_of(options)
        target = resolve_compile_target(options, profile)
        devices = resolve_devices(options, target)
    chosen = None
    if devices is not None:
        with stage("partitioning"):
            options, target, devices, chosen = choose_devices(graph, options, devices, run_passes)
        profile = profile_target_of(options)
    memory_plan = options.memory_plan()
    built = with_device_plan(build_within_budget(graph, name, options, target, memory_plan, devices), options,
                             target, name, memory_plan[0], devices)  # fmt: skip
    static = built.static
    parts = ManifestParts(
        name=name,
        compiler=CompilerInfo(hai_version(), tvm_version(), options.manifest_options(profile)),
        target=target_info(target, devices),
        inputs=static.inputs,
        outputs=static.outputs,
        plan=static.plan,
    )
    with stage("writing the artifact"):
        path = write_artifact(
            output, parts, static.weights, built.libraries, graph_text(built.graph),
            tvm_runtime=get_target(target.name).tvm_runtime(target), layout=built.layout,
        )  # fmt: skip
    seconds = time.perf_counter() - start
    return CompileResult(path, built.graph, static, built.groups, target, seconds, built.hits, built.memory,
                         memory_plan[0], built.device, devices, chosen or built.partition)  # fmt: skip


def with_device_plan(
    built: BuiltPlan,
    options: CompileOptions,
    target: Any,
    name: str,
    budget: int | None,
    devices: DeviceTargets | None = None,
) -> BuiltPlan:
    """`built` with its device memory planned and recorded (targets/plan/device_memory.py: none for
    the host CPU; over several `devices`, that of the one beside the host), and the device driver's
    buffers in host memory added to its planned peak, which must still fit the host `budget`."""
    static = built.static
    if devices is not None and len(devices.devices) > 1:
        target = devices.devices[1][1]
    library = built.libraries.get(get_target(target.name).device)
    if devices is not None and library is None:  # the partition left that device nothing to run
        return built
    device = plan_device_memory(
        static.plan, built.memory.weights, library, target, options.device_budget_bytes, name
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
    devices: DeviceTargets | None = None,
) -> BuiltPlan:
    """The resident plan when it fits the budget (or there is none), else the paged plan, both from
    the one lowering (module doc); when neither fits, a `MemoryBudgetError` names the least of the
    two peaks (the resident plan is then built to know its peak exactly). `memory_plan`: the budget
    (None: unbounded) and page size of the pipeline's plan-memory pass."""
    budget, page_size = memory_plan
    paged = must_page(graph, target, budget)
    if devices is not None and paged:
        raise unpaged_over_devices(name, budget)
    lowered = lower_and_plan(graph, options, target, page_size if paged else None, devices)
    if budget is None:
        return build_resident(lowered, options, target, devices)
    resident = None
    if weight_bytes(lowered.graph) + target.runtime_baseline_bytes <= budget:
        resident = build_resident(lowered, options, target, devices)
        if resident.memory.planned_peak <= budget:
            return resident
    if devices is not None:
        raise unpaged_over_devices(name, budget)
    paged = build_paged(lowered, options, target, budget, page_size)
    if isinstance(paged, BuiltPlan):
        return paged
    if resident is None:  # built to name its exact peak in the error
        resident = build_resident(lowered, options, target)
    least = min(paged, resident.memory, key=lambda m: m.planned_peak)
    raise too_small(budget, least, name, resident.memory)


def unpaged_over_devices(name: str, budget: int | None) -> HaiError:
    """A plan over several devices keeps its weights resident (the devices mirror them whole)."""
    return HaiError(
        f"model {name} does not fit --memory-budget {budget} bytes with its weights resident, and a "
        "target over several devices does not page weights: give a larger --memory-budget, or compile for "
        "one device"
    )


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
    objects: dict[str, list[Path]]  # by the HAI device whose library holds them
    hits: int
    partition: Any = None  # the partition pass's summary (passes/partition.py)


def lower_and_plan(
    graph: Graph,
    options: CompileOptions,
    target: Any,
    page_size: int | None,
    devices: DeviceTargets | None = None,
) -> Lowered:
    """Passes (weights over `page_size` split), kernels, the static plan and the kernel objects; over
    several `devices`, each kernel lowered and compiled for the device the partition placed it on, and
    a transfer step wherever a Transfer node is (targets/plan/static_plan.py)."""

    with stage("running passes"):
        graph, ctx = run_passes(graph, options, target, page_size, devices)
    with stage("lowering kernels"):
        groups = kernel_groups(graph)
        kernels = lower_placed(groups, target, devices)
        device = get_target(target.name).device
        copy = lambda source, dest: copy_kernel(source, dest, target)  # noqa: E731
        drivers = {name: devices.runtime_device(name) for name in devices.names} if devices else None
        builder = PlanBuilder(graph, copy, device, target.buffer_alignment, drivers)
        static = builder.build(kernels, groups)
    kernel_steps = [step for step in static.plan.steps if not step.transfer_from]
    placed = [(step.device, kernel) for step, kernel in zip(kernel_steps, static.kernels, strict=True)]
    descriptions = {s.device: device_target(s.device, target, devices) for s in kernel_steps}
    objects, hits = compile_kernels(placed, descriptions)
    return Lowered(graph, groups, static, objects, hits, ctx.results.get("partition"))


def lower_placed(groups: list[Any], target: Any, devices: DeviceTargets | None) -> list[Any]:
    """Each group's kernel, lowered for the target of the device its anchor is placed on (one target:
    all for `target`); every failure of every device is reported together."""
    device_of = [node_device(g.anchor) or HOST for g in groups]
    names = devices.names if devices is not None else (HOST,)
    for group, device in zip(groups, device_of, strict=True):
        if device not in names:
            raise HaiError(
                f"{group.anchor.label()} is placed on device {device}, which --target "
                f"{devices.spelling if devices else target.name} does not name (its devices: "
                f"{', '.join(names)}): compile for a target over those devices (x86+opencl, ...)"
            )
    if devices is None:
        return lower_groups(groups, target)
    kernels: dict[int, Any] = {}
    errors = []
    for name, desc in devices.devices:
        mine = [i for i, d in enumerate(device_of) if d == name]
        try:
            kernels.update(zip(mine, lower_groups([groups[i] for i in mine], desc), strict=True))
        except UnsupportedOpsError as exc:
            errors.append(f"on {name}: {exc}")
    if errors:
        raise UnsupportedOpsError("\n".join(errors))
    return [kernels[i] for i in range(len(groups))]


def build_resident(
    lowered: Lowered, options: CompileOptions, target: Any, devices: DeviceTargets | None = None
) -> BuiltPlan:
    """The plan with every weight resident in `weights.bin`, with its one-call entry when it can (never
    over several devices: the runtime moves values between them between calls)."""
    from targets.artifact import layout_weights

    if devices is not None and options.entry == "on":
        raise CompileOptionError(
            f"--entry on: a plan over several devices ({devices.spelling}) runs step by step; "
            "use --entry auto or off"
        )
    layout = layout_weights(lowered.static.weights, target.buffer_alignment)
    with stage("building the entry call"):
        mode = "off" if devices is not None else options.entry
        static, entry_objects = with_entry(lowered.static, mode, target, layout)
    objects = {get_target(target.name).device: entry_objects} if entry_objects else lowered.objects
    libraries = link_plan(objects, static, layout, target, devices)
    memory = plan_account(static, libraries, layout[1], target)
    static = dataclasses.replace(
        static, plan=dataclasses.replace(static.plan, planned_peak_bytes=memory.planned_peak)
    )
    return BuiltPlan(lowered.graph, lowered.groups, static, libraries, layout, memory, lowered.hits,
                     partition=lowered.partition)  # fmt: skip


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
    device = get_target(target.name).device
    frames = min(pages.pages.pages, frames_within(budget, base, page_size))
    memory = base
    while frames >= pages.smallest_frames:
        paged = dataclasses.replace(static, plan=with_paging(static.plan, paging_of(pages, frames)))
        with stage(f"building the entry calls ({frames} page frames)"):
            paged, entry_objects = with_entry(paged, options.entry, target, pages.layout)
        objects = {device: entry_objects} if entry_objects else steps_objects
        library = link_plan(objects, paged, pages.layout, target)
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


def plan_account(
    static: StaticPlan, libraries: Mapping[str, Path], weights_size: int, target: Any
) -> MemoryAccount:
    """The memory account of `static` with these libraries and `weights.bin` size (memory_budget.py)."""
    kernels = sum(library.stat().st_size for library in libraries.values())
    return account(
        static.plan, weights_size, static.inputs, static.outputs, kernels,
        target.runtime_baseline_bytes, target.runtime_bytes_per_call,
    )  # fmt: skip
