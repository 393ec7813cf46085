"""A recurrent layer's operands as the tiled kernel reads them, and its input projection as one GEMM.

Rule: X·Wᵀ for every step, batch row and direction does not depend on the
recurrence, so it is one GEMM of X viewed as (rows, inputs) (rows = seq*batch
in X's own order) by Wᵀ in the tile order (targets/lowering/rnn_tiles.py), with
the biases the step does not need apart (packed per column) added to its
output block: Wb + Rb of every gate, but GRU's candidate gate under
`linear_before_reset`, which adds Rb inside r * (h·Rᵀ + Rb) and so keeps its Rb
for the step (`recurrent_bias`). The GEMM is the packed MatMul/Gemm template's
compute and schedule (targets/lowering/tiling.py, the target's `gemm` knobs).
Constant W and R are packed at compile time (W into the GEMM's panels, R into
the step's per-tile panels, in the working dtype; 8-bit stored ones as 8-bit
panels with per-column zero points and scales, `Panel`); W, R given at run
time are gathered into the same layouts by stages inside the kernel. In the
dynamic u8 mode X is quantized by stages before the GEMM (`quantized_input`)
and the step applies X's scale and the biases. B, the states, sequence_lens
and P are read as they are.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from tvm import te, tirx

from ir.graph import Value
from targets.lowering.generic import Param, dtype_name
from targets.lowering.integer_gemm import LANES, pack_integer_weights, weight_at
from targets.lowering.kernel import KernelArg
from targets.lowering.matmul import pack_panels
from targets.lowering.rnn_layer import Recurrence
from targets.lowering.rnn_quantized import DOT_DEPTH, row_parameters, u8_centered, u8_scale, u8_value, u8_zero
from targets.lowering.rnn_tiles import TileOrder
from targets.lowering.tiling import padded
from targets.schedules import DotStep, GemmKnobs

Expr = Any
Layout = Callable[[np.ndarray], np.ndarray]
Gather = Callable[..., Expr]


class Operands:
    """The kernel's parameters as they are made (TE placeholders with the argument each binds) and the
    compile-time packing of the constant ones."""

    def __init__(self) -> None:
        self.params: list[Param] = []
        self.layouts: dict[str, tuple[str, Layout]] = {}  # argument key -> (value name, layout)
        self.gathered: list[str] = []  # names of the stages gathering a run-time operand

    def raw(self, value: Value, name: str, shape: tuple[int, ...] | None = None) -> Any:
        """`value` as it is (or viewed as `shape`): a weight when constant, else a run-time input."""
        found = next(
            (p.tensor for p in self.params if p.arg.value == value.name and p.arg.part is None), None
        )
        if found is not None:
            return found
        view = tuple(int(d) for d in (value.type.shape if shape is None else shape))
        role = "weight" if value.is_constant else "input"
        tensor = te.placeholder(view, dtype_name(value), name=name)
        self.params.append(Param(tensor, KernelArg(value.name, role, view, dtype_name(value))))
        return tensor

    def packed(
        self,
        value: Value,
        name: str,
        shape: tuple[int, ...],
        dtype: str,
        layout: Layout,
        gather: Gather,
    ) -> Any:
        """`value` in a packed layout: packed by `layout` at compile time when constant (argument part
        `name`), else gathered in the kernel by `gather(raw tensor, *packed index)`."""
        if not value.is_constant:
            raw = self.raw(value, value.name)
            self.gathered.append(f"{name}_gathered")
            return te.compute(shape, lambda *i: gather(raw, *i), name=self.gathered[-1])
        tensor = te.placeholder(shape, dtype, name=name)
        arg = KernelArg(value.name, "weight", shape, dtype, part=name)
        self.params.append(Param(tensor, arg))
        self.layouts[arg.key] = (value.name, lambda a: np.ascontiguousarray(layout(a), dtype=dtype))
        return tensor

    def pack(self, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Each weight argument's array (by its key) from the constants (by value name)."""
        packed = {}
        for p in self.params:
            if p.arg.role == "weight":
                value, layout = self.layouts.get(p.arg.key, (p.arg.value, np.ascontiguousarray))
                packed[p.arg.key] = layout(arrays[value])
        return packed


def unfolded_gate(rec: Recurrence) -> int | None:
    """The gate whose Rb stays out of the projection: GRU's candidate under linear_before_reset."""
    return 2 if rec.node.op == "GRU" and rec.node.attrs["linear_before_reset"] else None


