# mypy: disable-error-code="valid-type"
"""The integer GEMM's step as a tensor intrinsic: one description per step shape, an implementation per ISA.

Rule: a step of `rows` positions x 16 lanes x `depth` bytes (`DotStep`) adds to the int32
accumulators C[r, j] the dot product of `depth` unsigned bytes A[r, 0:depth] of position r with
`depth` signed bytes B[j, 0:depth] of the packing (integer_gemm.py, `depth` bytes deep):
C[r, j] += sum_k u8(A[r, k]) * i8(B[j, k]). A one-row step (the 16 x 4 dot step) has A of shape
(depth,) and C of (16,), broadcast A; a multi-row step (arm64 i8mm's `usmmla`) has A (rows,
depth) with its row stride and C in the blocks of rows x 2 lanes the matrix instruction writes,
(16 / 2, rows, 2) (integer_gemm.py's `block_layout`, which the schedule gives the accumulators).
The bf16 step (1 x 16 x 2) adds to 16 float32 accumulators the dot product of 2 bf16 values
A[0:2] (their uint16 bits, broadcast) with B[j, 0:2] of the 16 x 2 packing (bf16_gemm.py):
C[j] += sum_k f32(A[k]) * f32(B[j, k]), a bf16 widened by putting its bits in the top half of a
float32 (`widen_bf16`, the TE compute's own expression).
C is register ("local") scope. A target's implementation (targets/x86/vnni.py,
targets/x86/avx512_bf16.py, targets/arm64/dot.py) computes exactly this with its instructions;
`register_dot_step` registers the pair once under the step's name.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from targets.lowering.integer_gemm import BLOCK_LANES, LANES
from targets.schedules import DotStep


def dot_step_description(step: DotStep) -> Any:
    """The semantics of `step`'s shape as TVMScript (what `sch.tensorize` matches)."""
    if step.rows == 1:
        return row_step_description(step.depth)
    return rows_step_description(step.rows, step.depth)


def row_step_description(depth: int) -> Any:
    """One position: A (depth,) broadcast against B (16, depth) into C (16,)."""
    from tvm.script import tirx as T

    @T.prim_func(s_tir=True)
    def desc(
        A: T.Buffer((depth,), "uint8", offset_factor=1),
        B: T.Buffer((LANES, depth), "int8", offset_factor=1),
        C: T.Buffer((LANES,), "int32", offset_factor=1, scope="local"),
    ) -> None:
        with T.sblock("root"):
            T.reads(C[0:LANES], A[0:depth], B[0:LANES, 0:depth])
            T.writes(C[0:LANES])
            for i in T.serial(0, LANES):
                for k in T.serial(0, depth):
                    with T.sblock("update"):
                        vi, vk = T.axis.remap("SR", [i, k])
                        C[vi] = C[vi] + T.cast(A[vk], "int32") * T.cast(B[vi, vk], "int32")

    return desc


def rows_step_description(rows: int, depth: int) -> Any:
    """`rows` positions: A (rows, depth, strided) against B (16, depth) into the blocks of C
    (16 / 2, rows, 2) (`block_layout`: C[i // 2, r, i % 2] is position r, lane i)."""
    from tvm.script import tirx as T

    blocks = LANES // BLOCK_LANES

    @T.prim_func(s_tir=True)
    def desc(a: T.handle, b: T.handle, c: T.handle) -> None:
        a_stride = T.int32()
        A = T.match_buffer(a, (rows, depth), "uint8", offset_factor=1, strides=[a_stride, 1])
        B = T.match_buffer(b, (LANES, depth), "int8", offset_factor=1)
        C = T.match_buffer(c, (blocks, rows, BLOCK_LANES), "int32", offset_factor=1, scope="local")
        with T.sblock("root"):
            T.reads(C[0:blocks, 0:rows, 0:BLOCK_LANES], A[0:rows, 0:depth], B[0:LANES, 0:depth])
            T.writes(C[0:blocks, 0:rows, 0:BLOCK_LANES])
            for r in T.serial(0, rows):
                for i in T.serial(0, LANES):
                    for k in T.serial(0, depth):
                        with T.sblock("update"):
                            vr, vi, vk = T.axis.remap("SSR", [r, i, k])
                            C[vi // BLOCK_LANES, vr, vi % BLOCK_LANES] = C[
                                vi // BLOCK_LANES, vr, vi % BLOCK_LANES
                            ] + T.cast(A[vr, vk], "int32") * T.cast(B[vi, vk], "int32")

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
    step: DotStep, implementation: Callable[[], Any], description: Callable[[], Any] | None = None
) -> DotStep:
    """Register `step.intrinsic` with its `description` (the integer step of its shape unless given)
    and `implementation()` (idempotent)."""
    from tvm.s_tir import TensorIntrin

    try:
        TensorIntrin.get(step.intrinsic)
        return step
    except Exception:  # noqa: BLE001 - TVM raises a plain error for an unknown name
        pass
    TensorIntrin.register(
        step.intrinsic,
        description() if description is not None else dot_step_description(step),
        implementation(),
    )
    return step
