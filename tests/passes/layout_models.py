"""A small ONNX model for the layout tests: conv regions around an op without an NHWC kernel."""

from __future__ import annotations

import numpy as np
from onnx import TensorProto, helper, numpy_helper


def se_block(channels: int, size: int, seed: int = 0):  # type: ignore[no-untyped-def]
    """Conv(+bias) -> HardSwish -> depthwise Conv -> Mul by a (C,1,1) constant -> GlobalAveragePool
    -> Mul(x, pool) -> pointwise Conv -> Flatten: one NHWC region (squeeze-excite inside), a view."""
    rng = np.random.default_rng(seed)

    def weight(name: str, *shape: int) -> object:
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), name)

    c = channels
    nodes = [
        helper.make_node("Conv", ["x", "W1", "B1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("HardSwish", ["c1"], ["h1"], name="act1"),
        helper.make_node("Conv", ["h1", "W2"], ["c2"], pads=[1, 1, 1, 1], group=c, name="dw"),
        helper.make_node("Mul", ["c2", "S"], ["m"], name="scale"),
        helper.make_node("GlobalAveragePool", ["m"], ["p"], name="pool"),
        helper.make_node("Mul", ["m", "p"], ["se"], name="excite"),
        helper.make_node("Conv", ["se", "W3"], ["c3"], name="project"),
        helper.make_node("Flatten", ["c3"], ["y"], axis=1, name="flat"),
    ]
    inits = [weight("W1", c, 3, 3, 3), weight("B1", c), weight("W2", c, 1, 3, 3), weight("S", c, 1, 1),
             weight("W3", c, c, 1, 1)]  # fmt: skip
    graph = helper.make_graph(
        nodes, "se", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("m", TensorProto.FLOAT, None)], inits,
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
