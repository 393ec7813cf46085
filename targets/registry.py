"""HAI, compile-time half: the interface a target module implements, and how targets are found.

A target module is one `TargetBackend` subclass and answers, for its device family:
- which machine: its `name`, the machine arch it compiles for (the one arch <-> target map:
  ARCH_TARGETS and a plugin's `arches`, asked through `target_of_arch` / `arch_of_target`),
  its LLVM `triple` when cross-compiling, the named CPUs
  and ISA levels it takes (`cpus`), the features a cpu model has (`cpu_features`), and
  the facts a feature set gives (`isa`: vector width, vector registers, precisions);
  `describe` builds the `TargetDescription` from this host, `--cpu`, or a `hai doctor`
  profile, with `--cpu-features` edits; `facts` is what passes read (ir/target_facts.py);
- how its kernels are scheduled: `schedules`, the knob table per op family
  (targets/schedules.py), and whether conv regions go channels-last (`channels_last`);
- which HAI device runs its kernels: `device`, the name of the run-time driver (runtime/hai.py,
  entry-point group `hai.devices`) each plan step names, with that device's kernel library;
- how kernels are built: `kernel_format` ("llvm": LLVM objects linked into one shared
  library, `build`, natively or by a cross `linker`; later "opencl-c": source the device
  driver builds), `tvm_target` (the TVM target JSON), and `tvm_runtime` (the
  libtvm_runtime.so the artifact carries).
Targets are found by name: built-ins first (`x86`), then entry points of group `hai.targets`
whose value is a `TargetBackend` subclass; a broken entry point is reported when it is asked
for, never while listing the others.
"""

from __future__ import annotations

import dataclasses
import platform
from abc import ABC, abstractmethod
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ir.target_facts import DeviceFacts, TargetFacts
from runtime.cpu_features import CpuIdentity, host_cpu
from runtime.plugins import load_plugin, plugin_sources
from targets.description import IsaFacts, TargetDescription, TargetError
from targets.feature_edits import apply_edits, warn_unlike_host

if TYPE_CHECKING:
    from targets.lowering.kernel import LoweredKernel
    from targets.schedules import ScheduleTable

ENTRY_POINT_GROUP = "hai.targets"
BUILTIN_TARGETS: dict[str, str] = {
    "x86": "targets.x86:X86Target",
    "arm64": "targets.arm64:Arm64Target",
    "opencl": "targets.opencl:OpenCLTarget",
}
ARCH_TARGETS: dict[str, str] = {"x86_64": "x86", "amd64": "x86", "aarch64": "arm64", "arm64": "arm64"}
"""Machine arch (`uname -m`) -> the HAI target that compiles for it, for the built-in families (the
first arch of a target is what manifests record); a plugin target names its own in `arches`."""


