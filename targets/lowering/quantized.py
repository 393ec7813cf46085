"""QuantizeLinear and DequantizeLinear as pointwise TE expressions, exactly ir/quantization.py's rule.

Rule: a quantize step computes, per element,

    q = narrow(clamp(round_half_even(float32(x) / float32(scale)) + zero_point, lo, hi))

for a float operand x (one division, as ONNX defines it), and

    q = narrow(clamp(round_half_even(float32(x') * m) + zero_point, lo, hi))

for an integer operand less its zero point x' (int32: an accumulator), with
m = float32(in_scale) / float32(out_scale) (done here at compile time:
`ir.quantization.multiplier`); rounding is
`tirx.round` (nearbyint, halves to even), and the clamp comes BEFORE the
narrowing cast (x86 `vpmovdb` truncates). For 8- and 16-bit results the zero
point is added and the clamp done in float32, exact since |round(..)| < 2**24
or far outside the range; an i32 result adds and clamps in int64. Dequantize is
float32(q - zero_point) * float32(scale). NaN inputs are not defined here.

Per-tensor parameters become literals. Per-channel (axis) parameters are
read from a `Tables` provider at the element's index on that axis: the anchor
kernels (integer_gemm.py) store them in their packed weights; standalone
kernels use `LiteralTables`, a select tree over the channel index. Group-wise
parameters (weights only) and a DequantizeLinear of a constant (a weight
prologue, the weight-only kernels' business) are not steps here.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np
from tvm import te, tirx

from ir.dtypes import DType
from ir.graph import Node
from ir.quantization import multiplier, quant_range
from ir.types import QuantParams
from targets.lowering.pointwise import Expr, narrow, widen

QUANT_OPS = ("QuantizeLinear", "DequantizeLinear")
NARROW_CLAMP_BITS = 16  # results up to this width add the zero point and clamp in float32


class Tables(Protocol):
    """Where a kernel reads per-channel constants: `read(values, axis, index)` -> the element's one."""

    def read(self, values: np.ndarray, axis: int, index: Sequence[Expr]) -> Expr: ...


class LiteralTables:
    """Per-channel constants as literals: a balanced select tree over the channel index."""

    def read(self, values: np.ndarray, axis: int, index: Sequence[Expr]) -> Expr:
        return select_tree(values, index[axis], 0, len(values))


def select_tree(values: np.ndarray, channel: Expr, lo: int, hi: int) -> Expr:
    if hi - lo == 1:
        return te.const(values[lo].item(), str(values.dtype))
    mid = (lo + hi) // 2
    return tirx.Select(
        channel < mid, select_tree(values, channel, lo, mid), select_tree(values, channel, mid, hi)
    )


def is_quant_step(node: Node) -> bool:
    """A Quantize/DequantizeLinear of a run-time value these expressions compute (see the module rule)."""
    if node.op not in QUANT_OPS or len(node.operands) != 1 or len(node.results) != 1:
        return False
    x = node.operands[0]
    if x is None or x.is_constant:
        return False
    quants = [x.type.quant, node.results[0].type.quant]
    return all(q is None or q.group_size is None for q in quants) and channel_axis(node) != -1


def channel_axis(node: Node) -> int | None:
    """The one axis a step's per-channel constants run along (None: per tensor; -1: two different axes)."""
    axes = {q.axis for q in (node.operands[0].type.quant, node.results[0].type.quant) if q is not None}  # type: ignore[union-attr]
    axes.discard(None)
    return -1 if len(axes) > 1 else (axes.pop() if axes else None)


def step_constants(node: Node) -> dict[str, np.ndarray]:
    """The constants of one step, each 1-D (one value, or one per channel along `channel_axis`)."""
    x = node.operands[0]
    assert x is not None
    in_q, out_q = x.type.quant, node.results[0].type.quant
    if node.op == "DequantizeLinear":
        if in_q is None:
            return {}
        return {"scale": _f32(in_q.scale), "zero": _i32(in_q.zero_point)}
    assert out_q is not None
    if in_q is None:  # a float: divided by the scale
        return {"divisor": _f32(out_q.scale), "zero": _i32(out_q.zero_point)}
    m = multiplier(np.asarray(in_q.scale, np.float64), np.asarray(out_q.scale, np.float64))
    return {"multiplier": m, "in_zero": _i32(in_q.zero_point), "zero": _i32(out_q.zero_point)}


