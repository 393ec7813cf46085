"""ONNX converters: elementwise family (Cast, CastLike, Clip, Dropout).

Rule: every opset (7+) lands on the newest IR form: Cast's `to` becomes an IR
dtype (`saturate` and `round_mode` only matter for float8 types, which HAI does
not have), CastLike becomes Cast, Clip's bounds (attributes before opset 11,
inputs after) become `min`/`max` attributes when they are constants, and a
bound computed at run time makes Clip a Max with the min, then a Min with the
max (the same values, NaN included); inference-mode Dropout
disappears (its mask, when used, is a constant of ones). Every other op of the
family maps onto the IR op of the same name unchanged.
"""

from __future__ import annotations

import numpy as np

from hai_compiler.onnx_import.converter import ConversionContext, converter, onnx_dtype
from ir import Value


@converter("Cast")
def convert_cast(ctx: ConversionContext) -> list[Value]:
    to = onnx_dtype(int(ctx.attrs["to"]), f"{ctx.where}: attribute 'to'")
    return ctx.emit("Cast", [ctx.input(0)], {"to": to})


@converter("CastLike")
def convert_cast_like(ctx: ConversionContext) -> list[Value]:
    like = ctx.input(1)
    assert like is not None
    return ctx.emit("Cast", [ctx.input(0)], {"to": like.type.dtype})


@converter("Clip")
def convert_clip(ctx: ConversionContext) -> list[Value]:
    x = ctx.input(0)
    if ctx.opset < 11:
        bounds = {"min": ctx.attrs.get("min"), "max": ctx.attrs.get("max")}
    elif any(b is not None and not b.is_constant for b in ctx.inputs[1:3]):
        return _clip_by_tensors(ctx)
    else:
        bounds = {
            name: _scalar(ctx.static_input(i, f"the {name} bound")) for i, name in ((1, "min"), (2, "max"))
        }
    return ctx.emit("Clip", [x], {k: v for k, v in bounds.items() if v is not None})


def _clip_by_tensors(ctx: ConversionContext) -> list[Value]:
    """Clip with a bound computed at run time: Max with the min, then Min with the max (so min > max
    gives max, as Clip does); a bound of shape [1] is read as the scalar it stands for."""
    result = ctx.input(0)
    for index, name, op in ((1, "min", "Max"), (2, "max", "Min")):
        bound = ctx.input(index)
        if bound is None:
            continue
        if bound.type.shape:
            if bound.type.size != 1:
                raise ctx.fail(f"its {name} bound %{bound.name} must be a scalar, got {bound.type}")
            (bound,) = ctx.emit("Reshape", [bound], {"shape": []})
        (result,) = ctx.emit(op, [result, bound])
    assert result is not None
    return [result]


def _scalar(array: np.ndarray | None) -> float | None:
    return None if array is None else float(np.asarray(array, dtype=np.float64).reshape(-1)[0])


@converter("Dropout")
def convert_dropout(ctx: ConversionContext) -> list[Value | None]:
    data = ctx.input(0)
    assert data is not None
    if ctx.opset >= 12 and ctx.input(2) is not None:
        training = ctx.static_input(2, "training_mode")
        ratio = ctx.static_input(1, "ratio")
        drop = 0.5 if ratio is None else float(np.asarray(ratio).reshape(-1)[0])
        if bool(np.asarray(training).reshape(-1)[0]) and drop != 0:
            raise ctx.fail("training-mode Dropout drops at random; HAI compiles inference graphs only")
    if not ctx.output_used(1):
        return [data]
    mask_dtype = data.type.dtype.numpy if ctx.opset < 10 else np.bool_
    return [data, ctx.constant(np.ones(data.type.shape, mask_dtype), "mask")]
