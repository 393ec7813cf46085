"""ONNX converters: dynamic quantization, as onnxruntime's `quantize_dynamic` writes it —
DynamicQuantizeLinear, MatMulInteger/ConvInteger with a run-time activation zero point, and
onnxruntime's `com.microsoft` DynamicQuantizeMatMul, MatMulIntegerToFloat and DynamicQuantizeLSTM.

Rule: the IR keeps scales static in types, so a scale or zero point known only
at run time is never a type. It is computed by float IR ops and applied by
float ops around a static integer product:

- DynamicQuantizeLinear is the ONNX spec's arithmetic on the whole tensor: lo =
  min(0, min x), hi = max(0, max x), scale = (hi - lo) / 255 (1 / 255 when hi
  = lo, as onnx.reference computes it; onnxruntime gives 1 there; y and zp are
  0 either way), zp = saturate(round(-lo / scale)), y = saturate(round(x /
  scale) + zp), rounding half to even and dividing as the spec does. y is
  typed u8 of scale 1 and zero point 0 (its integers as they are;
  converters/quantized.py's rule for run-time integers).
- An integer product whose activation zero point is a run-time value: the
  integer kernel multiplies x (scale 1, zero point 0) by the constant weight
  W' = W - w_zp in i8, and the epilogue subtracts zp * S, S the constant
  column sums of W' (for ConvInteger: the sums of W' over each output's
  window, padding excluded), as onnxruntime's Σ(x - zp)(w - w_zp). Where W -
  w_zp does not fit i8 (onnxruntime's asymmetric u8 weights), W' = W - 128
  and the constant shift c = 128 - w_zp adds c * Σ (x - zp) over what each
  output reads: per row for MatMul (Σ_k x - K * zp); for ConvInteger per
  group and output position, the window sum of x's channels in that group
  less zp times the window's size (padding excluded: onnxruntime pads x with
  its zero point), a depthwise Conv of ones on the channel sums. The result
  is f32 holding the exact integers while they stay under 2^24 (|Σ| <= K *
  255 * 128: K <= 513 always; larger K only when the sums stay small, else
  within one f32 rounding); onnxruntime's next node,
  the Cast of its int32 to f32, is then a no-op (`eliminate-identity`).
- DynamicQuantizeLSTM: converters/dynamic_quantized_lstm.py.

Every integer product and weight DequantizeLinear made here is marked imported
(`mark_imported`).
"""

from __future__ import annotations

import numpy as np

from hai_compiler.onnx_import.converter import ConversionContext, converter
from hai_compiler.onnx_import.converters.quantized_operands import (
    MICROSOFT,
    _conv_attrs,
    _quantized,
    _required,
    mark_imported,
)
from hai_compiler.onnx_import.converters.window import spatial_input
from ir import Value
from ir.dtypes import DType
from ir.ops.registry import get_schema
from ir.types import QuantParams, TensorType

U8_MAX = 255.0
UNIT = QuantParams((1.0,), (0,))
COLUMNS, SMALL = 4096, 1 << 15
"""Most columns a whole-tensor min/max keeps in its first reduction; sizes under SMALL take one (`_whole`)."""
Window = tuple[dict, tuple[int, ...]]
"""A ConvInteger's (attributes, kernel shape)."""


# -- DynamicQuantizeLinear -------------------------------------------------------------------------------


def _emit(ctx: ConversionContext, op: str, operands: list[Value | None], attrs: dict | None = None) -> Value:
    (result,) = ctx.emit(op, operands, attrs)
    return result


def _scalar(ctx: ConversionContext, value: float, hint: str) -> Value:
    return ctx.constant(np.array(value, np.float32), hint)


