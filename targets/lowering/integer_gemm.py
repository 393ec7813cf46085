"""The u8 x i8 -> i32 GEMM core of the integer anchors (ConvInteger, MatMulInteger), VNNI or plain.

Rule: an integer anchor computes acc[n, p, o] = sum over k of A[n, p, k] * W[k, o]
with A unsigned bytes (an i8 activation is shifted by +128 into u8, its zero
point with it) and W signed bytes packed at compile time `d` bytes deep (the step's
`depth`: 4, or 8 for arm64's 2-row `usmmla` step) as
Wp[Mp/16, Kd + T, 16, d]: panel o//16, reduction block k//d, lane o%16, byte
k%d (K padded to a multiple of d, output channels to a multiple of 16 with
zeros). The T rows after the Kd reduction blocks are per-channel tables of
32-bit words (little-endian bytes of int32 or float32, the first 4 of a row's d), a `ctab` stage inlined
into the epilogue (TVM's reverse_compute_at wants every producer of the output
under the tile, compute_at every consumer: a per-tile table stage cannot be
placed, so the epilogue assembles the words from the bytes): row 0 is the
corrected bias B[o] - zx * sum_k W[k, o] (zx the activation's u8 zero point: padding is filled with zx, so
sum (x - zx) w = sum x w - zx sum w), the other rows the per-channel constants
of the fused quantize steps (`PackedTables`). The reduction's last two loops
are (c4, ci) over d consecutive bytes; where the target has a step instruction for
it (x86 avx512_vnni: `vpdpbusd`, targets/x86/vnni.py; arm64 i8mm `usdot`, dotprod
`sdot`, and for rows of one matrix in pairs i8mm's `usmmla`, targets/arm64/dot.py) the
inner step (`DotStep`: 1 x 16 x 4, or 2 rows x 16 x 8; targets/lowering/dot_step.py) is
tensorized into it (the schedule
table's `dot_intrinsic`; a step that shifts the activations, `DotStep.shift`, has its
correction folded into the corrected bias at pack time), else it is a plain
int32 TE reduction vectorised over the 16 lanes. The schedule follows
/work/shared/TVM-0.27.md: tile `rows` positions x `vectors` panels (IntKnobs,
chosen by the target's schedule table, targets/schedules.py) in registers,
panels outermost, tiles parallel, the epilogue written per tile,
decompose_reduction before tensorize.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import numpy as np
from tvm import te, tirx

from targets.lowering.pointwise import Expr
from targets.lowering.quantized import QUANT_OPS, LiteralTables, channel_axis, step_constants, uniform
from targets.lowering.tiling import padded
from targets.schedules import ROW_PREFERENCE, DotStep, IntKnobs, schedules_of
from targets.target import TargetDescription

PARALLEL_MIN_MACS = 1 << 19
"""Multiply-adds below which an integer kernel runs serial: VNNI does ~200 G of them a second on one
core, so this is ~2.5 µs of work, about what a parallel launch (and the pad stage's own) costs."""
LANES = 16
"""int32 accumulators of one weight panel (one 512-bit vector)."""
DEPTH = 4
"""Bytes one accumulator lane takes per reduction step."""
WORD = 4
"""Bytes of one table word (int32 or float32)."""
BLOCK_LANES = 2
"""Lanes of one accumulator block of a multi-row step (a matrix instruction's rows x 2 output)."""
PLAIN_STEP = DotStep("")
"""The untensorized step: a plain int32 reduction, activations as they are."""


def register_int_knobs(
    panel_registers: int, positions: int, channels: int, macs: int, *, dot: str, step_rows: int = 1
) -> IntKnobs:
    """The register-budget rule every CPU table shares, given how many 16-lane int32 panels the vector
    registers hold (`panel_registers`): up to 4 panels dividing the padded channels, then the most rows
    (ROW_PREFERENCE) that fit (one accumulator panel per row and panel, one per panel's weights, one
    broadcast); parallel from `macs` multiply-adds; `dot`: the instruction of the step ("" if none),
    which takes `step_rows` positions at once (rows are a multiple of it, and `positions` must be). A
    multi-row step reuses a weight register only across its tile's steps, so the panels leave room
    for two of them (a one-row step's weights serve every row: room for one row is enough)."""
    assert positions % step_rows == 0, f"{positions} positions do not pair into steps of {step_rows}"
    panels = -(-channels // LANES)
    least_rows = step_rows if step_rows == 1 else 2 * step_rows
    fit = [v for v in (4, 3, 2, 1) if panels % v == 0 and (least_rows + 1) * v + 1 <= panel_registers]
    vectors = next(iter(fit), 1)
    fits = [r for r in ROW_PREFERENCE if r * vectors + vectors + 1 <= panel_registers and r % step_rows == 0]
    rows = next((r for r in fits if positions % r == 0), step_rows)
    return IntKnobs(rows=rows, vectors=vectors, dot=dot, parallel=macs >= PARALLEL_MIN_MACS)


def dot_instruction(target: TargetDescription) -> str:
    """The instruction the 16 x 4 byte step is on `target` (x86 vpdpbusd, arm64 usdot/sdot), "" if none."""
    return schedules_of(target).integer_dot(target)


def choose_int_knobs(
    target: TargetDescription, positions: int, channels: int, macs: int, paired_rows: bool = False
) -> IntKnobs:
    """The target family's knobs for `positions` x `channels` outputs of `macs` multiply-adds;
    `paired_rows`: positions 2i and 2i + 1 read one strided region, so a 2-row step may take them."""
    return schedules_of(target).integer_gemm(target, positions, channels, macs, paired_rows)


def dot_step(target: TargetDescription, knobs: IntKnobs) -> DotStep:
    """The registered tensor intrinsic of the 16 x 4 step when `knobs` tensorize it, else the plain step."""
    return schedules_of(target).dot_intrinsic(knobs.dot) if knobs.dot else PLAIN_STEP


def block_layout(rows: int) -> Callable[[Any, Any, Any], tuple[Any, ...]]:
    """The index map of a multi-row step's accumulators acc[n, p, o]: blocks of `rows` positions x 2
    lanes, [n, p // rows, panel o // 16, block o % 16 // 2, p % rows, o % 2], so that one block is
    one vector register of the matrix instruction (the schedule's `transform_layout`; the step's
    description, dot_step.py, writes C in it)."""

    def layout(n: Any, p: Any, o: Any) -> tuple[Any, ...]:
        return (n, p // rows, o // LANES, o % LANES // BLOCK_LANES, p % rows, o % BLOCK_LANES)

    return layout


def reduction_blocks(k: int, depth: int = DEPTH) -> int:
    return -(-k // depth)


def pack_integer_weights(
    w_ko: np.ndarray, tables: Sequence[np.ndarray], depth: int = DEPTH, k_step: int = 0, m_step: int = LANES
) -> np.ndarray:
    """(K, M) int8 weights in reduction order and 1-D (M,) 32-bit tables -> Wp[Mp/16, Kd + T, 16, depth]
    (`depth` bytes deep, the step's; a table word takes the first 4 bytes of its row), K padded to a
    multiple of `k_step` (the step's depth unless given), M of `m_step` (a tile GEMM's block)."""
    k, m = w_ko.shape
    kp, mp = padded(k, k_step or depth), padded(m, m_step)
    full = np.zeros((kp, mp), np.int8)
    full[:k, :m] = w_ko
    blocks = full.reshape(kp // depth, depth, mp // LANES, LANES).transpose(2, 0, 3, 1)
    if not tables:
        return np.ascontiguousarray(blocks)
    words = np.zeros((mp, len(tables), depth), np.int8)
    words[:m, :, :WORD] = table_bytes(tables, m).reshape(m, len(tables), WORD)
    rows = words.reshape(mp // LANES, LANES, len(tables), depth).transpose(0, 2, 1, 3)
    return np.ascontiguousarray(np.concatenate([blocks, rows], axis=1))


def corrected_bias(w_ko: np.ndarray, bias: np.ndarray | None, zero: int) -> np.ndarray:
    """B[o] - zero * sum_k W[k, o] as int32 (a ValueError when it does not fit)."""
    total = -int(zero) * w_ko.astype(np.int64).sum(axis=0)
    if bias is not None:
        total = total + bias.astype(np.int64)
    if total.size and (total.min() < -(2**31) or total.max() >= 2**31):
        raise ValueError("the corrected int32 bias overflows")
    return total.astype(np.int32)


def weight_placeholder(k: int, channels: int, tables: int, depth: int = DEPTH) -> Any:
    shape = (padded(channels, LANES) // LANES, reduction_blocks(k, depth) + tables, LANES, depth)
    return te.placeholder(shape, "int8", name="Wp")


def weight_at(wp: Any, o: Expr, block: Expr, byte: Expr) -> Expr:
    return wp[o // LANES, block, o % LANES, byte]


def table_stage(part_at: Any, tables: int, channels: int, parts: int = WORD) -> Any:
    """ctab[t, o]: the 32-bit word of table row t for channel o, from its `parts` little-endian parts
    `part_at(t, o, b)` (4 int8 bytes; 2 uint16 halves in the bf16 packing)."""
    bits = 32 // parts

    def word(t: Expr, o: Expr) -> Expr:
        pieces = [
            part_at(t, o, b).astype(f"uint{bits}").astype("uint32") << te.const(bits * b, "uint32")
            for b in range(parts)
        ]
        combined = pieces[0]
        for piece in pieces[1:]:
            combined = combined | piece
        return tirx.reinterpret("int32", combined)

    return te.compute((tables, channels), word, name="ctab")


def packed_table_stage(wp: Any, k: int, tables: int) -> Any:
    """The `ctab` stage over the table rows of a packed weight Wp[panels, blocks + tables, 16, depth]
    (after its reduction blocks): 4 int8 parts of a word, or 2 uint16 in the bf16 packing."""
    first = reduction_blocks(k, int(wp.shape[3]))
    parts = 2 if str(wp.dtype) == "uint16" else WORD
    return table_stage(lambda t, o, b: weight_at(wp, o, first + t, b), tables, wp.shape[0] * LANES, parts)


def table_bytes(tables: Sequence[np.ndarray], channels: int) -> np.ndarray:
    """(channels, 4 * len(tables)) int8: each channel's table words, little-endian."""
    words = np.stack([np.asarray(t).astype(t.dtype.newbyteorder("<")).view(np.int32) for t in tables], axis=1)
    return words.reshape(channels, len(tables)).copy().view(np.int8)


class PackedTables:
    """Per-channel constants of the fused steps along the anchor's channel axis, as `ctab` rows 1..;
    constants along another axis fall back to literals. `collect` first, then build the stage."""

    def __init__(self, channel_axis: int) -> None:
        self.channel_axis = channel_axis
        self.rows: list[np.ndarray] = []
        self.ctab: Any = None
        self.fallback = LiteralTables()

    def collect(self, values: np.ndarray, axis: int) -> None:
        if axis == self.channel_axis and self._row(values) is None:
            self.rows.append(values)

    def _row(self, values: np.ndarray) -> int | None:
        for i, row in enumerate(self.rows):
            if row.dtype == values.dtype and np.array_equal(row, values):
                return 1 + i
        return None

    def read(self, values: np.ndarray, axis: int, index: Sequence[Expr]) -> Expr:
        row = self._row(values) if axis == self.channel_axis else None
        if row is None:
            return self.fallback.read(values, axis, index)
        word = self.ctab[row, index[axis]]
        return word if values.dtype == np.int32 else tirx.reinterpret(str(values.dtype), word)


def fused_tables(nodes: Sequence[Any], axis: int) -> PackedTables:
    """PackedTables holding the per-channel constants (along `axis`) of an epilogue's quantize steps."""
    tables = PackedTables(axis)
    for node in nodes:
        if node.op in QUANT_OPS and channel_axis(node) == axis:
            for values in step_constants(node).values():
                if not uniform(values):
                    tables.collect(values, axis)
    return tables


def schedule_integer_gemm(
    sch: Any,
    knobs: IntKnobs,
    stages: Sequence[str],
    vector_out: bool,
    channels: int,
    dot: DotStep,
    tables: bool = True,
) -> None:
    """Schedule block "acc" (loops n, p, o, reduce..., c4, ci), "ctab" (unless not `tables`) and "out"
    (see the module rule); the bf16 GEMM (bf16_gemm.py) shares it, its step 16 x 2.

    `dot`: the registered tensor intrinsic of the step when `knobs.dot` (a step of `dot.rows` positions
    is tensorized at a loop over that many of the tile's rows; its `llvm_import` is imported on the
    tile loop). `stages` are input
    stages ("pad") computed whole before the GEMM, in parallel over their first two loops (when
    `knobs.parallel`); `vector_out`: the output's innermost loop runs over channels.
    """
    parallel = knobs.parallel
    for name in stages:
        loops = sch.get_loops(sch.get_sblock(name))
        if parallel:
            sch.parallel(sch.fuse(*loops[:2]) if len(loops) > 2 else loops[0])
    block = sch.get_sblock("acc")
    if dot.rows > 1:  # the accumulators in the step's register blocks (the epilogue reads them there)
        sch.transform_layout(block, ("write", 0), block_layout(dot.rows))
    n, p, o, *reduce = sch.get_loops(block)
    *outer_reduce, ci = reduce
    po, pi = sch.split(p, [None, knobs.rows])
    oo, ov, oi = sch.split(o, [None, knobs.vectors, LANES])
    step_rows = [] if dot.rows == 1 else [pi]
    if step_rows:  # the step takes dot.rows positions: pi runs over its row groups
        pi, step_rows[0] = sch.split(pi, [None, dot.rows])
    inner = [pi, ov, *step_rows, oi, ci] if knobs.dot else [pi, ov, ci, oi]
    sch.reorder(oo, n, po, *outer_reduce, *inner)
    tile = sch.fuse(oo, n, po)
    if knobs.dot and dot.llvm_import:
        sch.annotate(tile, "pragma_import_llvm", dot.llvm_import)
    sch.set_scope(block, 0, "local")
    if tables:
        sch.compute_inline(sch.get_sblock("ctab"))  # a tile's epilogue reads the table bytes in place
    out = sch.get_sblock("out")
    sch.reverse_compute_at(out, tile)
    if parallel:
        sch.parallel(tile)
    sch.unroll(pi)
    sch.unroll(ov)
    out_loops = sch.get_loops(out)[1:]  # under the tile
    if not vector_out and len(out_loops) >= 2:  # NCHW: channels innermost, so the epilogue runs on vectors
        sch.reorder(out_loops[-1], out_loops[-2])
        out_loops = sch.get_loops(out)[1:]
    if channels % LANES == 0 and out_loops:
        sch.vectorize(sch.split(out_loops[-1], [None, LANES])[1])
    if not knobs.dot:
        sch.unroll(ci)
        sch.vectorize(oi)
    sch.decompose_reduction(block, outer_reduce[0])
    if knobs.dot:
        assert dot.intrinsic, "a dot schedule needs the dot intrinsic"
        sch.tensorize(step_rows[0] if step_rows else oi, dot.intrinsic)
