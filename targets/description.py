"""Target descriptions: what the compiler knows about the machine it compiles for, as plain data.

Rule: a `TargetDescription` is a frozen value that a target module
(`TargetBackend.description`, targets/registry.py) builds from a cpu name and a
feature set, never by probing inside a pass; the facts derived from the features
(vector width and register count, precisions) come from that target's ISA rules.
`to_pass_context()` is the typed `TargetFacts` (ir/target_facts.py) the driver puts
in `ctx.target` (passes never import `targets/`). Feature names are HAI's
(runtime/cpu_features.py); the LLVM spelling of each lives in the target module.
Imports `ir` and the standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ir.errors import HaiError
from ir.target_facts import DeviceFacts, TargetFacts

# 44.52 MiB (the largest of 5 runs less the artifact's terms, plus 1 MiB headroom), measured by
# bench/runtime_baseline.py on 2026-12-06 (x86-64 dev host, Intel Xeon with AMX, 2 threads) in a
# freshly made venv, as CI and a fresh install run it: there numpy's and OpenBLAS's shared libraries
# map about 6 MiB more resident pages than in a venv whose library files were installed long ago.
# (2026-11-25, before signing, device drivers and verified descriptors: 44.43 MiB.)
RUNTIME_BASELINE_BYTES = 46_684_752
"""The runtime's own resident memory beside an artifact's arena, weights, kernels and inputs/outputs:
peak RSS (VmHWM) of a fresh process that imports `runtime`, loads a trivial artifact and runs it once,
minus those terms. Measured by bench/runtime_baseline.py (never at compile time: artifacts stay
deterministic); --memory-budget plans add it (targets/plan/memory_budget.py)."""
# Measured by bench/runtime_baseline.py on 2026-12-06 (same host, fresh venv): 7645 bytes per one-call
# step (a recorded launch each), 8794 per step or page of a paged plan (2026-11-25: 2945 and 6208).
RUNTIME_BYTES_PER_CALL = 8_794
"""The runtime's state per plan step and per weight page (parsed manifest, argument headers, page
bookkeeping), measured by bench/runtime_baseline.py (a chain of one-call steps); memory plans count
it for every step and page (targets/plan/memory_budget.py)."""


class TargetError(HaiError):
    """A target that cannot be described: unknown name, unknown CPU, a profile without a target."""


@dataclass(frozen=True)
class IsaFacts:
    """What a feature set gives kernels: widest vector, how many vector registers, precisions."""

    vector_bytes: int
    vector_registers: int
    supported_precisions: tuple[str, ...] = ("f32",)
    preferred_precisions: tuple[str, ...] = ("f32",)


@dataclass(frozen=True)
class TargetDescription:
    """One compile target: family name (`x86`, `arm64`), machine arch, LLVM cpu, HAI ISA features and
    the facts they give (vector width and register count, precisions)."""

    name: str
    cpu: str  # LLVM cpu name ("znver4", "x86-64-v3", "cortex-a76")
    features: frozenset[str]
    vector_bytes: int
    vector_registers: int
    supported_precisions: tuple[str, ...] = ("f32",)
    preferred_precisions: tuple[str, ...] = ("f32",)
    arch: str = ""  # machine arch the manifest records ("x86_64", "aarch64")
    triple: str | None = None  # None: LLVM's default for the host
    source: str = ""  # how it was made: "host", "--cpu znver4", "hardware profile"
    fusable_ops: frozenset[str] | None = field(default=None, repr=False)  # epilogue ops (`fuse` pass)
    runtime_baseline_bytes: int = RUNTIME_BASELINE_BYTES  # the runtime's own resident memory
    runtime_bytes_per_call: int = RUNTIME_BYTES_PER_CALL  # its state per plan step and weight page
    device: tuple[tuple[str, Any], ...] = ()  # a non-CPU device's facts (targets/opencl/profiles.py)
    buffer_alignment: int = 1  # device buffer-base alignment of arena offsets and weights (1: none)

    @property
    def vector_lanes_f32(self) -> int:
        return self.vector_bytes // 4

    def to_pass_context(self) -> TargetFacts:
        """The typed facts passes read as `ctx.target` (no TVM objects)."""
        return TargetFacts(
            name=self.name,
            arch=self.arch,
            triple=self.triple,
            cpu=self.cpu,
            features=self.features,
            vector_bytes=self.vector_bytes,
            vector_registers=self.vector_registers,
            supported_precisions=self.supported_precisions,
            preferred_precisions=self.preferred_precisions,
            devices=(DeviceFacts(kind="cpu", name=self.cpu),),
            fusable_ops=self.fusable_ops,
            runtime_baseline_bytes=self.runtime_baseline_bytes,  # memory budgets (plan-memory)
            buffer_alignment=self.buffer_alignment,  # plan-memory's offsets
        )
