"""8-bit W and R inside a recurrent kernel: weight-only, or with onnxruntime's dynamic u8 activations.

Rule: a recurrent node's W (operand 1) or R (operand 2) whose DequantizeLinear
is a fused weight prologue (passes/fuse.py `recurrent_prologue`) is read
stored: the tiled kernel packs the 8-bit constant [dirs, gates*H, k] into its
panels as 8-bit, with the quant params broadcast to every gate row
(`row_parameters`) laid out per column (targets/lowering/rnn_projection.py
`Panel`).

- *Weight-only* (the default): each gate sum is
  scale * sum(x * float32(q - zero_point)), ir/quantization.py's `dequantize`
  with the scale factored out, in f32.
- *Dynamic u8* (LSTM attribute `dynamic_quantization` = "u8", W and R
  both stored; the converter of onnxruntime's com.microsoft DynamicQuantizeLSTM
  sets it): onnxruntime's arithmetic (its DynamicQuantizeLSTM runs the deep-CPU
  LSTM with integer GEMMs). X, over every step below the longest sequence
  length, is quantized once, and the hidden state before each step again, to
  u8 per tensor: range [min(lo, 0), max(hi, 0)], scale (hi - lo) / 255 (1 when
  hi == lo), zero point round_half_even(clamp(-lo / scale, 0, 255)), and
  q = clamp(round_half_even(x / scale) + zero point, 0, 255). Gate row j is
  float(Σ (x_q - x_zp)(W_q - W_zp[j])) * (x_scale * W_scale[j])
  + float(Σ (h_q - h_zp)(R_q - R_zp[j])) * (h_scale * R_scale[j]) + (Wb[j] + Rb[j]),
  the rest in f32 (onnxruntime applies a weight's first zero point to every
  row; quantize_dynamic's LSTM weights are symmetric i8). onnxruntime sums in
  int32; the kernel sums the same integer products in f32 (FMAs on 8-bit
  panels widened to f32), exact while a partial sum stays below 2^24 in
  magnitude (each product is at most 255 * 255, and u8 states of a tanh-bounded
  H and symmetric i8 weights keep sums of 512 terms far below it; past it a sum
  is rounded to 6e-8 relative).
  The kernel quantizes X in stages before its GEMM (rnn_projection.py
  `quantized_input`), and each tile of a step measures and quantizes its batch
  row's hidden state before its GEMV (rnn_step.py `state_quantization`), with
  `u8_scale`, `u8_zero` and `u8_centered` here. Where the target has a
  16 x 4 byte dot instruction that stands alone (`DotStep.vector_intrinsic`:
  x86 `vpdpbusd`) and R is i8 with zero points 0 (quantize_dynamic's
  symmetric weights, W too), the step sums the u8 states by i8 R in int32 with it
  instead: Σ h_q R_q - h_zp Σ R_q, the row sums packed at compile time
  (`state_dot`): the same integers, exact at any size; and the projection is
  the integer GEMM template (targets/lowering/integer_gemm.py) over u8 X,
  Σ x_q W_q - x_zp Σ W_q (rnn_projection.py `dot_projection`).
  onnxruntime quantizes the hidden states of all batch rows of a step together
  (of each thread's chunk of rows when it runs the batch in parallel, so its
  numbers depend on its thread count); this kernel quantizes each row's own
  state: the same numbers for a batch of 1, or when onnxruntime's chunks are
  single rows (measured, batch 3, hidden 64: 2.7e-7 against onnxruntime on 4
  threads; 5.9e-3 on 1 thread, where it shares one scale across the rows).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

import numpy as np

from ir.dtypes import DType
from ir.graph import Node, Value
from ir.ops.rnn import DYNAMIC_QUANTIZATION
from ir.quantization import expand
from targets.lowering.kernel import LoweringError
from targets.lowering.weight_only import fused_weight_prologue
from targets.schedules import DotStep

if TYPE_CHECKING:
    from targets.lowering.rnn_layer import Recurrence

STORED_OPERANDS = {"W": 1, "R": 2}
PARTS = (("scales", "float32"), ("zero_points", "int32"))
U8_MAX = 255.0
DOT_LANES = 16
"""int32 accumulators of one 16 x 4 byte dot step."""
DOT_DEPTH = 4
"""Bytes of K one dot step sums per accumulator."""
Expr = Any


def stored_weights(node: Node) -> dict[str, Value]:
    """{"W"/"R": the 8-bit constant its fused weight prologue dequantises} for `node`."""
    found = {}
    for name, index in STORED_OPERANDS.items():
        prologue = fused_weight_prologue(node, index)
        if prologue is None:
            continue
        stored = prologue.operands[0]
        assert stored is not None and stored.is_constant
        if stored.type.dtype not in (DType.I8, DType.U8) or stored.type.quant is None:
            raise LoweringError(
                f"node {node.name!r}: a stored {stored.type.dtype.value} {name} is not decoded"
            )
        found[name] = stored
    return found


def is_dynamic(node: Node, stored: Mapping[str, Value], dtype: str) -> bool:
    """Whether `node` runs in the dynamic u8 mode (module rule); a LoweringError where it cannot."""
    mode = node.attrs.get(DYNAMIC_QUANTIZATION)
    if mode is None:
        return False
    if mode != "u8" or node.op != "LSTM" or set(stored) != set(STORED_OPERANDS) or dtype != "float32":
        raise LoweringError(
            f"node {node.name!r}: {DYNAMIC_QUANTIZATION} = {mode!r} needs an f32 LSTM whose W and R are "
            f"8-bit weight prologues (has {node.op} {dtype}, stored {sorted(stored)})"
        )
    return True


def row_parameters(stored: Value) -> dict[str, np.ndarray]:
    """A stored weight's quant params per gate row: part name ("scales", "zero_points") -> [dirs, gates*H]."""
    quant, shape = stored.type.quant, tuple(stored.type.shape)
    assert quant is not None
    rows = {}
    for (part, dtype), values in zip(PARTS, (quant.scale, quant.zero_point), strict=True):
        rows[part] = np.ascontiguousarray(
            np.broadcast_to(expand(values, shape, quant, np.dtype(dtype).type), shape)[..., 0]
        )
    return rows


