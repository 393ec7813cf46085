"""`fuse-attention`: MatMul -> scale -> mask -> Softmax -> MatMul chains become one Attention node.

The interpreter must give the same outputs before and after (check_pass: the Attention reference
against the five ONNX ops' references); chains whose inner values are read elsewhere, whose
softmax is not over the keys, or that are not f32 stay as they are; without `always` only a target
listing Attention gets it.
"""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from pass_helpers import check_pass, const, f32, ops

from ir import Builder, DType, Graph, TensorType
from ir.target_facts import TargetFacts
from passes import PassContext, PassManager, parse_pipeline

HEADS, M, D, N, E = 2, 5, 4, 7, 3


def chain(scale_op: str | None = "Div", mask: str | None = None, axis: int = 3, mask_first: bool = False,
          scores_out: bool = False, dtype: DType = DType.F32) -> Graph:  # fmt: skip
    """Q (1, H, M, D) @ Kt (1, H, D, N) [/ or * a scalar] [+ mask] -> Softmax(axis) -> @ V (1, H, N, E)."""
    graph = Graph("attention")
    q = graph.add_input("q", TensorType(dtype, (1, HEADS, M, D)))
    kt = graph.add_input("kt", TensorType(dtype, (1, HEADS, D, N)))
    v = graph.add_input("v", TensorType(dtype, (1, HEADS, N, E)))
    build = Builder(graph)
    (scores,) = build.op("MatMul", [q, kt], name="qk")
    if scale_op is not None:
        (scores,) = build.op(
            scale_op, [scores, graph.add_constant("c", np.array(2.0, dtype.numpy))], name="scale"
        )
    if mask == "input":
        m = graph.add_input("mask", f32(1, 1, 1, N))
    elif mask == "constant":
        m = const(graph, "mask", (M, N), 1, -3.0, 0.0)
    if mask is not None:
        (scores,) = build.op("Add", [m, scores] if mask_first else [scores, m], name="mask_add")
    (p,) = build.op("Softmax", [scores], {"axis": axis}, name="softmax")
    (y,) = build.op("MatMul", [p, v], name="pv")
    graph.set_outputs([y, scores] if scores_out else [y])
    return graph


@pytest.mark.parametrize(
    ("scale_op", "mask", "mask_first", "scale"),
    [("Div", None, False, 0.5), ("Mul", "input", True, 2.0), (None, "constant", False, 1.0)],
)
def test_the_chain_becomes_one_attention_node(scale_op, mask, mask_first, scale) -> None:  # type: ignore[no-untyped-def]
    graph, ctx = check_pass(chain(scale_op, mask, mask_first=mask_first), "fuse-attention{always=true}")
    assert ops(graph) == ["FusedAttention"]
    (node,) = graph.nodes
    assert node.attrs["scale"] == scale
    assert [o.name for o in node.operands] == ["q", "kt", "v", *(["mask"] if mask else [])]
    assert [v.name for v in graph.outputs] == ["pv"]
    assert ctx.statistics["fuse-attention"] == {"attention-fused": 1}
    assert not graph.constants or mask == "constant"


@pytest.mark.parametrize(
    "graph",
    [chain(axis=2), chain(mask="input", scores_out=True), chain(dtype=DType.F16)],
    ids=["softmax over queries", "scores are a graph output", "f16"],
)
def test_other_chains_stay(graph: Graph) -> None:
    before = ops(graph)
    graph, _ = check_pass(graph, "fuse-attention{always=true}")
    assert ops(graph) == before


@pytest.mark.parametrize(("listed", "fused"), [(frozenset(), False), (frozenset({"FusedAttention"}), True)])
def test_only_a_target_listing_attention_gets_it(listed, fused: bool) -> None:  # type: ignore[no-untyped-def]
    ctx = PassContext(target=dataclasses.replace(TargetFacts(), composite_ops=listed))
    graph = PassManager(parse_pipeline("fuse-attention"), verify_each=True).run(chain(), ctx)
    assert ("FusedAttention" in ops(graph)) is fused
