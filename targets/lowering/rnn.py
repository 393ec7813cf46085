"""LSTM, GRU and RNN: one kernel per node, the input projection as a GEMM and the steps as tiled GEMVs.

Rule: a recurrent node (f32, f16 or f64; W and R constant, 8-bit stored or
given at run time) becomes the tiled kernel: one packed GEMM computes X·Wᵀ and the
biases for every step, batch row and direction at once
(targets/lowering/rnn_projection.py, the target's `gemm` knobs), then each step
runs every direction, batch row and tile of hidden units as a register-tiled
GEMV of the previous state by R with the cell fused in
(targets/lowering/rnn_step.py, the target's `recurrent` knobs); the tile order
that lets a tile hold all of its units' gates is targets/lowering/rnn_tiles.py.
W and R stored as 8-bit constants by fused weight prologues are read as 8-bit
panels by the same kernel, their scales factored out of the sums
(targets/lowering/rnn_projection.py `Panel`); an LSTM in onnxruntime's dynamic
u8 mode sums integers in both (X quantized once before the GEMM, each step's
hidden state by every tile before its GEMV; targets/lowering/rnn_quantized.py).
No epilogue fuses into a recurrent kernel.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ir.graph import Node
from targets.lowering import vector_math
from targets.lowering.generic import Param, make_kernel
from targets.lowering.integer_gemm import choose_int_knobs, schedule_integer_gemm
from targets.lowering.kernel import KernelArg, LoweredKernel, LoweringError
from targets.lowering.registry import lowering
from targets.lowering.rnn_layer import Recurrence
from targets.lowering.rnn_projection import Operands, input_projection, recurrent_bias, recurrent_weights
from targets.lowering.rnn_quantized import state_dot
from targets.lowering.rnn_step import recurrent_steps
from targets.lowering.rnn_tiles import TileOrder
from targets.lowering.tiling import choose_knobs, schedule_gemm
from targets.schedules import DotStep, dot_recurrent_knobs, schedules_of
from targets.target import TargetDescription

STATE_OPERANDS = {4: "sequence_lens", 5: "initial_h", 6: "initial_c", 7: "P"}


def integer_step(target: TargetDescription) -> DotStep | None:
    """The target's registered 16 x 4 byte dot step, None where it has none."""
    table = schedules_of(target)
    instruction = table.integer_dot(target)
    return table.dot_intrinsic(instruction) if instruction else None


def tiled_kernel(rec: Recurrence, target: TargetDescription) -> LoweredKernel:
    """The projection GEMM and the tiled steps of `rec` in one kernel (module rule)."""
    node = rec.node
    knobs = schedules_of(target).recurrent(target, rec.gates, rec.hidden, rec.dirs, rec.batch)
    step = integer_step(target) if rec.dynamic else None
    dot = state_dot(rec, step, knobs.lanes)
    if dot:
        knobs = dot_recurrent_knobs(target, knobs, rec.gates, rec.hidden)
    order = TileOrder(rec.dirs, rec.gates, rec.hidden, knobs.units)
    gemm = choose_knobs(target, rec.seq * rec.batch, order.columns)
    rows = rec.seq * rec.batch
    int_knobs = (
        choose_int_knobs(target, rows, order.columns, rows * order.columns * rec.inputs) if dot else None
    )
    ops = Operands()
    r = recurrent_weights(rec, order, ops, dot=bool(dot))
    projection = input_projection(rec, order, ops, gemm, step if dot else None)
    inputs = {**projection, "Rp": r.values}
    if r.zero is not None:
        inputs.update(R_zero=r.zero, R_scale=r.scale)
    if r.sums is not None:
        inputs.update(R_sum=r.sums, R_scale=r.scale)
    rbias = recurrent_bias(rec, order, ops)
    if rbias is not None:
        inputs["rbias"] = rbias
    for index, name in STATE_OPERANDS.items():
        value = rec.operand(index)
        if value is not None:
            inputs[name] = ops.raw(value, name)
    outputs = recurrent_steps(rec, order, knobs, inputs, dot)
    results = [
        Param(tensor, KernelArg(value.name, "output", tuple(value.type.shape), rec.dtype))
        for tensor, value in zip(outputs, node.results, strict=True)
    ]
    attrs = {k: (list(v) if isinstance(v, tuple) else v) for k, v in sorted(node.attrs.items())}
    workload = {
        "op": node.op,
        "template": "tiled-gemv",
        "attrs": attrs,
        "args": [[p.arg.role, list(p.arg.shape), p.arg.dtype] for p in [*ops.params, *results]],
        "knobs": {
            "gemm": int_knobs.to_json() if int_knobs else gemm.to_json(),
            "recurrent": knobs.to_json(),
            **({"state_dot": dot} if dot else {}),
        },
        "activation_forms": vector_math.FORM,
    }
    macs = rec.dirs * rec.seq * rec.batch * rec.gates * rec.hidden * (rec.inputs + rec.hidden)

    def schedule(sch: Any) -> None:
        if int_knobs is not None:
            assert step is not None
            schedule_integer_gemm(sch, int_knobs, ["pad"], True, order.columns, step, tables=False)
            return
        if "xbias_gathered" in ops.gathered and not rec.dynamic:  # a run-time B: where the output reads it
            sch.compute_inline(sch.get_sblock("xbias_gathered"))
        schedule_gemm(sch, "acc", "xw", gemm, out_lanes=gemm.lanes if order.columns % gemm.nb == 0 else None)

    kernel = make_kernel(
        node, node.op.lower(), workload, [*ops.params, *results], 2 * macs, schedule, pack=ops.pack
    )
    kernel.notes["knobs"] = workload["knobs"]
    return kernel


@lowering("LSTM", "GRU", "RNN", loop_nest=True)
def lower_recurrent(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    if epilogue:
        raise LoweringError(f"node {node.name!r}: no epilogue fuses into a recurrent {node.op} kernel")
    rec = Recurrence(node)
    return tiled_kernel(rec, target)
