"""Building lowered kernels for a target description: its target module says how.

Rule: `build_kernels` hands the kernels to the `TargetBackend` of the description
(targets/registry.py), which owns how its kernels are built; the LLVM steps the
compile driver reports one by one (`kernel_object`, `link_library`) ask that
backend for the TVM target JSON and the linker and run targets/llvm_build.py.
The result loads with tvm_ffi alone (runtime/kernel_library.py) once
libtvm_runtime.so is loaded.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from targets import llvm_build
from targets.description import TargetDescription
from targets.lowering.kernel import LoweredKernel
from targets.registry import get_target


def tvm_target_of(desc: TargetDescription) -> dict:
    return get_target(desc.name).tvm_target(desc)


def linker_of(desc: TargetDescription) -> str | None:
    return get_target(desc.name).linker(desc)


def kernel_object(kernel: LoweredKernel, desc: TargetDescription) -> tuple[Path, bool]:
    """The cached object file of one kernel for `desc` (compiled now if missing) and whether it was a hit."""
    return llvm_build.kernel_object(kernel, tvm_target_of(desc))


def kernel_objects(kernels: Sequence[LoweredKernel], desc: TargetDescription) -> list[Path]:
    """The cached object file of every distinct kernel of `kernels`, in name order."""
    return llvm_build.kernel_objects(kernels, tvm_target_of(desc))


def link_library(objects: Sequence[Path], desc: TargetDescription, digest: bytes | None = None) -> Path:
    """Path of the shared library for `desc` linking `objects` and, given a plan `digest`, its
    `hai_plan_digest` object (cached under the key of the whole set)."""
    return llvm_build.link_library(objects, tvm_target_of(desc), linker_of(desc), digest)


def build_kernels(
    kernels: Sequence[LoweredKernel], desc: TargetDescription, digest: bytes | None = None
) -> Path:
    """Path of a shared library exporting every kernel in `kernels` under its name (cached), and the
    plan `digest` when given (an artifact's library needs it; runtime/plan_digest.py)."""
    return get_target(desc.name).build(kernels, desc, digest)
