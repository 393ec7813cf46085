"""Loading TVM-compiled kernel libraries through TVM-FFI's C ABI; numpy arrays as kernel arguments.

A library from `export_library` calls TVM's backend (parallel launch,
workspace) through pointer slots that its loader must fill, so
`libtvm_runtime.so` is loaded first (RTLD_GLOBAL) and `KernelModule` points the
slots at its functions (an unfilled slot segfaults the first parallel kernel).

Which shared libraries the runtime loads from outside an artifact: `libtvm_ffi.so`
of the installed apache-tvm-ffi package (runtime/ffi_abi.py), and a TVM runtime
only (1) when one is already in the process (`import tvm` loads its own; a second
copy would abort the process), or (2) the file `$HAI_TVM_RUNTIME` names, an
explicit opt-in of whoever sets the environment. Otherwise an artifact's kernels
get the artifact's own `libtvm_runtime.so`, which the manifest lists and
runtime/artifact_files.py verified (`load_kernel_module(path, bundled)`). A
library loaded through the device API (`Device.load_executable(path)`, no
manifest) is the caller's choice, and so is its TVM runtime: after (1) and (2),
the one beside it, then the installed `tvm` package's (found with `find_spec`,
never imported). An artifact's files are loaded through the descriptors they were verified through
(runtime/fd_library.py), never by their path again.
Kernels are called through runtime/ffi_abi.py; the `tvm_ffi` Python package is
never imported. Vectorised kernels use aligned loads without checking, so every
array argument must be C-contiguous, writeable and 64-byte aligned:
`kernel_tensor` refuses the others instead of letting the process crash.
Kernels declare bf16 buffers as uint16 and i4 as uint8
(targets/lowering/pointwise.py `storage_dtype`), so `kernel_tensor` hands such
arrays over in that view.
"""

from __future__ import annotations

import ctypes
import importlib.util
import os
from collections.abc import Callable, Sequence
from pathlib import Path

import numpy as np

from runtime.errors import KernelError
from runtime.fd_library import OpenFile, load_library
from runtime.ffi_abi import (
    KTVMFFI_NONE,
    SAFE_CALL,
    FfiAny,
    FfiLibraryNotFound,
    dl_tensor,
    ffi_arguments,
    ffi_library,
    global_function_exists,
    raised_error,
)

RUNTIME_LIBRARY = "libtvm_runtime.so"
KERNEL_ALIGNMENT = 64
BACKEND_SLOTS = ("TVMBackendAllocWorkspace", "TVMBackendFreeWorkspace", "TVMBackendParallelLaunch")
"""libtvm_runtime functions a kernel library reaches through `__NAME` slots that its loader fills."""
_loaded_runtime: list[ctypes.CDLL] = []  # kept alive for the life of the process


def tvm_runtime_candidates(kernel_path: Path, bundled: Path | None = None) -> list[Path]:
    """Where `libtvm_runtime.so` may be, in the order they are tried (module doc): `$HAI_TVM_RUNTIME`,
    then an artifact's verified `bundled` copy and nothing else, or, without one, beside the kernel
    library and in the installed `tvm` package."""
    candidates = []
    if os.environ.get("HAI_TVM_RUNTIME"):
        candidates.append(Path(os.environ["HAI_TVM_RUNTIME"]))
    if bundled is not None:
        return [*candidates, bundled]
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
    return global_function_exists("runtime.NumThreads")


def ensure_tvm_runtime(kernel_path: Path, bundled: OpenFile | None = None) -> ctypes.CDLL:
    """The library with TVM's backend functions; loads `libtvm_runtime.so` (RTLD_GLOBAL) if none is,
    from `tvm_runtime_candidates(kernel_path, bundled)` (`bundled` through its open descriptor)."""
    try:
        ffi_library()  # libtvm_ffi must be loaded before libtvm_runtime
    except FfiLibraryNotFound as exc:
        raise KernelError(f"cannot load kernel library {kernel_path}: {exc}") from exc
    if _loaded_runtime:
        return _loaded_runtime[0]
    if tvm_runtime_already_loaded():
        return ctypes.CDLL(None)  # the process's global symbols (`import tvm` loads them RTLD_GLOBAL)
    bundled_path = bundled.path if bundled is not None else None
    candidates = tvm_runtime_candidates(kernel_path, bundled_path)
    for candidate in candidates:
        if candidate == bundled_path or candidate.is_file():
            try:
                _loaded_runtime.append(open_tvm_runtime(candidate, bundled))
            except OSError as exc:
                raise KernelError(f"{RUNTIME_LIBRARY} {candidate} failed to load: {exc}") from None
            return _loaded_runtime[0]
    tried = ", ".join(str(c) for c in candidates)
    raise KernelError(
        f"cannot load kernel library {kernel_path}: {RUNTIME_LIBRARY} not found (tried {tried}); "
        f"set HAI_TVM_RUNTIME to its path or place it beside the kernel library"
    )


