# mypy: disable-error-code="valid-type"
"""The AVX512_BF16 `vdpbf16ps` tensor intrinsic: the bf16 GEMM's 16 x 2 step in one instruction.

Rule: one step adds to 16 float32 accumulators C[j] the dot product of 2 bf16 values A[0:2]
(broadcast) with B[j, 0:2] (targets/lowering/dot_step.py has its semantics). LLVM 22's
`llvm.x86.avx512bf16.dpbf16ps.512` takes `<32 x bfloat>` operands, a type TIR cannot spell
(TVM's bf16 legalisation turns every bfloat16 expression into float32 or uint16), so the step
calls `hai_dpbf16ps`, a three-line LLVM function taking the bits as `<16 x i32>` that the
kernel imports (`DotStep.llvm_import`, a `pragma_import_llvm` on its tile loop) and LLVM
inlines. Registered once, on first use.
"""

from __future__ import annotations

from typing import Any

from targets.lowering.dot_step import bf16_dot_16x2_description, register_dot_step
from targets.schedules import DotStep

VDPBF16PS = "vdpbf16ps"
BF16_DOT_16X2 = "hai_dot_16x2_bf16_local"
FUNCTION = "hai_dpbf16ps"
LLVM_IR = f"""
define internal <16 x float> @{FUNCTION}(<16 x float> %c, <16 x i32> %a, <16 x i32> %b) alwaysinline {{
  %ab = bitcast <16 x i32> %a to <32 x bfloat>
  %bb = bitcast <16 x i32> %b to <32 x bfloat>
  %r = call <16 x float> @llvm.x86.avx512bf16.dpbf16ps.512(
      <16 x float> %c, <32 x bfloat> %ab, <32 x bfloat> %bb)
  ret <16 x float> %r
}}
declare <16 x float> @llvm.x86.avx512bf16.dpbf16ps.512(<16 x float>, <32 x bfloat>, <32 x bfloat>)
"""


def register_bf16_dot() -> DotStep:
    """Register the intrinsic (idempotent) and return its step."""
    step = DotStep(BF16_DOT_16X2, depth=2, llvm_import=LLVM_IR)
    return register_dot_step(step, vdpbf16ps_implementation, bf16_dot_16x2_description)


def vdpbf16ps_implementation() -> Any:
    """The step as one `vdpbf16ps` over 16 lanes."""
    from tvm.script import tirx as T

    @T.prim_func(s_tir=True)
    def impl(
        A: T.Buffer((2,), "uint16", offset_factor=1),
        B: T.Buffer((16, 2), "uint16", offset_factor=1),
        C: T.Buffer((16,), "float32", offset_factor=1, scope="local"),
    ) -> None:
        with T.sblock("root"):
            T.reads(C[0:16], A[0:2], B[0:16, 0:2])
            T.writes(C[0:16])
            pair = T.reinterpret(A.vload([0], "uint16x2"), dtype="int32")
            C[T.ramp(T.int32(0), 1, 16)] = T.call_pure_extern(
                "float32x16",
                FUNCTION,
                C.vload([0], dtype="float32x16"),
                T.broadcast(pair, 16),
                T.reinterpret(B.vload([0, 0], dtype="uint16x32"), dtype="int32x16"),
            )

    return impl
