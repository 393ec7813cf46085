"""Loops run at run time (ir/loops.py, runtime/loops.py): a Loop too long to unroll, or whose
iterations only the inputs decide, compiles its body once and matches onnxruntime."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from compile_helpers import assert_matches_onnxruntime, onnxruntime_outputs, with_manifest
from onnx import TensorProto, helper

import hai_compiler

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "onnx_import"))
from control_flow_models import _const, loop, model  # noqa: E402

F32, I64, BOOL = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL


def value(name: str, elem: int, shape: list[int]) -> onnx.ValueInfoProto:
    return helper.make_tensor_value_info(name, elem, shape)


def body_graph(
    nodes: list[onnx.NodeProto], carried: list[tuple[str, str]], scans: tuple[str, ...] = ()
) -> onnx.GraphProto:
    """A Loop body over `x` rows of 4 (`carried`: (input, output) names, f32[4] each)."""
    return helper.make_graph(
        nodes,
        "body",
        [value("i", I64, []), value("cond", BOOL, []), *(value(a, F32, [4]) for a, _ in carried)],
        [
            value("cond_out", BOOL, []),
            *(value(b, F32, [4]) for _, b in carried),
            *(value(s, F32, [4]) for s in scans),
        ],
    )


def loop_model(
    body: onnx.GraphProto, trips: int, outputs: list[tuple[str, list[int]]], rows: int
) -> onnx.ModelProto:
    """A Loop of `trips` iterations of `body` over x (f32[rows, 4]); its carried acc starts at 0..3."""
    nodes = [_const("acc0", np.arange(4, dtype=np.float32))]
    nodes.append(_const("trips", np.array(trips, np.int64)))
    nodes.append(
        helper.make_node("Loop", ["trips", "", "acc0"], [n for n, _ in outputs], name="walk", body=body)
    )
    graph = helper.make_graph(
        nodes, "loop", [value("x", F32, [rows, 4])], [value(n, F32, s) for n, s in outputs]
    )
    return model(graph, opset=17)


def gather_loop(rows: int) -> onnx.ModelProto:
    """acc += x[i] (a Gather by the iteration number) for every row; 2 * acc stacked per iteration."""
    body = body_graph(
        [
            helper.make_node("Gather", ["x", "i"], ["row"], axis=0),
            helper.make_node("Add", ["acc", "row"], ["acc_out"]),
            helper.make_node("Identity", ["cond"], ["cond_out"]),
            _const("two", np.array(2, np.float32)),
            helper.make_node("Mul", ["acc_out", "two"], ["doubled"]),
        ],
        [("acc", "acc_out")],
        ("doubled",),
    )
    return loop_model(body, rows, [("final", [4]), ("stacked", [rows, 4])], rows)


def until_loop(rows: int, scan: bool = False) -> onnx.ModelProto:
    """acc += x[i] while sum(acc) < 50 (an early exit the data decides), at most `rows` times."""
    body = body_graph(
        [
            helper.make_node("Gather", ["x", "i"], ["row"], axis=0),
            helper.make_node("Add", ["acc", "row"], ["acc_out"]),
            helper.make_node("ReduceSum", ["acc_out"], ["total"], keepdims=0),
            _const("limit", np.array(50, np.float32)),
            helper.make_node("Less", ["total", "limit"], ["cond_out"]),
            helper.make_node("Identity", ["acc_out"], ["seen"]),
        ],
        [("acc", "acc_out")],
        ("seen",) if scan else (),
    )
    outputs = [("final", [4]), *([("stacked", [rows, 4])] if scan else [])]
    return loop_model(body, rows, outputs, rows)


def saved(built: onnx.ModelProto, tmp_path: Path, name: str) -> Path:
    path = tmp_path / f"{name}.onnx"
    onnx.save(built, path)
    return path


def plan_of(artifact: Path) -> dict:
    return json.loads((artifact / "manifest.json").read_text())["plan"]


def test_a_long_loop_runs_its_body_at_run_time_and_matches_onnxruntime(tmp_path: Path) -> None:
    path = saved(gather_loop(600), tmp_path, "gather")
    artifact = hai_compiler.compile(path, output=tmp_path / "gather.hai")
    plan = plan_of(artifact)
    (span,) = plan["loops"]
    assert span["max_trips"] == 600 and len(span["scans"]) == 1 and len(span["carry"]) == 1
    assert len(plan["steps"]) < 10  # the body's kernels once, not 600 copies
    x = np.random.default_rng(0).standard_normal((600, 4)).astype(np.float32)
    assert_matches_onnxruntime(artifact, path, {"x": x})


def test_a_short_loop_still_unrolls(tmp_path: Path) -> None:
    path = saved(gather_loop(3), tmp_path, "short")
    artifact = hai_compiler.compile(path, output=tmp_path / "short.hai")
    assert plan_of(artifact)["loops"] == []
    x = np.random.default_rng(1).standard_normal((3, 4)).astype(np.float32)
    assert_matches_onnxruntime(artifact, path, {"x": x})


def test_a_loop_stops_when_its_condition_computed_at_run_time_fails(tmp_path: Path) -> None:
    import runtime

    path = saved(until_loop(200), tmp_path, "until")
    artifact = hai_compiler.compile(path, output=tmp_path / "until.hai")
    loaded = runtime.load(artifact)
    feeds = []
    for scale in (0.5, 2.0, 10.0):  # exits after about 100, 25 and 5 rows
        x = np.full((200, 4), scale / 4, np.float32) + np.random.default_rng(2).random((200, 4), np.float32)
        (want,) = onnxruntime_outputs(path, {"x": x}).values()
        np.testing.assert_allclose(loaded.run({"x": x})["final"], want, rtol=1e-5)
        feeds.append({"x": x})
    streamed = [out["final"] for out in loaded.run_many(feeds, in_flight=2)]  # the loop on arenas of its own
    for got, feed in zip(streamed, feeds, strict=True):
        np.testing.assert_array_equal(got, loaded.run(feed)["final"])


def test_scan_outputs_of_a_loop_that_stops_early_are_a_clear_error(tmp_path: Path) -> None:
    import runtime
    from hai_compiler.onnx_import.converters.control import ScanLengthWarning
    from runtime.errors import ModelInputError

    path = saved(until_loop(200, scan=True), tmp_path, "until_scan")
    with pytest.warns(ScanLengthWarning, match=r"node 'walk' \(Loop\): its condition .* 200 rows"):
        artifact = hai_compiler.compile(path, output=tmp_path / "until_scan.hai")
    x = np.ones((200, 4), np.float32)  # the sum starts at 6 and passes 50 after 11 rows
    with pytest.raises(ModelInputError, match=r"Loop 'walk' stopped after 11 iterations.*200 rows"):
        runtime.load(artifact).run({"x": x})


@pytest.mark.parametrize("m", [0, 2, 7])
def test_a_trip_count_from_the_inputs_is_read_at_run_time(tmp_path: Path, m: int) -> None:
    import runtime

    path = saved(loop(trip_count=None, scan_output=False, by_row=False), tmp_path, "loop_on_input")
    artifact = hai_compiler.compile(path, output=tmp_path / "on_input.hai")
    assert len(plan_of(artifact)["loops"]) == 1
    feeds = {"x": np.random.default_rng(m).standard_normal((6, 3)).astype(np.float32), "m": np.array(m)}
    (want,) = onnxruntime_outputs(path, feeds).values()  # zeros for m = 0: the initial value
    np.testing.assert_allclose(runtime.load(artifact).run(feeds)["final"], want, rtol=1e-6)


def test_nested_loops_and_an_if_inside_a_loop_match_onnxruntime(tmp_path: Path) -> None:
    """For each row i: acc += sum_{j <= i} x[i] * j (an inner loop of i + 1 iterations) when
    sum(x[i]) > 0, else acc -= x[i] (an If in the body, decided per iteration)."""
    inner = helper.make_graph(
        [
            helper.make_node("Cast", ["j"], ["jf"], to=F32),
            helper.make_node("Mul", ["row", "jf"], ["scaled"]),
            helper.make_node("Add", ["s", "scaled"], ["s_out"]),
            helper.make_node("Identity", ["c"], ["c_out"]),
        ],
        "inner",
        [value("j", I64, []), value("c", BOOL, []), value("s", F32, [4])],
        [value("c_out", BOOL, []), value("s_out", F32, [4])],
    )
    then_branch = helper.make_graph(
        [
            _const("one", np.array(1, np.int64)),
            helper.make_node("Add", ["i", "one"], ["count"]),
            helper.make_node("Loop", ["count", "", "acc"], ["t"], body=inner),
        ],
        "then", [], [value("t", F32, [4])],
    )  # fmt: skip
    else_branch = helper.make_graph(
        [helper.make_node("Sub", ["acc", "row"], ["e"])], "else", [], [value("e", F32, [4])]
    )
    body = body_graph(
        [
            helper.make_node("Gather", ["x", "i"], ["row"], axis=0),
            helper.make_node("ReduceSum", ["row"], ["total"], keepdims=0),
            _const("zero", np.array(0, np.float32)),
            helper.make_node("Greater", ["total", "zero"], ["positive"]),
            helper.make_node(
                "If", ["positive"], ["acc_out"], then_branch=then_branch, else_branch=else_branch
            ),
            helper.make_node("Identity", ["cond"], ["cond_out"]),
        ],
        [("acc", "acc_out")],
    )
    path = saved(loop_model(body, 60, [("final", [4])], 60), tmp_path, "nested")
    artifact = hai_compiler.compile(path, output=tmp_path / "nested.hai")
    spans = plan_of(artifact)["loops"]
    assert [s["parent"] for s in spans] == [-1, 0]
    x = np.random.default_rng(3).standard_normal((60, 4)).astype(np.float32)
    assert_matches_onnxruntime(artifact, path, {"x": x})


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda span: span.update(stop=10**6), r"loop 0 \(walk\) spans steps"),
        (lambda span: span["next_condition"].update(dtype="float32"), r"next_condition is float32\[\]"),
        (lambda span: span["carry"][0]["destination"].update(offset=1 << 30), r"carry copy #0 .* overruns"),
    ],
)
def test_load_refuses_a_bad_loop_span(tmp_path: Path, edit, message: str) -> None:  # type: ignore[no-untyped-def]
    import runtime
    from runtime.errors import ArtifactError

    path = saved(gather_loop(200), tmp_path, "gather")
    artifact = hai_compiler.compile(path, output=tmp_path / "gather.hai")
    data = json.loads((artifact / "manifest.json").read_text())
    edit(data["plan"]["loops"][0])
    with pytest.raises(ArtifactError, match=message):
        runtime.load(with_manifest(artifact, tmp_path / "edited.hai", data))


def test_onnx_loop_conformance_case_runs_at_run_time(monkeypatch: pytest.MonkeyPatch) -> None:
    """ONNX's own Loop case (5 iterations, a scan output), with unrolling off, through compile and
    the runtime's loop."""
    import passes.flatten_control_flow as pass_module
    from hai_compiler.conformance import as_array, compare, node_cases
    from hai_compiler.onnx_backend import HaiCompiledBackend
    from hai_compiler.onnx_import.converters import control
    from ir.flatten import flatten

    monkeypatch.setattr(control, "SMALL_UNROLL", 0)
    monkeypatch.setattr(pass_module, "flatten", lambda graph, most, _: flatten(graph, most, 0))
    (case,) = [c for c in node_cases() if c.name == "test_loop11"]
    rep = HaiCompiledBackend.prepare(case.model)
    for inputs, expected in case.data_sets:
        outputs = rep.run([as_array(x) for x in inputs])
        compare([as_array(x) for x in expected], outputs, case.rtol, case.atol)
    manifests = list(Path(rep._workdir.name).glob("*.hai/manifest.json"))  # type: ignore[attr-defined]
    assert manifests and all(len(json.loads(m.read_text())["plan"]["loops"]) == 1 for m in manifests)


