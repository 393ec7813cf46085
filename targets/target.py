"""Target descriptions by name (this host, `--cpu CPU`), from whichever target module owns them.

Rule: these constructors hold no ISA knowledge; each asks the target module
(targets/registry.py) that owns the name or this host's arch. The description
type and its error live in targets/description.py; this module re-exports them
for the templates. TVM is imported lazily, only to ask LLVM for the host CPU name.
"""

from __future__ import annotations

from runtime.cpu_features import host_cpu
from targets.description import (
    RUNTIME_BASELINE_BYTES,
    RUNTIME_BYTES_PER_CALL,
    IsaFacts,
    TargetDescription,
    TargetError,
)
from targets.registry import get_target, target_of_arch

__all__ = [
    "RUNTIME_BASELINE_BYTES",
    "RUNTIME_BYTES_PER_CALL",
    "IsaFacts",
    "TargetDescription",
    "TargetError",
    "cpu_table_features",
    "cpu_target",
    "host_target",
    "llvm_host_cpu",
]


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
    """This machine, described by the target module of its arch."""
    arch = host_cpu().arch
    name = target_of_arch(arch)
    if name is None:
        raise TargetError(f"no HAI target for this host's architecture {arch!r}")
    return get_target(name).host()


def cpu_table_features(name: str, cpu: str) -> frozenset[str]:
    """The HAI features of `--target NAME --cpu CPU` alone (an ISA level's, or LLVM's table for a model)."""
    return get_target(name).cpu_features(cpu)


def cpu_target(name: str, cpu: str) -> TargetDescription:
    """`--target NAME --cpu CPU`: the description with the features of `cpu`'s table."""
    backend = get_target(name)
    return backend.description(cpu, backend.cpu_features(cpu), source=f"--cpu {cpu}")
