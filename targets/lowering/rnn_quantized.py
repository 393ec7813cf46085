"""8-bit W and R inside a recurrent kernel: weight-only, or with onnxruntime's dynamic u8 activations.

Rule: a recurrent node's W (operand 1) or R (operand 2) whose DequantizeLinear
is a fused weight prologue (passes/fuse.py `recurrent_prologue`) is read
stored: the 8-bit constant [dirs, gates*H, k] as it is, plus two more weight
arguments of that value, parts `scales` (f32) and `zero_points` (int32), each
[dirs, gates*H]: its quant params broadcast to every gate row.

- *Weight-only* (the default): the tiled kernel reads W and R as 8-bit panels
  with their zero points and scales per column (targets/lowering/rnn_projection.py
  `Panel`, `row_parameters` here): each gate sum is
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
  the sums in int32, the rest in f32 (onnxruntime applies a weight's first
  zero point to every row; quantize_dynamic's LSTM weights are symmetric i8).
  onnxruntime quantizes the hidden states of all batch rows of a step together
  (of each thread's chunk of rows when it runs the batch in parallel, so its
  numbers depend on its thread count); this kernel quantizes each row's own
  state: the same numbers for a batch of 1, or when onnxruntime's chunks are
  single rows (measured, batch 3, hidden 64: 2.7e-7 against onnxruntime on 4
  threads; 5.9e-3 on 1 thread, where it shares one scale across the rows).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from ir.dtypes import DType
from ir.graph import Node, Value
from ir.ops.rnn import DYNAMIC_QUANTIZATION
from ir.quantization import expand
from targets.lowering.kernel import KernelArg, LoweringError
from targets.lowering.weight_only import fused_weight_prologue

STORED_OPERANDS = {"W": 1, "R": 2}
PARTS = (("scales", "float32"), ("zero_points", "int32"))
U8_MAX = 255.0
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


def stored_args(name: str, stored: Value) -> list[tuple[str, KernelArg]]:
    """(buffer name, kernel argument) of a stored weight and its per-row scales and zero points."""
    shape = tuple(stored.type.shape)
    pairs = [(name, KernelArg(stored.name, "weight", shape, stored.type.dtype.numpy.name))]
    for part, dtype in PARTS:
        pairs.append((f"{name}_{part}", KernelArg(stored.name, "weight", shape[:2], dtype, part=part)))
    return pairs


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


def pack_stored(stored: Mapping[str, Value]) -> Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]:
    """The kernel's pack_weights: every weight as it is, plus each stored weight's row parameters."""

    def pack(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        packed = {name: np.ascontiguousarray(a) for name, a in arrays.items()}
        for value in stored.values():
            for part, rows in row_parameters(value).items():
                packed[f"{value.name}:{part}"] = rows
        return packed

    return pack


class DynamicU8:
    """The dynamic u8 mode's scratch buffers and statements (module rule); made inside the PrimFunc."""

    X, H = 0, 1  # slots of the scale and zero point buffers

    def __init__(self, rec: Any, store: Callable[..., None]) -> None:
        from tvm.script.ir_builder import tirx as T

        self.rec, self.store = rec, store
        self.xq = T.alloc_buffer((rec.inputs,), "int32")
        self.hq = T.alloc_buffer((rec.hidden,), "int32")
        self.scale = T.alloc_buffer((2,), "float32")
        self.zero = T.alloc_buffer((2,), "int32")
        self.range = T.alloc_buffer((2,), "float32")
        self.acc = T.alloc_buffer((2,), "int32")
        self.longest = T.alloc_buffer((1,), "int32")

    def _widen(self, value: Expr) -> None:
        """The range so far widened to hold `value`: LLVM's minnum/maxnum read the running bound once
        (tirx.min/max's compare-and-select reads it twice, and a fully unrolled chain of those took
        LLVM minutes to compile); equal on numbers but for the sign of a zero bound, which changes
        no scale or zero point."""
        from tvm import tirx

        self.store(self.range, tirx.call_llvm_pure_intrin("float32", "llvm.minnum", self.range[0], value), 0)
        self.store(self.range, tirx.call_llvm_pure_intrin("float32", "llvm.maxnum", self.range[1], value), 1)

    def _reset_range(self) -> None:
        from tvm import tirx

        for i in (0, 1):
            self.store(self.range, tirx.const(0.0, "float32"), i)  # the range always holds 0

    def _set_params(self, slot: int) -> None:
        """Scale and zero point of the range just measured, into `slot`."""
        from tvm import tirx

        lo, hi = self.range[0], self.range[1]
        scale = tirx.Select(hi == lo, tirx.const(1.0, "float32"), (hi - lo) / tirx.const(U8_MAX, "float32"))
        self.store(self.scale, scale, slot)
        zero = tirx.round(_clamp_u8(tirx.const(0.0, "float32") - lo / self.scale[slot]))
        self.store(self.zero, zero.astype("int32"), slot)

    def _quantized(self, value: Expr, slot: int) -> Expr:
        """q - zero point (int32) of `value` under `slot`'s parameters."""
        from tvm import tirx

        shifted = tirx.round(value / self.scale[slot]) + self.zero[slot].astype("float32")
        return _clamp_u8(shifted).astype("int32") - self.zero[slot]

    def measure_input(self) -> None:
        """X's parameters, from every step below the longest (clipped) sequence length."""
        from tvm import tirx
        from tvm.script.ir_builder import tirx as T

        rec, seq = self.rec, tirx.const(self.rec.seq, "int32")
        self.store(self.longest, seq if "sequence_lens" not in rec.buffers else tirx.const(0, "int32"), 0)
        if "sequence_lens" in rec.buffers:
            with T.serial(0, rec.batch) as b:
                given = rec.buffers["sequence_lens"][b].astype("int32")
                self.store(self.longest, tirx.max(self.longest[0], tirx.min(given, seq)), 0)
        self._reset_range()
        with T.serial(0, rec.seq) as t:
            with T.If(t < self.longest[0]):
                with T.Then():
                    with T.serial(0, rec.batch) as b:
                        with T.serial(0, rec.inputs) as k:
                            self._widen(rec.x_at(t, b, k))
        self._set_params(self.X)

    def prepare_step(self, b: Expr, t: Expr, h: Any) -> None:
        """Step t's input row and the hidden state before it, quantized into the scratch buffers."""
        from tvm.script.ir_builder import tirx as T

        rec = self.rec
        with T.serial(0, rec.inputs) as k:
            self.store(self.xq, self._quantized(rec.x_at(t, b, k), self.X), k)
        self._reset_range()
        with T.serial(0, rec.hidden) as k:
            self._widen(h[k])
        self._set_params(self.H)
        with T.serial(0, rec.hidden) as k:
            self.store(self.hq, self._quantized(h[k], self.H), k)

    def dot(self, j: Expr, t: Expr, b: Expr, d: int, hval: Callable[[Expr], Expr]) -> tuple[Expr, Expr]:
        """(both integer products of row j scaled and summed, Wb[j] + Rb[j]): the LSTM cell adds them."""
        from tvm import tirx
        from tvm.script.ir_builder import tirx as T

        rec, acc, buffers = self.rec, self.acc, self.rec.buffers
        for slot, (name, q, length) in enumerate((("W", self.xq, rec.inputs), ("R", self.hq, rec.hidden))):
            self.store(acc, tirx.const(0, "int32"), slot)
            with T.serial(0, length) as k:
                weight = buffers[name][d, j, k].astype("int32") - buffers[f"{name}_zero_points"][d, j]
                self.store(acc, acc[slot] + q[k] * weight, slot)
        x_part = acc[0].astype("float32") * (self.scale[self.X] * buffers["W_scales"][d, j])
        h_part = acc[1].astype("float32") * (self.scale[self.H] * buffers["R_scales"][d, j])
        return x_part + h_part, rec.bias(d, j, False) + rec.bias(d, j, True)


def _clamp_u8(value: Expr) -> Expr:
    from tvm import tirx

    return tirx.max(tirx.min(value, tirx.const(U8_MAX, "float32")), tirx.const(0.0, "float32"))
