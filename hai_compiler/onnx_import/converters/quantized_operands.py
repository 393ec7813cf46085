"""The operands of quantized ONNX ops as the IR wants them: scales and zero points known at compile time
and carried in types, weights and activations tagged with their quantization (rules: quantized.py).

Rule: every quantized converter (quantized.py, microsoft_quantized.py,
dynamic_quantized.py, activation_matmul.py, dynamic_quantized_lstm.py) reads its
operands through these helpers and marks what it made `precision_source =
imported`; this module registers no converter and imports none.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from hai_compiler.onnx_import.converter import ConversionContext, onnx_dtype
from hai_compiler.onnx_import.converters.window import kernel_attr, spatial_input, window_attrs
from ir import Value
from ir.dtypes import DType
from ir.quantization import PRECISION_SOURCE_KEY, expand
from ir.types import QuantParams, TensorType

MICROSOFT = "com.microsoft"
"""The ONNX domain of onnxruntime's contrib ops (QLinear*, DynamicQuantize*)."""

TAGGABLE = (DType.U8, DType.I8, DType.I16, DType.I4)
"""Run-time integer dtypes that Cast → Sub → QuantizeLinear{scale 1} reproduces exactly (exact in f32)."""


# -- scales and zero points ------------------------------------------------------------------------------


def _required(ctx: ConversionContext, index: int, what: str) -> Value:
    value = ctx.input(index)
    if value is None:
        raise ctx.fail(f"input {index} ({what}) is required")
    return value


def _scale(ctx: ConversionContext, index: int, what: str) -> np.ndarray:
    scale = ctx.static_input(index, what)
    if scale is None:
        raise ctx.fail(f"input {index} ({what}) is required")
    return scale


def _zero_point_dtype(ctx: ConversionContext, index: int, default: DType) -> DType:
    """The quantized dtype: the zero point's type, else opset 21's output_dtype, else `default`."""
    zero = ctx.input(index)
    if zero is not None:
        return zero.type.dtype
    if ctx.attrs.get("output_dtype"):
        return onnx_dtype(int(ctx.attrs["output_dtype"]), ctx.where)
    return default


def _params(
    ctx: ConversionContext, shape: tuple[int, ...], scale_index: int, zero_index: int, axis: int | None
) -> QuantParams:
    """QuantParams of a tensor of `shape`: per tensor, per `axis` (ONNX's `axis`), or blocked
    (`block_size`); `axis` None means per tensor only (QLinear* activations)."""
    scale = _scale(ctx, scale_index, "scale").astype(np.float64)
    zero = ctx.static_input(zero_index, "zero point")
    zero = np.zeros(scale.shape, np.int64) if zero is None else zero.astype(np.int64)
    if zero.shape != scale.shape and zero.size != scale.size:
        raise ctx.fail(f"zero point shape {list(zero.shape)} differs from scale shape {list(scale.shape)}")
    block = int(ctx.attrs.get("block_size", 0) or 0)
    scales = tuple(float(s) for s in scale.ravel())
    zeros = tuple(int(z) for z in zero.ravel())
    if scale.size == 1 and not block:
        return QuantParams(scales, zeros)
    if axis is None:
        raise ctx.fail(f"{list(scale.shape)} scales: only per-tensor quantization is supported here")
    axis = axis % len(shape) if shape else 0
    if block:
        expected = [math.ceil(d / block) if i == axis else d for i, d in enumerate(shape)]
        if list(scale.shape) != expected:
            raise ctx.fail(f"blocked scale shape {list(scale.shape)} must be {expected}")
        return QuantParams(scales, zeros, axis, block)
    if scale.ndim != 1 or scale.size != shape[axis]:
        raise ctx.fail(f"per-axis scale shape {list(scale.shape)} must be [{shape[axis]}] (axis {axis})")
    return QuantParams(scales, zeros, axis)


def _onnx_axis(ctx: ConversionContext) -> int:
    return int(ctx.attrs.get("axis", 1))


# -- giving integer operands their quant types -----------------------------------------------------------


def _quantized(ctx: ConversionContext, value: Value, params: QuantParams, what: str) -> Value:
    """`value` as a tensor whose type carries `params` (see the module rule)."""
    t = value.type
    if t.quant == params:
        return value
    if t.quant is not None:
        raise ctx.fail(f"{what} %{value.name} is quantized with {t.quant}, not the node's {params}")
    if value.is_constant:
        typed = TensorType(t.dtype, t.shape, quant=params)
        return ctx.graph.add_constant(f"{value.name}.q", value.constant_array(), typed)
    if t.dtype in TAGGABLE and all(s == 1.0 for s in params.scale):
        real = ctx.emit("Cast", [value], {"to": DType.F32})[0]
        zero = expand(params.zero_point, t.shape, params, np.float32)
        centred = ctx.emit("Sub", [real, ctx.constant(zero, "zero_point")])[0]
        return ctx.emit("QuantizeLinear", [centred], _quantize_attrs(t.dtype, params))[0]
    raise ctx.fail(
        f"{what} %{value.name} is a run-time {t.dtype.value} tensor that no QuantizeLinear of these "
        "parameters produced; HAI cannot give it quantization parameters yet"
    )