def _f32(values: Sequence[float]) -> np.ndarray:
    return np.asarray(values, np.float32)


def _i32(values: Sequence[int]) -> np.ndarray:
    return np.asarray(values, np.int32)


def uniform(values: np.ndarray) -> bool:
    return bool(values.size == 1 or np.all(values == values.flat[0]))


def constant_reader(node: Node, index: Sequence[Expr], tables: Tables) -> Any:
    """`read(name)`: the step's constant `name` at `index` (a literal when it does not vary)."""
    constants, axis = step_constants(node), channel_axis(node)

    def read(name: str) -> Expr:
        values = constants[name]
        if uniform(values) or axis is None:
            return te.const(values.flat[0].item(), str(values.dtype))
        return tables.read(values, axis, index)

    return read


def quant_expr(node: Node, x: Expr, index: Sequence[Expr], tables: Tables) -> Expr:
    """The element of a quantize step's result (storage dtype) from its operand's (storage dtype)."""
    source, result = node.operands[0].type, node.results[0].type  # type: ignore[union-attr]
    read = constant_reader(node, index, tables)
    if node.op == "DequantizeLinear":
        return narrow(dequantize_expr(widen(x, source.dtype), source.dtype, source.quant, read), result.dtype)
    if source.quant is None:
        real = widen(x, source.dtype).astype("float32")
        return requantize_expr(real / read("divisor"), read("zero"), result.dtype)
    value = centred(widen(x, source.dtype), source.dtype, read("in_zero")).astype("float32")
    return requantize_expr(value * read("multiplier"), read("zero"), result.dtype)


def centred(q: Expr, dtype: DType, zero: Expr) -> Expr:
    """q - zero_point in int32 (int64 for an i32 operand with a zero point, which could overflow)."""
    wide = "int64" if dtype is DType.I32 and not _is_zero(zero) else "int32"
    value = q.astype(wide)
    return value if _is_zero(zero) else value - zero.astype(wide)


def _is_zero(expr: Expr) -> bool:
    return isinstance(expr, tirx.IntImm) and int(expr) == 0


def dequantize_expr(q: Expr, dtype: DType, quant: QuantParams | None, read: Any) -> Expr:
    if quant is None:  # a float operand (f16): converted
        return q.astype("float32")
    return centred(q, dtype, read("zero")).astype("float32") * read("scale")


def requantize_expr(scaled: Expr, zero: Expr, dtype: DType) -> Expr:
    """saturate(round_half_even(scaled) + zero) in `dtype`'s storage, clamped before narrowing."""
    lo, hi = quant_range(dtype)
    rounded = te.round(scaled)
    if max(abs(lo), hi) < 2**NARROW_CLAMP_BITS:
        shifted = rounded if _is_zero(zero) else rounded + zero.astype("float32")
        clamped = te.min(te.max(shifted, te.const(float(lo), "float32")), te.const(float(hi), "float32"))
        whole = clamped.astype("int32")
    else:
        bound = te.const(2.0**40, "float32")
        wide = te.min(te.max(rounded, -bound), bound).astype("int64") + zero.astype("int64")
        whole = te.min(te.max(wide, te.const(lo, "int64")), te.const(hi, "int64")).astype("int32")
    return narrow(whole, dtype) if dtype is DType.I4 else whole.astype(dtype.numpy.name)


def quant_key(node: Node) -> list[Any]:
    """What a workload key needs beyond the attributes: the operand's quant and the constants."""
    return [str(node.operands[0].type), {k: v.tolist() for k, v in step_constants(node).items()}]  # type: ignore[union-attr]
