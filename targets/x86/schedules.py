"""x86's schedule table: the knob values of each template family on AVX-512, AVX2 and SSE targets.

Rule: every value comes from the description's facts (vector width, vector
registers, features) and the workload's shape through the register-budget rules
the CPU tables share (targets/schedules.py, targets/lowering/integer_gemm.py);
nothing assumes 32 x 512-bit registers. These are the knob rules the x86 kernels
were tuned with by hand (/work/shared/TVM-0.27.md); a tuner would replace these
functions' choices. Slot: AMX (`amx_int8`, `amx_bf16`) tiles come as another
integer/bf16 GEMM family here (the next issue's work).
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
    register_recurrent_knobs,
)
from targets.x86.vnni import VPDPBUSD, register_vnni

VNNI_FEATURES = frozenset({"avx512_vnni", "avx512f", "avx512bw"})


def dot_instruction(target: TargetDescription) -> str:
    return VPDPBUSD if VNNI_FEATURES <= target.features else ""


def panel_registers(target: TargetDescription) -> int:
    """Registers for 16-lane int32 panels: one zmm each with AVX-512; below it a panel counts as two
    registers (AVX2's ymm pair; SSE targets are given the AVX2 count too)."""
    return target.vector_registers if target.vector_bytes >= 4 * LANES else target.vector_registers // 2


def integer_gemm_knobs(target: TargetDescription, positions: int, channels: int, macs: int) -> IntKnobs:
    return register_int_knobs(panel_registers(target), positions, channels, macs, dot=dot_instruction(target))


X86_SCHEDULES = ScheduleTable(
    gemm=register_gemm_knobs,
    integer_gemm=integer_gemm_knobs,
    integer_dot=dot_instruction,
    dot_intrinsic=register_vnni,
    depthwise=f32_vector_knobs,
    vector=full_vector_knobs,
    recurrent=register_recurrent_knobs,
)
