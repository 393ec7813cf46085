"""Op family: recurrent layers LSTM, GRU and RNN (ONNX-22 semantics, everything explicit).

Rule: operands are (X, W, R, B?, sequence_lens?, initial_h?[, initial_c?, P?]),
absent optional ones are None. `hidden_size` is always given; `activations`
holds one name per gate function and direction (LSTM f,g,h; GRU f,g; RNN f)
and `activation_alpha`/`activation_beta`, when present, one value per
activation (the converter resolves ONNX's sequential lists and defaults).
Results are always (Y, Y_h) and for LSTM also Y_c; unused ones have no uses.
The per-step gate math lives here, the shared time loop in `ir.ops.recurrence`.
An LSTM may say how its kernel computes (`DYNAMIC_QUANTIZATION`); the reference
computes in the operands' float type whatever it says.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ir.errors import IRError
from ir.ops.common import expect_float, present, same_dtype
from ir.ops.recurrence import (
    Cell,
    CellFactory,
    GateFn,
    check_activations,
    clipper,
    gate_functions,
    prepare_inputs,
    run_recurrence,
)
from ir.ops.registry import Attr, AttrKind, ComputeFn, InferFn, define_op
from ir.types import TensorType

DIRECTIONS = {"forward": 1, "reverse": 1, "bidirectional": 2}

DYNAMIC_QUANTIZATION = "dynamic_quantization"
"""LSTM attribute: "u8" quantizes X and each step's hidden state to u8 at run time and multiplies them
with the 8-bit stored W and R (onnxruntime's DynamicQuantizeLSTM; targets/lowering/rnn_quantized.py)."""
DYNAMIC_QUANTIZATION_MODES = ("u8",)


@dataclasses.dataclass(frozen=True)
class RecurrentOp:
    """What distinguishes LSTM, GRU and RNN for the shared declaration."""

    name: str
    gates: int  # row blocks of W and R
    default_activations: tuple[str, ...]  # one direction's
    states: int  # 2 for LSTM (H, C), else 1
    cell: Callable[[Mapping[str, Any], Sequence[np.ndarray | None]], CellFactory]  # (attrs, operands)
    extra_operands: tuple[str, ...] = ()
    extra_attrs: Mapping[str, Attr] = dataclasses.field(default_factory=dict)


def _lstm_cells(attrs: Mapping[str, Any], args: Sequence[np.ndarray | None]) -> CellFactory:
    clip = clipper(attrs.get("clip"))
    couple = bool(attrs["input_forget"])
    peepholes = args[7] if len(args) > 7 else None

    def make(d: int, r: np.ndarray, r_bias: np.ndarray, fns: list[GateFn]) -> Cell:
        f, g, h = fns
        hidden = r.shape[1]
        p = peepholes[d].astype(r.dtype) if peepholes is not None else np.zeros(3 * hidden, r.dtype)
        p_i, p_o, p_f = np.split(p, 3)

        def step(x: np.ndarray, states: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
            h_prev, c_prev = states
            i, o, fg, c = np.split(x + h_prev @ r.T + r_bias, 4, axis=-1)
            i = f(clip(i + p_i * c_prev))
            fg = 1 - i if couple else f(clip(fg + p_f * c_prev))
            c_new = fg * c_prev + i * g(clip(c))
            o = f(clip(o + p_o * c_new))
            return o * h(c_new), c_new

        return step

    return make


def _gru_cells(attrs: Mapping[str, Any], args: Sequence[np.ndarray | None]) -> CellFactory:
    clip = clipper(attrs.get("clip"))
    linear_before_reset = bool(attrs["linear_before_reset"])

    def make(d: int, r: np.ndarray, r_bias: np.ndarray, fns: list[GateFn]) -> Cell:
        f, g = fns
        hidden = r.shape[1]
        r_zr, r_h = r[: 2 * hidden], r[2 * hidden:]
        b_zr, b_h = r_bias[: 2 * hidden], r_bias[2 * hidden:]

        def step(x: np.ndarray, states: tuple[np.ndarray, ...]) -> tuple[np.ndarray, ...]:
            (h_prev,) = states
            x_zr, x_h = x[:, : 2 * hidden], x[:, 2 * hidden:]
            z, reset = np.split(f(clip(x_zr + h_prev @ r_zr.T + b_zr)), 2, axis=-1)
            if linear_before_reset:
                candidate = x_h + reset * (h_prev @ r_h.T + b_h)
            else:
                candidate = x_h + (reset * h_prev) @ r_h.T + b_h
            return ((1 - z) * g(clip(candidate)) + z * h_prev,)

        return step

    return make


def _rnn_cells(attrs: Mapping[str, Any], args: Sequence[np.ndarray | None]) -> CellFactory:
    clip = clipper(attrs.get("clip"))

    def make(d: int, r: np.ndarray, r_bias: np.ndarray, fns: list[GateFn]) -> Cell:
        (f,) = fns
        return lambda x, states: (f(clip(x + states[0] @ r.T + r_bias)),)

    return make


def _infer(op: RecurrentOp) -> InferFn:
    def infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
        x, w, r = types[0], types[1], types[2]
        assert x is not None and w is not None and r is not None
        expect_float(x, "X")
        float_operands = [t for i, t in enumerate(types) if i != 4]
        dtype = same_dtype(float_operands, f"{op.name} operands other than sequence_lens")
        direction, layout, hidden = attrs["direction"], attrs["layout"], attrs["hidden_size"]
        if direction not in DIRECTIONS:
            raise IRError(f"direction '{direction}' is not one of {', '.join(DIRECTIONS)}")
        if layout not in (0, 1):
            raise IRError(f"layout must be 0 or 1, got {layout}")
        mode = attrs.get(DYNAMIC_QUANTIZATION)
        if mode is not None and mode not in DYNAMIC_QUANTIZATION_MODES:
            modes = ", ".join(DYNAMIC_QUANTIZATION_MODES)
            raise IRError(f"{DYNAMIC_QUANTIZATION} '{mode}' is not one of {modes}")
        dirs = DIRECTIONS[direction]
        if x.rank != 3:
            raise IRError(f"X must have rank 3, got {x}")
        seq, batch = (x.shape[0], x.shape[1]) if layout == 0 else (x.shape[1], x.shape[0])
        state_shape = (dirs, batch, hidden) if layout == 0 else (batch, dirs, hidden)
        rows = op.gates * hidden
        expected: dict[int, tuple[int, ...] | None] = {
            0: None, 1: (dirs, rows, x.shape[2]), 2: (dirs, rows, hidden), 3: (dirs, 2 * rows),
            4: (batch,), 5: state_shape, 6: state_shape, 7: (dirs, 3 * hidden),
        }
        names = ["X", "W", "R", "B", "sequence_lens", "initial_h", *op.extra_operands]
        for index, name in enumerate(names):
            t, want = present(types, index), expected[index]
            if t is not None and want is not None and t.shape != want:
                raise IRError(f"{name} has shape {list(t.shape)}, expected {list(want)}")
        lens = present(types, 4)
        if lens is not None and not lens.dtype.is_integer:
            raise IRError(f"sequence_lens must be an integer tensor, got {lens}")
        check_activations(attrs, len(op.default_activations), dirs)
        y_shape = (seq, dirs, batch, hidden) if layout == 0 else (batch, seq, dirs, hidden)
        return [TensorType(dtype, y_shape)] + [TensorType(dtype, state_shape)] * op.states

    return infer


def _compute(op: RecurrentOp) -> ComputeFn:
    def compute(args: Sequence[np.ndarray | None], attrs: Mapping[str, Any]) -> list[np.ndarray]:
        dtype = args[0].dtype  # type: ignore[union-attr]
        dirs = DIRECTIONS[attrs["direction"]]
        names = attrs.get("activations") or op.default_activations * dirs
        fns = gate_functions(names, attrs.get("activation_alpha"), attrs.get("activation_beta"))
        inputs = prepare_inputs(args, op.states, attrs["layout"])
        results = run_recurrence(inputs, attrs["direction"], attrs["layout"], fns, op.cell(attrs, args))
        return [np.asarray(a).astype(dtype) for a in results]

    return compute


def define_recurrent(op: RecurrentOp) -> None:
    """Declare one recurrent op with the attributes and operands the three share."""
    attrs = {
        "hidden_size": Attr(AttrKind.INT),
        "direction": Attr(AttrKind.STR, "forward"),
        "layout": Attr(AttrKind.INT, 0),
        "activations": Attr(AttrKind.STRS, None),
        "activation_alpha": Attr(AttrKind.FLOATS, None),
        "activation_beta": Attr(AttrKind.FLOATS, None),
        "clip": Attr(AttrKind.FLOAT, None),
        **op.extra_attrs,
    }
    operands = ["X", "W", "R", "B?", "sequence_lens?", "initial_h?", *(f"{o}?" for o in op.extra_operands)]
    define_op(
        op.name, family="rnn", operands=operands, attrs=attrs, infer=_infer(op), compute=_compute(op),
        doc=f"{op.name} over a sequence; results (Y, Y_h{', Y_c' if op.states == 2 else ''}).",
    )


RECURRENT_OPS = (
    RecurrentOp("LSTM", 4, ("Sigmoid", "Tanh", "Tanh"), 2, _lstm_cells, ("initial_c", "P"),
                {"input_forget": Attr(AttrKind.INT, 0), DYNAMIC_QUANTIZATION: Attr(AttrKind.STR, None)}),
    RecurrentOp("GRU", 3, ("Sigmoid", "Tanh"), 1, _gru_cells,
                extra_attrs={"linear_before_reset": Attr(AttrKind.INT, 0)}),
    RecurrentOp("RNN", 1, ("Tanh",), 1, _rnn_cells),
)

for _op in RECURRENT_OPS:
    define_recurrent(_op)