def gate_bias(rec: Recurrence, order: TileOrder, ops: Operands, recurrent_only: bool) -> Any:
    """B per column in tile order: Wb + Rb (Rb of the unfolded gate left out), or, `recurrent_only`,
    the unfolded gate's Rb alone; 0 for padded units."""
    b = rec.operand(3)
    assert b is not None
    rows, work, unfolded = rec.gates * rec.hidden, rec.work, unfolded_gate(rec)

    def layout(array: np.ndarray) -> np.ndarray:
        wb, rb = (
            array[:, :rows].reshape(rec.dirs, rec.gates, -1),
            array[:, rows:].reshape(rec.dirs, rec.gates, -1),
        )
        apart = np.zeros_like(rb)
        if unfolded is not None:
            apart[:, unfolded] = rb[:, unfolded]
        total = apart if recurrent_only else wb + rb - apart
        return order.rows(total.reshape(rec.dirs, rows))

    def gather(raw: Any, col: Expr) -> Expr:
        d, g, unit = order.source(col)
        row, zero = g * rec.hidden + tirx.min(unit, rec.hidden - 1), tirx.const(0.0, work)
        rb = raw[d, rows + row].astype(work)
        if unfolded is not None:
            apart = g == unfolded
            rb = te.if_then_else(apart, rb, zero) if recurrent_only else te.if_then_else(apart, zero, rb)
        elif recurrent_only:
            rb = zero
        total = rb if recurrent_only else raw[d, row].astype(work) + rb
        return te.if_then_else(unit < rec.hidden, total, zero)

    name = "rbias" if recurrent_only else "xbias"
    return ops.packed(b, name, (order.columns,), work, layout, gather)


@dataclass(frozen=True)
class Panel:
    """A weight in its packed layout: float values, or a stored 8-bit weight's integers with its
    zero points and scales per column (the GEMM and the GEMV factor the scale out of their sums);
    packed for the dot step (zero points 0), the sums of its integers per column instead."""

    values: Any
    zero: Any = None
    scale: Any = None
    sums: Any = None

    def read(self, index: tuple[Expr, ...], column: Expr, dtype: str) -> Expr:
        """The value (less its zero point) at `index` of `column`, in `dtype`."""
        value = self.values[index].astype(dtype)
        return value if self.zero is None else value - self.zero[column].astype(dtype)

    def scaled(self, total: Expr, column: Expr) -> Expr:
        return total if self.scale is None else total * self.scale[column]


def panel(
    rec: Recurrence,
    order: TileOrder,
    ops: Operands,
    which: str,
    shape: tuple[int, ...],
    layout: Layout,
    gather: Gather,
    columns: int,
) -> Panel:
    """W or R (`which`) packed by `layout`; a stored 8-bit one with its row parameters per column in
    tile order (zero past the last, `columns` long)."""
    value = rec.stored.get(which) or rec.operand(1 if which == "W" else 2)
    assert value is not None
    name = f"{which}p"
    if which not in rec.stored:
        return Panel(ops.packed(value, name, shape, rec.work, layout, gather))
    params = row_parameters(value)

    def per_column(part: str) -> Layout:
        def layout(_: np.ndarray) -> np.ndarray:
            ordered = order.rows(params[part].astype(np.float32))
            return np.pad(ordered, (0, columns - ordered.size))

        return layout

    values = ops.packed(value, name, shape, dtype_name(value), layout, gather)
    zero = ops.packed(value, f"{which}_zero", (columns,), "float32", per_column("zero_points"), gather)
    scale = ops.packed(value, f"{which}_scale", (columns,), "float32", per_column("scales"), gather)
    return Panel(values, zero, scale)


