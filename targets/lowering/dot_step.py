# mypy: disable-error-code="valid-type"
"""The integer GEMM's 16 x 4 dot step as a tensor intrinsic: one description, an implementation per ISA.

Rule: the step adds to 16 int32 accumulators C[j] the dot product of 4 unsigned bytes A[0:4]
(broadcast) with 4 signed bytes B[j, 0:4] of the 16 x 4 packing (integer_gemm.py):
C[j] += sum_k u8(A[k]) * i8(B[j, k]). Its C buffer is register ("local") scope. A target's
implementation (targets/x86/vnni.py, targets/arm64/dot.py) computes exactly this with its
instructions; `register_dot_step` registers the pair once under the step's name.
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


def register_dot_step(step: DotStep, implementation: Callable[[], Any]) -> DotStep:
    """Register `step.intrinsic` with the shared description and `implementation()` (idempotent)."""
    from tvm.s_tir import TensorIntrin

    try:
        TensorIntrin.get(step.intrinsic)
        return step
    except Exception:  # noqa: BLE001 - TVM raises a plain error for an unknown name
        pass
    TensorIntrin.register(step.intrinsic, dot_16x4_description(), implementation())
    return step
