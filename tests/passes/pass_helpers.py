"""Helpers of the pass tests: small graphs, and running a pass with the interpreter as the check.

`check_pass` is the real test of a rewrite: the reference interpreter must give
the same outputs (same names, same order, same values) before and after.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ir import DType, Graph, TensorType, run_graph
from passes import Pass, PassContext, PassManager, parse_pipeline


def f32(*shape: int) -> TensorType:
    return TensorType(DType.F32, tuple(shape))


def const(graph: Graph, name: str, shape: tuple[int, ...], seed: int, low: float = -1.0, high: float = 1.0):
    """A float32 constant with uniform random values."""
    data = np.random.default_rng(seed).uniform(low, high, shape).astype(np.float32)
    return graph.add_constant(name, data)


def random_inputs(graph: Graph, seed: int = 0) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {v.name: rng.standard_normal(v.type.shape).astype(v.type.dtype.numpy) for v in graph.inputs}


def ops(graph: Graph) -> list[str]:
    return [node.op for node in graph.nodes]


def check_pass(
    graph: Graph,
    pipeline: str | Pass,
    inputs: Mapping[str, np.ndarray] | None = None,
    *,
    rtol: float = 1e-5,
    atol: float = 1e-5,
) -> tuple[Graph, PassContext]:
    """Run `pipeline` with verification after each pass; the interpreter's outputs must not change."""
    inputs = dict(inputs) if inputs is not None else random_inputs(graph)
    before = run_graph(graph, inputs)
    passes = parse_pipeline(pipeline) if isinstance(pipeline, str) else [pipeline]
    ctx = PassContext()
    graph = PassManager(passes, verify_each=True).run(graph, ctx)
    after = run_graph(graph, inputs)
    assert list(after) == list(before), "output names or order changed"
    for name, want in before.items():
        assert after[name].dtype == want.dtype and after[name].shape == want.shape, name
        np.testing.assert_allclose(after[name], want, rtol=rtol, atol=atol, err_msg=name)
    return graph, ctx
