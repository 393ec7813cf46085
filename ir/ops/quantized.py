"""Op family: quantized — QuantizeLinear, DequantizeLinear, ConvInteger, MatMulInteger.

Rule: quantization parameters live in tensor types (`TensorType.quant`); an op
reads its operands' from their types (typed references) and states its
result's in attributes (QuantizeLinear) or derives them (the integer products).
Every rounding follows ir/quantization.py's one rule.

- `QuantizeLinear{dtype, scale, zero_point, axis?, group_size?}`: a float
  operand is quantized; an already quantized integer operand (e.g. an int32
  accumulator) is requantized with multiplier in_scale / out_scale.
- `DequantizeLinear{dtype = f32}`: a quantized operand to floats; a float
  operand (e.g. an f16 weight) is converted. It never folds: a weight stored
  quantized or in f16 and dequantized at run time is the point of quantizing.
- `ConvInteger` / `MatMulInteger`: an 8-bit activation (per-tensor) times an
  8-bit symmetric weight (per output channel: Conv axis 0, MatMul the last
  axis), plus an optional int32 bias already in accumulator scale, accumulated
  exactly in int32. The result is int32, quantized with scale x_scale *
  w_scale[channel] and zero point 0 along the channel axis (Conv 1, MatMul
  last), ready for DequantizeLinear or a requantizing QuantizeLinear.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ir.dtypes import DType
from ir.errors import IRError
from ir.ops.conv import WINDOW_ATTRS
from ir.ops.matmul import matmul_shape
from ir.ops.registry import Attr, AttrKind, get_schema
from ir.ops.registry import define_op as _define_op
from ir.quantization import check_params, dequantize, expand, quant_range, quantize
from ir.types import QuantParams, TensorType

FAMILY = "quantized"
ACTIVATION_DTYPES = (DType.I8, DType.U8)
WEIGHT_DTYPES = (DType.I8,)


def _quant_of(t: TensorType, what: str) -> QuantParams:
    if t.quant is None:
        raise IRError(f"{what} {t} is not quantized (its type has no quant parameters)")
    return t.quant


# -- QuantizeLinear / DequantizeLinear -------------------------------------------------------------------


def attrs_params(attrs: Mapping[str, Any]) -> QuantParams:
    """The QuantParams a QuantizeLinear's attributes state for its result."""
    return QuantParams(
        tuple(attrs["scale"]), tuple(attrs["zero_point"]), attrs.get("axis"), attrs.get("group_size")
    )


def _quantize_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    x = types[0]
    assert x is not None
    dtype = attrs["dtype"]
    quant_range(dtype)
    if not x.dtype.is_float and x.quant is None:
        raise IRError(f"X {x} must be a float or a quantized integer tensor")
    try:
        params = attrs_params(attrs)
    except ValueError as exc:
        raise IRError(str(exc)) from None
    check_params(x.shape, params, "result")
    lo, hi = quant_range(dtype)
    if any(not lo <= z <= hi for z in params.zero_point):
        raise IRError(f"zero points {list(params.zero_point)} are outside {dtype.value} [{lo}, {hi}]")
    return [TensorType(dtype, x.shape, quant=params)]


def _quantize_compute(
    args: Sequence[np.ndarray | None], attrs: Mapping[str, Any], types: Sequence[TensorType | None]
) -> list[np.ndarray]:
    x, t = args[0], types[0]
    assert x is not None and t is not None
    in_scale = None
    if t.quant is not None:  # requantize: the stored integers, less their zero point, at scale in_scale
        x = x.astype(np.int64) - expand(t.quant.zero_point, x.shape, t.quant, np.int64)
        in_scale = expand(t.quant.scale, x.shape, t.quant, np.float64)
    return [quantize(x, attrs_params(attrs), attrs["dtype"], in_scale)]


def _dequantize_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    x = types[0]
    assert x is not None
    if not attrs["dtype"].is_float:
        raise IRError(f"DequantizeLinear produces floats, not {attrs['dtype'].value}")
    if x.quant is None and not x.dtype.is_float:
        raise IRError(f"X {x} must be quantized (or a float to convert)")
    return [TensorType(attrs["dtype"], x.shape)]


def _dequantize_compute(
    args: Sequence[np.ndarray | None], attrs: Mapping[str, Any], types: Sequence[TensorType | None]
) -> list[np.ndarray]:
    x, t = args[0], types[0]
    assert x is not None and t is not None
    real = dequantize(x, t.quant) if t.quant is not None else x.astype(np.float32)
    return [real.astype(attrs["dtype"].numpy, copy=False)]


def define_op(name: str, **kwargs: Any) -> None:
    _define_op(name, family=FAMILY, typed=True, **kwargs)


define_op(
    "QuantizeLinear",
    operands=["X"],
    attrs={
        "dtype": Attr(AttrKind.DTYPE),
        "scale": Attr(AttrKind.FLOATS),
        "zero_point": Attr(AttrKind.INTS),
        "axis": Attr(AttrKind.INT, None),
        "group_size": Attr(AttrKind.INT, None),
    },
    infer=_quantize_infer,
    compute=_quantize_compute,
    doc="saturate(round_half_even(x * in_scale / scale) + zero_point) as dtype (ir/quantization.py).",
)
define_op(
    "DequantizeLinear",
    operands=["X"],
    attrs={"dtype": Attr(AttrKind.DTYPE, DType.F32)},
    infer=_dequantize_infer,
    compute=_dequantize_compute,
    foldable=False,
    doc="(x - zero_point) * scale in float32 (a float operand: converted); never folded.",
)


# -- integer products ------------------------------------------------------------------------------------


