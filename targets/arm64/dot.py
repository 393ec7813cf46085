# mypy: disable-error-code="valid-type"
"""arm64's tensor intrinsics of the integer GEMM's step: `usdot` and `usmmla` (i8mm), `sdot` (dotprod).

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

`usmmla` (i8mm's matrix step) is the 2-row step (targets/lowering/dot_step.py): two positions x 16
lanes x 8 bytes, on weights packed 8 bytes deep, so each q register of B holds 2 channels x 8 bytes,
the 8 x 2 matrix the instruction reads, and the two positions' 8 bytes of A make its 2 x 8 matrix
(u8 x i8 as the IR has it: no shift). Per channel pair q it adds the 2 x 2 block
[C[0, 2q], C[0, 2q+1], C[1, 2q], C[1, 2q+1]] in one instruction
(`llvm.aarch64.neon.usmmla.v4i32.v16i8`); the accumulators are kept in those blocks
(integer_gemm.py's `block_layout`), one q register each, so the loop is loads and `usmmla` only.
Twice the multiply-adds of a `usdot` per instruction.
"""

from __future__ import annotations

from typing import Any

from targets.lowering.dot_step import register_dot_step
from targets.schedules import DotStep

USDOT = "usdot"
SDOT = "sdot"
USMMLA = "usmmla"
SIGN_BITS = -0x7F7F7F80
"""0x80808080 as int32: xor-ing 4 u8 bytes with it subtracts 128 from each, read as i8."""
MMLA_ROWS, MMLA_DEPTH = 2, 8
"""The matrix step's positions and bytes: usmmla multiplies a 2 x 8 by an 8 x 2 byte matrix."""


def register_dot(instruction: str) -> DotStep:
    """Register the intrinsic of `instruction` ("usdot", "sdot" or "usmmla"; idempotent), return its step."""
    assert instruction in (USDOT, SDOT, USMMLA), f"no arm64 dot intrinsic {instruction!r}"
    if instruction == USMMLA:
        step = DotStep(f"hai_mmla_2x16x8_{instruction}_local", rows=MMLA_ROWS, depth=MMLA_DEPTH)
        return register_dot_step(step, mmla_implementation)
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


def mmla_implementation() -> Any:
    """The 2-row step as eight `usmmla`, one per channel pair of B (module rule)."""
    from tvm.script import tirx as T

    llvm_name = f"llvm.aarch64.neon.{USMMLA}.v4i32.v16i8"

    @T.prim_func(s_tir=True)
    def impl(a: T.handle, b: T.handle, c: T.handle) -> None:
        a_stride = T.int32()
        A = T.match_buffer(a, (2, 8), "uint8", offset_factor=1, strides=[a_stride, 1])
        B = T.match_buffer(b, (16, 8), "int8", offset_factor=1)
        C = T.match_buffer(c, (8, 2, 2), "int32", offset_factor=1, scope="local")
        with T.sblock("root"):
            T.reads(C[0:8, 0:2, 0:2], A[0:2, 0:8], B[0:16, 0:8])
            T.writes(C[0:8, 0:2, 0:2])
            rows = T.Shuffle([A.vload([0, 0], "uint8x8"), A.vload([1, 0], "uint8x8")], list(range(16)))
            for q in T.unroll(8):
                C[q, 0, T.ramp(0, 1, 4)] = T.call_llvm_pure_intrin(
                    T.llvm_lookup_intrinsic_id(llvm_name),
                    C.vload([q, 0, 0], dtype="int32x4"),
                    rows,
                    B.vload([q * 2, 0], dtype="int8x16"),
                    dtype="int32x4",
                )

    return impl
