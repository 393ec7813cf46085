"""ONNX converters: onnxruntime's quantized helper ops (`com.microsoft` QLinearAdd, QLinearMul,
QLinearSigmoid, QLinearLeakyRelu, QLinearGlobalAveragePool, QLinearAveragePool, QLinearConcat,
QLinearSoftmax, QLinearReduceMean, QGemm, QuantizeLinear, DequantizeLinear), as
onnxruntime's `quantize_static` emits them in QOperator format.

Rule: a product (QGemm) becomes the IR's integer product, as QLinearMatMul does
(converters/quantized.py): MatMulInteger of X and the symmetric i8 weight, with
the int32 bias, then a requantizing QuantizeLinear to Y (or a DequantizeLinear
to f32 when Y's scale is absent). Every other helper has no integer IR op: it
becomes DequantizeLinear of each quantized input → the float op →
QuantizeLinear to the output's static parameters. That is the op's exact
semantics: the com.microsoft spec defines each of them as the float op on the
dequantized inputs, requantized to Y's scale and zero point. onnxruntime's
kernels round some of them their own way: the QLinearAdd form is rewritten by
fold-qdq to its exact arithmetic (passes/qlinear_forms.py); its QLinearSoftmax
scales by floor(1 / y_scale), 1 LSB off the spec when 1 / y_scale is not an
integer (y_scale 1/255). Fusion then folds the DequantizeLinear
+ float op + QuantizeLinear into the epilogue of the integer kernels around
them. Every quantized node made here is annotated `precision_source =
imported`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from hai_compiler.onnx_import.converter import ConversionContext, converter
from hai_compiler.onnx_import.converters.quantized import dequantize_linear, quantize_linear
from hai_compiler.onnx_import.converters.quantized_operands import (
    MICROSOFT,
    _activation,
    _params,
    _per_tensor,
    _quantize_attrs,
    _quantized,
    _required,
    _scale,
    _weight,
    _zero_point_dtype,
    mark_imported,
)
from hai_compiler.onnx_import.converters.window import kernel_attr, pool_window_attrs, spatial_input
from ir import Value
from ir.dtypes import DType
from ir.types import QuantParams

converter("QuantizeLinear", domain=MICROSOFT)(quantize_linear)
converter("DequantizeLinear", domain=MICROSOFT)(dequantize_linear)


def _emit(ctx: ConversionContext, op: str, operands: Sequence[Value | None], attrs: Any = None) -> Value:
    (result,) = ctx.emit(op, operands, attrs)
    if op in ("QuantizeLinear", "DequantizeLinear", "MatMulInteger"):
        mark_imported([result])
    return result


# -- dequantized inputs, requantized outputs -------------------------------------------------------------


def _dequantized(ctx: ConversionContext, index: int, what: str) -> Value:
    """Input `index` (per-tensor quantized by the scale and zero point that follow it) in f32.

    A value made by a QuantizeLinear of these parameters (or a constant) is dequantized as it is; a
    run-time integer that no QuantizeLinear typed (an op HAI keeps untyped made it) is tagged at scale
    1 (quantized.py's exact chain), dequantized and multiplied by its scale: the same f32 numbers."""
    x = _required(ctx, index, what)
    params = _params(ctx, x.type.shape, index + 1, index + 2, None)
    if x.type.quant == params or x.is_constant:
        return _emit(ctx, "DequantizeLinear", [_quantized(ctx, x, params, what)], {"dtype": DType.F32})
    unit = _quantized(ctx, x, QuantParams((1.0,), params.zero_point), what)
    real = _emit(ctx, "DequantizeLinear", [unit], {"dtype": DType.F32})
    return _emit(ctx, "Mul", [real, ctx.constant(np.array(params.scale[0], np.float32), "scale")])


def _requantized(ctx: ConversionContext, y: Value, scale_index: int, default: DType) -> list[Value]:
    """Float `y` quantized per tensor to the output scale and zero point at `scale_index`."""
    params = _params(ctx, (), scale_index, scale_index + 1, None)
    dtype = _zero_point_dtype(ctx, scale_index + 1, default)
    return [_emit(ctx, "QuantizeLinear", [y], _quantize_attrs(dtype, params))]


def _input_dtype(ctx: ConversionContext, index: int = 0) -> DType:
    return _required(ctx, index, "X").type.dtype


# -- elementwise and activations -------------------------------------------------------------------------


@converter("QLinearAdd", "QLinearMul", domain=MICROSOFT)
def qlinear_binary(ctx: ConversionContext) -> list[Value]:
    """(A, a_scale, a_zp, B, b_scale, b_zp, C_scale, C_zp): the float Add/Mul, broadcasting."""
    a, b = _dequantized(ctx, 0, "A"), _dequantized(ctx, 3, "B")
    y = _emit(ctx, ctx.op_type.removeprefix("QLinear"), [a, b])
    return _requantized(ctx, y, 6, _input_dtype(ctx))


@converter("QLinearSigmoid", "QLinearLeakyRelu", domain=MICROSOFT)
def qlinear_activation(ctx: ConversionContext) -> list[Value]:
    """(X, x_scale, x_zp, y_scale, y_zp): the float activation (LeakyRelu keeps its alpha)."""
    op = ctx.op_type.removeprefix("QLinear")
    attrs = {"alpha": float(ctx.attrs.get("alpha", 0.01))} if op == "LeakyRelu" else {}
    y = _emit(ctx, op, [_dequantized(ctx, 0, "X")], attrs)
    return _requantized(ctx, y, 3, _input_dtype(ctx))


@converter("QLinearSoftmax", domain=MICROSOFT)
def qlinear_softmax(ctx: ConversionContext) -> list[Value]:
    """(X, x_scale, x_zp, y_scale, y_zp){axis, opset}: Softmax along `axis`; before opset 13 Softmax
    flattened the axes from `axis` on, which equals the one-axis form only on the last axis."""
    x = _required(ctx, 0, "X")
    axis = int(ctx.attrs.get("axis", -1 if int(ctx.attrs.get("opset", 13)) >= 13 else 1)) % x.type.rank
    if int(ctx.attrs.get("opset", 13)) < 13 and axis != x.type.rank - 1:
        raise ctx.fail(
            f"opset {ctx.attrs['opset']} Softmax over axes {axis}.. is not supported (last axis only)"
        )
    y = _emit(ctx, "Softmax", [_dequantized(ctx, 0, "X")], {"axis": axis})
    return _requantized(ctx, y, 3, x.type.dtype)


# -- pooling and reductions ------------------------------------------------------------------------------


def _channels_first(ctx: ConversionContext, x: Value) -> Value:
    """Float `x` in (N, C, spatial...) order: NHWC inputs (`channels_last` 1) are transposed."""
    if not int(ctx.attrs.get("channels_last", 0)):
        return x
    rank = x.type.rank
    return _emit(ctx, "Transpose", [x], {"perm": (0, rank - 1, *range(1, rank - 1))})


def _channels_back(ctx: ConversionContext, y: Value) -> Value:
    if not int(ctx.attrs.get("channels_last", 0)):
        return y
    rank = y.type.rank
    return _emit(ctx, "Transpose", [y], {"perm": (0, *range(2, rank), 1)})


@converter("QLinearGlobalAveragePool", domain=MICROSOFT)
def qlinear_global_average_pool(ctx: ConversionContext) -> list[Value]:
    """(X, x_scale, x_zp, y_scale, y_zp){channels_last}: GlobalAveragePool."""
    spatial_input(ctx)
    x = _channels_first(ctx, _dequantized(ctx, 0, "X"))
    y = _channels_back(ctx, _emit(ctx, "GlobalAveragePool", [x]))
    return _requantized(ctx, y, 3, _input_dtype(ctx))


@converter("QLinearAveragePool", domain=MICROSOFT)
def qlinear_average_pool(ctx: ConversionContext) -> list[Value]:
    """(X, x_scale, x_zp, y_scale, y_zp){AveragePool's window, channels_last}: AveragePool."""
    spatial_input(ctx)
    x = _channels_first(ctx, _dequantized(ctx, 0, "X"))
    attrs = pool_window_attrs(ctx, x, kernel_attr(ctx, x))
    attrs["count_include_pad"] = int(ctx.attrs.get("count_include_pad", 0))
    y = _channels_back(ctx, _emit(ctx, "AveragePool", [x], attrs))
    return _requantized(ctx, y, 3, _input_dtype(ctx))


@converter("QLinearReduceMean", domain=MICROSOFT)
def qlinear_reduce_mean(ctx: ConversionContext) -> list[Value]:
    """(data, data_scale, data_zp, reduced_scale, reduced_zp){axes, keepdims}: ReduceMean."""
    x = _dequantized(ctx, 0, "data")
    if "axes" not in ctx.attrs:
        raise ctx.fail("attribute 'axes' is required")
    axes = tuple(int(a) % x.type.rank for a in ctx.attrs["axes"])
    y = _emit(ctx, "ReduceMean", [x], {"axes": axes, "keepdims": int(ctx.attrs.get("keepdims", 1))})
    return _requantized(ctx, y, 3, _input_dtype(ctx))


@converter("QLinearConcat", domain=MICROSOFT)
def qlinear_concat(ctx: ConversionContext) -> list[Value]:
    """(Y_scale, Y_zp, then X, x_scale, x_zp per input){axis}: Concat."""
    count = (len(ctx.inputs) - 2) // 3
    if count < 1 or len(ctx.inputs) != 2 + 3 * count:
        raise ctx.fail(f"{len(ctx.inputs)} inputs: expected Y_scale, Y_zp and (X, scale, zero point) triples")
    parts = [_dequantized(ctx, 2 + 3 * i, f"input {i}") for i in range(count)]
    axis = int(ctx.attrs.get("axis", 0)) % parts[0].type.rank
    y = _emit(ctx, "Concat", parts, {"axis": axis})
    return _requantized(ctx, y, 0, _input_dtype(ctx, 2))


# -- the integer product ---------------------------------------------------------------------------------


@converter("QGemm", domain=MICROSOFT)
def qgemm(ctx: ConversionContext) -> list[Value]:
    """(A, a_scale, a_zp, B, b_scale, b_zp, C?, y_scale?, y_zp?){alpha, transA, transB} → MatMulInteger
    of A and B (alpha folded into B's scales, B^T a constant when transB) plus C, an int32 bias at
    scale alpha * a_scale * b_scale, then QuantizeLinear to Y, or DequantizeLinear to f32 without
    y_scale."""
    if int(ctx.attrs.get("transA", 0)):
        raise ctx.fail("transA = 1 is not supported (HAI's MatMulInteger takes A as it is)")
    a = _required(ctx, 0, "A")
    b = _required(ctx, 3, "B")
    if b.type.rank != 2:
        raise ctx.fail(f"B {b.type} must be a 2-D matrix")
    if int(ctx.attrs.get("transB", 0)):
        weights = ctx.static_input(3, "B (transposed to (K, N) for HAI's MatMulInteger)")
        assert weights is not None
        ctx.inputs[3] = ctx.constant(np.ascontiguousarray(weights.T), "b_transposed")
    x_q, factor = _activation(
        ctx, a, _per_tensor(ctx, 1, "a scale"), int(_per_tensor(ctx, 2, "a zero point", 0))
    )
    alpha = float(ctx.attrs.get("alpha", 1.0))
    w_q = _weight(
        ctx, 3, _scale(ctx, 4, "b scale").astype(np.float64) * factor * alpha, ctx.static_input(5), 1
    )
    acc = _emit(ctx, "MatMulInteger", [x_q, w_q, _bias(ctx, w_q.type.shape[1])])
    if ctx.input(7) is None:
        return [_emit(ctx, "DequantizeLinear", [acc], {"dtype": DType.F32})]
    return _requantized(ctx, acc, 7, a.type.dtype)


def _bias(ctx: ConversionContext, columns: int) -> Value | None:
    """C as the 1-D int32 bias of `columns` entries MatMulInteger adds (a scalar or (1, N) C is
    broadcast; C varying along rows is not supported)."""
    c = ctx.static_input(6, "C")
    if c is None:
        return None
    if c.dtype != np.int32:
        raise ctx.fail(f"C must be int32 (quantized at alpha * a_scale * b_scale), got {c.dtype}")
    if c.size not in (1, columns) or (c.ndim == 2 and c.shape[0] != 1):
        raise ctx.fail(f"C of shape {list(c.shape)} must be a scalar or one value per column ({columns})")
    return ctx.constant(np.broadcast_to(c.reshape(-1), (columns,)).astype(np.int32), "bias")