def _integer_operands(types: Sequence[TensorType | None], channel_axis: int) -> tuple[TensorType, ...]:
    """Checks shared by ConvInteger and MatMulInteger; (x, w, their quant params)."""
    x, w, b = types[0], types[1], types[2] if len(types) > 2 else None
    assert x is not None and w is not None
    if x.dtype not in ACTIVATION_DTYPES or w.dtype not in WEIGHT_DTYPES:
        raise IRError(f"X {x} must be i8/u8 and W {w} i8")
    xq, wq = _quant_of(x, "X"), _quant_of(w, "W")
    if xq.axis is not None:
        raise IRError(f"X must be quantized per tensor, not per axis {xq.axis}")
    if wq.group_size is not None or wq.axis not in (None, channel_axis % w.rank):
        raise IRError(f"W must be quantized per tensor or per channel along axis {channel_axis % w.rank}")
    if any(wq.zero_point):
        raise IRError("W must be quantized symmetrically (zero points 0)")
    if b is not None and (b.dtype is not DType.I32 or b.rank != 1):
        raise IRError(f"B {b} must be a 1-D i32 bias in accumulator scale")
    return x, w


def _check_accumulator(x: TensorType, w: TensorType, terms: int) -> None:
    """Refuse a reduction of `terms` products that could overflow int32 in the worst case: the kernels
    accumulate in int32 with no check (|X - zero point| and |W| at their dtypes' extremes)."""
    xq = _quant_of(x, "X")
    lo, hi = quant_range(x.dtype)
    w_lo, w_hi = quant_range(w.dtype)
    largest = max(xq.zero_point[0] - lo, hi - xq.zero_point[0]) * max(-w_lo, w_hi)
    limit = quant_range(DType.I32)[1]
    if terms * largest > limit:
        raise IRError(
            f"a reduction over {terms} products of up to {largest} each can overflow the int32 accumulator "
            f"(at most {limit // largest} fit); split the layer's reduction or keep it in float"
        )


def _accumulator_type(x: TensorType, w: TensorType, shape: tuple[int, ...], axis: int) -> TensorType:
    """int32 with scale x_scale * w_scale[channel] along `axis` of the result, zero point 0."""
    xq, wq = _quant_of(x, "X"), _quant_of(w, "W")
    scales = tuple(xq.scale[0] * s for s in wq.scale)
    params = QuantParams(scales, (0,) * len(scales), axis if len(scales) > 1 else None)
    return TensorType(DType.I32, shape, quant=params)


def _centred(args: Sequence[np.ndarray | None], types: Sequence[TensorType | None]) -> list[np.ndarray]:
    """X less its zero point and W, as float64: products and sums of 8-bit values stay exact in it."""
    x, w = args[0], args[1]
    assert x is not None and w is not None and types[0] is not None and types[0].quant is not None
    zero = types[0].quant.zero_point[0]
    return [x.astype(np.float64) - zero, w.astype(np.float64)]


def _int32(acc: np.ndarray, bias: np.ndarray | None, channel_axis: int) -> np.ndarray:
    total = np.rint(acc).astype(np.int64)
    if bias is not None:
        shape = [1] * total.ndim
        shape[channel_axis] = -1
        total = total + bias.astype(np.int64).reshape(shape)
    lo, hi = quant_range(DType.I32)
    if total.size and (total.min() < lo or total.max() > hi):
        raise IRError("the int32 accumulator overflows")
    return total.astype(np.int32)


def _conv_integer_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    x, w = _integer_operands(types, 0)
    _check_accumulator(x, w, int(np.prod(w.shape[1:])))
    as_float = [TensorType(DType.F32, x.shape), TensorType(DType.F32, w.shape)]
    (result,) = get_schema("Conv").infer(as_float, attrs)
    b = types[2] if len(types) > 2 else None
    if b is not None and b.shape != (w.shape[0],):
        raise IRError(f"B {b} must have shape [{w.shape[0]}]")
    return [_accumulator_type(x, w, result.shape, 1)]


def _conv_integer_compute(
    args: Sequence[np.ndarray | None], attrs: Mapping[str, Any], types: Sequence[TensorType | None]
) -> list[np.ndarray]:
    (acc,) = get_schema("Conv").evaluate(_centred(args, types), attrs, ())
    return [_int32(acc, args[2] if len(args) > 2 else None, 1)]


def _matmul_integer_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    x, w = _integer_operands(types, -1)
    if w.rank != 2:
        raise IRError(f"W {w} must be a 2-D (K, N) matrix")
    _check_accumulator(x, w, w.shape[0])
    shape = matmul_shape(x.shape, w.shape)
    b = types[2] if len(types) > 2 else None
    if b is not None and b.shape != (w.shape[1],):
        raise IRError(f"B {b} must have shape [{w.shape[1]}]")
    return [_accumulator_type(x, w, shape, len(shape) - 1)]


def _matmul_integer_compute(
    args: Sequence[np.ndarray | None], attrs: Mapping[str, Any], types: Sequence[TensorType | None]
) -> list[np.ndarray]:
    x, w = _centred(args, types)
    return [_int32(np.matmul(x, w), args[2] if len(args) > 2 else None, -1)]


define_op(
    "ConvInteger",
    operands=["X", "W", "B?"],
    attrs=WINDOW_ATTRS,
    infer=_conv_integer_infer,
    compute=_conv_integer_compute,
    doc="int32 Conv of (X - x_zero_point) and symmetric W, plus int32 B; scale x_scale * w_scale[m].",
)
define_op(
    "MatMulInteger",
    operands=["X", "W", "B?"],
    infer=_matmul_integer_infer,
    compute=_matmul_integer_compute,
    doc="int32 (X - x_zero_point) @ W (K, N) plus int32 B (N); scale x_scale * w_scale[n].",
)
