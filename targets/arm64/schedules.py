"""arm64's schedule table: NEON knobs (4 f32 lanes, 32 registers) for every template family.

Rule: the GEMM (conv, conv-transpose, matmul), depthwise and elementwise families take the
register-budget rules every CPU table shares (targets/schedules.py) with NEON's facts:
16-byte vectors, so 4 f32 lanes, and 32 registers, so a GEMM tile of 4 rows x 4 vectors
(16 accumulators, 4 weight loads, 1 broadcast). The integer GEMM's 16-lane int32 panel is
four q registers, so 32 registers hold 8 panels; its 16 x 4 byte step is the plain int32
reduction (`integer_dot` is False). Next step: `sdot`/`udot` (dotprod) and `smmla`/`ummla`
(i8mm) as this table's `dot_intrinsic` (TVM 0.27's tvm/s_tir/tensor_intrin/arm_cpu.py
has 4-lane dot intrinsics; the shared integer GEMM's panel is 16 lanes of u8 x i8).
"""

from __future__ import annotations

from targets.description import TargetDescription
from targets.lowering.integer_gemm import LANES, register_int_knobs
from targets.schedules import (
    IntKnobs,
    ScheduleTable,
    f32_vector_knobs,
    full_vector_knobs,
    register_gemm_knobs,
)


def panel_registers(target: TargetDescription) -> int:
    """How many 16-lane int32 panels the vector registers hold (a panel is 64 bytes)."""
    return target.vector_registers * target.vector_bytes // (4 * LANES)


def integer_gemm_knobs(target: TargetDescription, positions: int, channels: int, macs: int) -> IntKnobs:
    return register_int_knobs(panel_registers(target), positions, channels, macs, dot=False)


def no_dot(target: TargetDescription) -> bool:
    """No tensorized dot step yet (see the module rule)."""
    return False


def no_dot_intrinsic() -> str:
    raise AssertionError("arm64 schedules never tensorize the integer GEMM's step (integer_dot is False)")


ARM64_SCHEDULES = ScheduleTable(
    gemm=register_gemm_knobs,
    integer_gemm=integer_gemm_knobs,
    integer_dot=no_dot,
    dot_intrinsic=no_dot_intrinsic,
    depthwise=f32_vector_knobs,
    vector=full_vector_knobs,
)
