"""`infer-shapes`: result types follow a changed input; placement facts stay, stale plan facts go."""

from __future__ import annotations

import numpy as np
import pytest
from pass_helpers import check_pass, f32

from ir import Builder, Graph, run_graph
from passes import PassFailedError, PassManager
from passes.infer_shapes import InferShapes

GPU = "opencl:gpu"


def relu_matmul() -> Graph:
    graph = Graph()
    x = graph.add_input("x", f32(2, 3))
    w = graph.add_constant("w", np.arange(12, dtype=np.float32).reshape(3, 4))
    builder = Builder(graph)
    (r,) = builder.op("Relu", [x], name="r")
    (y,) = builder.op("MatMul", [r, w], name="y")
    graph.set_outputs([y])
    return graph


def test_types_follow_a_new_input_shape() -> None:
    graph = relu_matmul()
    r, y = graph.value("r"), graph.value("y")
    r.type = r.type.with_(device=GPU, offset=64)
    y.type = y.type.with_(device=GPU, offset=0)
    graph.inputs[0].type = f32(5, 3).with_(device=GPU)
    PassManager([InferShapes()], verify_each=True).run(graph)
    assert graph.value("r").type == f32(5, 3).with_(device=GPU)  # placement kept, stale offset dropped
    assert graph.value("y").type == f32(5, 4).with_(device=GPU)
    x = np.random.default_rng(0).standard_normal((5, 3)).astype(np.float32)
    expected = np.maximum(x, 0) @ np.arange(12).reshape(3, 4)
    np.testing.assert_allclose(run_graph(graph, {"x": x})["y"], expected, rtol=1e-5)


def test_unchanged_types_keep_every_fact() -> None:
    graph = relu_matmul()
    for value in (graph.inputs[0], graph.value("r"), graph.value("y")):
        value.type = value.type.with_(device=GPU)  # placed: every value on a device (ir/placement.py)
    r = graph.value("r")
    r.type = r.type.with_(offset=64, page=2)
    graph, ctx = check_pass(graph, "infer-shapes")
    assert graph.value("r").type.offset == 64 and graph.value("r").type.page == 2
    assert ctx.statistics["infer-shapes"]["types-changed"] == 0


def test_an_input_shape_that_no_longer_fits_names_the_node() -> None:
    graph = relu_matmul()
    graph.inputs[0].type = f32(2, 7)
    with pytest.raises(PassFailedError, match=r"pass 'infer-shapes' failed.*MatMul node 'y'"):
        PassManager([InferShapes()]).run(graph)
