"""Channels-last templates of inverted-residual blocks, built and run against onnxruntime: the NHWC
depthwise conv (3x3 and 5x5, stride 1 and 2, channel vectors of 16, 8 and 4 floats or none, a channel
multiplier) with its bias and activation fused, and the NHWC global average and max pool."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper
from target_helpers import OneOp, relative_error, run_kernel

from ir.graph import Node
from targets.lowering.dispatch import lower_node
from targets.registry import resolve_target

ort = pytest.importorskip("onnxruntime")


@pytest.fixture(scope="module")
def target():
    return resolve_target("x86")


def nhwc(a: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(a.transpose(0, 2, 3, 1))


def onnxruntime_of(g: OneOp, nodes: Sequence[Node]) -> np.ndarray:
    """`nodes` (IR attributes are ONNX's) run by onnxruntime on `g`'s feeds and constants."""
    used = {v.name for n in nodes for v in n.operands if v is not None}
    consts = {k: v for k, v in g.constants().items() if k in used}
    feeds = {k: v for k, v in g.feeds.items() if k in used}
    out = nodes[-1].results[0].name
    graph = helper.make_graph(
        [helper.make_node(n.op, [v.name for v in n.operands if v is not None], [n.results[0].name], **n.attrs)
         for n in nodes],
        "t", [helper.make_tensor_value_info(k, TensorProto.FLOAT, v.shape) for k, v in feeds.items()],
        [helper.make_tensor_value_info(out, TensorProto.FLOAT, None)],
        [numpy_helper.from_array(v, k) for k, v in consts.items()],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run([out], feeds)[0]


def activation(g: OneOp, kind: str | None, y: Node) -> list[Node]:
    if kind is None:
        return []
    if kind == "silu":
        s = g.op("Sigmoid", [y.results[0]], "sigmoid")
        return [s, g.op("Mul", [y.results[0], s.results[0]], "silu")]
    if kind == "hardsigmoid":
        return [g.op("HardSigmoid", [y.results[0]], "act", alpha=1 / 6, beta=0.5)]
    return [g.op(kind, [y.results[0]], "act")]


# (channels, multiplier, kernel, stride, size, pads, activation)
DEPTHWISE = [
    (32, 1, 3, 1, 9, [1, 1, 1, 1], "HardSwish"),  # 16-float vectors, 9 columns: tiles of 3
    (24, 1, 3, 2, 10, [1, 1, 1, 1], "Relu"),  # 8-float vectors, stride 2
    (40, 1, 5, 1, 7, [2, 2, 2, 2], "silu"),  # 5x5, a row of 7 in one tile
    (20, 1, 5, 2, 11, [2, 2, 2, 2], None),  # 4-float vectors, 5x5 stride 2
    (6, 1, 3, 1, 5, [1, 1, 1, 1], "HardSwish"),  # no vector divides the channels
    (16, 1, 3, 2, 8, [0, 0, 1, 1], "hardsigmoid"),  # asymmetric pads
    (8, 2, 3, 1, 6, [1, 1, 1, 1], "Relu"),  # channel multiplier 2
    (48, 1, 3, 1, 6, [0, 0, 0, 0], None),  # unpadded: no pad stage
]


@pytest.mark.parametrize(("c", "mult", "k", "stride", "size", "pads", "act"), DEPTHWISE)
def test_nhwc_depthwise_matches_onnxruntime(target, c, mult, k, stride, size, pads, act) -> None:
    g = OneOp(c + k + stride)
    x = g.input("x", (1, c, size, size))
    w, b = g.const("w", (c * mult, 1, k, k), scale=0.5), g.const("b", (c * mult,))
    conv = g.op("Conv", [x, w, b], "dw", strides=[stride, stride], pads=pads, dilations=[1, 1], group=c)
    epilogue = activation(g, act, conv)
    kernel = lower_node(conv, target, epilogue, layout="NHWC")
    assert kernel.workload["op"] == "depthwise2d"
    got = run_kernel(kernel, {"x": nhwc(g.feeds["x"])}, g.constants(), target)
    want = onnxruntime_of(g, [conv, *epilogue])
    n, m, oh, ow = want.shape
    assert relative_error(got.reshape(n, oh, ow, m).transpose(0, 3, 1, 2), want) <= 1e-5


@pytest.mark.parametrize("op", ["GlobalAveragePool", "GlobalMaxPool"])
@pytest.mark.parametrize(("c", "size"), [(96, 7), (24, 14), (6, 5), (32, 1), (128, 3)])
def test_nhwc_global_pool_matches_onnxruntime(target, op: str, c: int, size: int) -> None:
    g = OneOp(c + size)
    x = g.input("x", (1, c, size, size))
    pool = g.op(op, [x], "pool")
    kernel = lower_node(pool, target, (), layout="NHWC")
    assert kernel.outputs[0].shape == (1, 1, 1, c)
    got = run_kernel(kernel, {"x": nhwc(g.feeds["x"])}, {}, target)
    assert relative_error(got.reshape(1, c, 1, 1), onnxruntime_of(g, [pool])) <= 1e-6


# (op, channels, size, kernel, stride, pads, each output row's own "rows" stage)
WINDOW_POOLS = [
    ("MaxPool", 64, 15, 3, 2, [1, 1, 1, 1], True),  # ResNet's stem pool, an odd map
    ("MaxPool", 24, 8, 2, 2, [0, 0, 0, 0], True),
    ("AveragePool", 20, 9, 3, 2, [0, 1, 1, 0], True),  # 4-float vectors, asymmetric pads
    ("MaxPool", 32, 10, 5, 1, [2, 2, 2, 2], False),  # SPPF: each row would be redone 5 times
]


@pytest.mark.parametrize(("op", "c", "size", "k", "stride", "pads", "per_row"), WINDOW_POOLS)
def test_nhwc_window_pool_matches_onnxruntime(target, op, c, size, k, stride, pads, per_row) -> None:
    """A strided NHWC pool reduces the kernel columns inside each output row's task; a stride-1 one
    keeps its whole "rows" stage; both match onnxruntime."""
    g = OneOp(c + size + k)
    x = g.input("x", (1, c, size, size))
    attrs = {"kernel_shape": [k, k], "strides": [stride] * 2, "pads": pads}
    pool = g.op(op, [x], "pool", **attrs, dilations=[1, 1])
    kernel = lower_node(pool, target, (), layout="NHWC")
    assert kernel.workload.get("rows_per_output_row", False) is per_row
    got = run_kernel(kernel, {"x": nhwc(g.feeds["x"])}, {}, target)
    node = helper.make_node(op, ["x"], ["y"], **attrs)
    graph = helper.make_graph(
        [node], "pool", [helper.make_tensor_value_info("x", TensorProto.FLOAT, (1, c, size, size))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = session.run(None, {"x": g.feeds["x"]})[0]
    assert relative_error(got.reshape(nhwc(want).shape).transpose(0, 3, 1, 2), want) <= 1e-6
