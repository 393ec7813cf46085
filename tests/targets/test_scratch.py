"""targets/scratch.py: a kernel's global-scope scratch, counted from its schedule, against buffer sizes
worked out by hand."""

from __future__ import annotations

from ir import DType, Graph, TensorType
from ir.builder import Builder
from targets.lowering.dispatch import lower_node
from targets.scratch import scratch_bytes
from targets.target import host_target


def test_padded_conv_counts_its_padded_input_and_pointwise_counts_nothing() -> None:
    import numpy as np

    graph = Graph("g")
    x = graph.add_input("x", TensorType(DType.F32, (1, 3, 30, 30)))
    w = graph.add_constant("w", np.ones((8, 3, 3, 3), np.float32))
    attrs = {"strides": (1, 1), "pads": (1, 1, 1, 1), "dilations": (1, 1), "group": 1}
    (y,) = Builder(graph).op("Conv", [x, w], attrs, name="conv")
    (z,) = Builder(graph).op("Relu", [y], name="relu")
    graph.set_outputs([z])
    conv = lower_node(y.producer, host_target())
    relu = lower_node(z.producer, host_target())
    assert scratch_bytes(relu.func) == 0
    # the padded input holds at least the 32 x 32 padded planes of its 3 channels in f32
    assert scratch_bytes(conv.func) >= 3 * 32 * 32 * 4
