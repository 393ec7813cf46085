"""What the shared computes say in LLVM terms, said in OpenCL C: `legalize(func)` before codegen.

Rule: the CPU templates call two LLVM intrinsics through `call_llvm_pure_intrin`: `llvm.arithmetic.fence`
(a value rounded before further arithmetic, targets/lowering/movement.py `rounded`) and
`llvm.minnum`/`llvm.maxnum`. TVM's OpenCL code generator knows none of them; the OpenCL lowering of
`tirx.call_llvm_pure_intrin` registered here gives the fenced value itself (OpenCL C contracts only
under `FP_CONTRACT`, which TVM's source leaves to the driver), and `fmin`/`fmax`. Any other LLVM
intrinsic stays unlowered and fails the build naming the kernel. `reinterpret` becomes OpenCL's
`as_<type>` (TVM's pointer cast cannot take the address of a constant).
"""

from __future__ import annotations

import functools
from typing import Any


@functools.cache
def _register() -> None:
    from tvm import tirx
    from tvm.target import codegen

    ids = {int(codegen.llvm_lookup_intrinsic_id(name)): name
           for name in ("llvm.arithmetic.fence", "llvm.minnum", "llvm.maxnum")}  # fmt: skip

    def lower(call: Any) -> Any:
        name = ids.get(int(call.args[0]))
        operands = list(call.args)[1:]  # after the intrinsic's id
        if name == "llvm.arithmetic.fence":
            return operands[-1]
        if name == "llvm.minnum":
            return tirx.min(operands[-2], operands[-1])
        if name == "llvm.maxnum":
            return tirx.max(operands[-2], operands[-1])
        return call

    tirx.register_intrin_lowering("tirx.call_llvm_pure_intrin", target="opencl", f=lower, level=99)
    tirx.register_intrin_lowering("tirx.reinterpret", target="opencl", f=reinterpret, level=99)


def reinterpret(call: Any) -> Any:
    """`reinterpret` as OpenCL's `as_<type>(x)`: TVM's own `*(int *)(&(x))` cannot take a constant."""
    from tvm import tirx

    dtype = str(call.ty.dtype)
    base, _, lanes = dtype.partition("x")
    name = OPENCL_TYPES.get(base)
    if name is None:
        return call
    return tirx.call_pure_extern(dtype, f"as_{name}{lanes}", call.args[0])


OPENCL_TYPES = {
    "float32": "float", "float16": "half", "float64": "double", "int8": "char", "uint8": "uchar",
    "int16": "short", "uint16": "ushort", "int32": "int", "uint32": "uint", "int64": "long",
    "uint64": "ulong",
}  # fmt: skip


def legalize(func: Any) -> Any:
    """`func` for the OpenCL code generator (module doc): the lowering is registered once, in TVM."""
    _register()
    return func
