"""ONNX converters: generate family (Constant, ConstantOfShape, Range) and the shape queries
Shape and Size.

Rule: shapes are static in HAI, so Shape and Size become constants at once;
Constant becomes an IR constant; ConstantOfShape and Range become IR ops with
explicit attributes, which the importer folds when they are small.
"""

from __future__ import annotations

import numpy as np

from hai_compiler.onnx_import.converter import ConversionContext, StaticOperandError, converter
from hai_compiler.onnx_import.converters.run_time_bounds import run_time_range
from hai_compiler.onnx_import.converters.shape import required_input, static_ints
from ir import Value
from ir.dtypes import DType

CONSTANT_ATTRS = {
    "value": None,
    "value_float": np.float32,
    "value_floats": np.float32,
    "value_int": np.int64,
    "value_ints": np.int64,
}


def ir_dtype(ctx: ConversionContext, array: np.ndarray, what: str) -> DType:
    """The IR dtype of a numpy array read from the model, or a clear error."""
    try:
        return DType.from_numpy(array.dtype)
    except (ValueError, TypeError):
        raise ctx.fail(f"{what} has element type {array.dtype}, which HAI does not support") from None


@converter("Constant")
def constant(ctx: ConversionContext) -> list[Value]:
    given = [name for name in ctx.attrs if name in CONSTANT_ATTRS]
    others = sorted(set(ctx.attrs) - set(CONSTANT_ATTRS))
    if others:
        raise ctx.fail(f"attribute {others[0]} is not supported (string or sparse constants)")
    if len(given) != 1:
        raise ctx.fail(f"needs exactly one value attribute, got {given or 'none'}")
    name = given[0]
    dtype = CONSTANT_ATTRS[name]
    array = np.asarray(ctx.attrs[name]) if dtype is None else np.asarray(ctx.attrs[name], dtype=dtype)
    ir_dtype(ctx, array, f"attribute {name}")
    return [ctx.constant(array.copy(), "value")]


@converter("ConstantOfShape")
def constant_of_shape(ctx: ConversionContext) -> list[Value]:
    shape = static_ints(ctx, 0, "shape")
    if shape is None:
        raise ctx.fail("input 0 (shape) is required")
    value = np.asarray(ctx.attrs.get("value", np.zeros(1, np.float32)))
    if value.size != 1:
        raise ctx.fail(f"value must hold one element, got {value.size}")
    dtype = ir_dtype(ctx, value, "value")
    return ctx.emit(
        "ConstantOfShape", [], {"shape": shape, "value": float(value.reshape(-1)[0]), "dtype": dtype}
    )


@converter("Range")
def range_(ctx: ConversionContext) -> list[Value]:
    try:
        scalars = [ctx.static_input(i, name) for i, name in enumerate(("start", "limit", "delta"))]
    except StaticOperandError:
        counted = run_time_range(ctx)  # a static span between bounds computed at run time
        if counted is None:
            raise
        return counted
    if any(s is None or s.size != 1 for s in scalars):
        raise ctx.fail("start, limit and delta must be scalars")
    start, limit, delta = (np.asarray(s).reshape(-1)[0].item() for s in scalars)
    if delta == 0:
        raise ctx.fail("delta must not be 0")
    dtype = ir_dtype(ctx, np.asarray(scalars[0]), "start")
    return ctx.emit("Range", [], {"start": start, "limit": limit, "delta": delta, "dtype": dtype})


@converter("Shape")
def shape(ctx: ConversionContext) -> list[Value]:
    dims = required_input(ctx).type.shape
    rank = len(dims)
    start = int(ctx.attrs.get("start", 0))
    end = int(ctx.attrs.get("end", rank))
    start, end = (min(max(i + rank if i < 0 else i, 0), rank) for i in (start, end))
    return [ctx.constant(np.array(dims[start:end], dtype=np.int64), "shape")]


@converter("Size")
def size(ctx: ConversionContext) -> list[Value]:
    return [ctx.constant(np.array(required_input(ctx).type.size, dtype=np.int64), "size")]
