"""Schedule knobs: what each main template's schedule may vary, declared once, chosen per target family.

Rule: the computes (TE) in targets/lowering/ are written once for every target;
how a compute is scheduled is steered by a small frozen knob dataclass per
template family, declared here. A target module's `ScheduleTable`
(`TargetBackend.schedules()`) holds the functions that choose each family's knob
values from the target's facts (vector width and register count, features) and
the workload's shape: x86's are targets/x86/schedules.py. Knobs go into the
kernel's workload (`to_json`), so a kernel built with other knobs is another
kernel. A later tuner searches these fields; nothing here tunes.

Families and their knobs:
- `gemm` (Conv, ConvTranspose, MatMul, Gemm; targets/lowering/tiling.py): an `mi` x `nb`
  register tile of `lanes`-wide vectors; tiles run in parallel over the fused outer axis.
- `integer_gemm` (ConvInteger, MatMulInteger; targets/lowering/integer_gemm.py): `rows` x
  `vectors` panels of 16 int32 lanes, `dot` (the instruction the 16 x 4 byte step is, e.g. x86
  `vpdpbusd`, arm64 `usdot`/`sdot`; "" for the plain int32 reduction; `dot_intrinsic`), `parallel`.
- `depthwise` (depthwise Conv) and `vector` (pointwise/elementwise, reductions, movement):
  `lanes`, the vector width in elements.
- layout: `TargetBackend.channels_last` (conv regions NHWC through the `layout` pass).
Slots: AMX tiles (x86 `amx_int8`/`amx_bf16`: a `tile` knob family beside `integer_gemm`),
aarch64 `smmla`/`ummla` (a 2 x 8 step of its own: another `dot` and packing) and OpenCL
(work-group sizes) add a table or a family here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from targets.description import TargetDescription


ROW_PREFERENCE = (4, 6, 8, 3, 5, 2, 7, 1)
"""Register-tile row counts, tried in this order (the first dividing the rows wins)."""
MAX_GEMM_VECTORS = 4
"""Column vectors of one GEMM tile at most."""


@dataclass(frozen=True)
class GemmKnobs:
    """Tile knobs: `mi` rows x `nb` columns (= `vectors` x `lanes`) of accumulators."""

    mi: int
    nb: int
    lanes: int

    @property
    def vectors(self) -> int:
        return self.nb // self.lanes

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class IntKnobs:
    """Tile knobs: `rows` output positions x `vectors` panels of 16 channels; `dot` names the
    instruction of the 16 x 4 step ("": the plain int32 reduction); `parallel`: tiles (and input
    stages) run on the thread pool."""

    rows: int
    vectors: int
    dot: str
    parallel: bool = True

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DotStep:
    """A registered tensor intrinsic of the integer GEMM's 16 x 4 step: its name, and `shift`, what
    the step adds to each u8 activation byte before multiplying (arm64 `sdot` reads them as i8, so
    -128); the packer folds `-shift * sum_k W[k, o]` into the corrected bias."""

    intrinsic: str
    shift: int = 0


@dataclass(frozen=True)
class VectorKnobs:
    """`lanes`: elements of one vector (depthwise rows/channels, elementwise and reduction loops)."""

    lanes: int


@dataclass(frozen=True)
class ScheduleTable:
    """A target family's knob choices, one function per template family (see the module rule).

    - `gemm(target, m, n, rows)`: rows dividing `m` (or `rows` given) by columns of `n`.
    - `integer_gemm(target, positions, channels, macs)`.
    - `integer_dot(target)`: the instruction the 16 x 4 u8 x i8 step is there ("" if none);
      `dot_intrinsic(dot)` registers that instruction's tensor intrinsic and returns its `DotStep`.
    - `depthwise(target)`, `vector(target, itemsize)`: the vector width for f32 / `itemsize` bytes.
    - `loop_nests`: whether hand-written CPU loop nests may stand in for a compute.
    """

    gemm: Callable[[TargetDescription, int, int, int | None], GemmKnobs]
    integer_gemm: Callable[[TargetDescription, int, int, int], IntKnobs]
    integer_dot: Callable[[TargetDescription], str]
    dot_intrinsic: Callable[[str], DotStep]
    depthwise: Callable[[TargetDescription], VectorKnobs]
    vector: Callable[[TargetDescription, int], VectorKnobs]
    loop_nests: bool = True
    """Whether templates may write a CPU loop nest themselves (Resize's nearest rows); False where the
    target binds threads to the shared computes (OpenCL, targets/opencl/threads.py)."""


def register_gemm_knobs(target: TargetDescription, m: int, n: int, rows: int | None = None) -> GemmKnobs:
    """The register-budget GEMM rule every CPU table shares: rows dividing `m` (or given `rows`), then
    as many column vectors as the registers hold (at most 4): `mi * vectors` accumulators, `vectors`
    weight loads and one broadcast; a panel width dividing `n` preferred (no padded tail tile)."""
    lanes = target.vector_lanes_f32
    registers = target.vector_registers
    mi = rows if rows is not None else next(r for r in ROW_PREFERENCE if m % r == 0)
    vectors = MAX_GEMM_VECTORS
    while vectors > 1 and mi * vectors + vectors + 1 > registers:
        vectors -= 1
    vectors = max(1, min(vectors, -(-n // lanes)))
    for v in range(vectors, 0, -1):
        if n % (v * lanes) == 0:
            vectors = v
            break
    return GemmKnobs(mi=mi, nb=vectors * lanes, lanes=lanes)


def full_vector_knobs(target: TargetDescription, itemsize: int) -> VectorKnobs:
    """One whole vector register of `itemsize`-byte elements."""
    return VectorKnobs(lanes=max(target.vector_bytes // itemsize, 1))


def f32_vector_knobs(target: TargetDescription) -> VectorKnobs:
    """One whole vector register of f32 (the depthwise templates' rows and channels)."""
    return VectorKnobs(lanes=target.vector_lanes_f32)


def schedules_of(target: TargetDescription) -> ScheduleTable:
    """The schedule table of `target`'s family (its target module's)."""
    from targets.registry import get_target

    return get_target(target.name).schedules()