def _dynamic_quantize(ctx: ConversionContext, x: Value) -> tuple[Value, Value, Value]:
    """(y u8 typed scale 1, scale f32 scalar, zero point as an f32 scalar) of float `x` (module rule)."""
    if x.type.dtype is not DType.F32:
        raise ctx.fail(f"x {x.type} must be an f32 tensor")
    zero = _scalar(ctx, 0.0, "zero")
    lo = _emit(ctx, "Min", [_whole(ctx, "ReduceMin", x), zero])
    hi = _emit(ctx, "Max", [_whole(ctx, "ReduceMax", x), zero])
    spread = _emit(ctx, "Sub", [hi, lo])
    empty = _emit(ctx, "Equal", [spread, zero])
    spread = _emit(ctx, "Where", [empty, _scalar(ctx, 1.0, "one"), spread])
    scale = _emit(ctx, "Div", [spread, _scalar(ctx, U8_MAX, "levels")])
    saturate = {"min": 0.0, "max": U8_MAX}
    shifted_min = _emit(ctx, "Div", [_emit(ctx, "Neg", [lo]), scale])
    zero_point = _emit(ctx, "Clip", [_emit(ctx, "Round", [shifted_min])], saturate)
    rounded = _emit(ctx, "Round", [_emit(ctx, "Div", [x, scale])])
    levels = _emit(ctx, "Clip", [_emit(ctx, "Add", [rounded, zero_point])], saturate)
    y = _emit(ctx, "QuantizeLinear", [levels], {"dtype": DType.U8, "scale": UNIT.scale, "zero_point": (0,)})
    return y, scale, zero_point


