"""What a recurrent node (LSTM, GRU, RNN) asks of its kernel: shapes, options, activations, operands.

Rule: `Recurrence` reads a node once: its dtype and working dtype (f32 for half
floats), layout, directions, sizes, clip and gate activations (ONNX's per
direction, each a TIR expression of the working dtype, written as
`ir.ops.recurrence` computes them; Sigmoid, Tanh and ScaledTanh in the
vectorisable forms of targets/lowering/fast_math.py), its 8-bit stored W and R
(targets/lowering/rnn_quantized.py), and how the layout indexes X, Y and the
states. Both recurrent templates (targets/lowering/rnn_step.py's tiled kernel,
targets/lowering/rnn_dynamic.py's per-row kernel) build on it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ir.graph import Node, Value
from ir.ops.recurrence import ACTIVATIONS
from targets.lowering import fast_math
from targets.lowering.generic import ROLE_ORDER, check_dtypes, dtype_name, work_dtype
from targets.lowering.kernel import KernelArg
from targets.lowering.rnn_quantized import is_dynamic, stored_args, stored_weights

FLOATS = ("float32", "float16", "float64")
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
DEFAULTS = {"LSTM": ("Sigmoid", "Tanh", "Tanh"), "GRU": ("Sigmoid", "Tanh"), "RNN": ("Tanh",)}
OPERANDS = ("X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P")
Expr = Any
Act = Callable[[Expr], Expr]


def activation(name: str, alpha: float, beta: float, work: str) -> Act:
    """The TIR expression of one ONNX recurrent activation (same formulas as ir.ops.recurrence)."""
    from tvm import tirx

    def c(v: float) -> Expr:
        return tirx.const(v, work)

    table: dict[str, Act] = {
        "Sigmoid": fast_math.sigmoid,
        "Tanh": fast_math.tanh,
        "Relu": lambda x: tirx.max(x, c(0.0)),
        "Affine": lambda x: c(alpha) * x + c(beta),
        "LeakyRelu": lambda x: tirx.Select(x >= c(0.0), x, c(alpha) * x),
        "ThresholdedRelu": lambda x: tirx.Select(x > c(alpha), x, c(0.0)),
        "ScaledTanh": lambda x: c(alpha) * fast_math.tanh(c(beta) * x),
        "HardSigmoid": lambda x: tirx.max(c(0.0), tirx.min(c(1.0), c(alpha) * x + c(beta))),
        "Elu": lambda x: tirx.Select(x >= c(0.0), x, c(alpha) * (tirx.exp(tirx.min(x, c(0.0))) - c(1.0))),
        "Softsign": lambda x: x / (c(1.0) + tirx.abs(x)),
        "Softplus": lambda x: tirx.max(x, c(0.0)) + tirx.log1p(tirx.exp(-tirx.abs(x))),
    }
    return table[name]


def gate_activations(node: Node, work: str) -> list[Act]:
    attrs = node.attrs
    dirs = 2 if attrs["direction"] == "bidirectional" else 1
    names = attrs.get("activations") or DEFAULTS[node.op] * dirs
    alphas, betas = attrs.get("activation_alpha"), attrs.get("activation_beta")
    acts = []
    for i, name in enumerate(names):
        spec = ACTIVATIONS[name]
        alpha = alphas[i] if alphas else (spec.alpha or 0.0)
        beta = betas[i] if betas else (spec.beta or 0.0)
        acts.append(activation(name, alpha, beta, work))
    return acts


class Recurrence:
    """Everything one recurrent node's kernel needs: shapes, options and the buffers once bound."""

    def __init__(self, node: Node) -> None:
        self.node, attrs = node, node.attrs
        self.dtype = check_dtypes(node, FLOATS)
        self.work = work_dtype(self.dtype)
        self.layout = int(attrs["layout"])
        self.direction = attrs["direction"]
        self.dirs = 2 if self.direction == "bidirectional" else 1
        self.hidden = int(attrs["hidden_size"])
        self.gates = GATES[node.op]
        x = node.operands[0]
        assert x is not None
        shape = x.type.shape
        self.seq, self.batch = (shape[0], shape[1]) if self.layout == 0 else (shape[1], shape[0])
        self.inputs = shape[2]
        self.clip = attrs.get("clip")
        self.acts = gate_activations(node, self.work)
        self.stored = stored_weights(node)  # W / R read as stored 8-bit constants
        self.dynamic = is_dynamic(node, self.stored, self.dtype)
        self.buffers: dict[str, Any] = {}

    def operand(self, index: int) -> Value | None:
        return self.node.operands[index] if index < len(self.node.operands) else None

    def args(self) -> list[tuple[str, KernelArg]]:
        """(buffer name, kernel argument) of every operand and result, in the contract's order."""
        pairs = []
        for index, name in enumerate(OPERANDS):
            value = self.operand(index)
            if name in self.stored:
                pairs += stored_args(name, self.stored[name])
            elif value is not None:
                role = "weight" if value.is_constant else "input"
                pairs.append((name, KernelArg(value.name, role, tuple(value.type.shape), dtype_name(value))))
        for name, value in zip(("Y", "Y_h", "Y_c"), self.node.results, strict=False):
            pairs.append((name, KernelArg(value.name, "output", tuple(value.type.shape), dtype_name(value))))
        return sorted(pairs, key=lambda p: ROLE_ORDER[p[1].role])

    # --- reads and writes in the op's layout, in the working dtype -------------------------------
    def read(self, name: str, *index: Expr) -> Expr:
        return self.buffers[name][index].astype(self.work)

    def x_at(self, t: Expr, b: Expr, k: Expr) -> Expr:
        return self.read("X", t, b, k) if self.layout == 0 else self.read("X", b, t, k)

    def state_index(self, d: int, b: Expr, j: Expr) -> tuple[Expr, ...]:
        return (d, b, j) if self.layout == 0 else (b, d, j)

    def y_index(self, t: Expr, d: int, b: Expr, j: Expr) -> tuple[Expr, ...]:
        return (t, d, b, j) if self.layout == 0 else (b, t, d, j)

    def bias(self, d: int, j: Expr, recurrent: bool) -> Expr:
        from tvm import tirx

        if "B" not in self.buffers:
            return tirx.const(0.0, self.work)
        offset = self.gates * self.hidden if recurrent else 0
        return self.read("B", d, j + offset)

    def clipped(self, x: Expr) -> Expr:
        from tvm import tirx

        if self.clip is None:
            return x
        return tirx.max(tirx.min(x, tirx.const(self.clip, self.work)), tirx.const(-self.clip, self.work))

    def act(self, d: int, which: int, x: Expr) -> Expr:
        per_direction = len(self.acts) // self.dirs
        return self.acts[d * per_direction + which](self.clipped(x))
