"""arm64's schedule table: NEON knobs (4 f32 lanes, 32 registers) for every template family.

Rule: the GEMM (conv, conv-transpose, matmul), depthwise and elementwise families take the
register-budget rules every CPU table shares (targets/schedules.py) with NEON's facts:
16-byte vectors, so 4 f32 lanes, and 32 registers, so a GEMM tile of 4 rows x 4 vectors
(16 accumulators, 4 weight loads, 1 broadcast); a recurrent step tile of 8 accumulators (LSTM:
4 gates x 2 vectors of 4 units). The integer GEMM's 16-lane int32 panel is
four q registers, so 32 registers hold 8 panels; its 16 x 4 byte step is four `usdot` where
the cpu has i8mm (u8 x i8, as the IR has it), four `sdot` where it has dotprod only (the
activations shifted to i8, the shift folded into the bias: targets/arm64/dot.py), else the
plain int32 reduction (ARMv8.0 NEON, e.g. cortex-a72). Where the positions pair up
(`paired_rows`: a MatMulInteger's rows, a stride-1 conv's output rows of even width) and the
cpu has i8mm, the step is `usmmla`'s: 2 positions x 16 lanes x 8 bytes (weights packed 8 deep),
twice a `usdot`'s multiply-adds per instruction; other convs keep `usdot`.
"""

from __future__ import annotations

from targets.arm64.dot import MMLA_ROWS, SDOT, USDOT, USMMLA, register_dot
from targets.description import TargetDescription
from targets.lowering.integer_gemm import LANES, register_int_knobs
from targets.schedules import (
    IntKnobs,
    ScheduleTable,
    f32_vector_knobs,
    full_vector_knobs,
    register_gemm_knobs,
    register_recurrent_knobs,
)


def panel_registers(target: TargetDescription) -> int:
    """How many 16-lane int32 panels the vector registers hold (a panel is 64 bytes)."""
    return target.vector_registers * target.vector_bytes // (4 * LANES)


def dot_instruction(target: TargetDescription) -> str:
    """`usdot` with i8mm, `sdot` with dotprod, else "" (see the module rule)."""
    if "i8mm" in target.features:
        return USDOT
    return SDOT if "dotprod" in target.features else ""


def integer_gemm_knobs(
    target: TargetDescription, positions: int, channels: int, macs: int, paired_rows: bool = False
) -> IntKnobs:
    """`usmmla`'s 2-row step where the cpu has i8mm and the positions are a matrix's rows in pairs,
    else the 16 x 4 step of `dot_instruction` (see the module rule)."""
    if paired_rows and "i8mm" in target.features and positions % MMLA_ROWS == 0:
        return register_int_knobs(
            panel_registers(target), positions, channels, macs, dot=USMMLA, step_rows=MMLA_ROWS
        )
    return register_int_knobs(panel_registers(target), positions, channels, macs, dot=dot_instruction(target))


ARM64_SCHEDULES = ScheduleTable(
    gemm=register_gemm_knobs,
    integer_gemm=integer_gemm_knobs,
    integer_dot=dot_instruction,
    dot_intrinsic=register_dot,
    depthwise=f32_vector_knobs,
    vector=full_vector_knobs,
    recurrent=register_recurrent_knobs,
)
