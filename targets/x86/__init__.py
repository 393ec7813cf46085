"""The x86 target module: x86-64 CPUs from SSE4.2 to AVX-512 through LLVM, kernels in one shared library.

Rule: everything x86-specific about compiling lives in this package: the ISA
facts of a feature set (`X86Target.isa`), the portable x86-64 levels and LLVM's
cpu tables (llvm.py), the VNNI intrinsic (vnni.py) and the schedules' knob rules
(schedules.py). The templates' computes (targets/lowering/) are shared by every
target and read these only through the description and the schedule table.
"""

from __future__ import annotations

from typing import Any, ClassVar

from runtime.cpu_features import X86_64_LEVELS, X86_FEATURES, CpuIdentity, host_cpu
from targets.description import IsaFacts, TargetDescription
from targets.registry import TargetBackend
from targets.schedules import ScheduleTable
from targets.target import llvm_host_cpu
from targets.x86.llvm import LLVM_FEATURES, llvm_cpu_features, mattr, tvm_target_json

__all__ = ["LLVM_FEATURES", "X86Target", "llvm_cpu_features", "mattr", "tvm_target_json"]

# Portable x86-64 levels as HAI feature names (the psABI levels; runtime/cpu_features.py has their flags).
X86_LEVEL_FEATURES: dict[str, tuple[str, ...]] = {
    level: tuple(sorted(name for name, flag in X86_FEATURES.items() if flag in flags))
    for level, flags in X86_64_LEVELS.items()
}
NAMED_CPUS = {
    "haswell": "Intel Haswell",
    "skylake-avx512": "Intel Skylake-SP",
    "icelake-server": "Intel Ice Lake-SP",
    "sapphirerapids": "Intel Sapphire Rapids",
    "znver3": "AMD Zen 3",
    "znver4": "AMD Zen 4",
    "znver5": "AMD Zen 5",
}
"""A few LLVM cpu models `hai targets` lists; `--cpu` takes any name LLVM knows for x86."""
FAST_INT8 = frozenset({"avx512_vnni", "avx_vnni"})
"""Features with an int8 dot-product instruction (vpdpbusd)."""


class X86Target(TargetBackend):
    """x86-64 CPUs through LLVM: SSE4.2 to AVX-512, kernels in one shared library."""

    name = "x86"
    triple = "x86_64-linux-gnu"
    channels_last = True
    precision_needs: ClassVar[dict[str, str]] = {
        "f16": "f16c or avx512_fp16", "bf16": "avx512_bf16 or amx_bf16",
    }  # fmt: skip

    def cpus(self) -> dict[str, str]:
        return {**dict.fromkeys(X86_LEVEL_FEATURES, "portable x86-64 psABI level"), **NAMED_CPUS}

    def cpu_features(self, cpu: str) -> frozenset[str]:
        if cpu in X86_LEVEL_FEATURES:
            return frozenset(X86_LEVEL_FEATURES[cpu])
        return llvm_cpu_features(cpu)

    def known_features(self) -> tuple[str, ...]:
        return tuple(X86_FEATURES)

    def isa(self, features: frozenset[str]) -> IsaFacts:
        """AVX-512: 32 x 64-byte registers; AVX/AVX2: 16 x 32 bytes; else 16 x 16 (SSE)."""
        if "avx512f" in features:
            width, registers = 64, 32
        elif features & {"avx2", "avx"}:
            width, registers = 32, 16
        else:
            width, registers = 16, 16
        supported, preferred = ["f32", "i8"], ["f32"]
        if features & FAST_INT8:
            preferred.append("i8")
        if features & {"f16c", "avx512_fp16"}:
            supported.append("f16")
        if features & {"avx512_bf16", "amx_bf16"}:
            supported.append("bf16")
        return IsaFacts(width, registers, tuple(supported), tuple(preferred))

    def composite_ops(self) -> frozenset[str]:
        """Attention: its fused template (targets/lowering/attention.py) is tuned on x86 only."""
        return frozenset({"FusedAttention"})

    def host_identity(self) -> CpuIdentity:
        return host_cpu()  # this module's name, so a test can pretend another host

    def host_cpu_name(self) -> str:
        return llvm_host_cpu()

    def tvm_target(self, desc: TargetDescription) -> dict[str, Any]:
        return tvm_target_json(desc)

    def schedules(self) -> ScheduleTable:
        from targets.x86.schedules import X86_SCHEDULES

        return X86_SCHEDULES
