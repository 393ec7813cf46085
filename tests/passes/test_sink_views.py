"""`sink-views`: pointwise nodes behind a reshape that only adds or drops size-1 dims run before it.

The interpreter must give the same outputs before and after (check_pass); the
view must end up last, so the bias meets the Conv (fold-channel-affine) and the
activation fuses into its kernel (fuse).
"""

from __future__ import annotations

import numpy as np
from pass_helpers import check_pass, const, f32, ops

from ir import Builder, Graph
from ir.fusion import read_fusion

C, L = 4, 9
CONV = {"strides": [1, 1], "pads": [1, 0, 1, 0], "dilations": [1, 1], "group": 1}


def magika_block(bias_shape: tuple[int, ...] = (1, C, 1)) -> Graph:
    """magika's Conv (N, C, L, 1) → Squeeze → bias Add (1, C, 1) → tanh-form Gelu chain."""
    graph = Graph("block")
    x = graph.add_input("x", f32(1, 3, L, 1))
    w = const(graph, "w", (C, 3, 3, 1), 1)
    b, half, one = const(graph, "b", bias_shape, 2), const(graph, "half", (), 3), const(graph, "one", (), 4)
    build = Builder(graph)
    (y,) = build.op("Conv", [x, w], CONV, name="conv")
    (s,) = build.op("Squeeze", [y], {"axes": (3,)}, name="squeeze")
    (a,) = build.op("Add", [s, b], name="bias")
    (cube,) = build.op("Mul", [a, a], name="square")
    (t,) = build.op("Tanh", [build.op("Mul", [cube, half], name="scale")[0]], name="tanh")
    (g,) = build.op("Mul", [build.op("Add", [t, one], name="one_plus")[0], a], name="gate")
    graph.set_outputs([g])
    return graph


def test_the_view_sinks_below_the_bias_and_the_activation() -> None:
    graph, ctx = check_pass(magika_block(), "sink-views")
    assert ops(graph) == ["Conv", "Add", "Mul", "Mul", "Tanh", "Add", "Mul", "Reshape"]
    assert [v.name for v in graph.outputs] == ["gate"]
    (bias,) = [n for n in graph.nodes if n.name == "bias"]
    assert bias.operands[1] is not None and bias.operands[1].type.shape == (1, C, 1, 1)
    assert ctx.statistics["sink-views"]["add-sunk"] == 2


def test_then_the_bias_folds_and_the_activation_fuses_into_the_conv() -> None:
    graph, _ = check_pass(magika_block(), "sink-views,fold-channel-affine,fuse")
    assert ops(graph)[0] == "Conv" and "bias" not in [n.name for n in graph.nodes]
    (group,) = read_fusion(graph).groups
    assert [n.op for n in group.nodes] == ["Conv", "Mul", "Mul", "Tanh", "Add", "Mul"]


def test_a_constant_that_varies_along_a_moved_dim_keeps_its_values() -> None:
    """A (C, L) bias broadcasts along the batch: moved to (1, C, L, 1) it must hold the same numbers."""
    graph, _ = check_pass(magika_block((C, L)), "sink-views")
    (bias,) = [n for n in graph.nodes if n.name == "bias"]
    assert bias.operands[1] is not None and bias.operands[1].type.shape == (1, C, L, 1)


def test_a_view_that_reorders_dims_or_a_runtime_operand_of_another_shape_stays() -> None:
    graph = Graph("stay")
    x, r = graph.add_input("x", f32(2, 6)), graph.add_input("r", f32(3, 4))
    build = Builder(graph)
    (v,) = build.op("Reshape", [x], {"shape": (3, 4)}, name="regroup")  # 2 x 6 -> 3 x 4: not a unit view
    (a,) = build.op("Relu", [v], name="relu")
    (u,) = build.op("Unsqueeze", [a], {"axes": (0,)}, name="unsqueeze")
    (s,) = build.op("Add", [u, build.op("Unsqueeze", [r], {"axes": (0,)})[0]], name="sum")
    graph.set_outputs([s])
    inputs = {"x": np.arange(12, dtype=np.float32).reshape(2, 6), "r": np.ones((3, 4), np.float32)}
    before = ops(graph)
    graph, ctx = check_pass(graph, "sink-views", inputs)
    # relu reads a reordering reshape; sum reads unit views of one shape (3, 4): only sum sinks
    assert ops(graph) == ["Reshape", "Relu", "Add", "Reshape"] and len(before) == 5
    assert ctx.statistics["sink-views"] == {"add-sunk": 1}
