"""Target facts: what passes may know about the machine they compile for, as one typed, plain value.

Rule: `TargetFacts` is frozen plain data (strings, numbers, tuples, frozensets), defined
here so passes read it without importing `targets/`; `targets/`' TargetDescription is a
TargetFacts with every fact known (and what only targets/ reads), whose
`to_pass_context()` gives this plain value, and the driver hands it to passes as
`PassContext.target`. A field left at its default means "not known": `TargetFacts()` is
"no target", and each pass then uses its own documented default. Feature names are
HAI's (runtime/cpu_features.py); precisions are "f32", "f16", "bf16", "i8".
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class DeviceFacts:
    """One device a target's kernels run on: its HAI driver kind ("cpu") and its name."""

    kind: str
    name: str


@dataclass(frozen=True)
class TargetFacts:
    """The facts passes read about a compile target (all optional: a default means unknown).

    - `name`, `arch`, `triple`, `cpu`: the HAI target (`x86`), machine arch (`x86_64`),
      LLVM triple and cpu model (`znver4`, `x86-64-v3`).
    - `features`: HAI ISA feature names the kernels may use.
    - `vector_bytes`, `vector_registers`: the widest SIMD register and how many of them.
    - `supported_precisions`: kernel precisions the target computes at all (None: no limit known);
      `preferred_precisions`: those it computes fast (i8 there = an int8 dot-product instruction).
    - `cache_bytes`: (level name, bytes) pairs where known, e.g. (("L1d", 49152), ("L2", 2097152)).
    - `devices`: where kernels run.
    - `fusable_ops`, `fusion_anchors`: ops the target's kernels compute as a fused epilogue,
      and ops whose kernels take one (None: the `fuse` pass's defaults).
    - `composite_ops`: HAI composite ops (no ONNX op of their own, e.g. `Attention`) the target's
      kernels compute; a pass that forms one runs only where it is listed (none when no target is
      known: a graph prepared without one, e.g. for `hai quantize`, may be compiled for any target).
    - `runtime_baseline_bytes`: the runtime's own resident memory beside an artifact (memory budgets).
    - `channels_last_dense`: dense convs whose output channels fill whole vectors run faster
      channels-last even where their NCHW output rows are whole vectors (measured per CPU class,
      targets/cost_model.py; the `layout` pass); False: only where the NCHW rows cannot be vectors.
    - `buffer_alignment`: bytes the device needs every buffer's base aligned to (OpenCL's
      CL_DEVICE_MEM_BASE_ADDR_ALIGN); `plan-memory` aligns offsets to at least this (1: no such device).
    """

    name: str = ""
    arch: str = ""
    triple: str | None = None
    cpu: str = ""
    features: frozenset[str] = frozenset()
    vector_bytes: int | None = None
    vector_registers: int | None = None
    supported_precisions: tuple[str, ...] | None = None
    preferred_precisions: tuple[str, ...] = ("f32",)
    cache_bytes: tuple[tuple[str, int], ...] = ()
    devices: tuple[DeviceFacts, ...] = ()
    fusable_ops: frozenset[str] | None = None
    fusion_anchors: frozenset[str] | None = None
    composite_ops: frozenset[str] = frozenset()
    runtime_baseline_bytes: int = 0
    buffer_alignment: int = 1
    channels_last_dense: bool = False

    @property
    def vector_lanes_f32(self) -> int | None:
        """float32 lanes of one vector register (None when the width is not known)."""
        return None if self.vector_bytes is None else self.vector_bytes // 4

    def supports(self, precision: str) -> bool:
        """Whether kernels of `precision` exist for the target (True when nothing limits them)."""
        return self.supported_precisions is None or precision in self.supported_precisions
