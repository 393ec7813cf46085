"""Target descriptions: what the compiler knows about the machine it compiles for, as plain data.

Rule: a `TargetDescription` is a frozen value that a target module
(`TargetBackend.description`, targets/registry.py) builds from a cpu name and a
feature set, never by probing inside a pass; the facts derived from the features
(vector width and register count, precisions) come from that target's ISA rules.
It is the `TargetFacts` of ir/target_facts.py (one description of a target), with
the facts passes may lack made required and what only targets/ reads added;
`to_pass_context()` is its plain `TargetFacts`, which the driver puts in `ctx.target`
(passes never import `targets/`). Feature names are HAI's
(runtime/cpu_features.py); the LLVM spelling of each lives in the target module.
Imports `ir` and the standard library only.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from typing import Any

from ir.errors import HaiError
from ir.target_facts import TargetFacts

# 45.03 MiB (the largest of 5 runs less the artifact's terms, plus 1 MiB headroom), measured by
# bench/runtime_baseline.py on 2026-12-06 (x86-64 dev host, Intel Xeon with AMX, 2 threads) in a
# freshly made venv, as CI and a fresh install run it, after the OpenCL driver, guarded steps and the
# AMX tile-state request joined the runtime (earlier that day: 44.52 MiB; 2026-11-25: 44.43 MiB).
RUNTIME_BASELINE_BYTES = 47_221_328
"""The runtime's own resident memory beside an artifact's arena, weights, kernels and inputs/outputs:
peak RSS (VmHWM) of a fresh process that imports `runtime`, loads a trivial artifact and runs it once,
minus those terms. Measured by bench/runtime_baseline.py (never at compile time: artifacts stay
deterministic); --memory-budget plans add it (targets/plan/memory_budget.py)."""
# Measured by bench/runtime_baseline.py on 2026-12-06 (same host, fresh venv): 7645 bytes per one-call
# step (a recorded launch each), 8794 per step or page of a paged plan (2026-11-25: 2945 and 6208);
# re-measured later that day: 7276 at most, so the larger stays.
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


@dataclass(frozen=True, kw_only=True)
class TargetDescription(TargetFacts):
    """One compile target: the `TargetFacts` passes read, all known (family name `x86`/`arm64`, machine
    arch, LLVM cpu, HAI ISA features and the facts they give), and how it was made (`source`) and
    what the runtime costs per plan step, which only the planner reads."""

    name: str
    cpu: str  # LLVM cpu name ("znver4", "x86-64-v3", "cortex-a76")
    features: frozenset[str]
    vector_bytes: int
    vector_registers: int
    supported_precisions: tuple[str, ...] = ("f32",)
    runtime_baseline_bytes: int = RUNTIME_BASELINE_BYTES  # the runtime's own resident memory
    source: str = ""  # how it was made: "host", "--cpu znver4", "hardware profile"
    runtime_bytes_per_call: int = RUNTIME_BYTES_PER_CALL  # its state per plan step and weight page
    device: tuple[tuple[str, Any], ...] = ()  # a non-CPU device's facts (targets/opencl/profiles.py)

    @property
    def vector_lanes_f32(self) -> int:
        return self.vector_bytes // 4

    def to_pass_context(self) -> TargetFacts:
        """The typed facts passes read as `ctx.target`: these fields of TargetFacts, as a TargetFacts."""
        return TargetFacts(**{f.name: getattr(self, f.name) for f in fields(TargetFacts)})
