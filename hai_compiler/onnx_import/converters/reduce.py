"""ONNX converters: reduce family (Reduce*, ArgMax/ArgMin, Softmax-likes, TopK).

Rule: every axis becomes explicit and non-negative. Reduce axes come from the
attribute (before opset 18; ReduceSum before 13) or the `axes` input; none
given means all axes, or no reduction at all with `noop_with_empty_axes=1` (the
converter then returns the input). Softmax, LogSoftmax and Hardmax before opset
13 work on the input flattened to 2-D at `axis` (default 1): the converter
reshapes around the IR op unless `axis` is the last one. TopK's K (an input
from opset 10 on) becomes the `k` attribute.
"""

from __future__ import annotations

import math

import numpy as np

from hai_compiler.onnx_import.converter import ConversionContext, converter
from ir import Value
from ir.ops.common import normalize_axes, normalize_axis

REDUCE_OPS = (
    "ReduceSum",
    "ReduceMean",
    "ReduceProd",
    "ReduceMax",
    "ReduceMin",
    "ReduceL1",
    "ReduceL2",
    "ReduceSumSquare",
    "ReduceLogSum",
    "ReduceLogSumExp",
)


def _data(ctx: ConversionContext) -> Value:
    data = ctx.input(0)
    if data is None:
        raise ctx.fail("input 0 is required")
    return data


def _axes_from_input(ctx: ConversionContext) -> bool:
    return ctx.opset >= (13 if ctx.op_type == "ReduceSum" else 18)


@converter(*REDUCE_OPS)
def convert_reduce(ctx: ConversionContext) -> list[Value]:
    data = _data(ctx)
    if _axes_from_input(ctx):
        given = ctx.static_input(1, "axes")
        axes = None if given is None else [int(a) for a in np.asarray(given).reshape(-1)]
    else:
        axes = ctx.attrs.get("axes")
    if not axes:
        if ctx.attrs.get("noop_with_empty_axes", 0):
            return [data]
        axes = list(range(data.type.rank))
    resolved = sorted(normalize_axes(axes, data.type.rank))
    return ctx.emit(ctx.op_type, [data], {"axes": resolved, "keepdims": ctx.attrs.get("keepdims", 1)})


@converter("ArgMax", "ArgMin")
def convert_arg_reduce(ctx: ConversionContext) -> list[Value]:
    data = _data(ctx)
    attrs = dict(ctx.attrs)
    attrs["axis"] = normalize_axis(attrs.get("axis", 0), data.type.rank)
    return ctx.emit(ctx.op_type, [data], attrs)


@converter("Softmax", "LogSoftmax", "Hardmax")
def convert_softmax(ctx: ConversionContext) -> list[Value]:
    data = _data(ctx)
    shape = data.type.shape
    if ctx.opset >= 13:
        return ctx.emit(ctx.op_type, [data], {"axis": normalize_axis(ctx.attrs.get("axis", -1), len(shape))})
    axis = normalize_axis(ctx.attrs.get("axis", 1), max(len(shape), 1))
    if axis == len(shape) - 1:
        return ctx.emit(ctx.op_type, [data], {"axis": axis})
    flat = [math.prod(shape[:axis]), math.prod(shape[axis:])]
    (flattened,) = ctx.emit("Reshape", [data], {"shape": flat})
    (result,) = ctx.emit(ctx.op_type, [flattened], {"axis": 1})
    return ctx.emit("Reshape", [result], {"shape": list(shape)})


@converter("TopK")
def convert_topk(ctx: ConversionContext) -> list[Value]:
    data = _data(ctx)
    if ctx.opset < 10:
        k = ctx.attrs["k"]
    else:
        given = ctx.static_input(1, "K")
        if given is None or np.asarray(given).size != 1:
            raise ctx.fail("input K must be a tensor holding one integer")
        k = int(np.asarray(given).reshape(-1)[0])
    attrs = {
        "k": k,
        "axis": normalize_axis(ctx.attrs.get("axis", -1), data.type.rank),
        "largest": ctx.attrs.get("largest", 1),
        "sorted": ctx.attrs.get("sorted", 1),
    }
    return ctx.emit("TopK", [data], attrs)