def _activation(ctx: ConversionContext, x: Value, scale: float, zero: int) -> tuple[Value, float]:
    """(X typed per tensor, the factor W's scales take on): X at its scale where possible, else at
    scale 1 with `scale` moved into W, which leaves the accumulator's scale unchanged."""
    params = QuantParams((scale,), (zero,))
    if x.type.quant == params or x.is_constant:
        return _quantized(ctx, x, params, "X"), 1.0
    return _quantized(ctx, x, QuantParams((1.0,), (zero,)), "X"), scale


def _weight(
    ctx: ConversionContext, w_index: int, scales: np.ndarray, zeros: np.ndarray | None, axis: int
) -> Value:
    """Input `w_index` as the IR's symmetric i8 weight, per tensor or per channel along `axis`; other
    weights must be constants (a StaticOperandError otherwise), re-centred on zero point 0."""
    w = _required(ctx, w_index, "W")
    zeros = np.zeros(scales.shape, np.int64) if zeros is None else zeros.astype(np.int64).ravel()
    count = scales.size
    if count not in (1, w.type.shape[axis]) or zeros.size not in (1, count):
        raise ctx.fail(f"{count} W scale(s) must be one per tensor or per channel ({w.type.shape[axis]})")
    channel = axis if count > 1 else None
    params = QuantParams(tuple(float(s) for s in scales.ravel()), (0,) * count, channel)
    if w.type.dtype is DType.I8 and not zeros.any():
        return _quantized(ctx, w, params, "W")
    shape = [1] * w.type.rank
    shape[axis] = -1 if zeros.size > 1 else 1
    weights = ctx.static_input(w_index, "W (re-centred on zero point 0 for the IR's symmetric i8)")
    assert weights is not None
    centred = weights.astype(np.int64) - zeros.reshape(shape)
    if centred.size and (centred.min() < -128 or centred.max() > 127):
        raise ctx.fail("W less its zero points does not fit i8; HAI's integer weights are symmetric i8")
    typed = TensorType(DType.I8, w.type.shape, quant=params)
    return ctx.graph.add_constant(f"{w.name}.q", centred.astype(np.int8), typed)


def _per_tensor(ctx: ConversionContext, index: int, what: str, default: float | None = None) -> float:
    array = ctx.static_input(index, what)
    if array is None:
        if default is None:
            raise ctx.fail(f"input {index} ({what}) is required")
        return default
    if array.size != 1:
        raise ctx.fail(f"{what} must be one value per tensor, got shape {list(array.shape)}")
    return float(array.ravel()[0])


# -- QuantizeLinear / DequantizeLinear -------------------------------------------------------------------


def _quantize_attrs(dtype: DType, params: QuantParams) -> dict[str, object]:
    attrs: dict[str, object] = {"dtype": dtype, "scale": params.scale, "zero_point": params.zero_point}
    if params.axis is not None:
        attrs["axis"] = params.axis
    if params.group_size is not None:
        attrs["group_size"] = params.group_size
    return attrs


def _conv_attrs(ctx: ConversionContext, x: Value, w: Value) -> dict[str, object]:
    if w.type.rank != x.type.rank:
        raise ctx.fail(f"W {w.type} must have the rank of X {x.type}")
    kernel = kernel_attr(ctx, x, w.type.shape[2:])
    return {**window_attrs(ctx, x, kernel), "group": int(ctx.attrs.get("group", 1))}


def _matmul_weight_axis(ctx: ConversionContext, w: Value) -> int:
    if w.type.rank != 2:
        raise ctx.fail(f"B {w.type} must be a 2-D (K, N) matrix (HAI's MatMulInteger)")
    return 1


def _product_operands(
    ctx: ConversionContext, w_index: int, x_name: str, w_name: str
) -> tuple[Value, Value, int, dict[str, object]]:
    """(X, W, W's output-channel axis, the Conv attributes) of an integer Conv or MatMul node."""
    is_conv = "Conv" in ctx.op_type
    x = spatial_input(ctx) if is_conv else _required(ctx, 0, x_name)
    w = _required(ctx, w_index, w_name)
    if is_conv:
        return x, w, 0, _conv_attrs(ctx, x, w)
    return x, w, _matmul_weight_axis(ctx, w), {}


def _runtime_b(ctx: ConversionContext, index: int) -> bool:
    """Whether a MatMul's B (input `index`) is not a constant 2-D matrix (converters/activation_matmul.py)."""
    b = ctx.input(index)
    return b is not None and (not b.is_constant or b.type.rank != 2)


def imported(results: list[Value]) -> list[Value]:
    """`results`, their producers marked as quantized by the imported model (`mark_imported`)."""
    mark_imported(results)
    return results


def mark_imported(values: Sequence[Value | None]) -> None:
    """Annotate the nodes that made `values` as quantized by the imported model (PRECISION_SOURCE_KEY)."""
    for value in values:
        if value is not None and value.producer is not None:
            value.producer.annotations[PRECISION_SOURCE_KEY] = "imported"
