"""TVM-FFI's stable C ABI through ctypes: DLTensor, TVMFFIAny, calling an exported kernel, raised errors.

Rule: the runtime calls compiled code through the C ABI of `libtvm_ffi.so`
(include/tvm/ffi/c_api.h of the apache-tvm-ffi package) and never imports the
`tvm_ffi` Python package: that package pulls ml_dtypes, hashlib/OpenSSL,
logging, email and its Cython core into every process (about 18 MB resident,
and torch too where torch is installed), none of which running a kernel needs.
The library is found with `find_spec("tvm_ffi")` (no import) and loaded once,
RTLD_GLOBAL, so `libtvm_runtime.so` and kernel libraries resolve against it.

A kernel `NAME` compiled by TVM is the symbol `__tvm_ffi_NAME` of type
`int (void* self, const TVMFFIAny* args, int32_t num_args, TVMFFIAny* result)`;
each array argument is a `kTVMFFIDLTensorPtr` pointing at a compact CPU
`DLTensor` (strides NULL). A non-zero return leaves an error object in
thread-local storage: `raised_error()` moves it out and reads its kind and message.
"""

from __future__ import annotations

import ctypes
import importlib.util
from pathlib import Path

import numpy as np

FFI_LIBRARY = "libtvm_ffi.so"
KDL_CPU = 1
KTVMFFI_NONE = 0
KTVMFFI_INT = 1
KTVMFFI_BOOL = 2
KTVMFFI_FLOAT = 3
KTVMFFI_DLTENSOR_PTR = 7
OBJECT_HEADER_BYTES = 24  # TVMFFIObject: u64 ref counts, i32 type index, u32 padding, deleter pointer

DLPACK_TYPE_CODES = {"i": 0, "u": 1, "f": 2, "b": 6}  # kDLInt, kDLUInt, kDLFloat, kDLBool (numpy's DLPack)


class DLDevice(ctypes.Structure):
    _fields_ = [("device_type", ctypes.c_int32), ("device_id", ctypes.c_int32)]


class DLDataType(ctypes.Structure):
    _fields_ = [("code", ctypes.c_uint8), ("bits", ctypes.c_uint8), ("lanes", ctypes.c_uint16)]


class DLTensor(ctypes.Structure):
    """DLPack's tensor header: data pointer, device, rank, dtype, shape, strides (NULL: compact), offset."""

    _fields_ = [
        ("data", ctypes.c_void_p),
        ("device", DLDevice),
        ("ndim", ctypes.c_int32),
        ("dtype", DLDataType),
        ("shape", ctypes.POINTER(ctypes.c_int64)),
        ("strides", ctypes.POINTER(ctypes.c_int64)),
        ("byte_offset", ctypes.c_uint64),
    ]


class FfiPayload(ctypes.Union):
    _fields_ = [("v_int64", ctypes.c_int64), ("v_float64", ctypes.c_double), ("v_ptr", ctypes.c_void_p)]


class FfiAny(ctypes.Structure):
    """TVMFFIAny: a type index, four bytes of padding and an 8-byte payload (integer, float or pointer)."""

    _anonymous_ = ("payload",)
    _fields_ = [("type_index", ctypes.c_int32), ("zero_padding", ctypes.c_uint32), ("payload", FfiPayload)]


class ByteArray(ctypes.Structure):
    _fields_ = [("data", ctypes.c_void_p), ("size", ctypes.c_size_t)]


class ErrorCell(ctypes.Structure):
    """The head of TVMFFIErrorCell, which follows the object header of an Error object."""

    _fields_ = [("kind", ByteArray), ("message", ByteArray)]


SAFE_CALL = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.c_void_p, ctypes.POINTER(FfiAny), ctypes.c_int32, ctypes.POINTER(FfiAny)
)

_library: list[ctypes.CDLL] = []  # libtvm_ffi.so, loaded once per process


class FfiLibraryNotFound(RuntimeError):
    """No `libtvm_ffi.so`: the apache-tvm-ffi package is not installed where the runtime runs."""


