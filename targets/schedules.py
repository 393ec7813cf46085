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
  `vectors` panels of 16 int32 lanes, `dot` (the instruction the step is: the 16 x 4 byte step of x86
  `vpdpbusd`, arm64 `usdot`/`sdot`, or arm64 i8mm's 2-row 16 x 8 `usmmla` step where positions
  pair up; "" for the plain int32 reduction; `dot_intrinsic`), `parallel`.
- `depthwise` (depthwise Conv) and `vector` (pointwise/elementwise, reductions, movement,
  window pools): `lanes`, the vector width in elements.
- `recurrent` (LSTM, GRU, RNN steps; targets/lowering/rnn_step.py): a tile of `vectors` x `lanes`
  hidden units whose gates accumulate in registers, `parallel` tiles per step, `together`
  directions. (Their input projection is a `gemm`.)
- layout: `TargetBackend.channels_last` (conv regions NHWC through the `layout` pass).
- tiles (x86 AMX-BF16 / AMX-INT8: `TileGemm`, `bf16_tiles` / `integer_tiles`): a matrix unit's
  block function the bf16 and integer GEMMs call where the layer fills its blocks.
Slot: OpenCL (work-group sizes) adds a table or a family here.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
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
    instruction of the step (`DotStep`; "": the plain int32 reduction), whose `rows` divide the tile's;
    `parallel`: tiles (and input stages) run on the thread pool."""

    rows: int
    vectors: int
    dot: str
    parallel: bool = True

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class DotStep:
    """A registered tensor intrinsic of a dot GEMM's step: its name; `shift`, what the step adds
    to each u8 activation byte before multiplying (arm64 `sdot` reads them as i8, so -128; the packer
    folds `-shift * sum_k W[k, o]` into the corrected bias); its shape, `rows` positions x 16 lanes x
    `depth` parts: 1 x 16 x 4 bytes for the dot instructions (x86 `vpdpbusd`, arm64 `usdot`/`sdot`),
    2 x 16 x 8 bytes for arm64 i8mm's matrix step (`usmmla`), 1 x 16 x 2 bf16 halves for the bf16
    step (x86 `vdpbf16ps`). The weights are packed `depth` parts deep. `llvm_import`: LLVM IR the
    step's implementation calls (a function wrapping an intrinsic whose operand types TIR cannot
    spell), imported once per kernel by the schedule. `vector_intrinsic`: the LLVM intrinsic that is
    the 1 x 16 x 4 step on its own (int32x16 C, the 4 A bytes broadcast as uint8x64, B as int8x64),
    for kernels written as loops rather than tensorized (the recurrent step's GEMV); "" if none."""

    intrinsic: str
    shift: int = 0
    rows: int = 1
    depth: int = 4
    llvm_import: str = ""
    vector_intrinsic: str = ""


@dataclass(frozen=True)
class TileGemm:
    """A matrix unit's GEMM block (x86 AMX-BF16, AMX-INT8): `function`, defined in the LLVM IR
    `llvm_import` the kernel imports, computes a `rows` x `columns` block of `accumulator` sums over
    `depth`-long steps of K of `operand` activations (bf16 bits as uint16, or uint8) and `weight`
    elements (packed in 4-byte groups: `group` elements of K a lane); its signature and operand
    layouts are targets/x86/amx.py's. `window_import`: LLVM IR of `function`_w, the same block summed
    over a stride-1 conv window's positions with A read in place (targets/lowering/bf16_windows.py),
    "" where the unit has none."""

    function: str
    llvm_import: str
    rows: int
    columns: int
    depth: int
    operand: str = "uint16"
    weight: str = "uint16"
    accumulator: str = "float32"
    window_import: str = ""

    @property
    def element_bytes(self) -> int:
        return 2 if self.operand.endswith("16") else 1

    @property
    def group(self) -> int:
        """Elements of K one 32-bit lane of a weight panel row holds (bf16: 2, int8: 4)."""
        return 4 // self.element_bytes


@dataclass(frozen=True)
class VectorKnobs:
    """`lanes`: elements of one vector (depthwise rows/channels, elementwise and reduction loops)."""

    lanes: int


@dataclass(frozen=True)
class RecurrentKnobs:
    """A recurrent step's tile: `vectors` x `lanes` hidden units, each gate of the cell accumulating
    in `vectors` registers of `lanes` floats; `parallel`: a step's tiles run on the thread pool;
    `together`: a bidirectional layer's two directions step in the same parallel loops (else one
    direction's whole sequence, then the other's)."""

    lanes: int
    vectors: int
    parallel: bool
    together: bool = True

    @property
    def units(self) -> int:
        return self.vectors * self.lanes

    def to_json(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class ScheduleTable:
    """A target family's knob choices, one function per template family (see the module rule).

    - `gemm(target, m, n, rows)`: rows dividing `m` (or `rows` given) by columns of `n`.
    - `integer_gemm(target, positions, channels, macs, paired_rows)`: `paired_rows`, positions 2i
      and 2i + 1 read one strided region of the input (a MatMulInteger's rows; a conv's neighbours
      in an output row of even width at W stride 1), so a 2-row step can read them at once.
    - `integer_dot(target)`: the instruction the 16 x 4 u8 x i8 step is there ("" if none);
      `bf16_dot(target)`: the instruction the 16 x 2 bf16 step is there ("" if none: a plain
      float32 reduction of the widened values); `dot_intrinsic(dot)` registers the tensor intrinsic of a
      knob's `dot` (integer or bf16) and returns its `DotStep`.
    - `depthwise(target)`, `vector(target, itemsize)`: the vector width for f32 / `itemsize` bytes.
    - `recurrent(target, gates, hidden, directions, batch)`: the step tiles of a layer of `gates` gates.
    - `bf16_tiles(target)`, `integer_tiles(target)`: the target's matrix-unit bf16 / u8 x i8 GEMM
      block (`TileGemm`), None without one.
    - `loop_nests`: whether CPU-shaped forms may stand in for the plain compute: hand-written loop
      nests, row fast paths (nearest Resize), vector-lane partials (last-axis Softmax).
    - `native_math`: exp/tanh/erf as the target's own builtins rather than the polynomial forms of
      targets/lowering/vector_math.py (devices with fast math functions: OpenCL).
    - `plain_extremes_from`: rows of at least this many elements take their float max/min as plain
      max/min reductions plus a NaN flag (targets/lowering/reduce.py `extreme`), which work-group
      reductions recognise as reducers; 0 (CPUs): never, one NaN-propagating `nan_max` reduction.
    - `parallel_bands`: how a channels-last region's kernels share their work among threads. Above 1,
      a dense conv's parallel loop is first split into that many contiguous bands of output rows
      (`schedule_gemm`'s `band`) and depthwise convs run row tasks only, so a thread reads the band
      it wrote in the kernel before (measured on x86: MobileNetV2 at 2 threads, 8 bands, 0.82x the time of
      channel-panel tasks); 1: panels outermost, depthwise plane tasks where they fit.
    """

    gemm: Callable[[TargetDescription, int, int, int | None], GemmKnobs]
    integer_gemm: Callable[[TargetDescription, int, int, int, bool], IntKnobs]
    integer_dot: Callable[[TargetDescription], str]
    dot_intrinsic: Callable[[str], DotStep]
    depthwise: Callable[[TargetDescription], VectorKnobs]
    vector: Callable[[TargetDescription, int], VectorKnobs]
    recurrent: Callable[[TargetDescription, int, int, int, int], RecurrentKnobs]
    bf16_dot: Callable[[TargetDescription], str] = lambda _target: ""  # a family without one
    bf16_tiles: Callable[[TargetDescription], TileGemm | None] = lambda _target: None
    integer_tiles: Callable[[TargetDescription], TileGemm | None] = lambda _target: None
    loop_nests: bool = True
    native_math: bool = False
    """Whether templates may write a CPU loop nest themselves (Resize's nearest rows); False where the
    target binds threads to the shared computes (OpenCL, targets/opencl/threads.py)."""
    parallel_bands: int = 1
    plain_extremes_from: int = 0


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


RECURRENT_ACCUMULATORS = 8
"""Vector accumulators a recurrent step tile aims at (enough independent FMA chains to hide latency)."""
RECURRENT_PARALLEL_MIN_MACS = 1 << 14
"""Multiply-adds of one step below which its tiles run serially (a parallel launch does not pay).
Measured on a quiet Xeon, 2 threads, parallel against serial steps: LSTM hidden 128 (65K a step)
0.195 / 0.20 ms, bidirectional GRU hidden 192 (221K) 0.86 / 0.97 ms, bidirectional LSTM hidden
256 (524K) 1.97 / 3.2 ms."""
RECURRENT_TOGETHER_BYTES = 2 << 20
"""Bytes of R (f32, all directions) up to which both directions step together: measured on a 2 MiB-L2
Xeon (2 threads), bidirectional LSTM hidden 256 (2 MiB of R) ran faster together, hidden 512 (8 MiB)
faster one direction after the other (each thread then streams half of one direction's R)."""


def register_recurrent_knobs(
    target: TargetDescription, gates: int, hidden: int, directions: int, batch: int
) -> RecurrentKnobs:
    """The recurrent-step rule every CPU table shares: `RECURRENT_ACCUMULATORS` // `gates` vectors per
    gate (at least 1, no more than the hidden units fill), fewer while `gates * vectors` accumulators
    and as many weight loads plus one broadcast exceed the registers; parallel above
    `RECURRENT_PARALLEL_MIN_MACS` per step; directions together up to `RECURRENT_TOGETHER_BYTES` of R."""
    lanes = target.vector_lanes_f32
    vectors = max(1, min(RECURRENT_ACCUMULATORS // gates, -(-hidden // lanes)))
    while vectors > 1 and 2 * gates * vectors + 1 > target.vector_registers:
        vectors -= 1
    r_bytes = 4 * directions * gates * hidden * hidden
    return RecurrentKnobs(
        lanes=lanes,
        vectors=vectors,
        parallel=directions * batch * gates * hidden * hidden >= RECURRENT_PARALLEL_MIN_MACS,
        together=r_bytes <= RECURRENT_TOGETHER_BYTES,
    )


RECURRENT_DOT_ACCUMULATORS = 16
"""int32 accumulators a recurrent step tile on the dot instruction aims at (targets/lowering/rnn_dot.py):
its R is a memory operand of the instruction, so the registers hold twice the f32 tile's. Measured on
ddddocr_rec_int8's bidirectional LSTM (hidden 512, Xeon): 4 vectors a gate 1.25 -> 1.11 ms at 1 thread,
0.80 -> 0.67 ms at 2 against 2 vectors; 6 (tiles padding 512 units to 576) was slower than 4."""


def dot_recurrent_knobs(
    target: TargetDescription, knobs: RecurrentKnobs, gates: int, hidden: int
) -> RecurrentKnobs:
    """`knobs` for a step on the dot instruction: `RECURRENT_DOT_ACCUMULATORS` // `gates` vectors per gate
    (no more than the hidden units fill), fewer while the accumulators and one broadcast exceed the
    registers."""
    vectors = max(1, min(RECURRENT_DOT_ACCUMULATORS // gates, -(-hidden // knobs.lanes)))
    while vectors > 1 and gates * vectors + 1 > target.vector_registers:
        vectors -= 1
    return replace(knobs, vectors=vectors)


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