def u8_scale(lo: Expr, hi: Expr) -> Expr:
    """The u8 scale of the range [lo, hi] (which holds 0): (hi - lo) / 255, 1 when hi == lo."""
    from tvm import tirx

    return tirx.Select(hi == lo, tirx.const(1.0, "float32"), (hi - lo) / tirx.const(U8_MAX, "float32"))


def u8_zero(lo: Expr, scale: Expr) -> Expr:
    """The u8 zero point (int32) of a range starting at `lo` under `scale`."""
    from tvm import tirx

    return tirx.round(_clamp_u8(tirx.const(0.0, "float32") - lo / scale)).astype("int32")


def u8_centered(value: Expr, scale: Expr, zero: Expr) -> Expr:
    """q - zero point (int32) of `value` quantized to u8 under `scale` and `zero` (module rule)."""
    return u8_value(value, scale, zero).astype("int32") - zero


def u8_value(value: Expr, scale: Expr, zero: Expr) -> Expr:
    """q, `value` quantized to u8 under `scale` and `zero` (int32), as a float32."""
    from tvm import tirx

    return _clamp_u8(tirx.round(value / scale) + zero.astype("float32"))


def state_dot(rec: Recurrence, dot: DotStep | None, lanes: int) -> str:
    """The LLVM intrinsic the dynamic step's GEMV sums h_q x R_q with (module rule), "" where the
    f32 sums stay: no standalone 16 x 4 byte step, vectors not 16 lanes, W or R not i8 with zero
    points 0."""
    if not rec.dynamic or dot is None or not dot.vector_intrinsic or lanes != DOT_LANES or dot.shift:
        return ""
    return dot.vector_intrinsic if all(symmetric_i8(v) for v in rec.stored.values()) else ""


def symmetric_i8(stored: Value) -> bool:
    quant = stored.type.quant
    return stored.type.dtype == DType.I8 and quant is not None and not any(quant.zero_point)


def _clamp_u8(value: Expr) -> Expr:
    from tvm import tirx

    return tirx.max(tirx.min(value, tirx.const(U8_MAX, "float32")), tirx.const(0.0, "float32"))
