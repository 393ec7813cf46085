"""The recurrent steps of a tiled LSTM / GRU / RNN kernel: a register-tiled GEMV with the cell fused in.

Rule: the input projection (targets/lowering/rnn_projection.py) has already
given every step's X·Wᵀ + biases, columns in tile order
(targets/lowering/rnn_tiles.py). Step s runs, for every direction, batch row
and tile of U = `vectors` x `lanes` hidden units, h·Rᵀ of the tile's gates
into `vectors` vector accumulators per gate, started from the projection
(GRU's unfolded candidate from its Rb), reading R's tile panel row by row;
then, on the same registers, the cell: clip, the gate activations
(vectorised, targets/lowering/vector_math.py), peepholes, input_forget, the new C
and H, which it writes to the state buffers and Y. Tiles run in parallel when
the `recurrent` knobs say so (one thread pool launch per step and pass); a
bidirectional layer's directions share the launches when `together`, else the
whole forward sequence runs first, so that each thread streams only its share
of one direction's R. An 8-bit R sums h * (q - zero point) and scales the sum
(with the state quantized to u8 in the dynamic mode: integer products summed
in f32, or in int32 by the target's dot step, targets/lowering/rnn_dot.py;
targets/lowering/rnn_quantized.py). The hidden state is double-buffered by
step parity, so tiles never read a state another tile of the same step
writes. GRU without linear_before_reset needs r for every unit before
(r ⊙ h)·R_hᵀ: its step is two passes (z and r, then the candidate). A row's
step s is its time step s (reverse: length-1-s) while s < its length
(`sequence_lens`, clipped to [0, seq]); Y rows past the length are 0 and an
empty row's final states are 0, as ir/ops/rnn.py says. Padded units (hidden
size not a multiple of U) are never computed, read or written.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, replace
from typing import Any

from tvm import te, tirx
from tvm.script.ir_builder import IRBuilder
from tvm.script.ir_builder import tirx as T

from targets.lowering.rnn_dot import Tile, dot_sums
from targets.lowering.rnn_layer import Recurrence
from targets.lowering.rnn_projection import unfolded_gate
from targets.lowering.rnn_quantized import u8_centered, u8_scale, u8_zero
from targets.lowering.rnn_tiles import TileOrder
from targets.schedules import RecurrentKnobs

Expr = Any


@dataclass(frozen=True)
class Pass:
    """One GEMV over the tile's `gates` (their Rᵀ panel columns) with the state `source` ("h": the
    previous hidden state, "rh": GRU's r ⊙ h), then the cell part `cell`."""

    gates: tuple[int, ...]
    source: str
    cell: str


def passes(rec: Recurrence) -> tuple[Pass, ...]:
    if rec.node.op == "LSTM":
        return (Pass((0, 1, 2, 3), "h", "lstm"),)
    if rec.node.op == "RNN":
        return (Pass((0,), "h", "rnn"),)
    if rec.node.attrs["linear_before_reset"]:
        return (Pass((0, 1, 2), "h", "gru_linear"),)
    return (Pass((0, 1), "h", "gru_gates"), Pass((2,), "rh", "gru_candidate"))


