"""bf16 layers reading one value: `eliminate-common-subexpressions` merges their Cast pairs, and `fuse` copies
the shared pair back for each layer (passes/bf16_rounding.py), so every layer takes its rounding as its
activation prologue and no Cast is a kernel of its own; the interpreter computes the same before and after."""

from __future__ import annotations

import numpy as np

from ir import Graph, run_graph
from ir.builder import Builder
from ir.dtypes import DType
from ir.fusion import kernels
from ir.target_facts import TargetFacts
from ir.types import TensorType
from passes.eliminate_common_subexpressions import EliminateCommonSubexpressions
from passes.fuse import Fuse
from passes.manager import PassContext
from passes.quantize import Quantize


def shared_input() -> tuple[Graph, dict[str, np.ndarray]]:
    """x -> Relu -> two MatMuls (bf16 layers) and an Add that reads the Relu in f32."""
    rng = np.random.default_rng(0)
    graph = Graph("shared")
    x = graph.add_input("x", TensorType(DType.F32, (4, 32)))
    b = Builder(graph)
    (r,) = b.op("Relu", [x], name="relu")
    outputs = []
    for i in range(2):
        w = graph.add_constant(f"w{i}", rng.standard_normal((32, 32)).astype(np.float32))
        (y,) = b.op("MatMul", [r, w], name=f"mm{i}")
        outputs.append(y)
    (s,) = b.op("Add", [outputs[0], r], name="residual")
    graph.outputs.extend([s, outputs[1]])
    Quantize(precision="bf16").run(graph, PassContext(target=TargetFacts()))
    return graph, {"x": rng.standard_normal((4, 32)).astype(np.float32)}


def test_a_shared_rounding_becomes_each_layers_prologue() -> None:
    graph, feeds = shared_input()
    EliminateCommonSubexpressions().run(graph, PassContext())
    shared = [n for n in graph.nodes if n.op == "Cast" and len(n.results[0].uses()) > 1]
    assert len(shared) == 1  # cse merged the two layers' pairs: before the fix, two kernels of their own
    want = run_graph(graph, feeds)
    ctx = PassContext()
    Fuse().run(graph, ctx)
    groups = kernels(graph)
    layers = [g for g in groups if g.anchor.op == "MatMul"]
    assert len(layers) == 2
    for group in layers:
        assert [n.op for n in group.prologue] == ["Cast", "Cast", "DequantizeLinear"]
    grouped = {n for g in groups for n in g.nodes}
    assert not [n for n in graph.nodes if n.op == "Cast" and n not in grouped]
    got = run_graph(graph, feeds)
    for name, value in want.items():
        assert np.array_equal(got[name], value)
