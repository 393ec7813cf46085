"""ONNX converters: quantized family (QuantizeLinear, DequantizeLinear, ConvInteger, MatMulInteger,
QLinearConv, QLinearMatMul), opsets 10–21.

Rule: ONNX passes scales and zero points as operands; the IR keeps them in
tensor types (`TensorType.quant`). So every scale and zero point must be known
at compile time (a StaticOperandError naming the node otherwise), and an integer
operand gets its quant parameters in its type before an IR op reads it:

- a constant (a weight initializer) is re-added as a constant of that type;
- a value already of that type (made by a QuantizeLinear) is used as it is;
- a run-time 4/8/16-bit integer of scale 1 (ConvInteger's X, a graph input) is
  tagged by the exact chain Cast(f32) → Sub(zero point) → QuantizeLinear{scale 1};
- anything else is a ConversionError naming the node.

ConvInteger/MatMulInteger give X and W scale 1 (the integer semantics);
QLinearConv/QLinearMatMul become the integer product at the real scales
followed by a requantizing QuantizeLinear to Y's parameters (where X had to be
tagged with scale 1, its scale moves into W's). Their integer nodes are marked
`precision_source = imported` (the report's per-layer provenance). A constant weight with non-zero
zero points becomes `w - zero_point` in i8 (the IR's symmetric weight) when
every value fits.

Rounding: the IR's QuantizeLinear of a float divides by the scale, as ONNX
does (ir/quantization.py), so the two agree bit for bit.
"""

from __future__ import annotations

import numpy as np

from hai_compiler.onnx_import.converter import ConversionContext, converter
from hai_compiler.onnx_import.converters.activation_matmul import activation_product
from hai_compiler.onnx_import.converters.dynamic_quantized import runtime_zero_point_product
from hai_compiler.onnx_import.converters.quantized_operands import (
    TAGGABLE,
    _activation,
    _onnx_axis,
    _params,
    _per_tensor,
    _product_operands,
    _quantize_attrs,
    _quantized,
    _required,
    _runtime_b,
    _scale,
    _weight,
    _zero_point_dtype,
    imported,
)
from ir import Value
from ir.dtypes import DType
from ir.quantization import expand
from ir.types import QuantParams


@converter("QuantizeLinear")
def quantize_linear(ctx: ConversionContext) -> list[Value]:
    """ONNX QuantizeLinear → IR QuantizeLinear{dtype, scale, zero_point, axis?, group_size?}.

    Both divide x by the scale and round half to even (ir/quantization.py), so they agree bit for bit.
    """
    x = _required(ctx, 0, "x")
    if not x.type.dtype.is_float:
        raise ctx.fail(f"x {x.type} must be a float tensor")
    params = _params(ctx, x.type.shape, 1, 2, _onnx_axis(ctx))
    dtype = _zero_point_dtype(ctx, 2, DType.U8)
    return ctx.emit("QuantizeLinear", [x], _quantize_attrs(dtype, params))


@converter("DequantizeLinear")
def dequantize_linear(ctx: ConversionContext) -> list[Value]:
    """ONNX DequantizeLinear → IR DequantizeLinear of x typed with the node's parameters; a run-time
    integer that no QuantizeLinear made is dequantized by the same rule in float ops:
    float32(x - zero_point) * float32(scale)."""
    x = _required(ctx, 0, "x")
    params = _params(ctx, x.type.shape, 1, 2, _onnx_axis(ctx))
    out = DType.from_numpy(_scale(ctx, 1, "scale").dtype)
    if x.is_constant or x.type.quant is not None:
        return ctx.emit("DequantizeLinear", [_quantized(ctx, x, params, "x")], {"dtype": out})
    if x.type.dtype not in TAGGABLE:
        raise ctx.fail(f"x {x.type} must be a u8, i8, i16 or i4 tensor (or a constant) to dequantize")
    real = ctx.emit("Cast", [x], {"to": DType.F32})[0]
    zero = ctx.constant(expand(params.zero_point, x.type.shape, params, np.float32), "zero_point")
    scale = ctx.constant(expand(params.scale, x.type.shape, params, np.float32), "scale")
    result = ctx.emit("Mul", [ctx.emit("Sub", [real, zero])[0], scale])
    return result if out is DType.F32 else ctx.emit("Cast", result, {"to": out})


# -- integer products ------------------------------------------------------------------------------------


@converter("ConvInteger", "MatMulInteger")
def integer_product(ctx: ConversionContext) -> list[Value]:
    """ConvInteger / MatMulInteger: X and W at scale 1, so the IR op's int32 result is ONNX's; a run-time
    X zero point (DynamicQuantizeLinear's) goes to converters/dynamic_quantized.py."""
    x_zero = ctx.input(2)
    if x_zero is not None and not x_zero.is_constant:  # onnxruntime's dynamic quantization
        return runtime_zero_point_product(ctx)
    if ctx.op_type == "MatMulInteger" and _runtime_b(ctx, 1):
        return activation_product(ctx)
    x, w, axis, attrs = _product_operands(ctx, 1, "A", "W")
    zero = int(_per_tensor(ctx, 2, "x zero point", 0.0))
    x_q = _quantized(ctx, x, QuantParams((1.0,), (zero,)), "X")
    w_zero = ctx.static_input(3, "w zero point")
    count = w_zero.size if w_zero is not None and w_zero.size > 1 else 1
    w_q = _weight(ctx, 1, np.ones(count), w_zero, axis)
    return imported(ctx.emit(ctx.op_type, [x_q, w_q], attrs))


@converter("QLinearConv", "QLinearMatMul")
def qlinear_product(ctx: ConversionContext) -> list[Value]:
    """QLinearConv / QLinearMatMul → ConvInteger / MatMulInteger (+ int32 B) → QuantizeLinear to y."""
    is_conv = ctx.op_type == "QLinearConv"
    if not is_conv and _runtime_b(ctx, 3):
        return activation_product(ctx)
    x, w, axis, attrs = _product_operands(ctx, 3, "a", "w")
    x_scale = _per_tensor(ctx, 1, "x scale")
    x_q, factor = _activation(ctx, x, x_scale, int(_per_tensor(ctx, 2, "x zero point", 0.0)))
    w_scale = _scale(ctx, 4, "w scale").astype(np.float64) * factor
    w_q = _weight(ctx, 3, w_scale, ctx.static_input(5, "w zero point"), axis)
    y_params = _params(ctx, (), 6, 7, None)
    y_dtype = _zero_point_dtype(ctx, 7, x.type.dtype)
    bias = ctx.input(8) if is_conv else None
    (acc,) = imported(ctx.emit("ConvInteger" if is_conv else "MatMulInteger", [x_q, w_q, bias], attrs))
    return ctx.emit("QuantizeLinear", [acc], _quantize_attrs(y_dtype, y_params))


