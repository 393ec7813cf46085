"""LSTM, GRU and RNN as one TIR kernel each, with the time loop serial inside (written with TVM's IRBuilder).

Rule: a batch row's states depend only on that row, so the kernel runs, per
direction and batch row, a serial loop over the row's valid steps
(`sequence_lens`, clipped to [0, seq]; a reverse pass starts at its last valid
step), keeping H (and C) and the step's gates in small scratch buffers in the
working dtype (f32 for half floats, f64 for f64, as `ir.ops.recurrence`). Each
step computes its gates as `x_t·Wᵀ + Wb + h·Rᵀ + Rb` and applies the cell exactly
as `ir/ops/rnn.py` writes it (clip before every activation, LSTM peepholes and
input_forget, GRU linear_before_reset); Y rows of steps past a row's length
stay 0 and the final states of an empty row are 0. Both layouts are read and
written in place. No epilogue fuses into a recurrent kernel; 8-bit W and R
fused as weight prologues are read stored, weight-only or with onnxruntime's
dynamic u8 activations (targets/lowering/rnn_quantized.py).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ir.graph import Node, Value
from ir.ops.recurrence import ACTIVATIONS
from targets.lowering.generic import ROLE_ORDER, Param, check_dtypes, dtype_name, make_kernel, work_dtype
from targets.lowering.kernel import KernelArg, LoweredKernel, LoweringError
from targets.lowering.registry import lowering
from targets.lowering.rnn_quantized import (
    DynamicU8,
    dequantized,
    is_dynamic,
    pack_stored,
    stored_args,
    stored_weights,
)
from targets.target import TargetDescription

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
        "Sigmoid": lambda x: c(0.5) * (tirx.tanh(c(0.5) * x) + c(1.0)),
        "Tanh": lambda x: tirx.tanh(x),
        "Relu": lambda x: tirx.max(x, c(0.0)),
        "Affine": lambda x: c(alpha) * x + c(beta),
        "LeakyRelu": lambda x: tirx.Select(x >= c(0.0), x, c(alpha) * x),
        "ThresholdedRelu": lambda x: tirx.Select(x > c(alpha), x, c(0.0)),
        "ScaledTanh": lambda x: c(alpha) * tirx.tanh(c(beta) * x),
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

    def weight(self, name: str, d: int, j: Expr, k: Expr) -> Expr:
        """W or R at [d, j, k] in the working dtype, dequantised when stored."""
        if name in self.stored:
            return dequantized(self.buffers, name, d, j, k).astype(self.work)
        return self.read(name, d, j, k)

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


def build_func(rec: Recurrence, pairs: Sequence[tuple[str, KernelArg]]) -> Any:
    from tvm import tirx
    from tvm.script.ir_builder import IRBuilder
    from tvm.script.ir_builder import tirx as T

    work, hidden, g_rows = rec.work, rec.hidden, rec.gates * rec.hidden
    with IRBuilder() as ib:
        with T.prim_func():
            T.func_name("main")
            for name, a in pairs:
                rec.buffers[name] = T.arg(name, T.buffer(a.shape, a.dtype))
            h = T.alloc_buffer((hidden,), work)
            c = T.alloc_buffer((hidden,), work)
            gates = T.alloc_buffer((g_rows,), work)
            acc = T.alloc_buffer((2,), work)
            zero = tirx.const(0.0, work)

            def store(buf: Any, value: Expr, *index: Expr) -> None:
                T.buffer_store(buf, value, list(index))

            def dot(j: Expr, t: Expr, b: Expr, d: int, hval: Callable[[Expr], Expr]) -> tuple[Expr, Expr]:
                """(x_t·W[j] + Wb[j], hval·R[j] + Rb[j]): sums into scratch, read back by the caller."""
                store(acc, zero, 0)
                with T.serial(0, rec.inputs) as k:
                    store(acc, acc[0] + rec.x_at(t, b, k) * rec.weight("W", d, j, k), 0)
                store(acc, zero, 1)
                with T.serial(0, hidden) as k:
                    store(acc, acc[1] + hval(k) * rec.weight("R", d, j, k), 1)
                return acc[0] + rec.bias(d, j, False), acc[1] + rec.bias(d, j, True)

            dynamic = DynamicU8(rec, store) if rec.dynamic else None
            if dynamic is not None:
                dynamic.measure_input()
                dot = dynamic.dot
            for d in range(rec.dirs):
                reverse = rec.direction == "reverse" or d == 1
                with T.serial(0, rec.batch) as b:
                    length = tirx.const(rec.seq, "int32")
                    if "sequence_lens" in rec.buffers:
                        given = rec.buffers["sequence_lens"][b].astype("int32")
                        length = tirx.max(tirx.min(given, tirx.const(rec.seq, "int32")), 0)
                    with T.serial(0, hidden) as j:
                        for buf, name in ((h, "initial_h"), (c, "initial_c")):
                            init = rec.read(name, *rec.state_index(d, b, j)) if name in rec.buffers else zero
                            store(buf, init, j)
                        with T.serial(0, rec.seq) as t:
                            store(rec.buffers["Y"], zero.astype(rec.dtype), *rec.y_index(t, d, b, j))
                    with T.serial(0, rec.seq) as step:
                        with T.If(step < length):
                            with T.Then():
                                t = length - 1 - step if reverse else step
                                if dynamic is not None:
                                    dynamic.prepare_step(b, t, h)
                                CELLS[rec.node.op](rec, d, b, t, h, c, gates, dot, store)
                    for buf, name in ((h, "Y_h"), (c, "Y_c")):
                        if name in rec.buffers:
                            with T.serial(0, hidden) as j:
                                final = tirx.Select(length == 0, zero, buf[j]).astype(rec.dtype)
                                store(rec.buffers[name], final, *rec.state_index(d, b, j))
    return ib.get()


def emit_y(rec: Recurrence, store: Any, d: int, b: Expr, t: Expr, j: Expr, value: Expr) -> None:
    store(rec.buffers["Y"], value.astype(rec.dtype), *rec.y_index(t, d, b, j))


def rnn_cell(
    rec: Recurrence, d: int, b: Expr, t: Expr, h: Any, c: Any, gates: Any, dot: Any, store: Any
) -> None:
    from tvm.script.ir_builder import tirx as T

    with T.serial(0, rec.hidden) as j:
        x_part, h_part = dot(j, t, b, d, lambda k: h[k])
        store(gates, rec.act(d, 0, x_part + h_part), j)
    with T.serial(0, rec.hidden) as j:
        store(h, gates[j], j)
        emit_y(rec, store, d, b, t, j, gates[j])


def gru_cell(
    rec: Recurrence, d: int, b: Expr, t: Expr, h: Any, c: Any, gates: Any, dot: Any, store: Any
) -> None:
    """Gates z, r, h: z and reset first (activated), then the candidate, then the new state."""
    from tvm import tirx
    from tvm.script.ir_builder import tirx as T

    n = rec.hidden
    before_reset = bool(rec.node.attrs["linear_before_reset"])
    with T.serial(0, 2 * n) as j:
        x_part, h_part = dot(j, t, b, d, lambda k: h[k])
        store(gates, rec.act(d, 0, x_part + h_part), j)
    with T.serial(0, n) as j:
        hval = (lambda k: h[k]) if before_reset else (lambda k: gates[n + k] * h[k])
        x_part, h_part = dot(j + 2 * n, t, b, d, hval)
        candidate = x_part + gates[n + j] * h_part if before_reset else x_part + h_part
        store(gates, rec.act(d, 1, candidate), j + 2 * n)
    with T.serial(0, n) as j:
        z = gates[j]
        store(h, (tirx.const(1.0, rec.work) - z) * gates[2 * n + j] + z * h[j], j)
        emit_y(rec, store, d, b, t, j, h[j])


def lstm_cell(
    rec: Recurrence, d: int, b: Expr, t: Expr, h: Any, c: Any, gates: Any, dot: Any, store: Any
) -> None:
    """Gates i, o, f, c (raw first), then per unit: i, f (or 1 - i), the new C, o, the new H."""
    from tvm import tirx
    from tvm.script.ir_builder import tirx as T

    n = rec.hidden
    couple = bool(rec.node.attrs["input_forget"])

    def peep(which: int, j: Expr, state: Expr) -> Expr:
        if "P" not in rec.buffers:
            return tirx.const(0.0, rec.work)
        return rec.read("P", d, j + which * n) * state

    with T.serial(0, 4 * n) as j:
        x_part, h_part = dot(j, t, b, d, lambda k: h[k])
        store(gates, x_part + h_part, j)
    with T.serial(0, n) as j:
        store(gates, rec.act(d, 0, gates[j] + peep(0, j, c[j])), j)
        if couple:
            forget = tirx.const(1.0, rec.work) - gates[j]
        else:
            forget = rec.act(d, 0, gates[2 * n + j] + peep(2, j, c[j]))
        store(gates, forget, 2 * n + j)
        store(c, gates[2 * n + j] * c[j] + gates[j] * rec.act(d, 1, gates[3 * n + j]), j)
        store(gates, rec.act(d, 0, gates[n + j] + peep(1, j, c[j])), n + j)
        store(h, gates[n + j] * rec.act(d, 2, c[j]), j)
        emit_y(rec, store, d, b, t, j, h[j])


CELLS = {"RNN": rnn_cell, "GRU": gru_cell, "LSTM": lstm_cell}


@lowering("LSTM", "GRU", "RNN")
def lower_recurrent(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    if epilogue:
        raise LoweringError(f"node {node.name!r}: no epilogue fuses into a recurrent {node.op} kernel")
    rec = Recurrence(node)
    pairs = rec.args()
    func = build_func(rec, pairs)
    attrs = {k: (list(v) if isinstance(v, tuple) else v) for k, v in sorted(node.attrs.items())}
    workload = {
        "op": node.op,
        "attrs": attrs,
        "args": [[name, a.role, list(a.shape), a.dtype] for name, a in pairs],
    }
    if rec.dynamic:
        workload["activations"] = "dynamic-u8"
    macs = rec.dirs * rec.seq * rec.batch * rec.gates * rec.hidden * (rec.inputs + rec.hidden)
    params = [Param(None, a) for _, a in pairs]
    pack = pack_stored(rec.stored) if rec.stored else None
    return make_kernel(
        node, node.op.lower(), workload, params, 2 * macs, lambda sch: None, func=func, pack=pack
    )
