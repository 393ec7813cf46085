"""The dynamic u8 LSTM step's GEMV by the target's 16 x 4 byte dot instruction (x86 `vpdpbusd`).

Rule: where targets/lowering/rnn_quantized.py `state_dot` names an LLVM
intrinsic, each tile of a step (targets/lowering/rnn_step.py) quantizes its
batch row's hidden state to u8 itself, a vector at a time (every tile alike:
the same numbers as onnxruntime's one quantization per step), then sums
h_q · R_q in int32 accumulators, one intrinsic per 16 columns and 4 units of h
(R packed by rnn_projection.py `dot_weights`: [dirs, tiles, ceil(H / 4), G*U*4]),
subtracts h_zp · Σ R_q (packed per column) and scales by h's and R's scales
before the start (the projection, X's scale, B) is added: exact integers, as
onnxruntime's int32 GEMM gives.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from tvm import tirx
from tvm.script.ir_builder import tirx as T

from targets.lowering.rnn_quantized import DOT_DEPTH, u8_scale, u8_value, u8_zero

if TYPE_CHECKING:
    from targets.lowering.rnn_step import Step

Expr = Any


@dataclass(frozen=True)
class Tile:
    """One tile of one step: direction, batch row, tile index, the state parity it reads, its X row,
    its first column."""

    d: int
    b: Expr
    u: Expr
    src: Expr
    row: Expr
    base: Expr


def store(buffer: Any, value: Expr, *index: Expr) -> None:
    T.buffer_store(buffer, value, list(index))


def dot_sums(step: Step, tile: Tile, gates: tuple[int, ...], acc: Any) -> None:
    """`gates`' sums of `tile` into `acc` (module rule)."""
    units, lanes, depth = step.knobs.units, step.knobs.lanes, DOT_DEPTH
    d, u = tile.d, tile.u
    state, h_scale, h_zero = quantized_state(step, tile)
    sums = T.alloc_buffer((len(gates) * units,), "int32", scope="local")
    for gi in range(len(gates)):
        with step.tile_lanes() as slot:
            store(sums, tirx.const(0, "int32"), gi * units + slot)
    rp = step.buf["Rp"]
    with T.serial(0, rp.shape[2]) as k4:
        word = T.reinterpret(state.vload([k4 * depth], f"uint8x{depth}"), dtype="int32")
        broadcast = T.reinterpret(T.broadcast(word, lanes), dtype=f"uint8x{lanes * depth}")
        for gi, g in enumerate(gates):
            for v in range(step.knobs.vectors):
                first = gi * units + v * lanes
                column = (g * units + v * lanes) * depth
                total = T.call_llvm_pure_intrin(
                    f"int32x{lanes}",
                    step.dot,
                    sums.vload([first], f"int32x{lanes}"),
                    broadcast,
                    rp.vload([d, u, k4, column], f"int8x{lanes * depth}"),
                )
                T.buffer_store(sums, total, [tirx.Ramp(first, 1, lanes)])
    for gi, g in enumerate(gates):
        with step.tile_lanes() as slot:
            column = tile.base + g * units + slot
            exact = sums[gi * units + slot] - h_zero * step.buf["R_sum"][column]
            scaled = exact.astype(step.rec.work) * (step.buf["R_scale"][column] * h_scale)
            store(acc, scaled + step.gate_start(tile.row, column, g), gi * units + slot)


def quantized_state(step: Step, tile: Tile) -> tuple[Any, Expr, Expr]:
    """The tile's batch row's hidden state (the parity it reads) as u8 over the dot step's padded
    length, with its scale and zero point (rnn_step.py `state_quantization`'s, measured a vector at
    a time; padded units read as 0, which the range holds anyway: no step writes them)."""
    src, d, b = tile.src, tile.d, tile.b
    lanes, length = step.knobs.lanes, step.buf["Rp"].shape[2] * DOT_DEPTH
    vectors = -(-length // lanes)
    bounds = T.alloc_buffer((2, lanes), "float32", scope="local")
    params = T.alloc_buffer((2,), "float32", scope="local")
    state = T.alloc_buffer((vectors * lanes,), "uint8", scope="local")
    with T.vectorized(0, lanes) as lane:
        for i in (0, 1):
            store(bounds, tirx.const(0.0, "float32"), i, lane)

    def unit(v: Expr, lane: Expr) -> Expr:
        j = v * lanes + lane
        return tirx.Select(j < step.rec.hidden, step.h[src, d, b, j], tirx.const(0.0, "float32"))

    with T.serial(0, vectors) as v:
        with T.vectorized(0, lanes) as lane:
            value = unit(v, lane)
            low = tirx.call_llvm_pure_intrin("float32", "llvm.minnum", bounds[0, lane], value)
            high = tirx.call_llvm_pure_intrin("float32", "llvm.maxnum", bounds[1, lane], value)
            store(bounds, low, 0, lane)
            store(bounds, high, 1, lane)
    with T.serial(1, lanes) as lane:
        low = tirx.call_llvm_pure_intrin("float32", "llvm.minnum", bounds[0, 0], bounds[0, lane])
        high = tirx.call_llvm_pure_intrin("float32", "llvm.maxnum", bounds[1, 0], bounds[1, lane])
        store(bounds, low, 0, 0)
        store(bounds, high, 1, 0)
    store(params, u8_scale(bounds[0, 0], bounds[1, 0]), 0)
    store(params, u8_zero(bounds[0, 0], params[0]).astype("float32"), 1)
    zero = params[1].astype("int32")
    with T.serial(0, vectors) as v:
        with T.vectorized(0, lanes) as lane:
            value = unit(v, lane)
            store(state, u8_value(value, params[0], zero).astype("uint8"), v * lanes + lane)
    return state, params[0], zero
