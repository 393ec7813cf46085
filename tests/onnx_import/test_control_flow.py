"""If, Loop and Scan: imported (flattened where known, regions where not), interpreted and checked
against onnxruntime; the errors of what a static plan cannot hold name the node."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from control_flow_models import if_on_data, if_on_shape, loop, scan

from hai_compiler.onnx_import import import_onnx
from hai_compiler.onnx_import.converter import StaticOperandError
from hai_compiler.onnx_import.converters import control
from ir import run_graph, verify
from ir.clone import clone_graph
from ir.flatten import flatten
from ir.parser import parse_hir
from ir.printer import print_graph
from passes.conditions import no_control_flow


def onnxruntime_outputs(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def assert_matches(graph, model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> None:  # type: ignore[no-untyped-def]
    verify(graph)
    ours = run_graph(graph, {v.name: feeds[v.name] for v in graph.inputs})
    for got, want in zip(ours.values(), onnxruntime_outputs(model, feeds), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-6)


def ops(graph) -> list[str]:  # type: ignore[no-untyped-def]
    return [node.op for node in graph.nodes]


@pytest.mark.parametrize("rows", [1, 3])
def test_if_on_a_shape_takes_its_branch_while_importing(rows: int) -> None:
    model = if_on_shape()
    graph = import_onnx(model, input_shapes={"x": (rows, 4)})
    assert "If" not in ops(graph) and ("Squeeze" in ops(graph)) == (rows == 1)
    x = np.random.default_rng(rows).standard_normal((rows, 4)).astype(np.float32)
    assert_matches(graph, model, {"x": x})


@pytest.mark.parametrize("sign", [1.0, -1.0])
def test_if_on_data_keeps_its_regions_and_runs_either_branch(sign: float) -> None:
    model = if_on_data()
    graph = import_onnx(model)
    assert ops(graph).count("If") == 1
    x = sign * np.abs(np.random.default_rng(0).standard_normal((2, 3))).astype(np.float32)
    assert_matches(graph, model, {"x": x})
    assert_matches(clone_graph(graph), model, {"x": x})
    text = print_graph(graph)
    reparsed = parse_hir(text)
    assert print_graph(reparsed) == text
    assert_matches(reparsed, model, {"x": x})


def test_if_on_a_bound_input_folds_when_flattened() -> None:
    model = if_on_data()
    x = -np.ones((2, 3), np.float32)
    graph = import_onnx(model, bind_inputs={"x": x})
    assert "If" not in ops(graph)  # the condition folded while importing: the else branch is inline
    np.testing.assert_allclose(run_graph(graph, {})["y"], onnxruntime_outputs(model, {"x": x})[0])


def test_if_with_branches_of_different_shapes_names_the_node() -> None:
    with pytest.raises(
        StaticOperandError, match=r"node 'data_if' \(If\): condition \(%positive\) must be known"
    ):
        import_onnx(if_on_data(else_shape=(3,)))


def test_captured_values_are_used_by_the_region_nodes() -> None:
    graph = import_onnx(if_on_data())
    (node,) = [n for n in graph.nodes if n.regions]
    x = graph.inputs[0]
    users = {user.op for user in x.users()}
    assert {"Mul", "Sub"} <= users  # the branches' nodes read the outer input directly
    assert x in node.captures()
    assert no_control_flow(graph) == (
        "If 'data_if' is left: run predicate-control-flow before this pass (hai compile does)"
    )


@pytest.mark.parametrize("scan_output", [True, False])
def test_loop_with_a_static_trip_count_unrolls(scan_output: bool) -> None:
    model = loop(trip_count=4, scan_output=scan_output)
    graph = import_onnx(model)
    assert "Loop" not in ops(graph)
    x = np.random.default_rng(1).standard_normal((6, 3)).astype(np.float32)
    assert_matches(graph, model, {"x": x})


@pytest.mark.parametrize("m", [0, 2, 6])
def test_loop_on_a_trip_count_input_runs_as_a_region(m: int) -> None:
    model = loop(trip_count=None, scan_output=False, by_row=False)
    graph = import_onnx(model)
    assert ops(graph) == ["Loop"]
    x = np.random.default_rng(2).standard_normal((6, 3)).astype(np.float32)
    assert_matches(graph, model, {"x": x, "m": np.array(m, np.int64)})
    text = print_graph(graph)
    assert print_graph(parse_hir(text)) == text


@pytest.mark.parametrize("m", [0, 2, 6])
def test_loop_slicing_by_its_iteration_runs_as_a_region_or_unrolls_once_bound(m: int) -> None:
    model = loop(trip_count=None, scan_output=False)
    x = np.random.default_rng(2).standard_normal((6, 3)).astype(np.float32)
    graph = import_onnx(model)  # x[i : i + 1]: a Gather by the iteration number in the region
    assert ops(graph) == ["Loop"]
    assert_matches(graph, model, {"x": x, "m": np.array(m, np.int64)})
    graph = import_onnx(model, bind_inputs={"m": np.array(m, np.int64)})
    assert "Loop" not in ops(graph)
    np.testing.assert_allclose(
        run_graph(graph, {"x": x})["final"],
        onnxruntime_outputs(model, {"x": x, "m": np.array(m)})[0],
        rtol=1e-6,
    )


def test_a_loop_slice_whose_length_the_iteration_decides_over_the_unroll_limit_says_why(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(control, "UNROLL_LIMIT", 20)  # 2 iterations of a 12-node body pass it
    with pytest.raises(StaticOperandError) as caught:
        import_onnx(loop(trip_count=4, scan_output=False, growing=True))
    message = str(caught.value)
    assert "(Loop): its body needs values known at compile time" in message
    assert "(Slice): starts" in message
    assert "2 iterations of its 12-node body pass the 20 ONNX nodes" in message
    monkeypatch.undo()
    graph = import_onnx(loop(trip_count=4, scan_output=False, growing=True))  # within the limit
    assert "Loop" not in ops(graph)


def test_loop_scan_outputs_need_a_static_trip_count() -> None:
    model = loop(trip_count=None, scan_output=True)
    with pytest.raises(
        StaticOperandError, match=r"node 'accumulate' \(Loop\): trip count M \(%m\) must be known"
    ):
        import_onnx(model)


@pytest.mark.parametrize("reverse", [0, 1])
def test_scan_unrolls_and_matches(reverse: int) -> None:
    model = scan(length=5, reverse=reverse)
    graph = import_onnx(model)
    assert "Scan" not in ops(graph)
    rng = np.random.default_rng(3)
    feeds = {
        "s0": rng.standard_normal(3).astype(np.float32),
        "x": rng.standard_normal((5, 3)).astype(np.float32),
    }
    assert_matches(graph, model, feeds)


def test_scan_over_the_unroll_limit_stays_a_region_and_flattens_in_the_pass(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(control, "UNROLL_LIMIT", 10)  # 5 steps of 3 nodes are over it
    model = scan(length=5)
    graph = import_onnx(model)
    assert ops(graph) == ["Scan"]
    rng = np.random.default_rng(4)
    feeds = {
        "s0": rng.standard_normal(3).astype(np.float32),
        "x": rng.standard_normal((5, 3)).astype(np.float32),
    }
    assert_matches(graph, model, feeds)
    assert flatten(graph, max_nodes=9) == 0 and ops(graph) == ["Scan"]  # 5 copies of Add, Mul
    verify(graph)
    assert flatten(graph, max_nodes=10) == 1 and "Scan" not in ops(graph)
    assert_matches(graph, model, feeds)


def test_flatten_unrolls_a_loop_whose_trip_count_became_constant() -> None:
    model = loop(trip_count=None, scan_output=False, by_row=False)
    graph = import_onnx(model)
    m = graph.value("m")
    graph.replace_value(m, graph.add_constant("three", np.array(3, np.int64)))
    assert flatten(graph, max_nodes=4096) == 1 and "Loop" not in ops(graph)
    verify(graph)
    x = np.random.default_rng(5).standard_normal((6, 3)).astype(np.float32)
    got = run_graph(graph, {"x": x, "m": np.array(0, np.int64)})["final"]
    np.testing.assert_allclose(got, onnxruntime_outputs(model, {"x": x, "m": np.array(3)})[0], rtol=1e-6)


def test_loop_stopped_by_its_condition_unrolls_the_iterations_it_runs() -> None:
    model = loop(trip_count=6, scan_output=True, stop_after=2)
    graph = import_onnx(model)
    assert "Loop" not in ops(graph)
    assert graph.outputs[1].type.shape == (3, 1, 3)  # i = 0, 1, 2: the condition i < 2 stops it after 3
    x = np.random.default_rng(6).standard_normal((6, 3)).astype(np.float32)
    assert_matches(graph, model, {"x": x})


def test_loop_whose_condition_starts_false_runs_no_iteration() -> None:
    model = loop(trip_count=4, scan_output=True, by_row=False)
    false = onnx.helper.make_node(
        "Constant", [], ["never"], value=onnx.numpy_helper.from_array(np.array(False), "never")
    )
    model.graph.node.insert(0, false)
    model.graph.node[-1].input[1] = "never"
    graph = import_onnx(model)
    verify(graph)
    x = np.random.default_rng(7).standard_normal((6, 3)).astype(np.float32)
    ours = run_graph(graph, {"x": x})
    final, stacked = onnxruntime_outputs(model, {"x": x})
    np.testing.assert_array_equal(ours["final"], final)  # the initial value, untouched
    # no rows stacked (onnxruntime says [0, 0, 3], the reference evaluator fails: the per-iteration
    # shape of an empty scan output is the body's, [1, 3])
    assert ours["stacked"].shape == (0, 1, 3) and stacked.size == 0