class TargetBackend(ABC):
    """The compile-time half of HAI for one device family (codegen target + compile)."""

    name: ClassVar[str]
    arches: ClassVar[tuple[str, ...]] = ()
    """A plugin target's machine names (`uname -m`), first the one manifests record; built-in
    targets are in ARCH_TARGETS."""
    triple: ClassVar[str]
    """The LLVM target triple of its kernels."""
    device: ClassVar[str] = "cpu"
    """The HAI device whose driver runs its kernels: every step names it, and its kernel library is
    `kernels.<device>.so` (runtime/artifact.py); a new kind of device brings a driver of this name."""
    kernel_format: ClassVar[str] = "llvm"
    """How kernels are built: "llvm" (one shared library of LLVM objects); later "opencl-c"."""
    other_cpus: ClassVar[str] = "any {name} cpu LLVM knows"
    """What `hai targets` says `--cpu` takes beyond the listed names."""
    channels_last: ClassVar[bool] = False
    """Whether its conv templates store regions NHWC (the `layout` pass runs before `fuse`)."""
    precision_needs: ClassVar[dict[str, str]] = {}
    """What a precision beyond f32 needs of the device, in words for the error refusing it (`"bf16":
    "avx512_bf16 or amx_bf16"`)."""

    @abstractmethod
    def cpus(self) -> dict[str, str]:
        """The cpu names `--cpu` takes that `hai targets` lists (ISA levels, a few LLVM models) -> a note."""

    @abstractmethod
    def cpu_features(self, cpu: str) -> frozenset[str]:
        """The HAI features of `--cpu CPU` alone; a TargetError for a name the target does not know."""

    @abstractmethod
    def known_features(self) -> tuple[str, ...]:
        """Every HAI feature name this target's kernels may use (what `--cpu-features` may edit)."""

    @abstractmethod
    def isa(self, features: frozenset[str]) -> IsaFacts:
        """The vector width, vector registers and precisions kernels get from `features`."""

    @abstractmethod
    def tvm_target(self, desc: TargetDescription) -> dict[str, Any]:
        """The TVM target JSON dict for `desc`."""

    @abstractmethod
    def schedules(self) -> ScheduleTable:
        """The schedule knobs of each op family for this target (targets/schedules.py)."""

    @abstractmethod
    def host_cpu_name(self) -> str:
        """The cpu name of this host for this target (LLVM's, asked through TVM)."""

    def host_identity(self) -> CpuIdentity:
        """This host's CPU as the runtime reads it (arch, features)."""
        return host_cpu()

    def epilogue_ops(self) -> frozenset[str]:
        """Ops its kernels compute as a fused epilogue: the shared CPU lowering's tables."""
        from targets.lowering.pointwise import POINTWISE_OPS
        from targets.lowering.quantized import QUANT_OPS

        return frozenset({*POINTWISE_OPS, *QUANT_OPS})

    def composite_ops(self) -> frozenset[str]:
        """HAI composite ops (ir/ops, e.g. `Attention`) this target's kernels compute; the passes that
        form them run only for a target that lists them. None by default."""
        return frozenset()

    def description(
        self, cpu: str, features: frozenset[str] | set[str] | tuple[str, ...], *, source: str
    ) -> TargetDescription:
        """The description of `cpu` with `features`, its derived facts from `isa`."""
        found = frozenset(features)
        isa = self.isa(found)
        return TargetDescription(
            name=self.name,
            cpu=cpu,
            features=found,
            vector_bytes=isa.vector_bytes,
            vector_registers=isa.vector_registers,
            supported_precisions=isa.supported_precisions,
            preferred_precisions=isa.preferred_precisions,
            arch=arch_of_target(self.name),
            triple=None if target_of_arch(platform.machine()) == self.name else self.triple,  # native: LLVM's
            source=source,
            fusable_ops=self.epilogue_ops(),
            composite_ops=self.composite_ops(),
            devices=(DeviceFacts(kind=self.device, name=cpu),),
        )

    def describe(
        self, cpu: str | None = None, profile: dict[str, Any] | None = None, cpu_features: str | None = None
    ) -> TargetDescription:
        """The description to compile for: this host, `--cpu NAME`, or a profile's `recommended` object,
        with `--cpu-features` edits (targets/feature_edits.py) applied."""
        if profile is not None:
            desc = self.from_profile(profile)
        elif cpu is None:
            desc = self.host()
        else:
            desc = self.description(cpu, self.cpu_features(cpu), source=f"--cpu {cpu}")
        if cpu_features:
            desc = self.with_edits(desc, cpu_features)
        if cpu is not None:
            self.warn_if_host_name(desc)
        return desc

    def host(self) -> TargetDescription:
        """This machine: its cpu name and the features /proc/cpuinfo lists."""
        cpu = self.host_identity()
        if target_of_arch(cpu.arch) != self.name:
            raise TargetError(
                f"this host is {cpu.arch}, not a {self.name} machine; pass --cpu to cross-compile"
            )
        return self.description(self.host_cpu_name(), frozenset(cpu.features), source="host")

    def from_profile(self, recommended: Mapping[str, Any]) -> TargetDescription:
        """From a `hai doctor` profile's `recommended` object (`{"target", "cpu", "features"}`)."""
        try:
            name, cpu, features = recommended["target"], recommended["cpu"], recommended["features"]
        except (KeyError, TypeError) as exc:
            raise TargetError(
                f"hardware profile has no complete 'recommended' target: missing {exc}"
            ) from exc
        if not name or not cpu:
            raise TargetError("hardware profile names no compile target ('recommended.target' is empty)")
        if name != self.name:
            return get_target(name).from_profile(recommended)
        return self.description(cpu, frozenset(features), source="hardware profile")

    def with_edits(self, desc: TargetDescription, text: str) -> TargetDescription:
        """`desc` with `--cpu-features text` applied (derived facts follow); its source says so."""
        edited = self.description(desc.cpu, apply_edits(desc.features, text), source=desc.source)
        return dataclasses.replace(edited, source=f"{desc.source} --cpu-features {text}".strip())

    def warn_if_host_name(self, desc: TargetDescription) -> None:
        """Warn when `--cpu` names this host's own cpu but gives other features than the host has."""
        host = self.host_identity()
        if target_of_arch(host.arch) != self.name:
            return
        try:
            name = self.host_cpu_name()
        except TargetError:
            return
        warn_unlike_host(desc, name, host.features)

    def facts(self, desc: TargetDescription) -> TargetFacts:
        """The typed facts passes read (`ctx.target`), with what the measured cost rule says of
        conv layouts (targets/cost_model.py)."""
        from targets.cost_model import cost_table

        return dataclasses.replace(
            desc.to_pass_context(), channels_last_dense=cost_table(desc).channels_last_dense
        )

    def build(
        self, kernels: Sequence[LoweredKernel], desc: TargetDescription, digest: bytes | None = None
    ) -> Path:
        """Compile `kernels` into one shared library (cached on disk), with the plan `digest`'s function
        when given; its path. For `kernel_format` "llvm": targets/llvm_build.py."""
        from targets import llvm_build

        target_json = self.tvm_target(desc)
        objects = llvm_build.kernel_objects(kernels, target_json)
        return llvm_build.link_library(objects, target_json, self.linker(desc), digest)

    def kernel_object(self, kernel: LoweredKernel, desc: TargetDescription) -> tuple[Path, bool]:
        """The compiled file of one kernel (cached on disk) and whether the cache had it: an LLVM object."""
        from targets import llvm_build

        return llvm_build.kernel_object(kernel, self.tvm_target(desc))

    def link(self, objects: Sequence[Path], desc: TargetDescription, digest: bytes | None) -> Path:
        """The kernel library of `objects` with the plan `digest`'s function: one shared library."""
        from targets import llvm_build

        return llvm_build.link_library(objects, self.tvm_target(desc), self.linker(desc), digest)

    def linker(self, desc: TargetDescription) -> str | None:
        """The C compiler that links the kernel library: None natively (the host's `cc`); for another
        arch (`desc.triple` set) Debian's cross compiler of the triple, e.g. `aarch64-linux-gnu-gcc`."""
        return None if desc.triple is None else f"{desc.triple}-gcc"

    def tvm_runtime(self, desc: TargetDescription) -> Path | None:
        """The libtvm_runtime.so the artifact carries; None: the installed TVM's (a native build)."""
        return None

    def kernel_scratch(self, library: Path) -> dict[str, tuple[int, ...]]:
        """Each kernel's scratch buffers (bytes) that a device with memory of its own allocates for its
        launches, as its `library` lists them (runtime/device_memory.py); none on the host CPU."""
        return {}


