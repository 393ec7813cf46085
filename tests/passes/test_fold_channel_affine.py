"""`fold-channel-affine`: per-channel constant Mul/Add/Sub/Div after Conv, Gemm, MatMul fold into weights.

The interpreter must give the same outputs before and after (check_pass), and the
folded nodes must be gone.
"""

from __future__ import annotations

import numpy as np
import pytest
from pass_helpers import check_pass, const, f32, ops

from ir import Builder, Graph
from passes.fold_channel_affine import FoldChannelAffine

C = 4


def conv_graph(ops_after: list[tuple[str, tuple[int, ...] | None, bool]]) -> Graph:
    """x → Conv → each (op, constant shape or None for a second graph input, constant first?)."""
    graph = Graph("conv")
    x = graph.add_input("x", f32(1, 3, 6, 6))
    w, b = const(graph, "w", (C, 3, 3, 3), 1), const(graph, "b", (C,), 2)
    attrs = {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1], "group": 1}
    (y,) = Builder(graph).op("Conv", [x, w, b], attrs, name="conv")
    for i, (op, shape, first) in enumerate(ops_after):
        if shape is None:
            c = graph.add_input(f"in{i}", f32(1, C, 6, 6))
        else:
            c = const(graph, f"c{i}", shape, 10 + i, 0.5, 1.5)
        (y,) = Builder(graph).op(op, [c, y] if first else [y, c], name=f"{op.lower()}{i}")
    graph.set_outputs([y])
    return graph


@pytest.mark.parametrize(
    "chain",
    [
        [("Mul", (1, C, 1, 1), False), ("Add", (C, 1, 1), False)],  # PP-OCR's scale-and-shift
        [("Mul", (1, C, 1, 1), True), ("Sub", (1,), False), ("Div", (C, 1, 1), False)],
        [("Add", (), False)],  # a scalar is per-channel too
    ],
)
def test_channel_constants_fold_into_the_conv(chain) -> None:  # type: ignore[no-untyped-def]
    graph, ctx = check_pass(conv_graph(chain), FoldChannelAffine())
    assert ops(graph) == ["Conv"]
    assert sum(ctx.statistics["fold-channel-affine"].values()) == len(chain)


@pytest.mark.parametrize(
    "chain",
    [
        [("Mul", (1, C, 6, 1), False)],  # varies along H: not a per-channel map
        [("Add", None, False)],  # not a constant
        [("Sub", (C, 1, 1), True)],  # c - x is not x * s + t with s = 1
    ],
)
def test_other_operands_stay(chain) -> None:  # type: ignore[no-untyped-def]
    graph, _ = check_pass(conv_graph(chain), FoldChannelAffine())
    assert ops(graph) == ["Conv"] + [op for op, _, _ in chain]


def test_second_reader_of_the_conv_blocks_the_fold() -> None:
    graph = conv_graph([("Mul", (1, C, 1, 1), False)])
    conv_result = next(iter(graph.nodes)).results[0]
    graph.set_outputs([*graph.outputs, conv_result])
    graph, _ = check_pass(graph, FoldChannelAffine())
    assert ops(graph) == ["Conv", "Mul"]


def test_gemm_scale_folds_but_a_shift_after_a_bare_matmul_stays() -> None:
    graph = Graph("dense")
    a = graph.add_input("a", f32(2, 5))
    (g,) = Builder(graph).op("Gemm", [a, const(graph, "w", (5, C), 1)], name="gemm")
    (g,) = Builder(graph).op("Mul", [g, const(graph, "s", (C,), 2, 0.5, 1.5)], name="scale")
    (m,) = Builder(graph).op("MatMul", [a, const(graph, "w2", (5, C), 3)], name="mm")
    (m,) = Builder(graph).op("Add", [m, const(graph, "t", (C,), 4)], name="shift")
    graph.set_outputs([g, m])
    graph, _ = check_pass(graph, FoldChannelAffine())
    assert ops(graph) == ["Gemm", "MatMul", "Add"]
    np.testing.assert_equal(len(graph.outputs), 2)


def test_folded_nodes_stay_in_the_kernels_provenance() -> None:
    from ir.fusion import kernels

    chain = [("Mul", (1, C, 1, 1), False), ("Add", (C, 1, 1), False)]
    graph, _ = check_pass(conv_graph(chain), FoldChannelAffine())
    (conv,) = graph.nodes
    assert conv.annotations["folded_from"] == "mul0,add1"
    (kernel,) = kernels(graph)
    assert kernel.sources == ("conv", "mul0", "add1")
