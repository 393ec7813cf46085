"""ONNX converters: QLinearMatMul and MatMulInteger of two run-time operands (attention's Q·Kᵀ and
scores·V in a QOperator model), which HAI's MatMulInteger (a constant 2-D weight) cannot take.

Rule: both operands are taken as the integers they hold, centred on their
(per-tensor, constant) zero points in f32, and multiplied by a float MatMul
(batched as ONNX broadcasts). Every product and partial sum is an integer, so
the f32 result is ONNX's exact int32 while K · max|a − za| · max|b − zb| stays
under 2^24 (K ≤ 258 for u8 × u8; attention heads are 32–128 wide); past that
the import fails naming the node rather than round silently. MatMulInteger
casts the sum to int32; QLinearMatMul multiplies it by a_scale · b_scale and
quantizes it to y's parameters. The product runs as a float kernel: its
nodes are marked imported, so the report lists it as fp32 from the model's
own quantization.
"""

from __future__ import annotations

import numpy as np

from hai_compiler.onnx_import.converter import ConversionContext
from hai_compiler.onnx_import.converters.quantized_operands import (
    _params,
    _per_tensor,
    _quantize_attrs,
    _required,
    _zero_point_dtype,
    mark_imported,
)
from ir import DType, Value
from ir.quantization import quant_range

EXACT_F32 = 2**24
"""Integers up to this magnitude are exact in float32."""


def activation_product(ctx: ConversionContext) -> list[Value]:
    """MatMulInteger(A, B, za, zb) or QLinearMatMul(a, sa, za, b, sb, zb, sy, zy) of run-time A and B."""
    qlinear = ctx.op_type == "QLinearMatMul"
    a_index, b_index = 0, 3 if qlinear else 1
    a_zero_index, b_zero_index = (2, 5) if qlinear else (2, 3)
    a, b = _required(ctx, a_index, "A"), _required(ctx, b_index, "B")
    a_real = _centred(ctx, a, a_zero_index, "a")
    b_real = _centred(ctx, b, b_zero_index, "b")
    _check_exact(ctx, a, b, a_zero_index, b_zero_index)
    (product,) = ctx.emit("MatMul", [a_real, b_real])
    mark_imported([product])
    if not qlinear:
        return ctx.emit("Cast", [product], {"to": DType.I32})
    scale = _per_tensor(ctx, 1, "a scale") * _per_tensor(ctx, 4, "b scale")
    (real,) = ctx.emit("Mul", [product, ctx.constant(np.float32(scale), "ab_scale")])
    y_dtype = _zero_point_dtype(ctx, 7, a.type.dtype)
    return ctx.emit("QuantizeLinear", [real], _quantize_attrs(y_dtype, _params(ctx, (), 6, 7, None)))


def _centred(ctx: ConversionContext, value: Value, zero_index: int, what: str) -> Value:
    """`value - zero point` as f32 integers (a quantized value's own integers, whatever its scale)."""
    zero = _per_tensor(ctx, zero_index, f"{what} zero point", 0.0)
    operand = value
    if value.type.quant is not None:  # a QuantizeLinear's result: read its integers
        (operand,) = ctx.emit("Cast", [value], {"to": value.type.dtype})
    (real,) = ctx.emit("Cast", [operand], {"to": DType.F32})
    return ctx.emit("Sub", [real, ctx.constant(np.float32(zero), f"{what}_zero_point")])[0]


def _check_exact(ctx: ConversionContext, a: Value, b: Value, a_zero_index: int, b_zero_index: int) -> None:
    k = a.type.shape[-1]
    largest = 1
    for value, index, what in ((a, a_zero_index, "a"), (b, b_zero_index, "b")):
        lo, hi = quant_range(value.type.dtype)
        zero = _per_tensor(ctx, index, f"{what} zero point", 0.0)
        largest *= int(max(zero - lo, hi - zero))
    if k * largest >= EXACT_F32:
        raise ctx.fail(
            f"a run-time × run-time integer product over K={k} can reach {k * largest}, beyond float32's "
            f"exact integers (2^24); HAI computes such products in f32 and cannot keep them exact"
        )
