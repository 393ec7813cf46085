"""The per-row kernel of an LSTM in onnxruntime's dynamic u8 mode, one serial time loop per batch row.

Rule: a batch row's states depend only on that row, so the kernel runs, per
direction and batch row, a serial loop over the row's valid steps
(`sequence_lens`, clipped to [0, seq]; a reverse pass starts at its last valid
step), keeping H and C and the step's gates in small scratch buffers. Each step
quantizes X's row and the hidden state to u8 and computes its gates with
integer sums (targets/lowering/rnn_quantized.py `DynamicU8`), then applies the
cell exactly as `ir/ops/rnn.py` writes it (clip before every activation,
peepholes, input_forget); Y rows of steps past a row's length stay 0 and the
final states of an empty row are 0. Both layouts are read and written in
place. Every other recurrent node, float or weight-only 8-bit, takes the tiled
template (targets/lowering/rnn_step.py). Slot: a tiled integer GEMV for this mode.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from targets.lowering import fast_math
from targets.lowering.generic import Param, make_kernel
from targets.lowering.kernel import KernelArg, LoweredKernel
from targets.lowering.rnn_layer import Recurrence
from targets.lowering.rnn_quantized import DynamicU8, pack_stored

Expr = Any


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
            zero = tirx.const(0.0, work)

            def store(buf: Any, value: Expr, *index: Expr) -> None:
                T.buffer_store(buf, value, list(index))

            dynamic = DynamicU8(rec, store)
            dynamic.measure_input()
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
                                dynamic.prepare_step(b, t, h)
                                lstm_cell(rec, d, b, t, h, c, gates, dynamic.dot, store)
                    for buf, name in ((h, "Y_h"), (c, "Y_c")):
                        if name in rec.buffers:
                            with T.serial(0, hidden) as j:
                                final = tirx.Select(length == 0, zero, buf[j]).astype(rec.dtype)
                                store(rec.buffers[name], final, *rec.state_index(d, b, j))
    return ib.get()


def emit_y(rec: Recurrence, store: Any, d: int, b: Expr, t: Expr, j: Expr, value: Expr) -> None:
    store(rec.buffers["Y"], value.astype(rec.dtype), *rec.y_index(t, d, b, j))


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


def dynamic_kernel(rec: Recurrence) -> LoweredKernel:
    """The per-row kernel of `rec`, an LSTM in the dynamic u8 mode (module rule)."""
    node, pairs = rec.node, rec.args()
    func = build_func(rec, pairs)
    attrs = {k: (list(v) if isinstance(v, tuple) else v) for k, v in sorted(node.attrs.items())}
    workload = {
        "op": node.op,
        "attrs": attrs,
        "args": [[name, a.role, list(a.shape), a.dtype] for name, a in pairs],
        "activation_forms": fast_math.FORM,
    }
    workload["activations"] = "dynamic-u8"
    macs = rec.dirs * rec.seq * rec.batch * rec.gates * rec.hidden * (rec.inputs + rec.hidden)
    params = [Param(None, a) for _, a in pairs]
    pack = pack_stored(rec.stored)
    return make_kernel(
        node, node.op.lower(), workload, params, 2 * macs, lambda sch: None, func=func, pack=pack
    )
