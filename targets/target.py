"""Target descriptions: what the compiler knows about the machine it compiles for, as plain data.

Rule: a `TargetDescription` is a frozen value built by one of the constructors
below and never by probing inside a pass. `to_pass_context()` is what the driver
puts in `ctx.target` (passes never import `targets/`). Feature names are HAI's
(runtime/cpu_features.py); the LLVM spelling of each lives in the target module
(targets/x86.py) that turns a description into a TVM target. This module imports
the runtime's feature tables and the standard library only; TVM is imported
lazily, only to ask LLVM for the host CPU name.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from ir.errors import HaiError
from runtime.cpu_features import X86_64_LEVELS, X86_FEATURES, host_cpu

# Portable x86-64 levels as HAI feature names (the psABI levels; runtime/cpu_features.py has their flags).
X86_LEVEL_FEATURES: dict[str, tuple[str, ...]] = {
    level: tuple(sorted(name for name, flag in X86_FEATURES.items() if flag in flags))
    for level, flags in X86_64_LEVELS.items()
}
PORTABLE_X86_CPUS = tuple(X86_LEVEL_FEATURES)  # "x86-64", "x86-64-v2", "x86-64-v3", "x86-64-v4"
TARGET_OF_ARCH = {"x86_64": "x86", "amd64": "x86", "aarch64": "arm64", "arm64": "arm64"}
# 44.43 MiB (the largest of 5 runs, 43.43 MiB, plus 1 MiB headroom), measured by
# bench/runtime_baseline.py on 2026-11-25 (x86-64 dev host, AMD EPYC, 2 threads) in a freshly made
# venv, as CI and a fresh install run it: there numpy's and OpenBLAS's shared libraries map about
# 6 MiB more resident pages than in a venv whose library files were installed long ago.
RUNTIME_BASELINE_BYTES = 46_592_288
"""The runtime's own resident memory beside an artifact's arena, weights, kernels and inputs/outputs:
peak RSS (VmHWM) of a fresh process that imports `runtime`, loads a trivial artifact and runs it once,
minus those terms. Measured by bench/runtime_baseline.py (never at compile time: artifacts stay
deterministic); --memory-budget plans add it (targets/plan/memory_budget.py)."""
# Measured by bench/runtime_baseline.py on 2026-11-25 (same host, fresh venv): 2945 bytes per one-call
# step, 6208 per step or page of a paged plan.
RUNTIME_BYTES_PER_CALL = 6_208
"""The runtime's state per plan step and per weight page (parsed manifest, argument headers, page
bookkeeping), measured by bench/runtime_baseline.py (a chain of one-call steps); memory plans count
it for every step and page (targets/plan/memory_budget.py)."""


class TargetError(HaiError):
    """A target that cannot be described: unknown name, unknown CPU, a profile without a target."""


def vector_bytes(features: frozenset[str] | set[str] | tuple[str, ...], arch: str) -> int:
    """The widest SIMD register the features allow: 64 (AVX-512), 32 (AVX2), 16 (SSE/NEON)."""
    found = set(features)
    if arch == "x86":
        if "avx512f" in found:
            return 64
        if "avx2" in found or "avx" in found:
            return 32
    return 16


def precisions_of(features: frozenset[str], arch: str) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """(supported, preferred) precisions for kernels on a CPU with `features`; fp32 always first."""
    supported = ["f32", "i8"]
    preferred = ["f32"]
    fast_int8 = {"avx512_vnni", "avx_vnni", "dotprod", "i8mm"}
    if features & fast_int8:
        preferred.append("i8")
    if features & {"f16c", "avx512_fp16", "fp16"}:
        supported.append("f16")
    if features & {"avx512_bf16", "bf16", "amx_bf16"}:
        supported.append("bf16")
    return tuple(supported), tuple(preferred)


@dataclass(frozen=True)
class TargetDescription:
    """One compile target: family name (`x86`, `arm64`), LLVM cpu, HAI ISA features, vector width."""

    name: str
    cpu: str  # LLVM cpu name ("znver4", "x86-64-v3", "cortex-a76")
    features: frozenset[str]
    vector_bytes: int
    supported_precisions: tuple[str, ...] = ("f32",)
    preferred_precisions: tuple[str, ...] = ("f32",)
    triple: str | None = None  # None: LLVM's default for the host
    source: str = ""  # how it was made: "host", "--cpu znver4", "hardware profile"
    runtime_baseline_bytes: int = RUNTIME_BASELINE_BYTES  # the runtime's own resident memory
    runtime_bytes_per_call: int = RUNTIME_BYTES_PER_CALL  # its state per plan step and weight page

    @property
    def vector_lanes_f32(self) -> int:
        return self.vector_bytes // 4

    def to_pass_context(self) -> dict[str, Any]:
        """Plain data for passes' `ctx.target` (JSON-friendly, no TVM objects)."""
        from targets.lowering.pointwise import POINTWISE_OPS
        from targets.lowering.quantized import QUANT_OPS

        return {
            "name": self.name,
            "cpu": self.cpu,
            "features": sorted(self.features),
            "vector_bytes": self.vector_bytes,
            "supported_precisions": list(self.supported_precisions),
            "preferred_precisions": list(self.preferred_precisions),
            "devices": [{"kind": "cpu", "name": self.cpu}],
            "fusable_ops": sorted({*POINTWISE_OPS, *QUANT_OPS}),  # what epilogues compute (the `fuse` pass)
            "runtime_baseline_bytes": self.runtime_baseline_bytes,  # memory budgets (plan-memory)
        }

    def with_features(self, features: frozenset[str]) -> TargetDescription:
        """The same target with another feature set (vector width and precisions follow)."""
        return describe(self.name, self.cpu, features, source=self.source, triple=self.triple)