def test_a_lowered_loop_prints_parses_and_refuses_the_interpreter() -> None:
    from hai_compiler.onnx_import import import_onnx
    from ir import IRError, run_graph, verify
    from ir.loops import lower_loops
    from ir.parser import parse_hir
    from ir.printer import print_graph

    graph = import_onnx(gather_loop(200))
    x = np.random.default_rng(4).standard_normal((200, 4)).astype(np.float32)
    before = run_graph(graph, {"x": x})  # the IR Loop runs in the interpreter
    (want,) = onnxruntime_outputs_of(gather_loop(200), {"x": x})[:1]
    np.testing.assert_allclose(before["final"], want, rtol=1e-6)
    assert lower_loops(graph) == 1
    verify(graph)
    assert [n.op for n in graph.nodes if n.op.startswith("Loop")] == ["LoopBegin", "LoopEnd"]
    text = print_graph(graph)
    assert print_graph(parse_hir(text)) == text
    with pytest.raises(IRError, match=r"only a compiled plan repeats"):
        run_graph(graph, {"x": x})


def onnxruntime_outputs_of(built: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    import onnxruntime as ort

    session = ort.InferenceSession(built.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def test_the_hazard_check_sees_a_memory_plan_that_forgets_the_next_iteration(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """x3 = 3x before the loop, read by every iteration: planned as if the body ran once, its bytes go
    to the body's later values, and the check's second iteration finds them overwritten."""
    import passes.memory_plan as planner
    from ir import HaiError

    built = gather_loop(200)
    built.graph.node.insert(0, _const("three", np.array(3, np.float32)))
    built.graph.node.insert(1, helper.make_node("Mul", ["x", "three"], ["x3"]))
    loop_node = next(n for n in built.graph.node if n.op_type == "Loop")
    gather = next(n for n in loop_node.attribute[0].g.node if n.op_type == "Gather")
    gather.input[0] = "x3"
    path = saved(built, tmp_path, "x3")
    x = np.random.default_rng(5).standard_normal((200, 4)).astype(np.float32)
    assert_matches_onnxruntime(hai_compiler.compile(path, output=tmp_path / "x3.hai"), path, {"x": x})
    monkeypatch.setattr(planner, "extend_lifetimes", lambda graph, step, last: {})
    with pytest.raises(HaiError, match=r"reads %.* which hold"):
        hai_compiler.compile(path, output=tmp_path / "broken.hai")


def decoder_loop(steps: int) -> onnx.ModelProto:
    """SLANet's decoder pattern: a counter carried as i64[1]; each iteration writes its output row
    into a carried [1, steps, 4] buffer at the counter (Slice and Range from the counter to
    min(steps, float(counter) + 1), ScatterElements); the condition is counter + 1 < steps; M 1024."""
    rng = np.random.default_rng(7)
    nodes = [
        helper.make_node("MatMul", ["h", "w"], ["hw"]),
        helper.make_node("Add", ["hw", "x"], ["pre"]),
        helper.make_node("Tanh", ["pre"], ["h_out"]),
        helper.make_node("MatMul", ["h_out", "w2"], ["y"]),
        helper.make_node("Cast", ["counter"], ["counter_f"], to=F32),
        helper.make_node("Add", ["counter_f", "one_f"], ["next_f"]),
        helper.make_node("Cast", ["next_f"], ["next"], to=I64),
        helper.make_node("Shape", ["buf"], ["buf_shape"]),
        helper.make_node("Gather", ["buf_shape", "one"], ["rows"], axis=0),
        helper.make_node("Min", ["rows", "next"], ["end"]),
        helper.make_node("Slice", ["buf", "counter", "end", "one", "one"], ["row"]),
        helper.make_node("Shape", ["row"], ["row_shape"]),
        helper.make_node("Unsqueeze", ["y", "one"], ["y3"]),
        helper.make_node("Expand", ["y3", "row_shape"], ["update"]),
        helper.make_node("Squeeze", ["counter"], ["first"]),
        helper.make_node("Squeeze", ["end"], ["last"]),
        helper.make_node("Squeeze", ["one"], ["step"]),
        helper.make_node("Range", ["first", "last", "step"], ["at"]),
        helper.make_node("Reshape", ["at", "column"], ["at3"]),
        helper.make_node("Tile", ["at3", "repeats"], ["indices"]),
        helper.make_node("ScatterElements", ["buf", "indices", "update"], ["buf_out"], axis=1),
        helper.make_node("Less", ["next", "limit"], ["cond_out"]),
    ]
    constants = {
        "w": (rng.standard_normal((8, 8)) * 0.5).astype(np.float32),
        "w2": rng.standard_normal((8, 4)).astype(np.float32),
        "one_f": np.array([1.0], np.float32),
        "one": np.array([1], np.int64),
        "column": np.array([1, -1, 1], np.int64),
        "repeats": np.array([1, 1, 4], np.int64),
        "limit": np.array([steps], np.int64),
    }
    body = helper.make_graph(
        [_const(name, array) for name, array in constants.items()] + nodes,
        "decoder",
        [value("i", I64, []), value("cond", BOOL, []), value("counter", I64, [1]),
         value("buf", F32, [1, steps, 4]), value("h", F32, [1, 8])],
        [value("cond_out", BOOL, [1]), value("next", I64, [1]), value("buf_out", F32, [1, steps, 4]),
         value("h_out", F32, [1, 8])],
    )  # fmt: skip
    outer = [
        _const("m", np.array(1024, np.int64)),
        _const("zero", np.array([0], np.int64)),
        _const("empty", np.zeros((1, steps, 4), np.float32)),
        helper.make_node(
            "Loop", ["m", "", "zero", "empty", "x"], ["count", "out", "h_last"], name="decode", body=body
        ),
    ]
    graph = helper.make_graph(
        outer, "decoder", [value("x", F32, [1, 8])],
        [value("count", I64, [1]), value("out", F32, [1, steps, 4]), value("h_last", F32, [1, 8])],
    )  # fmt: skip
    return model(graph, opset=17)


def test_a_decoder_writing_row_by_row_at_its_counter_matches_onnxruntime(tmp_path: Path) -> None:
    from hai_compiler.accuracy import relative_error
    from hai_compiler.onnx_import import import_onnx
    from ir import run_graph

    path = saved(decoder_loop(300), tmp_path, "decoder")
    artifact = hai_compiler.compile(path, output=tmp_path / "decoder.hai")
    assert len(plan_of(artifact)["loops"]) == 1
    x = np.random.default_rng(8).standard_normal((1, 8)).astype(np.float32)
    assert_matches_onnxruntime(artifact, path, {"x": x})
    interpreted = run_graph(import_onnx(decoder_loop(300)), {"x": x})  # the IR Loop, its condition [1]
    assert relative_error(interpreted["out"], onnxruntime_outputs(path, {"x": x})["out"]) <= 1e-5


def test_a_loop_of_convs_matches_onnxruntime(tmp_path: Path) -> None:
    """h = tanh(relu(conv(h)) + h) 200 times, the channel means stacked: convs (their layouts and fused
    epilogues) inside a span, and a conv before it."""
    rng = np.random.default_rng(9)
    body = helper.make_graph(
        [_const("w", (rng.standard_normal((8, 8, 3, 3)) * 0.2).astype(np.float32)),
         helper.make_node("Conv", ["h", "w"], ["c"], pads=[1, 1, 1, 1]),
         helper.make_node("Relu", ["c"], ["r"]),
         helper.make_node("Add", ["r", "h"], ["a"]),
         helper.make_node("Tanh", ["a"], ["h_out"]),
         helper.make_node("ReduceMean", ["h_out"], ["s"], axes=[2, 3], keepdims=0),
         helper.make_node("Identity", ["cond"], ["cond_out"])],
        "body",
        [value("i", I64, []), value("cond", BOOL, []), value("h", F32, [1, 8, 16, 16])],
        [value("cond_out", BOOL, []), value("h_out", F32, [1, 8, 16, 16]), value("s", F32, [1, 8])],
    )  # fmt: skip
    graph = helper.make_graph(
        [_const("m", np.array(200, np.int64)),
         _const("w0", (rng.standard_normal((8, 3, 3, 3)) * 0.3).astype(np.float32)),
         helper.make_node("Conv", ["x", "w0"], ["h0"], pads=[1, 1, 1, 1]),
         helper.make_node("Loop", ["m", "", "h0"], ["y", "means"], body=body, name="convs")],
        "convs", [value("x", F32, [1, 3, 16, 16])],
        [value("y", F32, [1, 8, 16, 16]), value("means", F32, [200, 1, 8])],
    )  # fmt: skip
    path = saved(model(graph, opset=17), tmp_path, "convs")
    artifact = hai_compiler.compile(path, output=tmp_path / "convs.hai")
    assert len(plan_of(artifact)["loops"]) == 1
    x = rng.standard_normal((1, 3, 16, 16)).astype(np.float32)
    assert_matches_onnxruntime(artifact, path, {"x": x})


def test_values_the_loop_never_changes_are_read_from_before_it(tmp_path: Path) -> None:
    """v is carried, but given back as Squeeze(Unsqueeze(v) + 0) (as paddle2onnx writes it): the loop
    does not copy it, and v * 2, which reads nothing else, runs once before the loop."""
    from hai_compiler.onnx_import import import_onnx
    from ir.loops import lower_loops

    body = helper.make_graph(
        [
            _const("axis", np.array([0], np.int64)),
            _const("zero", np.zeros((1, 4), np.float32)),
            _const("two", np.array(2, np.float32)),
            helper.make_node("Unsqueeze", ["v", "axis"], ["v1"]),
            helper.make_node("Add", ["v1", "zero"], ["v2"]),
            helper.make_node("Squeeze", ["v2", "axis"], ["v_out"]),
            helper.make_node("Mul", ["v", "two"], ["w"]),
            helper.make_node("Gather", ["x", "i"], ["row"], axis=0),
            helper.make_node("Mul", ["row", "w"], ["step"]),
            helper.make_node("Add", ["acc", "step"], ["acc_out"]),
            helper.make_node("Identity", ["cond"], ["cond_out"]),
        ],
        "body",
        [value("i", I64, []), value("cond", BOOL, []), value("acc", F32, [4]), value("v", F32, [4])],
        [value("cond_out", BOOL, []), value("acc_out", F32, [4]), value("v_out", F32, [4])],
    )  # fmt: skip
    graph = helper.make_graph(
        [_const("m", np.array(300, np.int64)), _const("acc0", np.zeros(4, np.float32)),
         helper.make_node("Loop", ["m", "", "acc0", "v"], ["final", "v_final"], body=body, name="scale")],
        "invariant", [value("x", F32, [300, 4]), value("v", F32, [4])],
        [value("final", F32, [4]), value("v_final", F32, [4])],
    )  # fmt: skip
    built = model(graph, opset=17)
    lowered = import_onnx(built)
    assert lower_loops(lowered) == 1
    ops = [n.op for n in lowered.nodes]
    begin = next(n for n in lowered.nodes if n.op == "LoopBegin")
    assert len(begin.results) == 3  # iteration, condition, acc: v is not carried
    assert ops.index("Mul") < ops.index("LoopBegin")  # v * 2, once
    path = saved(built, tmp_path, "invariant")
    artifact = hai_compiler.compile(path, output=tmp_path / "invariant.hai")
    rng = np.random.default_rng(10)
    feeds = {
        "x": rng.standard_normal((300, 4)).astype(np.float32),
        "v": rng.standard_normal(4).astype(np.float32),
    }
    assert_matches_onnxruntime(artifact, path, feeds)


def test_a_budget_that_needs_paged_weights_is_refused_naming_the_loop(tmp_path: Path) -> None:
    from targets.plan.paging import LoopPagingError

    path = saved(gather_loop(600), tmp_path, "gather")
    resident = hai_compiler.compile(path, output=tmp_path / "resident.hai")
    peak = json.loads((resident / "manifest.json").read_text())["plan"]["planned_peak_bytes"]
    with pytest.raises(LoopPagingError, match=r"Loop\(s\) walk run at run time .* raise --memory-budget"):
        hai_compiler.compile(path, output=tmp_path / "paged.hai", memory_budget=str(peak - 4096))