class Step:
    """The statements of the steps, written into the PrimFunc being built (see the module rule)."""

    def __init__(
        self, rec: Recurrence, order: TileOrder, knobs: RecurrentKnobs, buf: Mapping[str, Any], dot: str = ""
    ):
        self.rec, self.order, self.knobs, self.buf, self.dot = rec, order, knobs, buf, dot
        shape = (rec.dirs, rec.batch, order.padded)
        self.h = T.alloc_buffer((2, *shape), rec.work)
        self.c = T.alloc_buffer(shape, rec.work) if rec.node.op == "LSTM" else None
        two_pass = len(passes(rec)) == 2
        self.z = T.alloc_buffer(shape, rec.work) if two_pass else None
        self.rh = T.alloc_buffer(shape, rec.work) if two_pass else None
        self.length = T.alloc_buffer((rec.batch,), "int32")

    def zero(self) -> Expr:
        return tirx.const(0.0, self.rec.work)

    def emit(self) -> None:
        self.initial_states()
        groups = (
            [tuple(range(self.rec.dirs))] if self.knobs.together else [(d,) for d in range(self.rec.dirs)]
        )
        for directions in groups:
            with T.serial(0, self.rec.seq) as step:
                for p in passes(self.rec):
                    self.step_pass(step, p, directions)
        self.final_states()

    # --- before and after the steps --------------------------------------------------------------
    def initial_states(self) -> None:
        rec, seq = self.rec, tirx.const(self.rec.seq, "int32")
        with T.serial(0, rec.batch) as b:
            length = seq
            if "sequence_lens" in self.buf:
                given = self.buf["sequence_lens"][b].astype("int32")
                length = tirx.max(tirx.min(given, seq), tirx.const(0, "int32"))
            store(self.length, length, b)
        for state, name in ((self.h, "initial_h"), (self.c, "initial_c")):
            if state is None:
                continue
            with T.grid(rec.dirs, rec.batch, self.order.padded) as (d, b, j):
                index = (0, d, b, j) if state is self.h else (d, b, j)
                init = self.zero()
                if name in self.buf:
                    given = self.buf[name][rec.state_index(d, b, tirx.min(j, rec.hidden - 1))]
                    init = tirx.Select(j < rec.hidden, given.astype(rec.work), init)
                store(state, init, *index)
        if "sequence_lens" in self.buf:
            y = self.buf["Y"]
            with T.grid(*y.shape) as index:
                store(y, tirx.const(0.0, rec.dtype), *index)

    def final_states(self) -> None:
        rec = self.rec
        for name, state in (("Y_h", self.h), ("Y_c", self.c)):
            if name not in self.buf or state is None:
                continue
            with T.grid(rec.dirs, rec.batch, rec.hidden) as (d, b, j):
                length = self.length[b]
                index = (length % 2, d, b, j) if state is self.h else (d, b, j)
                final = tirx.Select(length == 0, self.zero(), state[index])
                store(self.buf[name], final.astype(rec.dtype), *rec.state_index(d, b, j))

    def gate_start(self, row: Expr, column: Expr, g: int) -> Expr:
        """Where gate `g`'s accumulator starts: the projection, or for the unfolded gate its Rb (or 0)."""
        if g != unfolded_gate(self.rec) and "x_scale" in self.buf:  # dynamic u8: X's scale, then B
            bias = self.buf["xbias"][column] if "xbias" in self.buf else self.zero()
            projected = self.buf["xw"][row, column]
            if "x_zero" in self.buf:  # the integer projection's Σ x_q W_q: less x_zp Σ W_q, W's scale
                exact = projected - self.buf["x_zero"][0] * self.buf["W_sum"][column]
                projected = exact.astype(self.rec.work) * self.buf["W_scale"][column]
            return projected * self.buf["x_scale"][0] + bias
        if g != unfolded_gate(self.rec):
            return self.buf["xw"][row, column]
        return self.buf["rbias"][column] if "rbias" in self.buf else self.zero()

    # --- one pass of one step ------------------------------------------------------------------
    def step_pass(self, step: Expr, p: Pass, directions: tuple[int, ...]) -> None:
        """Pass `p` of `step` for every tile of `directions` and batch row (one parallel loop)."""
        rec, tiles = self.rec, self.order.tiles
        loop = T.parallel if self.knobs.parallel else T.serial
        with loop(0, len(directions) * rec.batch * tiles) as item:
            b, u = item // tiles % rec.batch, item % tiles
            for index, d in enumerate(directions):
                chosen = (
                    item // (rec.batch * tiles) == index if len(directions) > 1 else tirx.const(True, "bool")
                )
                with T.If(tirx.all(chosen, step < self.length[b])):
                    with T.Then():
                        self.tile(d, b, u, step, p)

    def tile(self, d: int, b: Expr, u: Expr, step: Expr, p: Pass) -> None:
        """Tile `u` of direction `d`, batch row `b` at `step`: accumulators, GEMV, cell."""
        rec, order, units = self.rec, self.order, self.knobs.units
        reverse = rec.direction == "reverse" or d == 1
        t = self.length[b] - 1 - step if reverse else step
        row = t * rec.batch + b if rec.layout == 0 else b * rec.seq + t
        src, rp = step % 2, self.buf["Rp"]
        base = d * order.gates * order.padded + u * order.gates * units  # the tile's first column
        acc = T.alloc_buffer((len(p.gates) * units,), rec.work, scope="local")
        if self.dot:
            dot_sums(self, Tile(d, b, u, src, row, base), p.gates, acc)
            self.cell_lanes(
                Slot(d, b, t, row, src, u * units, tirx.const(0, "int32"), base, acc), CELLS[p.cell]
            )
            return
        # 8-bit R: the sums run over (q - zero point) (with u8 states in the dynamic mode),
        # then take R's scale (and the state's), then the start
        stored, dynamic = "R_scale" in self.buf, rec.dynamic
        sums = acc
        h_scale, h_zero = self.state_quantization(src, d, b) if dynamic else (None, None)
        for gi, g in enumerate(p.gates):
            with self.tile_lanes() as slot:
                start = self.gate_start(row, base + g * units + slot, g)
                store(sums, tirx.const(0, sums.dtype) if stored else start, gi * units + slot)
        with T.serial(0, rec.hidden) as k:
            state = self.h[src, d, b, k] if p.source == "h" else self.gru_rh()[d, b, k]
            if dynamic:
                state = u8_centered(state, h_scale, h_zero).astype(rec.work)
            for gi, g in enumerate(p.gates):
                with self.tile_lanes() as slot:
                    column = base + g * units + slot
                    weight = rp[d, u, k, g * units + slot].astype(sums.dtype)
                    if stored:
                        weight = weight - self.buf["R_zero"][column].astype(sums.dtype)
                    store(sums, sums[gi * units + slot] + state * weight, gi * units + slot)
        if stored:
            for gi, g in enumerate(p.gates):
                with self.tile_lanes() as slot:
                    column = base + g * units + slot
                    scale = self.buf["R_scale"][column] * (h_scale if dynamic else tirx.const(1.0, rec.work))
                    scaled = sums[gi * units + slot].astype(rec.work) * scale
                    store(acc, scaled + self.gate_start(row, column, g), gi * units + slot)
        self.cell_lanes(Slot(d, b, t, row, src, u * units, tirx.const(0, "int32"), base, acc), CELLS[p.cell])

    def state_quantization(self, src: Expr, d: int, b: Expr) -> tuple[Expr, Expr]:
        """The dynamic u8 mode's scale and zero point of batch row `b`'s hidden state (read from parity
        `src`), measured over its units (and 0) by each tile alike."""
        bounds = T.alloc_buffer((2,), "float32", scope="local")
        params = T.alloc_buffer((2,), "float32", scope="local")
        for i in (0, 1):
            store(bounds, tirx.const(0.0, "float32"), i)
        with T.serial(0, self.rec.hidden) as k:
            value = self.h[src, d, b, k]
            store(bounds, tirx.call_llvm_pure_intrin("float32", "llvm.minnum", bounds[0], value), 0)
            store(bounds, tirx.call_llvm_pure_intrin("float32", "llvm.maxnum", bounds[1], value), 1)
        store(params, u8_scale(bounds[0], bounds[1]), 0)
        store(params, u8_zero(bounds[0], params[0]).astype("float32"), 1)
        return params[0], params[1].astype("int32")

    def gru_rh(self) -> Any:
        assert self.rh is not None
        return self.rh

    @contextmanager
    def tile_lanes(self) -> Iterator[Expr]:
        """The tile's slots: its vectors unrolled, each vector's lanes vectorised."""
        lanes = self.knobs.lanes
        with T.unroll(0, self.knobs.vectors) as v:
            with T.vectorized(0, lanes) as lane:
                yield v * lanes + lane

    def cell_lanes(self, first: Slot, cell: Callable[[Step, Slot], None]) -> None:
        """`cell` on every unit of the tile below the hidden size (`first`: the tile's first unit):
        a whole vector of units is skipped when padded; lane by lane only where H is not a
        multiple of the lanes (the loop is then not vectorised)."""
        lanes, hidden = self.knobs.lanes, self.rec.hidden
        with T.unroll(0, self.knobs.vectors) as v:
            start = first.unit + v * lanes
            if hidden % lanes:
                with T.vectorized(0, lanes) as lane:
                    with T.If(start + lane < hidden):
                        with T.Then():
                            cell(self, replace(first, unit=start + lane, slot=v * lanes + lane))
            else:
                with T.If(start < hidden):
                    with T.Then():
                        with T.vectorized(0, lanes) as lane:
                            cell(self, replace(first, unit=start + lane, slot=v * lanes + lane))