def input_projection(
    rec: Recurrence, order: TileOrder, ops: Operands, knobs: GemmKnobs, dot: DotStep | None = None
) -> dict[str, Any]:
    """X·Wᵀ (+ the folded biases) for every row of X, columns in tile order (module rule), as the step
    reads it: {"xw": ...}; in the dynamic u8 mode the integer sums scaled by W's scales alone, plus
    "x_scale" and the folded biases "xbias", which the step applies (a GEMM's output block reads no
    computed stage but its accumulator); by the integer GEMM template when `dot` (`dot_projection`)."""
    m, k_dim, n, work, nb = rec.seq * rec.batch, rec.inputs, order.columns, rec.work, knobs.nb
    x = ops.raw(rec.operand(0), "X", (m, k_dim))  # type: ignore[arg-type]

    def gather(raw: Any, p: Expr, k: Expr, lane: Expr) -> Expr:
        col = p * nb + lane
        d, g, unit = order.source(tirx.min(col, n - 1))
        valid = tirx.all(col < n, unit < rec.hidden)
        return te.if_then_else(valid, raw[d, g * rec.hidden + unit, k].astype(work), tirx.const(0.0, work))

    shape = (padded(n, nb) // nb, k_dim, nb)
    w = panel(rec, order, ops, "W", shape, lambda a: pack_panels(order.rows(a).T, nb), gather, padded(n, nb))
    k = te.reduce_axis((0, k_dim), name="k")
    bias = gate_bias(rec, order, ops, recurrent_only=False) if rec.operand(3) is not None else None
    if dot is not None:
        return {**dot_projection(rec, order, ops, x, dot), **({"xbias": bias} if bias is not None else {})}
    if rec.dynamic:
        x_scale, xq = quantized_input(rec, ops, x)
        acc = te.compute(
            (m, padded(n, nb)),
            lambda i, j: te.sum(xq[i, k] * w.read((j // nb, k, j % nb), j, work), axis=k),
            name="acc",
        )
        xw = te.compute((m, n), lambda i, j: w.scaled(acc[i, j].astype(work), j), name="xw")
        return {"xw": xw, "x_scale": x_scale, **({"xbias": bias} if bias is not None else {})}
    acc = te.compute(
        (m, padded(n, nb)),
        lambda i, j: te.sum(x[i, k].astype(work) * w.read((j // nb, k, j % nb), j, work), axis=k),
        name="acc",
    )
    if bias is None:
        return {"xw": te.compute((m, n), lambda i, j: w.scaled(acc[i, j], j), name="xw")}
    return {"xw": te.compute((m, n), lambda i, j: bias[j] + w.scaled(acc[i, j], j), name="xw")}


def dot_projection(rec: Recurrence, order: TileOrder, ops: Operands, x: Any, dot: DotStep) -> dict[str, Any]:
    """The dynamic mode's projection by the integer GEMM template (targets/lowering/integer_gemm.py:
    blocks "acc" and "out", its schedule `schedule_integer_gemm`, no tables) where W is i8 with
    zero points 0 (rnn_quantized.py `state_dot`): X as u8 ("pad", K padded with its zero point) by
    W packed 4 bytes deep; "xw" holds Σ x_q W_q (int32), and the step subtracts x_zp Σ W_q
    ("W_sum") before it scales by W's ("W_scale") and X's scales (an output block may read
    nothing computed outside its tile, and X's zero point is)."""
    m, k_dim, n, depth = rec.seq * rec.batch, rec.inputs, order.columns, dot.depth
    kp, value = padded(k_dim, depth), rec.stored["W"]
    x_scale, x_zero = input_range(rec, ops, x)
    xq = te.compute((m, kp), lambda p, c: te.if_then_else(
        c < k_dim, u8_value(x[p, tirx.min(c, k_dim - 1)], x_scale[0], x_zero[0]),
        x_zero[0].astype("float32")).astype("uint8"), name="pad")  # fmt: skip

    def never(*_: Expr) -> Expr:
        raise AssertionError("a stored W is a constant")

    shape = (padded(n, LANES) // LANES, kp // depth, LANES, depth)
    layout = lambda a: pack_integer_weights(order.rows(a).T, [], depth)  # noqa: E731
    wp = ops.packed(value, "Wp", shape, "int8", layout, never)
    sums = ops.packed(value, "W_sum", (n,), "int32", lambda a: order.rows(a.astype(np.int32).sum(2)), never)
    scales = lambda _: order.rows(row_parameters(value)["scales"].astype(np.float32))  # noqa: E731
    scale = ops.packed(value, "W_scale", (n,), "float32", scales, never)
    rc4, rci = te.reduce_axis((0, kp // depth), "c4"), te.reduce_axis((0, depth), "ci")

    def product(_: Expr, p: Expr, o: Expr) -> Expr:
        weight = weight_at(wp, o, rc4, rci).astype("int32")
        return te.sum(xq[p, rc4 * depth + rci].astype("int32") * weight, axis=[rc4, rci])

    acc = te.compute((1, m, shape[0] * LANES), product, name="acc")
    xw = te.compute((m, n), lambda p, o: acc[0, p, o], name="out")
    return {"xw": xw, "x_scale": x_scale, "x_zero": x_zero, "W_sum": sums, "W_scale": scale}


def quantized_input(rec: Recurrence, ops: Operands, x: Any) -> tuple[Any, Any]:
    """The dynamic u8 mode's X (targets/lowering/rnn_quantized.py): its scale ([1]) and X quantized
    less its zero point (an integer in f32, as X is viewed), over `input_range`."""
    scale, zero_point = input_range(rec, ops, x)
    xq = te.compute(
        (rec.seq * rec.batch, rec.inputs),
        lambda r, c: u8_centered(x[r, c], scale[0], zero_point[0]).astype("float32"),
        name="xq",
    )
    return scale, xq


def input_range(rec: Recurrence, ops: Operands, x: Any) -> tuple[Any, Any]:
    """X's u8 scale and zero point ([1] each), the range taken over the rows of every step below the
    longest clipped sequence length (and 0)."""
    m, k_dim, seq = rec.seq * rec.batch, rec.inputs, tirx.const(rec.seq, "int32")
    lens = rec.operand(4)
    if lens is None:
        longest = te.compute((1,), lambda _: seq, name="longest")
    else:
        lens_t, b = ops.raw(lens, "sequence_lens"), te.reduce_axis((0, rec.batch), name="b")
        longest = te.compute(
            (1,), lambda _: te.max(tirx.min(lens_t[b].astype("int32"), seq), axis=b), name="longest"
        )

    def step_of(i: Expr) -> Expr:
        return i // rec.batch if rec.layout == 0 else i % rec.seq

    i, k = te.reduce_axis((0, m), name="i"), te.reduce_axis((0, k_dim), name="kx")
    zero = tirx.const(0.0, "float32")
    counted = lambda: te.if_then_else(step_of(i) < longest[0], x[i, k], zero)  # noqa: E731
    low = te.compute((1,), lambda _: te.min(counted(), axis=[i, k]), name="x_min")
    high = te.compute((1,), lambda _: te.max(counted(), axis=[i, k]), name="x_max")
    lo, hi = tirx.min(low[0], zero), tirx.max(high[0], zero)
    scale = te.compute((1,), lambda _: u8_scale(lo, hi), name="x_scale")
    zero_point = te.compute((1,), lambda _: u8_zero(lo, scale[0]), name="x_zero")
    return scale, zero_point


def recurrent_weights(rec: Recurrence, order: TileOrder, ops: Operands, dot: bool = False) -> Panel:
    """R as [dirs, tiles, H, G*U] (targets/lowering/rnn_tiles.py), or for the dot step
    (`dot_weights`) as [dirs, tiles, ceil(H / 4), G*U*4]."""
    if dot:
        return dot_weights(rec, order, ops)
    work, units = rec.work, order.units

    def gather(raw: Any, d: Expr, tile: Expr, k: Expr, lane: Expr) -> Expr:
        g, unit = lane // units, tile * units + lane % units
        row = g * rec.hidden + tirx.min(unit, rec.hidden - 1)
        return te.if_then_else(unit < rec.hidden, raw[d, row, k].astype(work), tirx.const(0.0, work))

    shape = (order.dirs, order.tiles, rec.hidden, order.gates * units)
    return panel(rec, order, ops, "R", shape, order.recurrent_panels, gather, order.columns)


def dot_weights(rec: Recurrence, order: TileOrder, ops: Operands) -> Panel:
    """A stored i8 R (zero points 0: targets/lowering/rnn_quantized.py `state_dot`) packed for the
    16 x 4 byte dot step: row k4 of a tile holds, for each of its G*U columns, the 4 bytes of R
    that multiply h[4*k4 : 4*k4 + 4] (zero past H); its scales and the sums of each column's bytes
    (int32) per column in tile order."""
    value, columns, depth = rec.stored["R"], order.columns, DOT_DEPTH
    steps = -(-rec.hidden // depth)

    def layout(array: np.ndarray) -> np.ndarray:
        panels = order.recurrent_panels(array)  # [dirs, tiles, H, G*U]
        padded_rows = np.zeros((*panels.shape[:2], steps * depth, panels.shape[3]), array.dtype)
        padded_rows[:, :, : rec.hidden] = panels
        grouped = padded_rows.reshape(*panels.shape[:2], steps, depth, panels.shape[3])
        return grouped.transpose(0, 1, 2, 4, 3).reshape(*panels.shape[:2], steps, -1)

    def sums(array: np.ndarray) -> np.ndarray:
        return order.rows(array.astype(np.int32).sum(axis=2))

    def scales(_: np.ndarray) -> np.ndarray:
        return order.rows(row_parameters(value)["scales"].astype(np.float32))

    def never(*_: Expr) -> Expr:
        raise AssertionError("a stored R is a constant")

    shape = (order.dirs, order.tiles, steps, order.gates * order.units * depth)
    values = ops.packed(value, "Rp", shape, "int8", layout, never)
    total = ops.packed(value, "R_sum", (columns,), "int32", sums, never)
    scale = ops.packed(value, "R_scale", (columns,), "float32", scales, never)
    return Panel(values, scale=scale, sums=total)


def recurrent_bias(rec: Recurrence, order: TileOrder, ops: Operands) -> Any | None:
    """The unfolded gate's Rb per column (None when every Rb is folded or there is no B)."""
    if rec.operand(3) is None or unfolded_gate(rec) is None:
        return None
    return gate_bias(rec, order, ops, recurrent_only=True)
