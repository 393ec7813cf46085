"""x86's schedule table: the knob values of each template family on AVX-512, AVX2 and SSE targets.

Rule: every value comes from the description's facts (vector width, vector
registers, features) and the workload's shape; nothing assumes 32 x 512-bit
registers. These are the knob rules the x86 kernels were tuned with by hand
(/work/shared/TVM-0.27.md); a tuner would replace these functions' choices.
Slot: AMX (`amx_int8`, `amx_bf16`) tiles come as another integer/bf16 GEMM
family here (the next issue's work).
"""

from __future__ import annotations

from targets.description import TargetDescription
from targets.lowering.integer_gemm import LANES, PARALLEL_MIN_MACS
from targets.schedules import ROW_PREFERENCE, GemmKnobs, IntKnobs, ScheduleTable, VectorKnobs
from targets.x86.vnni import register_vnni

VNNI_FEATURES = frozenset({"avx512_vnni", "avx512f", "avx512bw"})
MAX_GEMM_VECTORS = 4
"""Column vectors of one GEMM tile at most."""


def gemm_knobs(target: TargetDescription, m: int, n: int, rows: int | None = None) -> GemmKnobs:
    """Rows dividing `m` (or given `rows`), then as many column vectors as the registers hold (at most 4):
    `mi * vectors` accumulators, `vectors` weight loads and one broadcast."""
    lanes = target.vector_lanes_f32
    registers = target.vector_registers
    mi = rows if rows is not None else next(r for r in ROW_PREFERENCE if m % r == 0)
    vectors = MAX_GEMM_VECTORS
    while vectors > 1 and mi * vectors + vectors + 1 > registers:
        vectors -= 1
    vectors = max(1, min(vectors, -(-n // lanes)))
    for v in range(vectors, 0, -1):  # prefer a panel width that divides n (no padded tail tile)
        if n % (v * lanes) == 0:
            vectors = v
            break
    return GemmKnobs(mi=mi, nb=vectors * lanes, lanes=lanes)


def has_vnni(target: TargetDescription) -> bool:
    return VNNI_FEATURES <= target.features


def panel_registers(target: TargetDescription) -> int:
    """Registers for 16-lane int32 panels: one zmm each with AVX-512; below it a panel counts as two
    registers (AVX2's ymm pair; SSE targets are given the AVX2 count too)."""
    return target.vector_registers if target.vector_bytes >= 4 * LANES else target.vector_registers // 2


def integer_gemm_knobs(target: TargetDescription, positions: int, channels: int, macs: int) -> IntKnobs:
    """Up to 4 panels dividing the padded channels, then the most rows (ROW_PREFERENCE) that fit the
    registers (one accumulator vector per row and panel, one per panel's weights, one broadcast);
    parallel from `macs` multiply-adds."""
    registers = panel_registers(target)
    panels = -(-channels // LANES)
    vectors = next(v for v in (4, 3, 2, 1) if panels % v == 0 and 2 * v + 1 <= registers)
    fits = [r for r in ROW_PREFERENCE if r * vectors + vectors + 1 <= registers]
    rows = next((r for r in fits if positions % r == 0), 1)
    return IntKnobs(rows=rows, vectors=vectors, vnni=has_vnni(target), parallel=macs >= PARALLEL_MIN_MACS)


def vector_knobs(target: TargetDescription, itemsize: int) -> VectorKnobs:
    return VectorKnobs(lanes=max(target.vector_bytes // itemsize, 1))


def depthwise_knobs(target: TargetDescription) -> VectorKnobs:
    return VectorKnobs(lanes=target.vector_lanes_f32)


X86_SCHEDULES = ScheduleTable(
    gemm=gemm_knobs,
    integer_gemm=integer_gemm_knobs,
    integer_dot=has_vnni,
    dot_intrinsic=register_vnni,
    depthwise=depthwise_knobs,
    vector=vector_knobs,
)