@dataclass(frozen=True)
class Slot:
    """One hidden unit of a tile in a cell: direction, batch row, time step, X row, the parity of the
    state read, the unit, its slot in the tile, the tile's first column, the accumulators."""

    d: int
    b: Expr
    t: Expr
    row: Expr
    src: Expr
    unit: Expr
    slot: Expr
    base: Expr
    acc: Any

    def gate(self, index: int, units: int) -> Expr:
        return self.acc[index * units + self.slot]

    def set_gate(self, index: int, units: int, value: Expr) -> None:
        store(self.acc, value, index * units + self.slot)


def write_h(step: Step, s: Slot, value: Expr) -> None:
    rec = step.rec
    store(step.h, value, 1 - s.src, s.d, s.b, s.unit)
    store(
        step.buf["Y"],
        step.h[1 - s.src, s.d, s.b, s.unit].astype(rec.dtype),
        *rec.y_index(s.t, s.d, s.b, s.unit),
    )


def lstm_cell(step: Step, s: Slot) -> None:
    """Gates i, o, f, c: i, f (or 1 - i), the new C, o, the new H (ir/ops/rnn.py's order)."""
    rec, units, d = step.rec, step.knobs.units, s.d
    n = rec.hidden
    c = step.c
    assert c is not None

    def peep(which: int, state: Expr) -> Expr:
        if "P" not in step.buf:
            return tirx.const(0.0, rec.work)
        return step.buf["P"][d, which * n + s.unit].astype(rec.work) * state

    c_prev = c[d, s.b, s.unit]
    s.set_gate(0, units, rec.act(d, 0, s.gate(0, units) + peep(0, c_prev)))
    if rec.node.attrs["input_forget"]:
        forget = tirx.const(1.0, rec.work) - s.gate(0, units)
    else:
        forget = rec.act(d, 0, s.gate(2, units) + peep(2, c_prev))
    s.set_gate(2, units, forget)
    store(c, s.gate(2, units) * c_prev + s.gate(0, units) * rec.act(d, 1, s.gate(3, units)), d, s.b, s.unit)
    c_new = c[d, s.b, s.unit]
    s.set_gate(1, units, rec.act(d, 0, s.gate(1, units) + peep(1, c_new)))
    write_h(step, s, s.gate(1, units) * rec.act(d, 2, c_new))


