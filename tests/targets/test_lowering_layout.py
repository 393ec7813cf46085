"""NHWC kernels the `layout` pass relies on, built and run, against numpy: Relayout both ways, a conv
with bias, a (C,1,1) constant and an activation fused, and standalone NHWC elementwise kernels."""

from __future__ import annotations

import numpy as np
import pytest
from target_helpers import OneOp, relative_error, run_kernel

from targets.lowering.dispatch import lower_node
from targets.registry import resolve_target


@pytest.fixture(scope="module")
def target():
    return resolve_target("x86")


def nhwc(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1))


@pytest.mark.parametrize("shape", [(1, 3, 20, 20), (1, 16, 12, 12), (2, 24, 7, 5)])
def test_relayout_permutes_both_ways(target, shape) -> None:
    g = OneOp(1)
    x = g.input("x", shape)
    to = g.op("Relayout", [x], "to", layout="NHWC")
    back = g.op("Relayout", [to.results[0]], "back", layout="NCHW")
    assert to.results[0].type.layout == "NHWC" and back.results[0].type.layout is None
    stored = run_kernel(lower_node(to, target), g.feeds, {}, target)
    assert np.array_equal(stored.reshape(-1), nhwc(g.feeds["x"]).reshape(-1))
    restored = run_kernel(lower_node(back, target), {to.results[0].name: nhwc(g.feeds["x"])}, {}, target)
    assert np.array_equal(restored.reshape(shape), g.feeds["x"])


@pytest.mark.parametrize("group", [1, 32])
def test_nhwc_conv_bias_channel_constant_activation(target, group: int) -> None:
    g = OneOp(2)
    x = g.input("x", (1, 32, 14, 14))
    w, b = g.const("w", (32, 32 // group, 3, 3)), g.const("b", (32,))
    conv = g.op("Conv", [x, w, b], "conv", strides=[1, 1], pads=[1, 1, 1, 1], dilations=[1, 1], group=group)
    scale = g.op("Mul", [conv.results[0], g.const("s", (32, 1, 1))], "scale")  # per-channel constant
    shift = g.op("Add", [scale.results[0], g.const("t", (1, 32, 1, 1))], "shift")
    act = g.op("HardSwish", [shift.results[0]], "act")
    nodes = [conv, scale, shift, act]
    kernel = lower_node(conv, target, nodes[1:], layout="NHWC")
    got = run_kernel(kernel, {"x": nhwc(g.feeds["x"])}, g.constants(), target)
    want = g.reference(nodes)
    assert relative_error(got.reshape(1, 14, 14, 32).transpose(0, 3, 1, 2), want) <= 1e-5


def test_nhwc_standalone_elementwise_broadcasts_per_channel(target) -> None:
    g = OneOp(3)
    x, se = g.input("x", (1, 32, 7, 7)), g.input("se", (1, 32, 1, 1))
    mul = g.op("Mul", [x, se], "excite")
    add = g.op("Add", [mul.results[0], g.const("bias", (32, 1, 1))], "bias")
    relu = g.op("Relu", [add.results[0]], "relu")
    kernel = lower_node(mul, target, [add, relu], layout="NHWC")
    assert kernel.outputs[0].shape == (1, 7, 7, 32)
    feeds = {"x": nhwc(g.feeds["x"]), "se": g.feeds["se"]}  # (1, C, 1, 1): the same bytes either way
    got = run_kernel(kernel, feeds, g.constants(), target)
    want = g.reference([mul, add, relu])
    assert relative_error(got.transpose(0, 3, 1, 2), want) <= 1e-6
