# mypy: disable-error-code="valid-type"
"""The dot GEMM's inner steps as tensor intrinsics: one description each, an implementation per ISA.

Rule: the integer step adds to 16 int32 accumulators C[j] the dot product of 4 unsigned bytes
A[0:4] (broadcast) with 4 signed bytes B[j, 0:4] of the 16 x 4 packing (integer_gemm.py):
C[j] += sum_k u8(A[k]) * i8(B[j, k]). The bf16 step adds to 16 float32 accumulators the dot
product of 2 bf16 values A[0:2] (their uint16 bits, broadcast) with B[j, 0:2] of the 16 x 2
packing (bf16_gemm.py): C[j] += sum_k f32(A[k]) * f32(B[j, k]), a bf16 widened by putting its
bits in the top half of a float32 (`widen_bf16`, the TE compute's own expression). Their C
buffers are register ("local") scope. A target's implementation (targets/x86/vnni.py,
targets/x86/avx512_bf16.py, targets/arm64/dot.py) computes exactly this with its instructions;
`register_dot_step` registers the pair once under the step's name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from targets.schedules import DotStep


def dot_16x4_description() -> Any:
    """The step's semantics as TVMScript (what `sch.tensorize` matches)."""
    from tvm.script import tirx as T

    @T.prim_func(s_tir=True)
    def desc(
        A: T.Buffer((4,), "uint8", offset_factor=1),
        B: T.Buffer((16, 4), "int8", offset_factor=1),
        C: T.Buffer((16,), "int32", offset_factor=1, scope="local"),
    ) -> None:
        with T.sblock("root"):
            T.reads(C[0:16], A[0:4], B[0:16, 0:4])
            T.writes(C[0:16])
            for i in T.serial(0, 16):
                for k in T.serial(0, 4):
                    with T.sblock("update"):
                        vi, vk = T.axis.remap("SR", [i, k])
                        C[vi] = C[vi] + T.cast(A[vk], "int32") * T.cast(B[vi, vk], "int32")

    return desc


def widen_bf16(bits: Any) -> Any:
    """A bf16 element (its uint16 bits) as the float32 it is exactly."""
    from tvm import tirx

    return tirx.reinterpret("float32", bits.astype("uint32") << tirx.const(16, "uint32"))


def bf16_dot_16x2_description() -> Any:
    """The bf16 step's semantics as TVMScript (what `sch.tensorize` matches)."""
    from tvm.script import tirx as T

    @T.prim_func(s_tir=True)
    def desc(
        A: T.Buffer((2,), "uint16", offset_factor=1),
        B: T.Buffer((16, 2), "uint16", offset_factor=1),
        C: T.Buffer((16,), "float32", offset_factor=1, scope="local"),
    ) -> None:
        with T.sblock("root"):
            T.reads(C[0:16], A[0:2], B[0:16, 0:2])
            T.writes(C[0:16])
            for i in T.serial(0, 16):
                for k in T.serial(0, 2):
                    with T.sblock("update"):
                        vi, vk = T.axis.remap("SR", [i, k])
                        C[vi] = C[vi] + widen_bf16(A[vk]) * widen_bf16(B[vi, vk])

    return desc


def register_dot_step(
    step: DotStep, implementation: Callable[[], Any], description: Callable[[], Any] = dot_16x4_description
) -> DotStep:
    """Register `step.intrinsic` with its `description` (the integer step's unless given) and
    `implementation()` (idempotent)."""
    from tvm.s_tir import TensorIntrin

    try:
        TensorIntrin.get(step.intrinsic)
        return step
    except Exception:  # noqa: BLE001 - TVM raises a plain error for an unknown name
        pass
    TensorIntrin.register(step.intrinsic, description(), implementation())
    return step