def rnn_cell(step: Step, s: Slot) -> None:
    write_h(step, s, step.rec.act(s.d, 0, s.gate(0, step.knobs.units)))


def gru_linear_cell(step: Step, s: Slot) -> None:
    """linear_before_reset: z, r, then g(x·W_hᵀ + Wb_h + r * (h·R_hᵀ + Rb_h)), then the new H."""
    rec, units, d = step.rec, step.knobs.units, s.d
    s.set_gate(0, units, rec.act(d, 0, s.gate(0, units)))
    s.set_gate(1, units, rec.act(d, 0, s.gate(1, units)))
    x_part = step.buf["xw"][s.row, s.base + 2 * units + s.slot]
    s.set_gate(2, units, rec.act(d, 1, x_part + s.gate(1, units) * s.gate(2, units)))
    blend(step, s, s.gate(0, units), s.gate(2, units))


def gru_gates_cell(step: Step, s: Slot) -> None:
    """The first pass without linear_before_reset: z kept, r ⊙ h the second pass's GEMV source."""
    rec, units, d = step.rec, step.knobs.units, s.d
    assert step.z is not None and step.rh is not None
    store(step.z, rec.act(d, 0, s.gate(0, units)), d, s.b, s.unit)
    store(step.rh, rec.act(d, 0, s.gate(1, units)) * step.h[s.src, d, s.b, s.unit], d, s.b, s.unit)


def gru_candidate_cell(step: Step, s: Slot) -> None:
    rec, units = step.rec, step.knobs.units
    assert step.z is not None
    s.set_gate(0, units, rec.act(s.d, 1, s.gate(0, units)))
    blend(step, s, step.z[s.d, s.b, s.unit], s.gate(0, units))


def blend(step: Step, s: Slot, z: Expr, candidate: Expr) -> None:
    """GRU's new H: (1 - z) * candidate + z * H."""
    one = tirx.const(1.0, step.rec.work)
    write_h(step, s, (one - z) * candidate + z * step.h[s.src, s.d, s.b, s.unit])


CELLS = {
    "lstm": lstm_cell,
    "rnn": rnn_cell,
    "gru_linear": gru_linear_cell,
    "gru_gates": gru_gates_cell,
    "gru_candidate": gru_candidate_cell,
}


def store(buffer: Any, value: Expr, *index: Expr) -> None:
    T.buffer_store(buffer, value, list(index))


def recurrent_steps(
    rec: Recurrence, order: TileOrder, knobs: RecurrentKnobs, inputs: Mapping[str, Any], dot: str = ""
) -> list[Any]:
    """The steps as a TE extern stage of `inputs` (name -> tensor: xw, Rp, and rbias, sequence_lens,
    initial_h, initial_c, P where present), summing the dynamic mode's GEMV with the LLVM intrinsic
    `dot` when given: its tensors Y, Y_h (and Y_c)."""
    with IRBuilder() as ib:
        with T.prim_func():
            T.func_name("recurrence")
            buf = {name: T.arg(name, T.buffer(t.shape, str(t.dtype))) for name, t in inputs.items()}
            for name, value in zip(("Y", "Y_h", "Y_c"), rec.node.results, strict=False):
                buf[name] = T.arg(name, T.buffer(tuple(value.type.shape), rec.dtype))
            Step(rec, order, knobs, buf, dot).emit()
    outputs = te.extern_primfunc(list(inputs.values()), ib.get(), name="recurrence")
    return list(outputs) if isinstance(outputs, list | tuple) else [outputs]
