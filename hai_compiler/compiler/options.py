"""What a compile is asked to do: `CompileOptions`, and turning them into a target and a graph.

Rule: options are plain values the user gave (CLI flags or `hai_compiler.compile`
keywords). What goes into the artifact's manifest (`manifest_options`) is only
what decides the artifact's content — never a file path, a time or a machine
fact that the options do not name — so the same model and options give the
same bytes anywhere. A hardware profile enters as its recommended target, not
as its path.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from ir import Graph, HaiError
from ir.units import ByteSize, parse_size
from passes.plan_memory import PlanMemory
from targets.plan.memory_budget import DEFAULT_BUDGET, DEFAULT_PAGE_SIZE

DEFAULT_PASSES = "default"
LAYOUT_PREFERENCES = ("auto", "NHWC", "NCHW")
"""The `layout` pass's `prefer`: NHWC regions where its cost rule gains, everywhere it can, nowhere."""
ENTRY_MODES = ("auto", "on", "off")
OBJECTIVES = ("latency", "throughput")
"""The partition pass's objectives (passes/partition.py): one inference's makespan, a stream's period."""
"""One exported entry function calling every kernel: when all allow it, always (else an error), never."""


class CompileOptionError(HaiError):
    """An option `hai compile` / `hai_compiler.compile` cannot use (unknown key, conflicting flags)."""


