"""The LLVM build of kernels: each compiled alone into a cached object file, linked into one shared library.

Rule: each distinct kernel (by name, which is derived from its workload) is
compiled alone by `tvm.compile` for a TVM target JSON into an object file cached
under its key; the library is those objects linked in name order by the given
C compiler (None: the host's `cc`), cached under the key of the whole set.
Identical workloads therefore compile once, across models and runs, and the same
kernel set gives a byte-identical library. A library for an artifact also links
the object of its plan's digest (targets/digest_function.py), which is then part
of that key. This module knows no target: its caller (a `TargetBackend`'s
`build`, or targets/build.py for a description) passes the JSON and the linker.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from pathlib import Path

from targets.digest_function import digest_object
from targets.kernel_cache import cache_key, cached_file
from targets.lowering.kernel import LoweredKernel, LoweringError


def compile_object(kernel: LoweredKernel, target_json: dict, path: Path) -> None:
    """LLVM-compile one kernel into an object file at `path`."""
    import tvm

    module = tvm.IRModule({kernel.name: kernel.func.with_attr("global_symbol", kernel.name)})
    lib = tvm.compile(module, target=tvm.target.Target(target_json))
    lib.mod.write_to_file(str(path))


def kernel_object(kernel: LoweredKernel, target_json: dict) -> tuple[Path, bool]:
    """The cached object file of one kernel (compiled now if missing) and whether it was a hit.

    The key covers the scheduled TensorIR text too, so a changed template or
    schedule never reuses a stale object (the workload alone names the kernel).
    """
    tensor_ir = hashlib.sha256(kernel.func.script().encode()).hexdigest()
    key = cache_key({"name": kernel.name, "workload": kernel.workload, "tir": tensor_ir}, target_json)
    return cached_file(key, ".o", lambda tmp: compile_object(kernel, target_json, tmp))


def unique_kernels(kernels: Sequence[LoweredKernel]) -> list[LoweredKernel]:
    """One kernel per name, in name order (identical workloads share a name). Two kernels of one name
    but different functions are a template whose workload misses a parameter of its function: a
    `LoweringError` naming both, never one silently standing in for the other."""
    from tvm_ffi import structural_hash

    chosen: dict[str, LoweredKernel] = {}
    for kernel in kernels:
        first = chosen.setdefault(kernel.name, kernel)
        if first is not kernel and first.func is not kernel.func:
            if structural_hash(first.func) != structural_hash(kernel.func):
                raise LoweringError(
                    f"kernels of {', '.join(first.sources)} and of {', '.join(kernel.sources)} share the "
                    f"name {kernel.name} but not their function: their template's workload misses a parameter"
                )
    return [k for _, k in sorted(chosen.items())]


def kernel_objects(kernels: Sequence[LoweredKernel], target_json: dict) -> list[Path]:
    """The cached object file of every distinct kernel of `kernels`, in name order."""
    return [kernel_object(k, target_json)[0] for k in unique_kernels(kernels)]


def link_library(
    objects: Sequence[Path], target_json: dict, linker: str | None, digest: bytes | None = None
) -> Path:
    """Path of the shared library linking `objects` and, given a plan `digest`, its `hai_plan_digest`
    object (cached under the key of the whole set)."""
    from tvm.support import cc

    objects = [*objects, *([digest_object(digest, target_json)] if digest is not None else [])]
    key = cache_key({"library": [o.stem for o in objects]}, target_json)
    path, _ = cached_file(
        key, ".so", lambda tmp: cc.create_shared(str(tmp), [str(o) for o in objects], cc=linker)
    )
    return path
