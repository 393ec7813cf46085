# mypy: disable-error-code="valid-type"
"""The AVX-512 VNNI `vpdpbusd` tensor intrinsic, registered the way LLVM 22 accepts it.

Rule: one `dot_16x4` step adds to 16 int32 accumulators C[j] the dot product
of 4 unsigned bytes A[0:4] (broadcast) with 4 signed bytes B[j, 0:4]:
C[j] += sum_k u8(A[k]) * i8(B[j, k]). TVM's shipped `dot_16x4_vnni` fails under
LLVM 22 (`vpdpbusd.512` now takes `(<16 x i32>, <64 x i8>, <64 x i8>)`), so this
copy passes the broadcast A and B as byte vectors (/work/shared/TVM-0.27.md).
Its C buffer is register ("local") scope: the accumulator tile of
targets/lowering/integer_gemm.py (whose 16 x 4 packing this step reads) lives in
registers. Registered once, on first use.
"""

from __future__ import annotations

from typing import Any

from targets.lowering.dot_step import register_dot_step
from targets.schedules import DotStep

VPDPBUSD = "vpdpbusd"
VNNI_DOT_16X4 = "hai_dot_16x4_vnni_local"
VPDPBUSD_512 = "llvm.x86.avx512.vpdpbusd.512"


def register_vnni(instruction: str = VPDPBUSD) -> DotStep:
    """Register the intrinsic (idempotent) and return its step (its name for `sch.tensorize`)."""
    assert instruction == VPDPBUSD, f"no x86 dot intrinsic {instruction!r}"
    return register_dot_step(DotStep(VNNI_DOT_16X4, vector_intrinsic=VPDPBUSD_512), vpdpbusd_implementation)


def vpdpbusd_implementation() -> Any:
    """The step as one `vpdpbusd` over 16 lanes (targets/lowering/dot_step.py has its semantics)."""
    from tvm.script import tirx as T

    @T.prim_func(s_tir=True)
    def impl(
        A: T.Buffer((4,), "uint8", offset_factor=1),
        B: T.Buffer((16, 4), "int8", offset_factor=1),
        C: T.Buffer((16,), "int32", offset_factor=1, scope="local"),
    ) -> None:
        with T.sblock("root"):
            T.reads(C[0:16], A[0:4], B[0:16, 0:4])
            T.writes(C[0:16])
            a_i32 = T.reinterpret(A.vload([0], "uint8x4"), dtype="int32")
            C[T.ramp(T.int32(0), 1, 16)] = T.call_llvm_pure_intrin(
                T.llvm_lookup_intrinsic_id(VPDPBUSD_512),
                C.vload([0], dtype="int32x16"),
                T.reinterpret(T.broadcast(a_i32, 16), dtype="uint8x64"),
                B.vload([0, 0], dtype="int8x64"),
                dtype="int32x16",
            )

    return impl