@dataclasses.dataclass(frozen=True)
class CompileOptions:
    """Everything `hai compile` takes besides the model and the output path."""

    target: str = "x86"
    cpu: str | None = None
    hardware_profile: str | Path | None = None
    input_shapes: Mapping[str, Sequence[int]] | None = None
    passes: str = DEFAULT_PASSES
    dump_ir: str | Path | None = None
    verify_each: bool = False
    entry: str = "auto"  # one-call entry function: auto (when every kernel allows), on (required), off
    layout: str = "auto"  # the layout pass's `prefer`: auto (its cost rule), NHWC, NCHW (pass off)
    memory_budget: str | int | None = DEFAULT_BUDGET  # `512MB` (ir/units.py); None or "none": no budget
    device_memory_budget: str | int | None = (
        None  # a device's own memory; None: its profile's (device_memory.py)
    )
    page_size: str | int = DEFAULT_PAGE_SIZE  # bytes of a weight page when the plan pages
    cpu_features: str | None = None  # `+amx,-avx512f`: ISA feature edits (targets/feature_edits.py)
    input_values: Mapping[str, Any] | None = None  # inputs fixed to values when importing an .onnx
    placement: str = ""  # forced placements 'PATTERN=DEVICE;...' (the partition pass's option)
    objective: str = "latency"  # the partition's: latency (one inference) or throughput (a stream)
    opencl_profile: str | None = None  # the OpenCL part of `x86+opencl`: a preset (targets/device_targets.py)
    print_ir_after: tuple[str, ...] = ()  # passes (or "all") after which the IR goes to stderr

    def __post_init__(self) -> None:
        _ = self.budget_bytes, self.page_bytes, self.device_budget_bytes  # a malformed size fails here
        if not self.multi_device and (self.placement or self.opencl_profile or self.objective != "latency"):
            given = (
                "--placement" if self.placement else "--opencl-profile" if self.opencl_profile
                else "--partition-objective"
            )  # fmt: skip
            raise CompileOptionError(
                f"{given} places nodes on the devices of a target over several devices (--target "
                f"x86+opencl, ...); --target {self.target} has one"
            )
        if self.objective not in OBJECTIVES:
            raise CompileOptionError(
                f"--partition-objective {self.objective}: expected one of {', '.join(OBJECTIVES)}"
            )
        if self.entry not in ENTRY_MODES:
            raise CompileOptionError(f"option entry={self.entry!r}: expected one of {', '.join(ENTRY_MODES)}")
        if self.layout not in LAYOUT_PREFERENCES:
            raise CompileOptionError(
                f"option layout={self.layout!r}: expected one of {', '.join(LAYOUT_PREFERENCES)}"
            )

    @property
    def multi_device(self) -> bool:
        """Whether the target names several devices (`x86+opencl`: targets/device_targets.py)."""
        return "+" in self.target

    @property
    def device_budget_bytes(self) -> int | None:
        """`--device-memory-budget` in bytes, or None: the device profile's global memory."""
        if self.device_memory_budget is None:
            return None
        return parse_size(self.device_memory_budget, "--device-memory-budget")

    @property
    def budget_bytes(self) -> int | None:
        """The memory budget in bytes (targets/plan/memory_budget.py checks it), or None."""
        if self.memory_budget is None or str(self.memory_budget).lower() == "none":
            return None
        return parse_size(self.memory_budget, "--memory-budget")

    @property
    def page_bytes(self) -> int:
        """The page size in bytes: a positive multiple of 64 (the weights' alignment)."""
        size = parse_size(self.page_size, "--page-size")
        if size <= 0 or size % 64:
            raise CompileOptionError(f"--page-size {self.page_size}: must be a positive multiple of 64 bytes")
        return size

    @classmethod
    def from_keywords(cls, target: str, input_shapes: Any, options: Mapping[str, Any]) -> CompileOptions:
        """Build from `compile(model, target, input_shapes=..., **options)`; unknown keys are an error."""
        known = {f.name for f in dataclasses.fields(cls)} - {"target", "input_shapes"}
        unknown = sorted(set(options) - known)
        if unknown:
            raise CompileOptionError(
                f"hai_compiler.compile got unknown option(s) {unknown}; known: {sorted(known)}"
            )
        return cls(target=target, input_shapes=input_shapes, **options)

    def pipeline(self, has_fuse: bool, has_layout: bool = False, split_bytes: int | None = None) -> list[Any]:
        """The passes to run, as configured pass objects: the user's passes, then `predicate-control-flow`
        (Ifs decided at run time become guarded steps, Loops spans the runtime repeats; unless
        named), then `split-weights` of
        `split_bytes` (when given), then `layout` (if registered, for a target whose templates store
        conv regions channels-last, unless the user's passes name it; with `prefer` = the `layout`
        option), then `fuse` (if registered and not named), then `plan-memory` with graph inputs
        outside the arena and the budget and page size (unless named). What is added goes before a
        `fuse`, `partition` or `plan-memory` the user named (fuse, before their partition and
        plan-memory). A target over several devices adds `partition` (with the `placement` option) after
        `fuse`, before `plan-memory`, unless the user's passes name it (`partition{devices=FILE}`)."""
        from passes.fuse import Fuse
        from passes.layout import Layout
        from passes.partition import Partition
        from passes.pipeline import parse_pipeline
        from passes.predicate_control_flow import PredicateControlFlow
        from passes.split_weights import SplitWeights

        passes = list(parse_pipeline(self.passes)) if self.passes and self.passes != "none" else []

        def add(step: Any, before: tuple[str, ...]) -> None:
            names = [p.name for p in passes]
            at = min([names.index(name) for name in before if name in names], default=len(passes))
            passes.insert(at, step)

        if all(p.name != "predicate-control-flow" for p in passes):
            add(PredicateControlFlow(), ("split-weights", "layout", "fuse", "partition", "plan-memory"))
        if split_bytes is not None:
            add(SplitWeights(max_bytes=ByteSize(split_bytes)), ("fuse", "partition", "plan-memory"))
        if has_layout and all(p.name != "layout" for p in passes) and channels_last(self.target):
            add(Layout(prefer=self.layout), ("fuse", "partition", "plan-memory"))
        if has_fuse and all(p.name != "fuse" for p in passes):
            add(Fuse(), ("partition", "plan-memory"))
        named = any(p.name == "partition" for p in passes)
        if named and (self.placement or self.objective != "latency"):
            raise CompileOptionError(
                "--placement and --partition-objective go to the partition pass the compile adds, but "
                "--passes names its own: give partition{placement=... objective=...} there instead"
            )
        if self.multi_device and not named:
            add(Partition(placement=self.placement, objective=self.objective), ("plan-memory",))
        if all(not isinstance(p, PlanMemory) for p in passes):
            budget = None if self.budget_bytes is None else ByteSize(self.budget_bytes)
            add(PlanMemory(arena_inputs=False, budget=budget, page_size=ByteSize(self.page_bytes)), ())
        return passes

    def memory_plan(self) -> tuple[int | None, int]:
        """(budget, page size) in bytes as the pipeline's last `plan-memory` pass has them: the user's own
        `plan-memory{budget=.. page-size=..}` when `passes` names it, else `memory_budget`, `page_size`."""
        planner = [p for p in self.pipeline(False) if isinstance(p, PlanMemory)][-1]
        return (None if planner.budget is None else int(planner.budget)), int(planner.page_size)

    def manifest_options(self, profile_target: Mapping[str, Any] | None) -> dict[str, Any]:
        """The options as the manifest records them (no paths; the profile as its recommended target)."""
        shapes = {k: [int(d) for d in v] for k, v in sorted((self.input_shapes or {}).items())}
        recorded: dict[str, Any] = {"target": self.target, "passes": self.passes, "input_shapes": shapes}
        if self.cpu is not None:
            recorded["cpu"] = self.cpu
        if self.cpu_features:
            recorded["cpu_features"] = self.cpu_features
        if self.input_values:
            recorded["input_values"] = {
                k: np.asarray(v).tolist() for k, v in sorted(self.input_values.items())
            }
        if self.entry != "auto":
            recorded["entry"] = self.entry
        if self.layout != "auto":
            recorded["layout"] = self.layout
        recorded["memory_budget"] = self.budget_bytes
        if self.device_memory_budget is not None:
            recorded["device_memory_budget"] = self.device_budget_bytes
        if self.page_bytes != DEFAULT_PAGE_SIZE:
            recorded["page_size"] = self.page_bytes
        if self.placement:
            recorded["placement"] = self.placement
        if self.objective != "latency":
            recorded["objective"] = self.objective
        if self.opencl_profile is not None:
            recorded["opencl_profile"] = self.opencl_profile
        if profile_target is not None:
            recorded["hardware_profile"] = dict(profile_target)
        return recorded


