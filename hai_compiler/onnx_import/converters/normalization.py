"""ONNX converters: normalization family, every opset from 7 on.

Rule: BatchNormalization imports in inference form only (training_mode, or the
running/saved statistics outputs of old opsets, are a clear error);
LayerNormalization's axis becomes non-negative and its Mean/InvStdDev outputs
turn on `return_stats`; GroupNormalization before opset 21 (scale and bias per
group) becomes the per-channel form; LpNormalization's axis becomes
non-negative. stash_type is dropped: the IR always computes statistics in f32
or wider.
"""

from __future__ import annotations

import numpy as np

from hai_compiler.onnx_import.converter import ConversionContext, converter
from ir import Value

PER_CHANNEL_GROUP_NORM_OPSET = 21


def _x(ctx: ConversionContext) -> Value:
    x = ctx.input(0)
    if x is None:
        raise ctx.fail("input 0 is required")
    return x


def _axis(ctx: ConversionContext, rank: int, default: int) -> int:
    axis = int(ctx.attrs.get("axis", default))
    if not -rank <= axis < rank:
        raise ctx.fail(f"axis {axis} is out of range for rank {rank}")
    return axis + rank if axis < 0 else axis


@converter("BatchNormalization")
def batch_normalization(ctx: ConversionContext) -> list[Value]:
    if int(ctx.attrs.get("training_mode", 0)):
        raise ctx.fail("training_mode=1 is not supported; HAI imports BatchNormalization in inference form")
    if ctx.output_count() > 1:
        raise ctx.fail(
            "the running/saved mean and variance outputs exist only in training mode, which HAI does not "
            "support; export the model in inference (eval) mode"
        )
    if not int(ctx.attrs.get("spatial", 1)):
        raise ctx.fail("spatial=0 (per-activation statistics) is not supported")
    return ctx.emit("BatchNormalization", ctx.inputs[:5], {"epsilon": ctx.attrs.get("epsilon", 1e-5)})


@converter("LayerNormalization")
def layer_normalization(ctx: ConversionContext) -> list[Value]:
    x = _x(ctx)
    attrs = {
        "axis": _axis(ctx, x.type.rank, -1),
        "epsilon": ctx.attrs.get("epsilon", 1e-5),
        "return_stats": int(ctx.output_used(1) or ctx.output_used(2)),
    }
    return ctx.emit("LayerNormalization", ctx.inputs, attrs)


@converter("GroupNormalization")
def group_normalization(ctx: ConversionContext) -> list[Value]:
    x = _x(ctx)
    groups = int(ctx.attrs.get("num_groups", 0))
    attrs = {"num_groups": groups, "epsilon": ctx.attrs.get("epsilon", 1e-5)}
    scale, bias = ctx.input(1), ctx.input(2)
    if ctx.opset < PER_CHANNEL_GROUP_NORM_OPSET and groups and x.type.rank >= 2:
        channels = x.type.shape[1]
        if channels % groups:
            raise ctx.fail(f"num_groups {groups} does not divide the {channels} channels of X {x.type}")
        scale = _per_channel(ctx, 1, "scale", groups, channels)
        bias = _per_channel(ctx, 2, "bias", groups, channels)
    return ctx.emit("GroupNormalization", [x, scale, bias], attrs)


def _per_channel(ctx: ConversionContext, index: int, what: str, groups: int, channels: int) -> Value:
    """Opset 18's per-group scale/bias, repeated per channel (it must be a compile-time constant)."""
    per_group = ctx.static_input(index, what)
    if per_group is None:
        raise ctx.fail(f"input {index} ({what}) is required")
    per_group = np.asarray(per_group).reshape(-1)
    if per_group.shape != (groups,):
        raise ctx.fail(f"{what} has shape {list(per_group.shape)}, expected [{groups}] (one per group)")
    return ctx.constant(np.repeat(per_group, channels // groups), what)


@converter("LpNormalization")
def lp_normalization(ctx: ConversionContext) -> list[Value]:
    x = _x(ctx)
    return ctx.emit("LpNormalization", [x], {"axis": _axis(ctx, x.type.rank, -1), "p": ctx.attrs.get("p", 2)})