def target_sources() -> dict[str, str]:
    """Target name -> `module:attribute`: built-ins, then `hai.targets` entry points."""
    return plugin_sources(ENTRY_POINT_GROUP, BUILTIN_TARGETS)


def available_targets() -> list[str]:
    return sorted(target_sources())


def get_target(name: str) -> TargetBackend:
    """A target backend object for `name`, loading its module on demand."""
    sources = BUILTIN_TARGETS if name in BUILTIN_TARGETS else target_sources()
    return load_plugin("target", name, sources, TargetBackend, TargetError, TargetError)()


def loadable_targets() -> list[TargetBackend]:
    """Every target that loads, in name order (a broken entry point is left out, not raised)."""
    found = []
    for name in available_targets():
        try:
            found.append(get_target(name))
        except TargetError:
            continue
    return found


def target_of_arch(arch: str) -> str | None:
    """The HAI target that compiles for machine `arch` (`x86_64` -> `x86`); None when none does."""
    if arch in ARCH_TARGETS:
        return ARCH_TARGETS[arch]
    return next((backend.name for backend in loadable_targets() if arch in backend.arches), None)


def arch_of_target(name: str) -> str:
    """The machine arch a manifest records for target `name` (`x86` -> `x86_64`); "" when unknown."""
    builtin = next((arch for arch, target in ARCH_TARGETS.items() if target == name), None)
    if builtin is not None:
        return builtin
    return next(iter(get_target(name).arches), "")


def resolve_target(
    name: str = "x86",
    *,
    cpu: str | None = None,
    profile: dict[str, Any] | None = None,
    cpu_features: str | None = None,
) -> TargetDescription:
    """The description for `--target NAME [--cpu CPU] [--cpu-features EDITS]` or a profile's `recommended`."""
    if cpu_features is None:  # plugins written before --cpu-features keep working
        return get_target(name).describe(cpu=cpu, profile=profile)
    return get_target(name).describe(cpu=cpu, profile=profile, cpu_features=cpu_features)
