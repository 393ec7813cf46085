# mypy: disable-error-code="valid-type"
"""arm64's dot-product tensor intrinsics of the integer GEMM's 16 x 4 step: `usdot` (i8mm), `sdot` (dotprod).

Rule: one step adds to 16 int32 accumulators C[j] the dot product of 4 unsigned bytes A[0:4]
(broadcast) with 4 signed bytes B[j, 0:4] of the shared 16 x 4 packing
(targets/lowering/integer_gemm.py): B's 64 bytes are four q registers of 4 lanes x 4 bytes,
the layout the by-lane dot instructions read, so the step is four instructions, one per q
register, each `C[4q:4q+4] = dot(C[4q:4q+4], broadcast(A), B[4q:4q+4, 0:4])`.
- `usdot` (i8mm) takes u8 x i8 as the IR has it: C[j] += sum_k A[k] * B[j, k].
- `sdot` (dotprod) takes i8 x i8: A is shifted by -128 (`A ^ 0x80` read as signed), so the step
  adds sum_k (A[k] - 128) * B[j, k]; its `DotStep.shift` (-128) tells the packer to fold the
  missing 128 * sum_k B[k, j] into the corrected bias, so the int32 result is exactly the IR's.
`udot` (u8 x u8) would need the weights shifted and a per-row sum of A at run time; `sdot` needs
neither. The LLVM intrinsics are `llvm.aarch64.neon.{usdot,sdot}.v4i32.v16i8` (acc, a, b), as
LLVM 22 declares them. C is register ("local") scope, as for x86's vnni.py. Registered once.
"""

from __future__ import annotations

from typing import Any

from targets.lowering.dot_step import register_dot_step
from targets.schedules import DotStep

USDOT = "usdot"
SDOT = "sdot"
SIGN_BITS = -0x7F7F7F80
"""0x80808080 as int32: xor-ing 4 u8 bytes with it subtracts 128 from each, read as i8."""


def register_dot(instruction: str) -> DotStep:
    """Register the intrinsic of `instruction` ("usdot" or "sdot"; idempotent) and return its step."""
    assert instruction in (USDOT, SDOT), f"no arm64 dot intrinsic {instruction!r}"
    step = DotStep(f"hai_dot_16x4_{instruction}_local", -128 if instruction == SDOT else 0)
    return register_dot_step(step, lambda: dot_implementation(instruction))


def dot_implementation(instruction: str) -> Any:
    """The step as four by-lane dot instructions, one per q register of B (module rule)."""
    from tvm.script import tirx as T

    llvm_name = f"llvm.aarch64.neon.{instruction}.v4i32.v16i8"
    flip = T.int32(SIGN_BITS if instruction == SDOT else 0)
    a_type = "int8x16" if instruction == SDOT else "uint8x16"

    @T.prim_func(s_tir=True)
    def impl(
        A: T.Buffer((4,), "uint8", offset_factor=1),
        B: T.Buffer((16, 4), "int8", offset_factor=1),
        C: T.Buffer((16,), "int32", offset_factor=1, scope="local"),
    ) -> None:
        with T.sblock("root"):
            T.reads(C[0:16], A[0:4], B[0:16, 0:4])
            T.writes(C[0:16])
            a_i32 = T.bitwise_xor(T.reinterpret(A.vload([0], "uint8x4"), dtype="int32"), flip)
            for q in T.unroll(4):
                C[T.ramp(q * 4, 1, 4)] = T.call_llvm_pure_intrin(
                    T.llvm_lookup_intrinsic_id(llvm_name),
                    C.vload([q * 4], dtype="int32x4"),
                    T.reinterpret(T.broadcast(a_i32, 4), dtype=a_type),
                    B.vload([q * 4, 0], dtype="int8x16"),
                    dtype="int32x4",
                )

    return impl
