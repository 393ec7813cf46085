"""The `layout` pass: NHWC regions with Relayouts at their boundaries, graph inputs and outputs untouched,
the interpreter's outputs unchanged (checked against onnxruntime), and the cost rule."""

from __future__ import annotations

import numpy as np
import pytest
from layout_models import se_block

from hai_compiler.accuracy import relative_error
from hai_compiler.onnx_import import import_onnx
from ir import run_graph, verify
from ir.fusion import kernels
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
    for name in ("c1", "h1", "c2", "m.nhwc", "se", "c3"):
        assert by_name[name].type.layout == "NHWC", name
    assert by_name["p"].type.layout is None  # GlobalAveragePool has no NHWC kernel
    assert by_name["y"].producer.op == "Flatten"  # a view reads NCHW
    assert relayouts(graph) == [
        ("x", "NHWC"), ("m.nhwc", "NCHW"), ("p", "NHWC"), ("c3", "NCHW")
    ]  # fmt: skip
    assert ctx.statistics["layout"]["relayouts"] == 4


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
    # 28-wide rows waste NCHW vectors, 32 channels fill NHWC ones: all three convs prefer NHWC and
    # form one region (through `excite`); they write 3 * 25088 elements, its Relayouts move
    # 2352 (x) + 32 (p) + 2 * 25088 (m, c3): converted at min-gain 1, kept NCHW at the default 2.
    graph, ctx = run_layout(se_block(32, 28), "layout{min-gain=1}")
    assert ("x", "NHWC") in relayouts(graph)
    assert ctx.statistics["layout"]["regions"] == 1
    graph, ctx = run_layout(se_block(32, 28), "layout")
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
