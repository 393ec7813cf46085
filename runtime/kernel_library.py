"""Loading TVM-compiled kernel libraries with tvm_ffi alone, and turning numpy arrays into kernel arguments.

A library from `export_library` needs `libtvm_runtime.so` loaded first with
RTLD_GLOBAL (it fills the kernel's parallel-launch and workspace slots; without
it a parallel kernel segfaults); when one is already loaded (`import tvm` loads its own) it is
reused, since a second copy aborts the process. Otherwise it is looked for, in order: `$HAI_TVM_RUNTIME`,
beside the kernel library (artifacts ship it), then inside an installed `tvm`
package, located with `find_spec` and never imported. Vectorised kernels use
aligned loads without checking, so every array argument must be C-contiguous,
writeable and 64-byte aligned: `kernel_tensor` refuses the others instead of
letting the process crash. Kernels declare bf16 buffers as uint16 and i4 as
uint8 (targets/lowering/pointwise.py `storage_dtype`), so `kernel_tensor`
hands such arrays over in that view. `tvm_ffi` is imported lazily, only when a kernel is used.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
from pathlib import Path
from typing import Any

import numpy as np

from runtime.errors import KernelError

TORCH_WARNING = (
    "torch is installed in this Python environment: importing tvm_ffi imports it too "
    "(about +185 MB resident and +0.9 s per process). Run HAI artifacts from an "
    "environment without torch (the `hai pack` bundle or the `runtime` extra)."
)

RUNTIME_LIBRARY = "libtvm_runtime.so"
KERNEL_ALIGNMENT = 64
_loaded_runtime: list[ctypes.CDLL] = []  # kept alive for the life of the process


def import_tvm_ffi() -> Any:
    """Import tvm_ffi, warning once (TorchInEnvironmentWarning) when torch would come with it."""
    import sys
    import warnings

    if "tvm_ffi" not in sys.modules and importlib.util.find_spec("torch") is not None:
        warnings.warn(TORCH_WARNING, TorchInEnvironmentWarning, stacklevel=3)
    import tvm_ffi

    return tvm_ffi


class TorchInEnvironmentWarning(UserWarning):
    """torch is importable where the runtime runs, so tvm_ffi drags it into the process."""


def tvm_runtime_candidates(kernel_path: Path) -> list[Path]:
    """Where `libtvm_runtime.so` may be, in the order they are tried."""
    candidates = []
    if os.environ.get("HAI_TVM_RUNTIME"):
        candidates.append(Path(os.environ["HAI_TVM_RUNTIME"]))
    candidates.append(kernel_path.parent / RUNTIME_LIBRARY)
    spec = importlib.util.find_spec("tvm")  # finds the package without importing the compiler
    if spec is not None and spec.submodule_search_locations:
        candidates += [Path(p) / "lib" / RUNTIME_LIBRARY for p in spec.submodule_search_locations]
    return candidates


def tvm_runtime_already_loaded() -> bool:
    """True when some `libtvm_runtime.so` is in the process already (e.g. `import tvm` loaded the compiler's).

    A second copy loaded from another path would register TVM's global functions twice and abort
    the process, so an artifact's own copy is used only where no TVM runtime is present yet.
    """
    tvm_ffi = import_tvm_ffi()

    return tvm_ffi.get_global_func("runtime.NumThreads", allow_missing=True) is not None


def ensure_tvm_runtime(kernel_path: Path) -> Path | None:
    """Load `libtvm_runtime.so` once per process (RTLD_GLOBAL); the path loaded, None if already done."""
    if _loaded_runtime or tvm_runtime_already_loaded():
        return None
    candidates = tvm_runtime_candidates(kernel_path)
    for candidate in candidates:
        if candidate.is_file():
            import_tvm_ffi()  # libtvm_ffi must be loaded before libtvm_runtime

            _loaded_runtime.append(ctypes.CDLL(str(candidate), mode=ctypes.RTLD_GLOBAL))
            return candidate
    tried = ", ".join(str(c) for c in candidates)
    raise KernelError(
        f"cannot load kernel library {kernel_path}: {RUNTIME_LIBRARY} not found (tried {tried}); "
        f"set HAI_TVM_RUNTIME to its path or place it beside the kernel library"
    )


def load_kernel_module(path: str | os.PathLike[str]) -> Any:
    """A `tvm_ffi.Module` for the shared library at `path`, with the TVM runtime loaded first."""
    kernel_path = Path(path)
    if not kernel_path.is_file():
        raise KernelError(f"kernel library {kernel_path} does not exist")
    ensure_tvm_runtime(kernel_path)
    tvm_ffi = import_tvm_ffi()

    try:
        return tvm_ffi.load_module(str(kernel_path))
    except Exception as exc:  # tvm_ffi raises its own error types for bad libraries
        raise KernelError(f"kernel library {kernel_path} failed to load: {exc}") from exc


def kernel_function(module: Any, path: str, entry: str) -> Any:
    """The function `entry` of a loaded kernel module, or a `KernelError` naming the library."""
    if not module.implements_function(entry):
        raise KernelError(f"kernel library {path} has no kernel named {entry!r}")
    return module[entry]


def check_kernel_array(array: np.ndarray, position: int, entry: str) -> None:
    """Refuse an array a vectorised kernel could crash on: non-contiguous, read-only or misaligned."""
    where = f"argument #{position} of kernel {entry!r}"
    if not array.flags.c_contiguous:
        raise KernelError(
            f"{where} is not C-contiguous; pass np.ascontiguousarray(...) or a device buffer view"
        )
    if not array.flags.writeable:
        raise KernelError(f"{where} is read-only; map weight files copy-on-write (mmap.ACCESS_COPY)")
    if array.size and array.ctypes.data % KERNEL_ALIGNMENT:
        raise KernelError(
            f"{where} is not {KERNEL_ALIGNMENT}-byte aligned (address % {KERNEL_ALIGNMENT} = "
            f"{array.ctypes.data % KERNEL_ALIGNMENT}); allocate it on the device or with aligned_empty()"
        )


KERNEL_VIEWS: dict[str, np.dtype] = {"bfloat16": np.dtype(np.uint16), "int4": np.dtype(np.uint8)}
"""Dtypes DLPack cannot carry, and the same-bytes view kernels declare for them (bf16 bits, i4 bytes)."""


def kernel_view(array: np.ndarray) -> np.ndarray:
    """`array` as kernels see it: bf16 as uint16 and i4 as uint8 (same bytes), any other dtype unchanged."""
    view = KERNEL_VIEWS.get(array.dtype.name)
    return array if view is None else array.view(dtype=view)


def kernel_tensor(array: np.ndarray, position: int, entry: str) -> Any:
    """A `tvm_ffi.Tensor` sharing `array`'s memory (in its `kernel_view`), after `check_kernel_array`."""
    check_kernel_array(array, position, entry)
    tvm_ffi = import_tvm_ffi()

    return tvm_ffi.from_dlpack(kernel_view(array))


def aligned_empty(
    shape: tuple[int, ...], dtype: np.dtype | str, alignment: int = KERNEL_ALIGNMENT
) -> np.ndarray:
    """An uninitialised C-contiguous array whose data address is a multiple of `alignment`."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + alignment, dtype=np.uint8)
    start = -raw.ctypes.data % alignment
    return raw[start:][:nbytes].view(dtype).reshape(shape)  # slicing twice keeps an empty slice aligned
