"""ConvTranspose templates against the IR op's numpy reference (relative error <= 1e-5).

Kernel == stride, unpadded ConvTransposes (PP-OCR det's 2x2 stride 2 upsampling)
take the GEMM + depth-to-space template (conv_transpose.py), with and without
bias and a fused epilogue that reads a full-size operand; others (overlapping
windows, pads, groups) stay on the general template, which is checked too.
"""

from __future__ import annotations

import numpy as np
import pytest
from target_helpers import OneOp, relative_error, run_kernel

from targets.lowering.dispatch import lower_node
from targets.registry import resolve_target

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def target():
    return resolve_target("x86")


def conv_transpose(g: OneOp, x_shape, w_shape, strides, pads, bias: bool, group: int = 1, epilogue=True):
    x = g.input("x", x_shape)
    operands = [x, g.const("w", w_shape)] + ([g.const("b", (w_shape[1] * group,))] if bias else [])
    ct = g.op(
        "ConvTranspose",
        operands,
        "convt",
        strides=strides,
        pads=pads,
        dilations=[1, 1],
        group=group,
        output_padding=[0, 0],
    )
    if not epilogue:
        return [ct]
    skip = g.input("skip", ct.results[0].type.shape)
    add = g.op("Add", [ct.results[0], skip], "residual")
    act = g.op("Relu", [add.results[0]], "relu")
    return [ct, add, act]


def check(g: OneOp, nodes, target, template: str) -> None:
    kernel = lower_node(nodes[0], target, nodes[1:])
    assert kernel.workload["op"] == template
    got = run_kernel(kernel, g.feeds, g.constants(), target)
    want = g.reference(nodes)
    assert np.abs(want).max() > 0
    assert relative_error(got.reshape(want.shape), want) <= TOLERANCE


@pytest.mark.parametrize(
    "x_shape, w_shape, bias, epilogue",
    [
        ((1, 24, 4, 32), (24, 24, 2, 2), False, True),  # det's first upsampling, small plane
        ((1, 24, 3, 16), (24, 1, 2, 2), True, True),  # det's last: one output channel
        ((1, 8, 5, 16), (8, 6, 2, 2), True, False),  # 6 outputs: 2 per tile (mi = 8)
        ((1, 5, 3, 8), (5, 3, 2, 2), True, True),  # 8-wide rows: 8-lane vectors
        ((2, 4, 2, 16), (4, 2, 1, 3), True, True),  # 1x3 blocks, batch 2
    ],
)
def test_block_transpose(target, x_shape, w_shape, bias, epilogue) -> None:
    g = OneOp(21)
    nodes = conv_transpose(g, x_shape, w_shape, list(w_shape[2:]), [0, 0, 0, 0], bias, epilogue=epilogue)
    check(g, nodes, target, "conv_transpose_block")


@pytest.mark.parametrize(
    "x_shape, w_shape, stride, pads, group",
    [
        ((1, 4, 5, 6), (4, 3, 3, 3), 2, [1, 1, 1, 1], 1),  # overlapping windows, padded
        ((1, 4, 4, 16), (4, 2, 2, 2), 2, [0, 0, 0, 0], 2),  # grouped
    ],
)
def test_general_transpose_fallback(target, x_shape, w_shape, stride, pads, group) -> None:
    g = OneOp(22)
    nodes = conv_transpose(g, x_shape, w_shape, [stride, stride], pads, True, group=group)
    check(g, nodes, target, "conv_general")
