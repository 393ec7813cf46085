"""The OpenCL schedule table: the knobs the shared computes take (their weight packing and tiles).

Rule: an OpenCL kernel's threads come from targets/opencl/threads.py; these knobs only shape the
shared computes (the GEMM's packed weight panels, the vector widths of depthwise and elementwise
stages), chosen by the CPU register rules for a 16-byte "vector" of 32 registers, which give
panels of 4 floats. Activations use OpenCL's math builtins (`native_math`). The integer GEMM's
weights are packed for the plain 16 x 4 step (no CPU dot intrinsic): where the device has integer
dot products, the `IntGemm` thread schedule (int_gemm.py) tensorizes that step into OpenCL's `dot`
builtins.
"""

from __future__ import annotations

from targets.description import TargetDescription
from targets.lowering.integer_gemm import LANES, register_int_knobs
from targets.opencl.rows import ROW_SHORTEST
from targets.schedules import (
    DotStep,
    IntKnobs,
    ScheduleTable,
    f32_vector_knobs,
    full_vector_knobs,
    register_gemm_knobs,
    register_recurrent_knobs,
)


def no_dot(target: TargetDescription) -> str:
    return ""


def no_dot_intrinsic(dot: str) -> DotStep:
    raise ValueError(f"the OpenCL target tensorizes no integer dot step ({dot!r})")


def integer_gemm_knobs(
    target: TargetDescription, positions: int, channels: int, macs: int, paired_rows: bool = False
) -> IntKnobs:
    panels = target.vector_registers * target.vector_bytes // (4 * LANES)
    return register_int_knobs(panels, positions, channels, macs, dot="")


OPENCL_SCHEDULES = ScheduleTable(
    gemm=register_gemm_knobs,
    integer_gemm=integer_gemm_knobs,
    integer_dot=no_dot,
    dot_intrinsic=no_dot_intrinsic,
    depthwise=f32_vector_knobs,
    vector=full_vector_knobs,
    recurrent=register_recurrent_knobs,  # the recurrent templates are loop nests: refused by name here
    loop_nests=False,
    native_math=True,  # OpenCL's exp/tanh/erf builtins (targets/lowering/vector_math.py)
    plain_extremes_from=ROW_SHORTEST,  # rows reduced across work-items (rows.py) need reducers TVM recognises
)
