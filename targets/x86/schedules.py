"""x86's schedule table: the knob values of each template family on AVX-512, AVX2 and SSE targets.

Rule: every value comes from the description's facts (vector width, vector
registers, features) and the workload's shape through the register-budget rules
the CPU tables share (targets/schedules.py, targets/lowering/integer_gemm.py);
nothing assumes 32 x 512-bit registers. These are the knob rules the x86 kernels
were tuned with by hand (/work/shared/TVM-0.27.md); a tuner would replace these
functions' choices. AMX tiles (`amx_bf16`, `amx_int8`) are the bf16 and integer GEMMs'
block functions (targets/x86/amx.py).
"""

from __future__ import annotations

from targets.description import TargetDescription
from targets.lowering.integer_gemm import LANES, register_int_knobs
from targets.schedules import (
    DotStep,
    IntKnobs,
    ScheduleTable,
    TileGemm,
    f32_vector_knobs,
    full_vector_knobs,
    register_gemm_knobs,
    register_recurrent_knobs,
)
from targets.x86.amx import AMX_BF16, AMX_BF16_FEATURES, AMX_INT8, AMX_INT8_FEATURES
from targets.x86.avx512_bf16 import VDPBF16PS, register_bf16_dot
from targets.x86.vnni import VPDPBUSD, register_vnni

VNNI_FEATURES = frozenset({"avx512_vnni", "avx512f", "avx512bw"})
BF16_FEATURES = frozenset({"avx512_bf16", "avx512f", "avx512bw"})


def dot_instruction(target: TargetDescription) -> str:
    return VPDPBUSD if VNNI_FEATURES <= target.features else ""


def bf16_dot_instruction(target: TargetDescription) -> str:
    return VDPBF16PS if BF16_FEATURES <= target.features else ""


def bf16_tiles(target: TargetDescription) -> TileGemm | None:
    """AMX-BF16's 32 x 32 block where the target has the tiles."""
    return AMX_BF16 if AMX_BF16_FEATURES <= target.features else None


def integer_tiles(target: TargetDescription) -> TileGemm | None:
    """AMX-INT8's 32 x 32 int32 block where the target has the tiles."""
    return AMX_INT8 if AMX_INT8_FEATURES <= target.features else None


def dot_intrinsic(instruction: str) -> DotStep:
    """The registered step of `instruction` (vpdpbusd or vdpbf16ps)."""
    return register_bf16_dot() if instruction == VDPBF16PS else register_vnni(instruction)


def panel_registers(target: TargetDescription) -> int:
    """Registers for 16-lane int32 panels: one zmm each with AVX-512; below it a panel counts as two
    registers (AVX2's ymm pair; SSE targets are given the AVX2 count too)."""
    return target.vector_registers if target.vector_bytes >= 4 * LANES else target.vector_registers // 2


def integer_gemm_knobs(
    target: TargetDescription, positions: int, channels: int, macs: int, paired_rows: bool = False
) -> IntKnobs:
    """One-row steps (`paired_rows` does not matter: no x86 step takes two rows)."""
    return register_int_knobs(panel_registers(target), positions, channels, macs, dot=dot_instruction(target))


X86_SCHEDULES = ScheduleTable(
    gemm=register_gemm_knobs,
    integer_gemm=integer_gemm_knobs,
    integer_dot=dot_instruction,
    dot_intrinsic=dot_intrinsic,
    depthwise=f32_vector_knobs,
    vector=full_vector_knobs,
    recurrent=register_recurrent_knobs,
    bf16_dot=bf16_dot_instruction,
    bf16_tiles=bf16_tiles,
    integer_tiles=integer_tiles,
    parallel_bands=4,
)