def describe(
    name: str,
    cpu: str,
    features: frozenset[str] | set[str] | tuple[str, ...],
    *,
    source: str,
    triple: str | None = None,
) -> TargetDescription:
    """A description whose derived facts (vector width, precisions) follow from `features`."""
    found = frozenset(features)
    supported, preferred = precisions_of(found, name)
    return TargetDescription(
        name=name,
        cpu=cpu,
        features=found,
        vector_bytes=vector_bytes(found, name),
        supported_precisions=supported,
        preferred_precisions=preferred,
        triple=triple,
        source=source,
    )


def llvm_host_cpu() -> str:
    """LLVM's name for this CPU (`tvm.target.codegen.llvm_get_system_cpu`; never "native")."""
    from tvm.target import codegen

    name = str(codegen.llvm_get_system_cpu())
    if not name or name == "generic":
        raise TargetError(
            "LLVM does not know this host CPU (it reports 'generic'); pass --cpu x86-64-v3 or the like"
        )
    return name


def host_target() -> TargetDescription:
    """This machine: LLVM's cpu name and the features /proc/cpuinfo lists."""
    cpu = host_cpu()
    name = TARGET_OF_ARCH.get(cpu.arch)
    if name is None:
        raise TargetError(f"no HAI target for this host's architecture {cpu.arch!r}")
    return describe(name, llvm_host_cpu(), frozenset(cpu.features), source="host")


def cpu_table_features(name: str, cpu: str) -> frozenset[str]:
    """The HAI features of `--cpu CPU` alone: a portable x86-64 level's, or LLVM's feature table for it."""
    if name == "x86" and cpu in X86_LEVEL_FEATURES:
        return frozenset(X86_LEVEL_FEATURES[cpu])
    if name == "x86":
        from targets.x86 import llvm_cpu_features

        return llvm_cpu_features(cpu)
    raise TargetError(f"target {name!r} does not take --cpu {cpu!r} yet (known: x86)")


def cpu_target(name: str, cpu: str) -> TargetDescription:
    """`--target NAME --cpu CPU`: a portable x86-64 level, or an LLVM cpu name with LLVM's features for it."""
    return describe(name, cpu, cpu_table_features(name, cpu), source=f"--cpu {cpu}")


def profile_target(recommended: Mapping[str, Any]) -> TargetDescription:
    """From a `hai doctor --scan` profile's `recommended` object (`{"target", "cpu", "features"}`)."""
    try:
        name, cpu, features = recommended["target"], recommended["cpu"], recommended["features"]
    except (KeyError, TypeError) as exc:
        raise TargetError(f"hardware profile has no complete 'recommended' target: missing {exc}") from exc
    if not name or not cpu:
        raise TargetError("hardware profile names no compile target ('recommended.target' is empty)")
    return describe(name, cpu, frozenset(features), source="hardware profile")