def open_tvm_runtime(candidate: Path, bundled: OpenFile | None) -> ctypes.CDLL:
    """`candidate` loaded RTLD_GLOBAL; through its descriptor when it is the artifact's verified copy."""
    if bundled is not None and candidate == bundled.path:
        return load_library(bundled.fd, bundled.path, ctypes.RTLD_GLOBAL)
    return ctypes.CDLL(str(candidate), mode=ctypes.RTLD_GLOBAL)


class KernelTensor:
    """A numpy array as a kernel argument: the array (kept alive) and a DLTensor over its memory."""

    __slots__ = ("array", "header")

    def __init__(self, array: np.ndarray) -> None:
        self.array = array
        self.header = dl_tensor(array)

    def point_at(self, array: np.ndarray) -> None:
        """Re-point this argument at `array`, which must have the same shape and dtype (a bound input)."""
        self.array = array
        self.header.data = array.ctypes.data


class KernelFunction:
    """One exported kernel (`__tvm_ffi_NAME`) of a loaded library; call it with KernelTensors."""

    def __init__(self, module: KernelModule, name: str) -> None:
        self.module = module  # keeps the library loaded
        self.name = name
        self._call = SAFE_CALL((f"__tvm_ffi_{name}", module.library))

    def __call__(self, *args: KernelTensor | bool | int | float) -> None:
        self.bind(args)()

    def bind(self, tensors: Sequence[KernelTensor | bool | int | float]) -> Callable[[], None]:
        """A call of this kernel on `tensors` (and scalars), its argument array built once.

        A KernelTensor among them may be re-pointed (`point_at`) between calls.
        """
        args = ffi_arguments([t.header if isinstance(t, KernelTensor) else t for t in tensors])
        result = FfiAny()
        count = len(tensors)
        call = self._call

        def bound() -> None:
            result.type_index = KTVMFFI_NONE
            if call(None, args, count, ctypes.byref(result)) != 0:
                raise KernelError(f"kernel {self.name!r} failed: {raised_error()}")

        bound.tensors = tuple(tensors)  # type: ignore[attr-defined]  # kept alive with the call
        return bound


class KernelModule:
    """A kernel library loaded with ctypes, its backend slots pointed at TVM's runtime functions."""

    def __init__(self, path: Path, library: ctypes.CDLL, runtime_library: ctypes.CDLL) -> None:
        self.path = path
        self.library = library
        for name in BACKEND_SLOTS:
            try:
                slot = ctypes.c_void_p.in_dll(self.library, f"__{name}")
            except ValueError:
                continue  # a library whose kernels never call this function has no slot for it
            slot.value = ctypes.cast(getattr(runtime_library, name), ctypes.c_void_p).value

    def implements_function(self, name: str) -> bool:
        return hasattr(self.library, f"__tvm_ffi_{name}")

    def __getitem__(self, name: str) -> KernelFunction:
        return KernelFunction(self, name)


def load_kernel_module(
    path: str | os.PathLike[str], bundled: OpenFile | None = None, fd: int | None = None
) -> KernelModule:
    """The kernel library at `path`, with the TVM runtime loaded first (`bundled`: an artifact's
    verified `libtvm_runtime.so`, the only one tried besides `$HAI_TVM_RUNTIME`; module doc). With
    `fd`, the descriptor `path` was verified through, the library is loaded through it."""
    kernel_path = Path(path)
    if fd is None and not kernel_path.is_file():
        raise KernelError(f"kernel library {kernel_path} does not exist")
    runtime_library = ensure_tvm_runtime(kernel_path, bundled)
    try:
        library = ctypes.CDLL(str(kernel_path)) if fd is None else load_library(fd, kernel_path)
        return KernelModule(kernel_path, library, runtime_library)
    except OSError as exc:
        raise KernelError(f"kernel library {kernel_path} failed to load: {exc}") from exc


def kernel_function(module: KernelModule, path: str, entry: str) -> KernelFunction:
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


def kernel_tensor(array: np.ndarray, position: int, entry: str) -> KernelTensor:
    """A `KernelTensor` sharing `array`'s memory (in its `kernel_view`), after `check_kernel_array`."""
    check_kernel_array(array, position, entry)
    return KernelTensor(kernel_view(array))


def aligned_empty(
    shape: tuple[int, ...], dtype: np.dtype | str, alignment: int = KERNEL_ALIGNMENT
) -> np.ndarray:
    """An uninitialised C-contiguous array whose data address is a multiple of `alignment`."""
    dtype = np.dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
    raw = np.empty(nbytes + alignment, dtype=np.uint8)
    start = -raw.ctypes.data % alignment
    return raw[start:][:nbytes].view(dtype).reshape(shape)  # slicing twice keeps an empty slice aligned
