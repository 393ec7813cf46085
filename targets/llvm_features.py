"""HAI feature names <-> LLVM subtarget features, and the TVM target JSON of an LLVM CPU target.

Rule: each LLVM target module (targets/x86/llvm.py, targets/arm64/__init__.py) owns one table
`HAI name -> LLVM feature` and passes it here. TVM 0.27 takes targets as JSON dicts
(`{"kind": "llvm", "mtriple": ..., "mcpu": ..., "mattr": [...]}`; strings are rejected) and
`"mcpu": "native"` silently means a generic cpu, so the cpu is always a real LLVM name. `mattr`
pins every feature of the table, on or off, so a kernel never uses an instruction the
description does not list. TVM is imported lazily.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from targets.description import TargetDescription, TargetError


def llvm_cpu_features(
    target: str, triple: str, cpu: str, table: Mapping[str, str], hint: str
) -> frozenset[str]:
    """The HAI features (keys of `table`) LLVM enables for cpu `cpu` of `triple`; a TargetError naming
    the target and `hint` (a few good names) for a cpu LLVM does not know there."""
    import tvm
    from tvm.target import codegen

    if not codegen.llvm_is_valid_cpu(cpu, triple):
        raise TargetError(f"LLVM does not know the {target} cpu {cpu!r} (try {hint})")
    target = tvm.target.Target({"kind": "llvm", "mtriple": triple, "mcpu": cpu})
    llvm = set(codegen.llvm_get_cpu_features(target))
    return frozenset(hai for hai, name in table.items() if name in llvm)


def mattr(features: frozenset[str], table: Mapping[str, str]) -> list[str]:
    """`+feature` for each HAI feature of `table` present, `-feature` for each absent, in table order."""
    return [("+" if hai in features else "-") + name for hai, name in table.items()]


def tvm_target_json(desc: TargetDescription, table: Mapping[str, str]) -> dict[str, Any]:
    """The TVM target dict for `desc`: kind llvm, its cpu, every feature of `table` pinned on or off,
    and its triple when cross-compiling."""
    target: dict[str, Any] = {"kind": "llvm", "mcpu": desc.cpu, "mattr": mattr(desc.features, table)}
    if desc.triple:
        target["mtriple"] = desc.triple
    return target
