"""The arm64 target module: AArch64 CPUs with NEON through LLVM, cross-compiled by Debian's aarch64 gcc.

Rule: everything aarch64-specific about compiling lives in this package: the HAI feature
names of an LLVM cpu model (`LLVM_FEATURES`: `neon dotprod i8mm fp16 bf16 sve sve2`, LLVM's
`fullfp16` is HAI's `fp16`), the ISA facts (NEON: 32 registers of 16 bytes; an SVE cpu is
still scheduled as NEON, its vector length unknown until run time), the schedules' knob
rules (schedules.py) and the pinned aarch64 libtvm_runtime.so the artifact carries
(tvm_runtime.py). Compiled on another arch with no `--cpu`, the cpu is `DEFAULT_CPU`
(cortex-a72: the ARMv8-A NEON baseline, so the kernels run on every aarch64 cpu HAI
supports); on an aarch64 host it is the host's, as LLVM names it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar

from runtime.cpu_features import ARM_FEATURES
from targets import llvm_features
from targets.description import IsaFacts, TargetDescription, TargetError
from targets.registry import TargetBackend, target_of_arch
from targets.schedules import ScheduleTable
from targets.target import llvm_host_cpu

TRIPLE = "aarch64-linux-gnu"
DEFAULT_CPU = "cortex-a72"
"""The cpu of `--target arm64` without `--cpu` on a host of another arch."""
LLVM_FEATURES: dict[str, str] = {
    "neon": "neon",
    "fp16": "fullfp16",
    "dotprod": "dotprod",
    "i8mm": "i8mm",
    "bf16": "bf16",
    "sve": "sve",
    "sve2": "sve2",
}
"""HAI feature name (runtime/cpu_features.py ARM_FEATURES) -> LLVM aarch64 subtarget feature."""
NAMED_CPUS = {
    "cortex-a53": "Arm Cortex-A53 (NEON; Raspberry Pi 3)",
    "cortex-a55": "Arm Cortex-A55 (dotprod, fp16)",
    "cortex-a72": "Arm Cortex-A72 (NEON; Raspberry Pi 4; the default when cross-compiling)",
    "cortex-a76": "Arm Cortex-A76 (dotprod, fp16; Raspberry Pi 5)",
    "neoverse-n1": "Arm Neoverse N1 (dotprod, fp16; AWS Graviton2)",
    "neoverse-v1": "Arm Neoverse V1 (i8mm, bf16, SVE; AWS Graviton3)",
    "neoverse-n2": "Arm Neoverse N2 (i8mm, bf16, SVE2)",
    "apple-m1": "Apple M1 (dotprod, fp16)",
}
"""A few LLVM cpu models `hai targets` lists; `--cpu` takes any name LLVM knows for aarch64."""
NEON_BYTES, NEON_REGISTERS = 16, 32


class Arm64Target(TargetBackend):
    """AArch64 CPUs with NEON through LLVM, kernels in one shared library linked by the cross gcc."""

    name = "arm64"
    triple = TRIPLE
    channels_last = True
    precision_needs: ClassVar[dict[str, str]] = {"f16": "fp16", "bf16": "bf16"}

    def cpus(self) -> dict[str, str]:
        return dict(NAMED_CPUS)

    def cpu_features(self, cpu: str) -> frozenset[str]:
        hint = "cortex-a72, cortex-a76, neoverse-n1"
        return llvm_features.llvm_cpu_features("arm64", TRIPLE, cpu, LLVM_FEATURES, hint)

    def known_features(self) -> tuple[str, ...]:
        assert set(LLVM_FEATURES) == set(ARM_FEATURES), "each Arm feature the runtime reads is a target's"
        return tuple(LLVM_FEATURES)

    def isa(self, features: frozenset[str]) -> IsaFacts:
        """NEON: 32 x 16-byte registers; int8 preferred where dotprod; f16 where fp16; bf16 where bf16."""
        supported, preferred = ["f32", "i8"], ["f32"]
        if "dotprod" in features:
            preferred.append("i8")
        if "fp16" in features:
            supported.append("f16")
        if "bf16" in features:
            supported.append("bf16")
        return IsaFacts(NEON_BYTES, NEON_REGISTERS, tuple(supported), tuple(preferred))

    def host(self) -> TargetDescription:
        """This aarch64 host, or `DEFAULT_CPU` when compiling on another arch (see the module rule)."""
        if target_of_arch(self.host_identity().arch) == self.name:
            return super().host()
        return self.description(
            DEFAULT_CPU, self.cpu_features(DEFAULT_CPU), source=f"--cpu {DEFAULT_CPU} (default for arm64)"
        )

    def host_cpu_name(self) -> str:
        """LLVM's name of this aarch64 cpu, else the one its Arm part number gives (cpu_features.py)."""
        try:
            return llvm_host_cpu()
        except TargetError:
            part = self.host_identity().arm_cpu
            if part is None:
                raise
            return part

    def tvm_target(self, desc: TargetDescription) -> dict[str, Any]:
        return llvm_features.tvm_target_json(desc, LLVM_FEATURES)

    def schedules(self) -> ScheduleTable:
        from targets.arm64.schedules import ARM64_SCHEDULES

        return ARM64_SCHEDULES

    def tvm_runtime(self, desc: TargetDescription) -> Path | None:
        """The pinned aarch64 libtvm_runtime.so (targets/arm64/tvm_runtime.py); None on an aarch64 host,
        whose installed TVM is the aarch64 one."""
        if desc.triple is None:
            return None
        from targets.arm64.tvm_runtime import aarch64_tvm_runtime

        return aarch64_tvm_runtime()
