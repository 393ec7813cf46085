"""`plan-memory` properties: random DAGs of pointwise, view and concat ops, and the real models.

On every graph the plan must pass `check_memory_plan`, fit in no more than the
sum of its (aligned) tensors, and — the independent check — running the graph
with every tensor at its planned offset in one arena must give the
interpreter's outputs exactly.
"""

from __future__ import annotations

import time

import numpy as np
import pytest
from arena_helpers import run_in_arena
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pass_helpers import f32, random_inputs

from ir import Builder, Graph, Value, run_graph, verify
from ir.memory import align_up
from ir.parser import parse_hir
from passes import PassContext, PassManager, parse_pipeline
from passes.memory_check import MemoryPlanError, check_memory_plan, memory_report

UNARY = ("Relu", "Sigmoid", "Neg", "Abs")
BINARY = ("Add", "Mul", "Sub")


def _view(builder: Builder, value: Value, choice: int) -> Value:
    shape = value.type.shape
    if choice == 0:
        (out,) = builder.op("Reshape", [value], {"shape": [value.type.size]})
    elif choice == 1:
        (out,) = builder.op("Unsqueeze", [value], {"axes": [0]})
    elif choice == 2 and shape and shape[0] == 1:
        (out,) = builder.op("Squeeze", [value], {"axes": [0]})
    elif choice == 3:
        (out,) = builder.op("Flatten", [value], {"axis": min(1, len(shape))})
    else:
        (out,) = builder.op("Identity", [value])
    return out


@st.composite
def random_dags(draw: st.DrawFn) -> Graph:
    """A graph of 1-3 inputs and 1-14 nodes, each reading earlier values; outputs are a random subset."""
    graph = Graph()
    pool = [
        graph.add_input(f"x{i}", f32(*draw(st.sampled_from([(2, 3), (6,), (1, 6)]))))
        for i in range(draw(st.integers(1, 3)))
    ]
    builder = Builder(graph)
    for _ in range(draw(st.integers(1, 14))):
        kind = draw(st.sampled_from(["unary", "unary", "binary", "binary", "view", "concat"]))
        value = draw(st.sampled_from(pool))
        partners = [v for v in pool if v.type.shape == value.type.shape]
        if kind == "unary":
            (out,) = builder.op(draw(st.sampled_from(UNARY)), [value])
        elif kind == "binary":
            (out,) = builder.op(draw(st.sampled_from(BINARY)), [value, draw(st.sampled_from(partners))])
        elif kind == "view":
            out = _view(builder, value, draw(st.integers(0, 4)))
        else:
            if not value.type.shape:
                continue
            (out,) = builder.op("Concat", [value, draw(st.sampled_from(partners))], {"axis": 0})
        pool.append(out)
    produced = [v for v in pool if v.producer is not None]
    outputs = draw(st.lists(st.sampled_from(pool), max_size=3, unique=True))
    graph.set_outputs(list(dict.fromkeys([produced[-1], *outputs])))
    return graph


OPTIONS = st.fixed_dictionaries(
    {"alignment": st.sampled_from([1, 8, 64]), "in-place": st.booleans(), "arena-inputs": st.booleans()}
)


def _plan(graph: Graph, options: dict[str, object]) -> tuple[Graph, dict[str, int]]:
    text = " ".join(f"{k}={str(v).lower()}" for k, v in options.items())
    ctx = PassContext()
    graph = PassManager(parse_pipeline(f"plan-memory{{{text}}}"), verify_each=True).run(graph, ctx)
    return graph, ctx.statistics["plan-memory"]


def assert_plan_holds(graph: Graph, inputs: dict[str, np.ndarray], alignment: int) -> dict[str, int]:
    check_memory_plan(graph)
    report = memory_report(graph)
    planned = [v for v in graph.values() if v.type.offset is not None]
    assert report["arena_bytes"] <= sum(align_up(v.type.nbytes, alignment) for v in planned)
    simulated = run_in_arena(graph, inputs)
    for name, want in run_graph(graph, inputs).items():
        np.testing.assert_array_equal(simulated[name], want, err_msg=name)
    return report


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graph=random_dags(), options=OPTIONS)
def test_random_graphs_get_sound_plans(graph: Graph, options: dict[str, object]) -> None:
    verify(graph)
    inputs = random_inputs(graph)
    want = run_graph(graph, inputs)
    graph, stats = _plan(graph, options)
    for name, array in run_graph(graph, inputs).items():
        np.testing.assert_array_equal(array, want[name])
    report = assert_plan_holds(graph, inputs, int(options["alignment"]))  # type: ignore[call-overload]
    assert report["arena_bytes"] == stats["arena-bytes"] and report["naive_bytes"] == stats["naive-bytes"]
    assert report["in_place"] == stats["in-place"] and report["views"] == stats["views"]
    if not options["in-place"]:
        assert stats["in-place"] == 0


def test_the_simulated_arena_catches_a_plan_that_overwrites_a_live_tensor() -> None:
    # The checker's own independent witness: the bad plan really computes the wrong thing.
    text = """graph @main(%x: f32[10]) -> (%y) {
  %a = Relu(%x) : f32[10]{offset = 0}
  %b = Neg(%a) : f32[10]{offset = 0}
  %y = Add(%a, %b) : f32[10]{offset = 64}
  return %y
}
"""
    graph = parse_hir(text)
    inputs = {"x": np.abs(np.random.default_rng(0).standard_normal(10)).astype(np.float32) + 1}
    assert not np.array_equal(run_in_arena(graph, inputs)["y"], run_graph(graph, inputs)["y"])
    with pytest.raises(MemoryPlanError, match="%a .* and %b"):
        check_memory_plan(graph)


def _real_model_graph(name: str) -> Graph:
    real_models = pytest.importorskip("hai_compiler.real_models")
    from hai_compiler.onnx_import import import_onnx

    graph = import_onnx(real_models.fetch(name), input_shapes=real_models.MODELS[name].input_shapes)
    return PassManager(parse_pipeline("default")).run(graph, PassContext())


def _check_real_model(name: str) -> None:
    from hai_compiler import real_models

    graph = _real_model_graph(name)
    started = time.perf_counter()
    graph, stats = _plan(graph, {})
    assert time.perf_counter() - started < 1.0
    report = assert_plan_holds(graph, real_models.MODELS[name].sample_inputs(), 64)
    assert report["arena_bytes"] < report["naive_bytes"] / 4
    assert stats["in-place"] > 0


def test_fast_real_model_plan_runs_in_one_arena() -> None:
    _check_real_model("ppocr_cls")


@pytest.mark.slow
@pytest.mark.parametrize("name", ["ppocr_det", "ppocr_rec", "magika", "orientation"])
def test_real_model_plans_run_in_one_arena(name: str) -> None:
    _check_real_model(name)
