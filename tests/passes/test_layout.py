"""The `layout` pass: NHWC regions with Relayouts at their boundaries, graph inputs and outputs untouched,
the interpreter's outputs unchanged (checked against onnxruntime), and the cost rule."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from layout_models import se_block
from onnx import TensorProto, helper, numpy_helper

from hai_compiler.accuracy import relative_error
from hai_compiler.onnx_import import import_onnx
from ir import run_graph, verify
from ir.fusion import epilogue_ops, kernels
from ir.parser import parse_hir
from ir.printer import print_graph
from ir.target_facts import TargetFacts
from passes import PassContext, PassManager, parse_pipeline

ort = pytest.importorskip("onnxruntime")
AVX512 = TargetFacts(vector_bytes=64)


def run_layout(model, pipeline: str, target=AVX512):  # type: ignore[no-untyped-def]
    graph = import_onnx(model)
    verify(graph)
    ctx = PassContext(target=target)
    return PassManager(parse_pipeline(pipeline), verify_each=True).run(graph, ctx), ctx


def relayouts(graph) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(n.operands[0].name, n.attrs["layout"]) for n in graph.nodes if n.op == "Relayout"]


def test_regions_get_nhwc_and_relayouts_at_their_boundaries() -> None:
    model = se_block(32, 14)
    graph, ctx = run_layout(model, "layout{prefer=NHWC}")
    by_name = {r.name: r for n in graph.nodes for r in n.results}
    assert [v.type.layout for v in graph.inputs] == [None]
    assert [v.name for v in graph.outputs] == ["y", "m"]
    assert all(v.type.layout is None for v in graph.outputs)
    for name in ("c1", "h1", "c2", "m.nhwc", "p", "se", "c3"):  # GlobalAveragePool joins the region
        assert by_name[name].type.layout == "NHWC", name
    assert by_name["y"].producer.op == "Flatten"  # a view reads NCHW
    assert relayouts(graph) == [("x", "NHWC"), ("c3", "NCHW"), ("m.nhwc", "NCHW")]
    assert ctx.statistics["layout"]["relayouts"] == 3


def test_interpreter_outputs_match_onnxruntime_after_layout_and_fuse() -> None:
    model = se_block(16, 10, seed=1)
    x = np.random.default_rng(2).standard_normal((1, 3, 10, 10)).astype(np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = dict(zip(["y", "m"], session.run(["y", "m"], {"x": x}), strict=True))
    graph, _ = run_layout(model, "default,layout{prefer=NHWC},fuse")
    got = run_graph(graph, {"x": x})
    assert list(got) == ["y", "m"]
    for name, ref in want.items():
        assert relative_error(got[name], ref) <= 1e-5


def test_fuse_never_joins_nodes_of_different_layouts() -> None:
    graph, _ = run_layout(se_block(32, 14), "layout{prefer=NHWC},fuse")
    for group in kernels(graph):
        layouts = {n.results[0].type.layout for n in group.nodes}
        assert len(layouts) == 1, [n.label() for n in group.nodes]
    conv1 = next(g for g in kernels(graph) if g.anchor.name == "conv1")
    assert [n.name for n in conv1.epilogue] == ["act1"]


def test_cost_rule_keeps_convs_whose_nchw_kernel_is_faster() -> None:
    # 96-wide rows fill whole 16-float vectors in NCHW and 24 channels do not in NHWC (ppocr_cls).
    graph, _ = run_layout(se_block(24, 96), "layout")
    assert relayouts(graph) == []
    # 14-wide rows waste NCHW vectors, 32 channels fill NHWC ones, the 14x14 plane is no whole number
    # of vectors: all three convs prefer NHWC and form one region (through the pool and `excite`);
    # they write 3 * 6272 elements, its Relayouts move 588 (x) + 2 * 6272 (m, c3): converted at
    # min-gain 1, kept NCHW at the default 2.
    graph, ctx = run_layout(se_block(32, 14), "layout{min-gain=1}")
    assert ("x", "NHWC") in relayouts(graph)
    assert ctx.statistics["layout"]["regions"] == 1
    graph, ctx = run_layout(se_block(32, 14), "layout")
    assert relayouts(graph) == [] and ctx.statistics["layout"]["regions-kept-nchw"] == 1


def test_prefer_nchw_changes_nothing_and_bad_values_are_errors() -> None:
    graph, _ = run_layout(se_block(32, 14), "layout{prefer=NCHW}")
    assert relayouts(graph) == []
    with pytest.raises(Exception, match="prefer"):
        parse_pipeline("layout{prefer=NCWH}")


def test_layout_facts_round_trip_through_hir() -> None:
    graph, _ = run_layout(se_block(32, 14), "layout{prefer=NHWC}")
    text = print_graph(graph)
    assert 'layout = "NHWC"' in text and 'Relayout(%x) {layout = "NHWC"}' in text
    again = parse_hir(text)
    assert print_graph(again) == text
    assert again.value("c1").type.layout == "NHWC"


def test_window_pools_and_concats_of_run_time_values_join_regions() -> None:
    """MaxPool/AveragePool (2-D, f32, no Indices) and a Concat of run-time values are NHWC in a
    region; a MaxPool with Indices, a Concat with a constant and an LpPool keep NCHW."""
    rng = np.random.default_rng(0)
    window: dict[str, Any] = {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}
    nodes = [
        helper.make_node("Conv", ["x", "W"], ["c"], name="conv"),
        helper.make_node("MaxPool", ["c"], ["mp"], name="mp", **window),
        helper.make_node("AveragePool", ["mp"], ["ap"], name="ap", **window),
        helper.make_node("Concat", ["c", "mp", "ap"], ["cat"], axis=1, name="cat"),
        helper.make_node("MaxPool", ["c"], ["mi", "idx"], name="mi", **window),
        helper.make_node("Concat", ["ap", "K"], ["kcat"], axis=1, name="kcat"),
        helper.make_node("LpPool", ["c"], ["lp"], name="lp", **window),
    ]
    inits = [
        numpy_helper.from_array((rng.standard_normal((16, 3, 1, 1)) * 0.3).astype(np.float32), "W"),
        numpy_helper.from_array(np.ones((1, 2, 6, 6), np.float32), "K"),
    ]
    outputs = ["cat", "mi", "idx", "kcat", "lp"]
    graph = helper.make_graph(
        nodes, "pools", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 6])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT if n != "idx" else TensorProto.INT64, None)
         for n in outputs], inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    out, _ = run_layout(model, "layout{prefer=NHWC}")
    layouts = {n.name: n.results[0].type.layout for n in out.nodes if n.op != "Relayout"}
    assert {k: layouts[k] for k in ("conv", "mp", "ap", "cat")} == dict.fromkeys(
        ("conv", "mp", "ap", "cat"), "NHWC"
    )
    assert [layouts[k] for k in ("mi", "kcat", "lp")] == [None, None, None]
    x = rng.standard_normal((1, 3, 6, 6)).astype(np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    got = run_graph(out, {"x": x})
    for name, want in zip(outputs, session.run(outputs, {"x": x}), strict=True):
        assert np.allclose(got[name], want, atol=1e-5), name


def test_a_region_failing_the_cost_rule_keeps_its_gaining_part() -> None:
    """A pointwise conv over a 32x32 plane (rows of whole vectors: it joins, gains nothing) glues a
    14x14 stage of preferring convs to a large boundary (its input and its graph output): the joined
    region fails min-gain 0.5 (gain 4 * 6272 < 0.5 * 71808), the stage alone passes it (6272 * 4 >=
    0.5 * (32768 + 6272)) and goes NHWC while the glue stays NCHW."""
    rng = np.random.default_rng(0)

    def weight(name: str, *shape: int) -> Any:
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), name)

    nodes = [
        helper.make_node("Conv", ["x", "G"], ["g"], name="glue"),
        helper.make_node("Conv", ["g", "D"], ["d"], group=32, strides=[2, 2], name="dw_s2"),
        helper.make_node("Conv", ["d", "P1"], ["p1"], name="pw1"),
        helper.make_node("Conv", ["p1", "D2"], ["d2"], group=32, pads=[1, 1, 1, 1], name="dw"),
        helper.make_node("Conv", ["d2", "P2"], ["z"], name="pw2"),
    ]
    inits = [weight("G", 32, 32, 1, 1), weight("D", 32, 1, 5, 5), weight("P1", 32, 32, 1, 1),
             weight("D2", 32, 1, 3, 3), weight("P2", 32, 32, 1, 1)]  # fmt: skip
    graph = helper.make_graph(
        nodes, "glued", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 32, 32, 32])],
        [helper.make_tensor_value_info(v, TensorProto.FLOAT, None) for v in ("g", "z")], inits,
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    graph_out, ctx = run_layout(model, "layout{min-gain=0.5}")
    layouts = {n.name: n.results[0].type.layout for n in graph_out.nodes if n.op == "Conv"}
    assert layouts == {"glue": None, "dw_s2": "NHWC", "pw1": "NHWC", "dw": "NHWC", "pw2": "NHWC"}
    assert relayouts(graph_out) == [("g", "NHWC"), ("z.nhwc", "NCHW")]
    assert ctx.statistics["layout"]["regions"] == 1


def conv_pair(channels: int, size: int):  # type: ignore[no-untyped-def]
    """Two dense 3x3 convs (ReLU between) whose NCHW output rows are whole 16-float vectors."""
    rng = np.random.default_rng(7)
    inits = [
        numpy_helper.from_array((rng.standard_normal(s) * 0.3).astype(np.float32), n)
        for n, s in (("W1", (channels, 3, 3, 3)), ("W2", (channels, channels, 3, 3)))
    ]
    nodes = [
        helper.make_node("Conv", ["x", "W1"], ["c1"], pads=[1, 1, 1, 1], name="conv1"),
        helper.make_node("Relu", ["c1"], ["r1"], name="relu"),
        helper.make_node("Conv", ["r1", "W2"], ["y"], pads=[1, 1, 1, 1], name="conv2"),
    ]
    graph = helper.make_graph(
        nodes,
        "pair",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, size, size])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize(("width", "seed"), [(32, 8), (20, 9)])
def test_channels_last_dense_fact_moves_dense_convs(width: int, seed: int) -> None:
    """Kept NCHW unless the target's measured cost rule says its dense convs run faster channels-last
    (`channels_last_dense`); the outputs stay onnxruntime's. 32-wide rows are whole NCHW vectors;
    20-wide rows are not, and counted in output elements (2 x 12800) the convs' gain does not outweigh
    twice the Relayouts (2 x (1200 + 12800)): on a `channels_last_dense` target their multiply-adds
    count."""
    model = conv_pair(32, width)
    graph, _ = run_layout(model, "layout")
    assert relayouts(graph) == []
    fact = TargetFacts(vector_bytes=64, channels_last_dense=True)
    graph, ctx = run_layout(model, "layout", target=fact)
    assert relayouts(graph) == [("x", "NHWC"), ("y.nhwc", "NCHW")]
    assert ctx.statistics["layout"]["regions"] == 1
    x = np.random.default_rng(seed).standard_normal((1, 3, width, width)).astype(np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (want,) = session.run(None, {"x": x})
    assert relative_error([run_graph(graph, {"x": x})["y"]], [want]) <= 1e-5


def test_bf16_convs_join_regions_and_their_weights_stay_logical() -> None:
    """A bf16 layer reads its weight through a DequantizeLinear of a bf16 constant: the conv is
    capable as an f32 one (its input's Cast pair joins too), the weight is neither relaid nor NHWC,
    and the interpreter's outputs are those of the graph without the layout pass."""
    model = conv_pair(32, 32)
    fusable = frozenset({*epilogue_ops(), "Cast"})  # a target whose kernels fuse Casts (x86)
    fact = TargetFacts(vector_bytes=64, channels_last_dense=True, fusable_ops=fusable)
    graph, _ = run_layout(model, "quantize{precision=bf16},layout", target=fact)
    assert relayouts(graph) == [("x", "NHWC"), ("y.nhwc", "NCHW")]
    (dequantize,) = [n for n in graph.nodes if n.op == "DequantizeLinear"]
    assert dequantize.results[0].type.layout is None
    assert all(n.results[0].type.layout == "NHWC" for n in graph.nodes if n.op in ("Conv", "Cast"))
    x = np.random.default_rng(9).standard_normal((1, 3, 32, 32)).astype(np.float32)
    plain, _ = run_layout(model, "quantize{precision=bf16}", target=fact)
    want = run_graph(plain, {"x": x})["y"]
    assert relative_error(run_graph(graph, {"x": x})["y"], want) <= 1e-6