def _whole(ctx: ConversionContext, op: str, x: Value) -> Value:
    """`op` (ReduceMin/ReduceMax) over every element of `x`, a scalar. A large x is viewed as (rows,
    columns), columns the largest divisor of its size up to COLUMNS, and reduced over its rows, then
    over the columns left: the x86 min/max kernel schedules a large reduction that keeps the last
    axis, not one over it (its parallel loop would take the reduction's)."""
    size = x.type.size
    columns = max(d for d in range(1, min(COLUMNS, size) + 1) if size % d == 0)
    if size < SMALL or columns == 1:
        return _emit(ctx, op, [x], {"axes": tuple(range(x.type.rank)), "keepdims": 0})
    matrix = _emit(ctx, "Reshape", [x], {"shape": (size // columns, columns)})
    per_column = _emit(ctx, op, [matrix], {"axes": (0,), "keepdims": 0})
    return _emit(ctx, op, [per_column], {"axes": (0,), "keepdims": 0})


@converter("DynamicQuantizeLinear")
def dynamic_quantize_linear(ctx: ConversionContext) -> list[Value]:
    """x f32 → (y u8 of scale 1, y_scale f32, y_zero_point u8), computed at run time (module rule)."""
    y, scale, zero_point = _dynamic_quantize(ctx, _required(ctx, 0, "x"))
    return [y, scale, _emit(ctx, "Cast", [zero_point], {"to": DType.U8})]


# -- integer products with a run-time activation zero point ---------------------------------------------


def _as_f32(ctx: ConversionContext, value: Value) -> Value:
    """`value` in f32: a u8 Cast of Clip[0, 255](Round(.)) (DynamicQuantizeLinear's zero point) gives
    back its f32 operand, an exact integer in [0, 255]; anything else is cast."""
    cast = value.producer
    clip = cast.operands[0].producer if cast is not None and cast.op == "Cast" and cast.operands[0] else None
    exact = (
        clip is not None
        and clip.op == "Clip"
        and (clip.attrs.get("min"), clip.attrs.get("max")) == (0.0, U8_MAX)
    )
    rounded = clip.operands[0].producer if exact and clip is not None and clip.operands[0] else None
    if cast is not None and rounded is not None and rounded.op == "Round" and value.type.dtype is DType.U8:
        return cast.operands[0]  # type: ignore[return-value]
    return value if value.type.dtype is DType.F32 else _emit(ctx, "Cast", [value], {"to": DType.F32})


def _shifted_weight(
    ctx: ConversionContext, index: int, zero_index: int, axis: int
) -> tuple[np.ndarray, np.ndarray]:
    """(W' int64, shift c per output channel along `axis`) with W - w_zp = W' + c and W' in i8."""
    w = ctx.static_input(index, "W")
    if w is None:
        raise ctx.fail(f"input {index} (W) is required")
    if w.dtype not in (np.int8, np.uint8):
        raise ctx.fail(f"W must be int8 or uint8, got {w.dtype}")
    zeros = ctx.static_input(zero_index, "w zero point")
    zeros = np.zeros(1, np.int64) if zeros is None else zeros.astype(np.int64).ravel()
    if zeros.size not in (1, w.shape[axis]):
        raise ctx.fail(f"{zeros.size} w zero points must be one per tensor or per channel ({w.shape[axis]})")
    shape = [1] * w.ndim
    shape[axis] = -1
    zeros = zeros.reshape(shape) if zeros.size > 1 else zeros.reshape(())
    centred = w.astype(np.int64) - zeros
    if centred.min(initial=0) >= -128 and centred.max(initial=0) <= 127:
        return centred, np.zeros(w.shape[axis], np.int64)
    if w.dtype != np.uint8:
        raise ctx.fail("W less its zero points does not fit i8")
    shift = np.broadcast_to((128 - zeros).ravel(), (w.shape[axis],)).copy()
    return w.astype(np.int64) - 128, shift


def _weight_constant(ctx: ConversionContext, array: np.ndarray, name: str) -> Value:
    typed = TensorType(DType.I8, array.shape, quant=UNIT)
    return ctx.graph.add_constant(f"{name}.q", array.astype(np.int8), typed)


def _window_sums(ctx: ConversionContext, x: Value, weights: np.ndarray, attrs: dict) -> np.ndarray:
    """Σ W' over each output position's window (padding excluded): Conv of ones by W', (1, M, *out)."""
    ones = np.ones((1, *x.type.shape[1:]), np.float64)
    (sums,) = get_schema("Conv").evaluate([ones, weights.astype(np.float64)], attrs, ())
    return sums


def runtime_zero_point_product(ctx: ConversionContext) -> list[Value]:
    """MatMulInteger / ConvInteger(A, B, a_zero_point computed at run time, b_zero_point?) → int32
    Σ (a - a_zp)(b - b_zp), as ONNX types it (computed in f32: module rule)."""
    zero_point = _as_f32(ctx, _required(ctx, 2, "a zero point"))
    if zero_point.type.size != 1:
        raise ctx.fail(f"a zero point {zero_point.type} must be one value per tensor")
    product = _centred_product(ctx, _required(ctx, 0, "A"), zero_point, 1, 3)
    return [_emit(ctx, "Cast", [product], {"to": DType.I32})]


def _centred_product(ctx: ConversionContext, a: Value, zero_point: Value, w_index: int, w_zero: int) -> Value:
    """f32 Σ (a - zero_point)(w - w_zp) of a run-time 8-bit `a` and the constant weight at `w_index`."""
    is_conv = ctx.op_type == "ConvInteger"
    a = spatial_input(ctx) if is_conv else a
    w_value = _required(ctx, w_index, "B")
    if not is_conv and w_value.type.rank != 2:
        raise ctx.fail(f"B {w_value.type} must be a 2-D (K, N) matrix (HAI's MatMulInteger)")
    weights, shift = _shifted_weight(ctx, w_index, w_zero, 0 if is_conv else 1)
    attrs = _conv_attrs(ctx, a, w_value) if is_conv else {}
    a_q = _quantized(ctx, a, UNIT, "A")
    # the corrections first: the kernel's epilogue may read only values computed before it
    sums = _window_sums(ctx, a, weights, attrs)[0] if is_conv else weights.sum(axis=0)
    correction = _emit(ctx, "Mul", [zero_point, ctx.constant(sums.astype(np.float32), "weight_sums")])
    window = (attrs, weights.shape[2:]) if is_conv else None
    shifted = _shift_term(ctx, a_q, zero_point, shift, window) if shift.any() else None
    w_q = _weight_constant(ctx, weights, w_value.name)
    (acc,) = ctx.emit("ConvInteger" if is_conv else "MatMulInteger", [a_q, w_q], attrs)
    mark_imported([acc])
    real = _emit(ctx, "DequantizeLinear", [acc], {"dtype": DType.F32})
    y = _emit(ctx, "Sub", [real, correction])
    return y if shifted is None else _emit(ctx, "Add", [y, shifted])


def _shift_term(
    ctx: ConversionContext, a_q: Value, zero_point: Value, shift: np.ndarray, conv: Window | None
) -> Value:
    """c[n] * Σ (a - zero_point) over what output n reads: the part of W - w_zp that W' leaves out
    (module rule); `conv` is ConvInteger's (attributes, kernel), None for MatMul."""
    real = _emit(ctx, "DequantizeLinear", [a_q], {"dtype": DType.F32})
    sums, size = _read_sums(ctx, real) if conv is None else _window_input_sums(ctx, real, *conv)
    centred = _emit(ctx, "Sub", [sums, _emit(ctx, "Mul", [zero_point, size])])
    if conv is None:
        return _emit(ctx, "Mul", [centred, ctx.constant(shift.astype(np.float32), "shift")])
    return _per_output_channel(ctx, centred, shift)


def _read_sums(ctx: ConversionContext, real: Value) -> tuple[Value, Value]:
    """(Σ_k a per row, K): what each MatMul output reads."""
    rows = _emit(ctx, "ReduceSum", [real], {"axes": (real.type.rank - 1,), "keepdims": 1})
    return rows, _scalar(ctx, float(real.type.shape[-1]), "k")


def _window_input_sums(
    ctx: ConversionContext, real: Value, attrs: dict, kernel_shape: tuple[int, ...]
) -> tuple[Value, Value]:
    """(Σ of a over each group's channels and window (N, G, *out), how many values that is (1, *out),
    padding excluded): what each ConvInteger output reads; a depthwise Conv of ones on the channel sums."""
    n, channels, *spatial = real.type.shape
    group = int(attrs["group"])
    if channels != group:
        grouped = _emit(ctx, "Reshape", [real], {"shape": (n, group, channels // group, *spatial)})
        real = _emit(ctx, "ReduceSum", [grouped], {"axes": (2,), "keepdims": 0})
    kernel = np.ones((group, 1, *kernel_shape), np.float32)
    sums = _emit(ctx, "Conv", [real, ctx.constant(kernel, "window")], attrs)
    one = np.ones((1, 1, *spatial), np.float64)
    (size,) = get_schema("Conv").evaluate([one, kernel[:1].astype(np.float64)], {**attrs, "group": 1}, ())
    return sums, ctx.constant((size[0] * (channels // group)).astype(np.float32), "window_size")


def _per_output_channel(ctx: ConversionContext, centred: Value, shift: np.ndarray) -> Value:
    """(N, G, *out) sums times c[m] of each output channel m of group m // (M / G): (N, M, *out)."""
    n, group, *out = centred.type.shape
    per_group = shift.size // group
    factors = shift.astype(np.float32).reshape(group, per_group, *[1] * len(out))
    if per_group == 1:
        return _emit(ctx, "Mul", [centred, ctx.constant(factors[:, 0], "shift")])
    spread = _emit(ctx, "Reshape", [centred], {"shape": (n, group, 1, *out)})
    product = _emit(ctx, "Mul", [spread, ctx.constant(factors, "shift")])
    return _emit(ctx, "Reshape", [product], {"shape": (n, shift.size, *out)})


# -- onnxruntime's fused forms ---------------------------------------------------------------------------


def _scaled(
    ctx: ConversionContext, product: Value, a_scale: Value, b_scale_index: int, bias_index: int
) -> Value:
    """product * a_scale * b_scale (+ bias): onnxruntime's float result of an integer product."""
    b_scale = ctx.static_input(b_scale_index, "b scale")
    if b_scale is None:
        raise ctx.fail(f"input {b_scale_index} (b scale) is required")
    scale = _emit(ctx, "Mul", [a_scale, ctx.constant(b_scale.astype(np.float32).ravel(), "b_scale")])
    y = _emit(ctx, "Mul", [product, scale])
    bias = ctx.input(bias_index)
    return _emit(ctx, "Add", [y, bias]) if bias is not None else y


@converter("DynamicQuantizeMatMul", domain=MICROSOFT)
def dynamic_quantize_matmul(ctx: ConversionContext) -> list[Value]:
    """(A f32, B, b_scale, b_zero_point?, bias?): DynamicQuantizeLinear(A), then MatMulInteger · scales."""
    a_q, a_scale, zero_point = _dynamic_quantize(ctx, _required(ctx, 0, "A"))
    return [_scaled(ctx, _centred_product(ctx, a_q, zero_point, 1, 3), a_scale, 2, 4)]


@converter("MatMulIntegerToFloat", domain=MICROSOFT)
def matmul_integer_to_float(ctx: ConversionContext) -> list[Value]:
    """(A 8-bit, B, a_scale, b_scale, a_zero_point?, b_zero_point?, bias?): the product · scales."""
    a = _required(ctx, 0, "A")
    zero = ctx.input(4)
    zero_point = _as_f32(ctx, zero) if zero is not None else _scalar(ctx, 0.0, "a_zero_point")
    return [_scaled(ctx, _centred_product(ctx, a, zero_point, 1, 5), _required(ctx, 2, "a scale"), 3, 6)]
