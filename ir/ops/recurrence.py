"""The machinery LSTM, GRU and RNN share: gate activations and the time loop.

Rule: a recurrent op is a `cell` (one time step: input projection and states
in, new states out, the hidden state first) run by `run_recurrence`, which owns
everything the three ops have in common: layout, directions, the input
projection `X·Wᵀ + Wb` for all steps at once, `sequence_lens` (a batch entry
stops at its length: its states stop changing and its later `Y` rows are 0; a
reverse pass starts at its last valid step; the final states of an empty one
are 0, as in onnxruntime) and the stacking of results.
"""

from __future__ import annotations

import dataclasses
import functools
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ir.errors import IRError


@dataclasses.dataclass(frozen=True)
class Activation:
    """A gate activation of ONNX's recurrent ops, with its alpha/beta defaults (None: unused)."""

    fn: Callable[[np.ndarray, float, float], np.ndarray]
    alpha: float | None = None
    beta: float | None = None


def _sigmoid(x: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    return 0.5 * (np.tanh(0.5 * x) + 1.0)  # overflow-free logistic


ACTIVATIONS: dict[str, Activation] = {
    "Sigmoid": Activation(_sigmoid),
    "Tanh": Activation(lambda x, a, b: np.tanh(x)),
    "Relu": Activation(lambda x, a, b: np.maximum(x, 0)),
    "Affine": Activation(lambda x, a, b: a * x + b, 1.0, 0.0),
    "LeakyRelu": Activation(lambda x, a, b: np.where(x >= 0, x, a * x), 0.01),
    "ThresholdedRelu": Activation(lambda x, a, b: np.where(x > a, x, 0), 1.0),
    "ScaledTanh": Activation(lambda x, a, b: a * np.tanh(b * x), 1.0, 1.0),
    "HardSigmoid": Activation(lambda x, a, b: np.clip(a * x + b, 0, 1), 0.2, 0.5),
    "Elu": Activation(lambda x, a, b: np.where(x >= 0, x, a * np.expm1(np.minimum(x, 0))), 1.0),
    "Softsign": Activation(lambda x, a, b: x / (1 + np.abs(x))),
    "Softplus": Activation(lambda x, a, b: np.logaddexp(x, 0)),
}
"""Every activation ONNX allows in LSTM/GRU/RNN, by its ONNX spelling. Defaults follow the ONNX op
of the same name; ScaledTanh, which has none, defaults to alpha = beta = 1 (plain tanh)."""

GateFn = Callable[[np.ndarray], np.ndarray]


def gate_functions(
    names: Sequence[str], alphas: Sequence[float] | None, betas: Sequence[float] | None
) -> list[GateFn]:
    """One callable per activation entry; alphas/betas hold one value per entry (None: defaults)."""
    gates: list[GateFn] = []
    for i, name in enumerate(names):
        spec = ACTIVATIONS.get(name)
        if spec is None:
            raise IRError(f"unknown activation '{name}' (known: {', '.join(ACTIVATIONS)})")
        alpha = alphas[i] if alphas else (spec.alpha or 0.0)
        beta = betas[i] if betas else (spec.beta or 0.0)
        gates.append(functools.partial(_apply, spec.fn, alpha=alpha, beta=beta))
    return gates


def _apply(fn: Callable[[np.ndarray, float, float], np.ndarray], x: np.ndarray, alpha: float, beta: float
           ) -> np.ndarray:
    return fn(x, alpha, beta)


def check_activations(attrs: Mapping[str, Any], per_direction: int, directions: int) -> None:
    """Inference's check: one activation (and alpha/beta, when given) per gate function and direction."""
    names = attrs.get("activations")
    if names is None:
        return
    want = per_direction * directions
    for key in ("activations", "activation_alpha", "activation_beta"):
        given = attrs.get(key)
        if given is not None and len(given) != want:
            raise IRError(f"{key} has {len(given)} entries, expected {want} ({per_direction} per direction)")
    for name in names:
        if name not in ACTIVATIONS:
            raise IRError(f"unknown activation '{name}' (known: {', '.join(ACTIVATIONS)})")


def clipper(clip: float | None) -> GateFn:
    """The pre-activation clip of every gate (identity when `clip` is absent)."""
    if clip is None:
        return lambda x: x
    return lambda x: np.clip(x, -clip, clip)


States = tuple[np.ndarray, ...]
Cell = Callable[[np.ndarray, States], States]
"""One step: (the step's input projection [batch, gates*hidden], states) -> new states, H first."""


def scan(
    cell: Cell, projected: np.ndarray, states: States, lengths: np.ndarray, reverse: bool
) -> tuple[np.ndarray, States]:
    """Run `cell` over time for one direction; returns Y [seq, batch, hidden] and the final states."""
    seq, batch = projected.shape[:2]
    steps = np.arange(seq)[:, None]
    valid = steps < lengths[None, :]
    time = np.where(valid, lengths[None, :] - 1 - steps if reverse else steps, 0)
    rows = np.broadcast_to(np.arange(batch)[None, :], (seq, batch))
    inputs = projected[time, rows]
    outputs = np.zeros((seq, batch, states[0].shape[-1]), dtype=states[0].dtype)
    for step in range(seq):
        live = valid[step][:, None]
        new = cell(inputs[step], states)
        states = tuple(np.where(live, n, old) for n, old in zip(new, states, strict=True))
        outputs[step] = np.where(live, new[0], 0)
    y = np.zeros_like(outputs)
    y[time[valid], rows[valid]] = outputs[valid]
    empty = (lengths == 0)[:, None]  # onnxruntime's final states of an empty sequence are 0
    return y, tuple(np.where(empty, 0, s) for s in states)


CellFactory = Callable[[int, np.ndarray, np.ndarray, list[GateFn]], Cell]
"""(direction, R [gates*hidden, hidden], recurrent bias [gates*hidden], its gate functions) -> Cell."""


@dataclasses.dataclass(frozen=True)
class RecurrenceInputs:
    """A recurrent op's operands with the optional ones filled in, in layout 0 and working dtype."""

    x: np.ndarray  # [seq, batch, input]
    w: np.ndarray  # [dirs, gates*hidden, input]
    r: np.ndarray  # [dirs, gates*hidden, hidden]
    b: np.ndarray  # [dirs, 2*gates*hidden]
    lengths: np.ndarray  # [batch]
    initial: tuple[np.ndarray, ...]  # each [dirs, batch, hidden]


def prepare_inputs(args: Sequence[np.ndarray | None], state_count: int, layout: int) -> RecurrenceInputs:
    """Normalise (X, W, R, B?, sequence_lens?, initial_h?, initial_c?...) to layout 0 and defaults."""
    x, w, r = args[0], args[1], args[2]
    assert x is not None and w is not None and r is not None
    work = np.float64 if x.dtype == np.float64 else np.float32
    if layout:
        x = np.swapaxes(x, 0, 1)
    dirs, rows, hidden = r.shape
    seq, batch = x.shape[:2]
    b = args[3] if len(args) > 3 and args[3] is not None else np.zeros((dirs, 2 * rows))
    lens = args[4] if len(args) > 4 and args[4] is not None else np.full(batch, seq)
    initial = []
    for i in range(state_count):
        given = args[5 + i] if len(args) > 5 + i else None
        if given is None:
            given = np.zeros((dirs, batch, hidden))
        elif layout:
            given = np.swapaxes(given, 0, 1)
        initial.append(given.astype(work))
    lengths = np.clip(lens.astype(np.int64), 0, seq)
    return RecurrenceInputs(x.astype(work), w.astype(work), r.astype(work), b.astype(work), lengths,
                            tuple(initial))


def run_recurrence(
    inputs: RecurrenceInputs, direction: str, layout: int, gate_fns: list[GateFn], make_cell: CellFactory
) -> list[np.ndarray]:
    """Y, then the final value of each state, in the op's layout (still in the working dtype)."""
    dirs = inputs.w.shape[0]
    per_direction = len(gate_fns) // dirs
    ys, finals = [], []
    for d in range(dirs):
        rows = inputs.w.shape[1]
        w_bias, r_bias = inputs.b[d, :rows], inputs.b[d, rows:]
        projected = inputs.x @ inputs.w[d].T + w_bias
        cell = make_cell(d, inputs.r[d], r_bias, gate_fns[d * per_direction:(d + 1) * per_direction])
        reverse = direction == "reverse" or (direction == "bidirectional" and d == 1)
        y, states = scan(cell, projected, tuple(s[d] for s in inputs.initial), inputs.lengths, reverse)
        ys.append(y)
        finals.append(states)
    y = np.stack(ys, axis=1)  # [seq, dirs, batch, hidden]
    stacked = [np.stack([f[i] for f in finals]) for i in range(len(inputs.initial))]
    if layout:
        return [np.transpose(y, (2, 0, 1, 3))] + [np.swapaxes(s, 0, 1) for s in stacked]
    return [y, *stacked]
