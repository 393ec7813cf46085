"""x86 through LLVM: HAI feature names to LLVM attributes, and the TVM target JSON for a description.

Rule: `mattr` pins every SIMD feature HAI knows, on or off (targets/llvm_features.py), so
a VM that hides AVX-512 from a znver4 host gets `-avx512f`. TVM is imported lazily.
"""

from __future__ import annotations

from typing import Any

from targets import llvm_features
from targets.description import TargetDescription

TRIPLE = "x86_64-linux-gnu"
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
    return llvm_features.llvm_cpu_features(
        "x86", TRIPLE, cpu, LLVM_FEATURES, "znver4, skylake-avx512, x86-64-v3"
    )


def mattr(features: frozenset[str]) -> list[str]:
    """`+feature` for each HAI feature present, `-feature` for each absent, in a fixed order."""
    return llvm_features.mattr(features, LLVM_FEATURES)


def tvm_target_json(desc: TargetDescription) -> dict[str, Any]:
    """The TVM target dict for `desc`: kind llvm, its cpu, every known feature pinned on or off."""
    return llvm_features.tvm_target_json(desc, LLVM_FEATURES)