def ffi_library_path() -> Path:
    """Where the installed apache-tvm-ffi package keeps `libtvm_ffi.so` (found without importing it)."""
    spec = importlib.util.find_spec("tvm_ffi")
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    for location in locations:
        candidate = Path(location) / "lib" / FFI_LIBRARY
        if candidate.is_file():
            return candidate
    raise FfiLibraryNotFound(
        f"{FFI_LIBRARY} not found: install the apache-tvm-ffi package (pip install 'hai-compiler[runtime]')"
    )


def ffi_library() -> ctypes.CDLL:
    """`libtvm_ffi.so`, loaded RTLD_GLOBAL on first use, with the prototypes the runtime calls."""
    if not _library:
        lib = ctypes.CDLL(str(ffi_library_path()), mode=ctypes.RTLD_GLOBAL)
        lib.TVMFFIErrorMoveFromRaised.argtypes = [ctypes.POINTER(ctypes.c_void_p)]
        lib.TVMFFIErrorMoveFromRaised.restype = None
        lib.TVMFFIObjectDecRef.argtypes = [ctypes.c_void_p]
        lib.TVMFFIFunctionGetGlobal.argtypes = [ctypes.POINTER(ByteArray), ctypes.POINTER(ctypes.c_void_p)]
        _library.append(lib)
    return _library[0]


def global_function_exists(name: str) -> bool:
    """Whether a TVM-FFI global function `name` is registered in this process (e.g. by libtvm_runtime)."""
    lib = ffi_library()
    encoded = ctypes.create_string_buffer(name.encode(), len(name.encode()))
    handle = ctypes.c_void_p()
    name_bytes = ByteArray(ctypes.addressof(encoded), len(encoded))
    if lib.TVMFFIFunctionGetGlobal(ctypes.byref(name_bytes), ctypes.byref(handle)) != 0:
        raised_error()
        return False
    if handle.value:
        lib.TVMFFIObjectDecRef(handle)
        return True
    return False


def raised_error() -> str:
    """Take the error a failed call left in thread-local storage: "Kind: message"."""
    lib = ffi_library()
    handle = ctypes.c_void_p()
    lib.TVMFFIErrorMoveFromRaised(ctypes.byref(handle))
    if not handle.value:
        return "unknown error (no error object was raised)"
    cell = ErrorCell.from_address(handle.value + OBJECT_HEADER_BYTES)
    kind = ctypes.string_at(cell.kind.data, cell.kind.size).decode(errors="replace")
    message = ctypes.string_at(cell.message.data, cell.message.size).decode(errors="replace")
    lib.TVMFFIObjectDecRef(handle)
    return f"{kind}: {message}"


def dl_tensor(array: np.ndarray) -> DLTensor:
    """A compact CPU DLTensor over `array`'s memory; the caller keeps `array` alive (see `KernelTensor`)."""
    dtype = array.dtype
    shape = (ctypes.c_int64 * max(array.ndim, 1))(*array.shape)
    tensor = DLTensor(
        data=array.ctypes.data,
        device=DLDevice(KDL_CPU, 0),
        ndim=array.ndim,
        dtype=DLDataType(DLPACK_TYPE_CODES[dtype.kind], dtype.itemsize * 8, 1),
        shape=ctypes.cast(shape, ctypes.POINTER(ctypes.c_int64)),
        strides=None,
        byte_offset=0,
    )
    tensor._shape_storage = shape  # type: ignore[attr-defined]  # the shape array lives as long as the header
    return tensor


FfiValue = DLTensor | bool | int | float


def ffi_arguments(values: list[FfiValue]) -> ctypes.Array[FfiAny]:
    """The TVMFFIAny array that passes `values` in order: tensors by pointer, scalars by value."""
    args = (FfiAny * max(len(values), 1))()
    for arg, value in zip(args, values):
        if isinstance(value, DLTensor):
            arg.type_index, arg.v_ptr = KTVMFFI_DLTENSOR_PTR, ctypes.addressof(value)
        elif isinstance(value, bool):
            arg.type_index, arg.v_int64 = KTVMFFI_BOOL, int(value)
        elif isinstance(value, int):
            arg.type_index, arg.v_int64 = KTVMFFI_INT, value
        else:
            arg.type_index, arg.v_float64 = KTVMFFI_FLOAT, float(value)
    return args
