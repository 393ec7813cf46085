"""Each x86 template, built and run through tvm_ffi, against the IR op's numpy reference (rel err <= 1e-5).

Shapes come from the real models (PP-OCR, the classifiers), kept small; the
kernel cache is the default one, so a second run compiles nothing.
"""

from __future__ import annotations

import numpy as np
import pytest
from target_helpers import OneOp, relative_error, run_kernel

from targets.lowering.dispatch import lower_node
from targets.lowering.kernel import LoweringError
from targets.registry import resolve_target

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def target():
    return resolve_target("x86")


def check(g: OneOp, nodes, target, layout: str = "NCHW") -> None:
    kernel = lower_node(nodes[0], target, nodes[1:], layout=layout)
    feeds = dict(g.feeds)
    if layout == "NHWC":
        feeds = {k: v.transpose(0, 2, 3, 1) if v.ndim == 4 else v for k, v in feeds.items()}
    got = run_kernel(kernel, feeds, g.constants(), target)
    want = g.reference(nodes)
    if layout == "NHWC":  # a grouped conv writes (n, h, w, group, channel): the same bytes
        got = got.reshape(want.transpose(0, 2, 3, 1).shape).transpose(0, 3, 1, 2)
    assert np.abs(want).max() > 0
    assert relative_error(got.reshape(want.shape), want) <= TOLERANCE
    assert kernel.sources == tuple(n.name for n in nodes)
    assert kernel.flops > 0


def test_matmul_with_bias_relu_epilogue(target) -> None:
    g = OneOp()
    mm = g.op("MatMul", [g.input("x", (1, 40, 120)), g.const("w", (120, 120))], "mm")
    add = g.op("Add", [mm.results[0], g.const("bias", (120,))], "add")
    relu = g.op("Relu", [add.results[0]], "relu")
    check(g, [mm, add, relu], target)


@pytest.mark.parametrize("rows", [197, 2])
def test_matmul_of_prime_rows_pads_its_tile(target, rows: int) -> None:
    """197 rows (ViT's tokens) have no tile height but 1: the kernel computes 200 rows, writes 197;
    2 rows keep the rule's tile of 2 (too few rows to pad)."""
    g = OneOp(11)
    mm = g.op("MatMul", [g.input("x", (1, rows, 24)), g.const("w", (24, 40))], "mm")
    gelu = g.op("Tanh", [mm.results[0]], "tanh")
    check(g, [mm, gelu], target)
    workload = lower_node(mm, target, [gelu]).workload
    if rows == 197:
        assert workload["knobs"]["mi"] == 4 and workload["rows"] == 200
    else:
        assert "rows" not in workload


def test_gemm_trans_b_alpha_beta(target) -> None:
    g = OneOp(1)
    gemm = g.op(
        "Gemm",
        [g.input("a", (2, 96)), g.const("w", (10, 96)), g.const("c", (10,))],
        "fc",
        transB=1,
        alpha=0.5,
        beta=2.0,
    )
    check(g, [gemm], target)


def test_batched_matmul_with_runtime_b(target) -> None:
    g = OneOp(2)
    mm = g.op("MatMul", [g.input("q", (2, 8, 16)), g.input("k", (2, 16, 24))], "attn")
    check(g, [mm], target)


def conv(g: OneOp, cin: int, cout: int, hw: int, k: int, stride: int, group: int = 1):
    x = g.input("x", (1, cin, hw, hw))
    w, b = g.const("w", (cout, cin // group, k, k)), g.const("b", (cout,))
    p = k // 2
    return g.op(
        "Conv", [x, w, b], "conv", strides=[stride, stride], pads=[p, p, p, p], dilations=[1, 1], group=group
    )


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_conv3x3_with_residual_and_clip(target, layout: str) -> None:
    g = OneOp(3)
    c = conv(g, 16, 32, 20, 3, 1)
    residual = g.input("skip", (1, 32, 20, 20))
    add = g.op("Add", [c.results[0], residual], "residual")
    clip = g.op("Clip", [add.results[0]], "clip", min=0.0, max=6.0)
    check(g, [c, add, clip], target, layout)


def test_conv1x1_and_strided_conv(target) -> None:
    g = OneOp(4)
    check(g, [conv(g, 32, 48, 10, 1, 1)], target)
    g = OneOp(5)
    check(g, [conv(g, 3, 8, 16, 3, 2)], target)


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_depthwise_stride2_hardswish(target, layout: str) -> None:
    g = OneOp(6)
    c = conv(g, 32, 32, 16, 3, 2, group=32)
    act = g.op("HardSwish", [c.results[0]], "hswish")
    check(g, [c, act], target, layout)


def test_standalone_broadcast_elementwise(target) -> None:
    g = OneOp(7)
    mul = g.op("Mul", [g.input("a", (2, 8, 32)), g.input("s", (8, 1))], "mul")
    sig = g.op("Sigmoid", [mul.results[0]], "sig")
    check(g, [mul, sig], target)


def test_identical_workloads_share_a_kernel_name(target) -> None:
    first, second = OneOp(8), OneOp(9)
    a = lower_node(conv(first, 8, 16, 8, 3, 1), target)
    b = lower_node(conv(second, 8, 16, 8, 3, 1), target)
    assert a.name == b.name and a.key == b.key


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
def test_grouped_conv_takes_the_dense_template(target, layout: str) -> None:
    g = OneOp(10)
    node = conv(g, 8, 12, 8, 3, 1, group=2)
    check(g, [node], target, layout)
    assert lower_node(node, target, layout=layout).workload["op"] == "conv2d"


def test_unsupported_layout_for_3d_conv_is_a_clear_error(target) -> None:
    g = OneOp()
    x, w = g.input("x", (1, 4, 4, 6, 6)), g.const("w", (8, 4, 3, 3, 3))
    node = g.op("Conv", [x, w], "conv", strides=[1] * 3, pads=[1] * 6, dilations=[1] * 3, group=1)
    with pytest.raises(LoweringError, match="NCHW only"):
        lower_node(node, target, layout="NHWC")
