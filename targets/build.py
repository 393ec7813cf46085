"""Compiling lowered kernels into one shared library, through the on-disk kernel cache.

Rule: each distinct kernel (by name, which is derived from its workload) is
compiled alone by `tvm.compile` into an object file cached under its key; the
library is those objects linked in name order, cached under the key of the
whole set. Identical workloads therefore compile once, across models and runs,
and the same kernel set gives a byte-identical library. A library for an artifact
also links the object of its plan's digest (targets/digest_function.py), which is
then part of that key. The result loads with tvm_ffi alone
(runtime/kernel_library.py) once libtvm_runtime.so is loaded.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from targets.digest_function import digest_object
from targets.kernel_cache import cache_key, cached_file
from targets.lowering.kernel import LoweredKernel
from targets.target import TargetDescription


def tvm_target_of(desc: TargetDescription) -> dict:
    from targets.registry import get_target

    return get_target(desc.name).tvm_target(desc)


def linker_of(desc: TargetDescription) -> str | None:
    from targets.registry import get_target

    return get_target(desc.name).linker(desc)


def compile_object(kernel: LoweredKernel, target_json: dict, path: Path) -> None:
    """LLVM-compile one kernel into an object file at `path`."""
    import tvm

    module = tvm.IRModule({kernel.name: kernel.func.with_attr("global_symbol", kernel.name)})
    lib = tvm.compile(module, target=tvm.target.Target(target_json))
    lib.mod.write_to_file(str(path))


def kernel_object(kernel: LoweredKernel, desc: TargetDescription) -> tuple[Path, bool]:
    """The cached object file of one kernel (compiled now if missing) and whether it was a hit.

    The key covers the scheduled TensorIR text too, so a changed template or
    schedule never reuses a stale object (the workload alone names the kernel).
    """
    target_json = tvm_target_of(desc)
    tensor_ir = hashlib.sha256(kernel.func.script().encode()).hexdigest()
    key = cache_key({"name": kernel.name, "workload": kernel.workload, "tir": tensor_ir}, target_json)
    return cached_file(key, ".o", lambda tmp: compile_object(kernel, target_json, tmp))


def unique_kernels(kernels: Sequence[LoweredKernel]) -> list[LoweredKernel]:
    """One kernel per name, in name order (identical workloads share a name)."""
    return [k for _, k in sorted({k.name: k for k in kernels}.items())]


def kernel_objects(kernels: Sequence[LoweredKernel], desc: TargetDescription) -> list[Path]:
    """The cached object file of every distinct kernel of `kernels`, in name order."""
    return [kernel_object(k, desc)[0] for k in unique_kernels(kernels)]


def link_library(objects: Sequence[Path], desc: TargetDescription, digest: bytes | None = None) -> Path:
    """Path of the shared library linking `objects` and, given a plan `digest`, its `hai_plan_digest`
    object (cached under the key of the whole set)."""
    from tvm.support import cc

    target_json = tvm_target_of(desc)
    objects = [*objects, *([digest_object(digest, target_json)] if digest is not None else [])]
    key = cache_key({"library": [o.stem for o in objects]}, target_json)
    linker = linker_of(desc)
    path, _ = cached_file(
        key, ".so", lambda tmp: cc.create_shared(str(tmp), [str(o) for o in objects], cc=linker)
    )
    return path


def build_kernels(
    kernels: Sequence[LoweredKernel], desc: TargetDescription, digest: bytes | None = None
) -> Path:
    """Path of a shared library exporting every kernel in `kernels` under its name (cached), and the
    plan `digest` when given (an artifact's library needs it; runtime/plan_digest.py)."""
    return link_library(kernel_objects(kernels, desc), desc, digest)