def profile_target_of(options: CompileOptions) -> dict[str, Any] | None:
    """The `recommended` target of the hardware profile the options name (None without one)."""
    if options.hardware_profile is None:
        return None
    from hai_compiler.doctor import profile_compile_target, read_profile

    return profile_compile_target(read_profile(options.hardware_profile), options.target)


def channels_last(target: str) -> bool:
    """Whether target `target`'s templates store conv regions NHWC (the `layout` pass runs before `fuse`);
    over several devices, whether every device's do (a value moves between devices in one layout)."""
    from runtime.device_names import driver_of, split_target
    from targets.registry import get_target

    host, devices = split_target(target)
    return all(get_target(name).channels_last for name in (host, *map(driver_of, devices)))


def resolve_compile_target(options: CompileOptions, profile_target: Mapping[str, Any] | None) -> Any:
    """The TargetDescription to compile for: a hardware profile, `--cpu`, or this host (then
    `--cpu-features` edits)."""
    from runtime.device_names import split_target
    from targets.registry import resolve_target

    host = split_target(options.target)[0]
    if profile_target is not None and options.cpu is not None:
        raise CompileOptionError("give either --cpu or --hardware-profile, not both")
    if profile_target is not None and profile_target.get("target") != host:
        raise CompileOptionError(
            f"hardware profile recommends target {profile_target.get('target')!r}, "
            f"but --target is {options.target!r}"
        )
    return resolve_target(
        host,
        cpu=options.cpu,
        profile=dict(profile_target or {}) or None,
        cpu_features=options.cpu_features or None,
    )


def resolve_devices(options: CompileOptions, host: Any) -> Any:
    """The DeviceTargets of a target over several devices (targets/device_targets.py), `host` its host
    part's description; None for a target of one device."""
    from targets.device_targets import describe_devices

    if not options.multi_device:
        return None
    profiled = None
    if options.hardware_profile is not None:
        from hai_compiler.doctor import read_profile

        profile = read_profile(options.hardware_profile)
        profiled = lambda kind: profiled_opencl(profile, kind)  # noqa: E731
    return describe_devices(options.target, host, profiled, options.opencl_profile)


def profiled_opencl(profile: Mapping[str, Any], kind: str) -> dict[str, Any]:
    """The compile target of the profile's OpenCL device of `kind` (any: a GPU first; doctor.py)."""
    from hai_compiler.doctor import opencl_compile_target
    from targets.device_targets import OPENCL_TYPES

    wanted = OPENCL_TYPES.get(kind)
    platforms = [{**p, "devices": [d for d in p.get("devices", []) if wanted in (None, d.get("type"))]}
                 for p in profile.get("opencl", {}).get("platforms", [])]  # fmt: skip
    if wanted is not None and not any(p["devices"] for p in platforms):
        raise CompileOptionError(f"--target names opencl:{kind}; the hardware profile has no {wanted} device")
    return opencl_compile_target({**profile, "opencl": {**profile.get("opencl", {}), "platforms": platforms}})


def model_name(model: Any, graph: Graph) -> str:
    """The artifact's model name: the file's stem, else the graph's name."""
    if isinstance(model, str | Path):
        return Path(model).stem
    return graph.name or "model"


def load_graph(model: Any, options: CompileOptions) -> Graph:
    """The verified IR graph of `model`: an .onnx/.hir path, an onnx ModelProto or a Graph (used as is)."""
    from hai_compiler.driver import load_model_any

    if isinstance(model, Graph):
        return model
    if isinstance(model, str | Path):
        return load_model_any(model, options.input_shapes, options.input_values)
    try:
        import onnx
    except ImportError:  # pragma: no cover - onnx is a compiler dependency
        onnx = None
    if onnx is not None and isinstance(model, onnx.ModelProto):
        from hai_compiler.onnx_import import import_onnx
        from ir import verify

        graph = import_onnx(model, input_shapes=options.input_shapes, bind_inputs=options.input_values)
        verify(graph)
        return graph
    raise CompileOptionError(
        f"cannot compile a {type(model).__name__}: give an .onnx or .hir path, an onnx.ModelProto or a Graph"
    )
