"""What a recurrent node (LSTM, GRU, RNN) asks of its kernel: shapes, options, activations, operands.

Rule: `Recurrence` reads a node once: its dtype and working dtype (f32 for half
floats), layout, directions, sizes, clip and gate activations (ONNX's per
direction, each a TIR expression of the working dtype, written as
`ir.ops.recurrence` computes them; Sigmoid, Tanh and ScaledTanh in the
vectorisable forms of targets/lowering/vector_math.py), its 8-bit stored W and R
(targets/lowering/rnn_quantized.py) and whether it runs in the dynamic u8
mode, and how the layout indexes Y and the states. The tiled kernel
(targets/lowering/rnn.py) builds on it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ir.graph import Node, Value
from ir.ops.recurrence import ACTIVATIONS
from targets.lowering import vector_math
from targets.lowering.generic import check_dtypes, work_dtype
from targets.lowering.rnn_quantized import is_dynamic, stored_weights

FLOATS = ("float32", "float16", "float64")
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
DEFAULTS = {"LSTM": ("Sigmoid", "Tanh", "Tanh"), "GRU": ("Sigmoid", "Tanh"), "RNN": ("Tanh",)}
Expr = Any
Act = Callable[[Expr], Expr]


def activation(name: str, alpha: float, beta: float, work: str) -> Act:
    """The TIR expression of one ONNX recurrent activation (same formulas as ir.ops.recurrence)."""
    from tvm import tirx

    def c(v: float) -> Expr:
        return tirx.const(v, work)

    table: dict[str, Act] = {
        "Sigmoid": vector_math.sigmoid,
        "Tanh": vector_math.tanh,
        "Relu": lambda x: tirx.max(x, c(0.0)),
        "Affine": lambda x: c(alpha) * x + c(beta),
        "LeakyRelu": lambda x: tirx.Select(x >= c(0.0), x, c(alpha) * x),
        "ThresholdedRelu": lambda x: tirx.Select(x > c(alpha), x, c(0.0)),
        "ScaledTanh": lambda x: c(alpha) * vector_math.tanh(c(beta) * x),
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

    def operand(self, index: int) -> Value | None:
        return self.node.operands[index] if index < len(self.node.operands) else None

    # --- how the op's layout indexes the states and Y ---------------------------------------------
    def state_index(self, d: int, b: Expr, j: Expr) -> tuple[Expr, ...]:
        return (d, b, j) if self.layout == 0 else (b, d, j)

    def y_index(self, t: Expr, d: int, b: Expr, j: Expr) -> tuple[Expr, ...]:
        return (t, d, b, j) if self.layout == 0 else (b, t, d, j)

    def clipped(self, x: Expr) -> Expr:
        from tvm import tirx

        if self.clip is None:
            return x
        return tirx.max(tirx.min(x, tirx.const(self.clip, self.work)), tirx.const(-self.clip, self.work))

    def act(self, d: int, which: int, x: Expr) -> Expr:
        per_direction = len(self.acts) // self.dirs
        return self.acts[d * per_direction + which](self.clipped(x))
