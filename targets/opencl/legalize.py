"""What the shared computes say in LLVM terms, said in OpenCL C: `legalize(func)` before codegen.

Rule: the CPU templates call two LLVM intrinsics through `call_llvm_pure_intrin`: `llvm.arithmetic.fence`
(a value rounded before further arithmetic, targets/lowering/movement.py `rounded`) and
`llvm.minnum`/`llvm.maxnum`. TVM's OpenCL code generator knows none of them; the OpenCL lowering of
`tirx.call_llvm_pure_intrin` registered here gives the fenced value itself (OpenCL C contracts only
under `FP_CONTRACT`, which TVM's source leaves to the driver), and `fmin`/`fmax`. Any other LLVM
intrinsic stays unlowered and fails the build naming the kernel.
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


def legalize(func: Any) -> Any:
    """`func` for the OpenCL code generator (module doc): the lowering is registered once, in TVM."""
    _register()
    return func
