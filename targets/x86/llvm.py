"""x86 through LLVM: HAI feature names to LLVM attributes, and the TVM target JSON for a description.

Rule: TVM 0.27 takes targets as JSON dicts (`{"kind": "llvm", "mcpu": ..., "mattr": [...]}`;
strings are rejected) and `"mcpu": "native"` silently means generic x86-64, so the
cpu is always a real LLVM name. `mattr` pins every SIMD feature HAI knows, on or
off, so a kernel never uses an instruction the description does not list (a VM
that hides AVX-512 from a znver4 host gets `-avx512f`). TVM is imported lazily.
"""

from __future__ import annotations

from typing import Any

from targets.description import TargetDescription, TargetError

# HAI feature name -> LLVM subtarget feature.
LLVM_FEATURES: dict[str, str] = {
    "sse4.2": "sse4.2",
    "avx": "avx",
    "avx2": "avx2",
    "fma": "fma",
    "f16c": "f16c",
    "avx512f": "avx512f",
    "avx512bw": "avx512bw",
    "avx512vl": "avx512vl",
    "avx512dq": "avx512dq",
    "avx512cd": "avx512cd",
    "avx512_vnni": "avx512vnni",
    "avx512_bf16": "avx512bf16",
    "avx512_fp16": "avx512fp16",
    "avx_vnni": "avxvnni",
    "amx": "amx-tile",
    "amx_bf16": "amx-bf16",
    "amx_int8": "amx-int8",
}


def llvm_cpu_features(cpu: str) -> frozenset[str]:
    """The HAI features LLVM enables for cpu name `cpu`; a TargetError for a name LLVM does not know."""
    import tvm
    from tvm.target import codegen

    if not codegen.llvm_is_valid_cpu(cpu, "x86_64-linux-gnu"):
        raise TargetError(f"LLVM does not know the x86 cpu {cpu!r} (try znver4, skylake-avx512, x86-64-v3)")
    target = tvm.target.Target({"kind": "llvm", "mcpu": cpu})
    llvm = set(codegen.llvm_get_cpu_features(target))
    return frozenset(hai for hai, name in LLVM_FEATURES.items() if name in llvm)


def mattr(features: frozenset[str]) -> list[str]:
    """`+feature` for each HAI feature present, `-feature` for each absent, in a fixed order."""
    return [("+" if hai in features else "-") + name for hai, name in LLVM_FEATURES.items()]


def tvm_target_json(desc: TargetDescription) -> dict[str, Any]:
    """The TVM target dict for `desc`: kind llvm, its cpu, every known feature pinned on or off."""
    target: dict[str, Any] = {"kind": "llvm", "mcpu": desc.cpu, "mattr": mattr(desc.features)}
    if desc.triple:
        target["mtriple"] = desc.triple
    return target
