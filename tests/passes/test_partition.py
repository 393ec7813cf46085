"""The `partition` pass on synthetic devices whose best split is known by hand, its search against
brute force, its Transfers, and the interpreter's outputs (against onnxruntime) after it."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

from ir import Builder, DType, Graph, Node, TensorType, run_graph, verify
from ir.devices import DeviceModel, DeviceSet, DeviceSetError, Link
from ir.parser import parse_hir
from ir.placement import node_device
from ir.printer import print_graph
from passes import PassContext, PassFailedError, PassManager, PipelineError, parse_pipeline
from passes.partition import Partition, render_summary
from passes.partition_cost import build_problem, partition_units
from passes.partition_search import evaluate, search

GPU = "opencl:gpu"
MS = 1e-3


def chain(ops: list[str], width: int = 64) -> Graph:
    """x -> ops[0] -> ops[1] -> ... -> output; node i is named n<i>; a MatMul has a width^2 weight."""
    g = Graph()
    v = g.add_input("x", TensorType(DType.F32, (1, width)))
    for i, op in enumerate(ops):
        operands = [v]
        if op == "MatMul":
            rng = np.random.default_rng(i)
            operands.append(g.add_constant(f"w{i}", rng.standard_normal((width, width)).astype(np.float32)))
        (v,) = Builder(g).op(op, operands, name=f"n{i}")
    g.set_outputs([v])
    return g


def timed(name: str, seconds: dict[str, float], **fields) -> DeviceModel:  # type: ignore[no-untyped-def]
    """A device whose node times are `seconds[op]` (ops it lacks: not in `seconds`)."""
    return DeviceModel(
        name, 1e9, 1e9, ops=frozenset(seconds), node_time=lambda n: seconds.get(n.op), **fields
    )


def two_devices(gpu_seconds: dict[str, float], link: Link | None = None, **gpu_fields) -> DeviceSet:  # type: ignore[no-untyped-def]
    cpu = timed("cpu", {"MatMul": 10 * MS, "Erf": 1 * MS, "Relu": 1 * MS, "Add": 1 * MS})
    gpu = timed(GPU, gpu_seconds, **gpu_fields)
    return DeviceSet((cpu, gpu), (link or Link("cpu", GPU, 1e10, 1e-5),))


FAST_GPU = {"MatMul": 1 * MS, "Relu": 0.1 * MS, "Add": 0.1 * MS}  # no Erf


def partition(graph: Graph, devices: DeviceSet, **options) -> tuple[Graph, PassContext]:  # type: ignore[no-untyped-def]
    """Run the pass with verification; the interpreter's outputs must not change by one bit."""
    inputs = {
        v.name: np.random.default_rng(0).standard_normal(v.type.shape).astype(np.float32)
        for v in graph.inputs
    }
    before = run_graph(graph, inputs)
    ctx = PassContext(devices=devices)
    graph = PassManager([Partition(**options)], verify_each=True).run(graph, ctx)
    after = run_graph(graph, inputs)
    assert list(after) == list(before)
    for name in before:
        np.testing.assert_array_equal(after[name], before[name])
    return graph, ctx


def placement(graph: Graph) -> dict[str, str | None]:
    return {n.name: node_device(n) for n in graph.nodes if n.op != "Transfer"}


def transfers(graph: Graph) -> list[tuple[str, str | None, str]]:
    return [_crossing(n) for n in graph.nodes if n.op == "Transfer"]


def _crossing(node: Node) -> tuple[str, str | None, str]:
    (moved,) = [o for o in node.operands if o is not None]
    return moved.name, moved.type.device, node.attrs["to"]


def test_a_fast_device_lacking_one_op_sends_only_that_op_to_the_cpu() -> None:
    graph, ctx = partition(chain(["MatMul", "Erf", "MatMul", "Relu"]), two_devices(FAST_GPU))
    assert placement(graph) == {"n0": GPU, "n1": "cpu", "n2": GPU, "n3": GPU}
    # two transfers around the Erf, and the graph input in and the output out through the host
    assert transfers(graph) == [
        ("x", "cpu", GPU),
        ("n0", GPU, "cpu"),
        ("n1", "cpu", GPU),
        ("n3.opencl_gpu", GPU, "cpu"),
    ]
    assert graph.outputs[0].name == "n3" and graph.outputs[0].type.device == "cpu"
    summary = ctx.results["partition"]
    assert summary.exact and summary.transfers == 4 and summary.bytes_moved == 4 * 256
    link = 4 * (1e-5 + 256 / 1e10)
    assert summary.predicted == pytest.approx(1 * MS + 1 * MS + 1 * MS + 0.1 * MS + link)


def test_a_fusion_group_is_one_unit_that_moves_whole() -> None:
    graph = PassManager(parse_pipeline("fuse")).run(chain(["MatMul", "Relu", "MatMul"]), PassContext())
    assert [len(u.nodes) for u in partition_units(graph)] == [2, 1]
    no_relu = {"MatMul": 1 * MS}  # the GPU could take n0, but not the Relu fused into it
    graph, _ = partition(graph, two_devices(no_relu))
    assert placement(graph) == {"n0": "cpu", "n1": "cpu", "n2": GPU}
    assert [t[0] for t in transfers(graph)] == ["n1", "n2.opencl_gpu"]


def test_a_slow_link_keeps_everything_on_one_device() -> None:
    slow = Link("cpu", GPU, bandwidth=1e3, latency=1e-3)  # 256 bytes: 0.26 s a transfer
    graph, ctx = partition(chain(["MatMul", "Relu", "MatMul"]), two_devices(FAST_GPU, slow))
    assert set(placement(graph).values()) == {"cpu"}
    assert transfers(graph) == [] and ctx.results["partition"].transfers == 0


def test_zero_copy_transfers_are_marked_and_cost_nothing() -> None:
    shared = Link("cpu", GPU, bandwidth=1.0, latency=1.0, shared_memory=True)
    graph, ctx = partition(chain(["MatMul", "Erf", "MatMul"]), two_devices(FAST_GPU, shared))
    assert placement(graph) == {"n0": GPU, "n1": "cpu", "n2": GPU}
    assert {n.attrs["zero_copy"] for n in graph.nodes if n.op == "Transfer"} == {1}
    summary = ctx.results["partition"]
    assert summary.bytes_moved == 0 and summary.predicted == pytest.approx(3 * MS)


def test_the_memory_budget_of_the_fast_device_is_respected() -> None:
    weight, working_set = 64 * 64 * 4, 2 * 256
    devices = two_devices(FAST_GPU, memory=weight + working_set)  # room for one MatMul's weight
    graph, _ = partition(chain(["MatMul", "MatMul", "MatMul"]), devices)
    assert sorted(map(str, placement(graph).values())) == ["cpu", "cpu", GPU]
    unbounded, _ = partition(chain(["MatMul", "MatMul", "MatMul"]), two_devices(FAST_GPU))
    assert set(placement(unbounded).values()) == {GPU}
    with pytest.raises(PassFailedError, match="no placement keeps every device within its memory budget"):
        PassManager([Partition(placement="n[01]=opencl:gpu")]).run(
            chain(["MatMul"] * 3), PassContext(devices=devices)
        )


def test_forced_placements_are_honoured() -> None:
    graph, _ = partition(chain(["MatMul", "Erf", "MatMul"]), two_devices(FAST_GPU), placement="n2=cpu")
    assert placement(graph) == {"n0": GPU, "n1": "cpu", "n2": "cpu"}
    graph, _ = partition(chain(["MatMul", "Erf", "MatMul"]), two_devices(FAST_GPU), placement="Mat*=cpu")
    assert set(placement(graph).values()) == {"cpu"}


def test_an_impossible_forced_placement_names_the_node_and_the_device() -> None:
    (pass_,) = parse_pipeline('partition{placement="n1=opencl:gpu"}')
    ctx = PassContext(devices=two_devices(FAST_GPU))
    with pytest.raises(
        PassFailedError, match=r"Erf node 'n1' cannot run on opencl:gpu.*no kernel for op Erf"
    ):
        PassManager([pass_]).run(chain(["MatMul", "Erf"]), ctx)
    with pytest.raises(PassFailedError, match="no device npu"):
        PassManager([Partition(placement="n1=npu")]).run(chain(["MatMul", "Erf"]), ctx)
    with pytest.raises(PassFailedError, match="matches no node"):
        PassManager([Partition(placement="conv*=cpu")]).run(chain(["MatMul", "Erf"]), ctx)
    with pytest.raises(PipelineError, match="objective='speed': expected one of latency, throughput"):
        parse_pipeline("partition{objective=speed}")
    with pytest.raises(PassFailedError, match="partition needs devices"):
        PassManager([Partition()]).run(chain(["MatMul"]), PassContext())


def test_throughput_balances_stages_where_latency_keeps_one_device() -> None:
    even = {"Relu": 2 * MS}
    devices = DeviceSet((timed("cpu", even), timed(GPU, even)), (Link("cpu", GPU, 1e9, 0.5 * MS),))
    graph, ctx = partition(chain(["Relu"] * 4), devices)
    assert set(placement(graph).values()) == {"cpu"}
    assert ctx.results["partition"].predicted == pytest.approx(8 * MS)
    graph, ctx = partition(chain(["Relu"] * 4), devices, objective="throughput")
    assert list(placement(graph).values()).count(GPU) == 2
    # the GPU's stage: 2 Relus and the copies in and out on its queue (the host's: 2 Relus)
    assert ctx.results["partition"].predicted == pytest.approx(4 * MS + 2 * 0.5 * MS, rel=1e-3)


def test_a_device_on_the_hosts_cores_never_works_beside_it() -> None:
    """An OpenCL CPU device (`runs_on = cpu`) shares the host's time: splitting gains no overlap, so
    the stream keeps one device and the period is the whole work; a faster unit still moves there."""
    even = {"Relu": 2 * MS}
    pocl = "opencl:cpu"
    shared = Link("cpu", pocl, 1e9, 0.0, shared_memory=True)
    devices = DeviceSet((timed("cpu", even), timed(pocl, even, runs_on="cpu")), (shared,))
    graph, ctx = partition(chain(["Relu"] * 4), devices, objective="throughput")
    assert set(placement(graph).values()) == {"cpu"}
    assert ctx.results["partition"].predicted == pytest.approx(8 * MS)
    faster = DeviceSet((timed("cpu", even), timed(pocl, {"Relu": 1 * MS}, runs_on="cpu")), (shared,))
    _, ctx = partition(chain(["Relu"] * 4), faster, objective="throughput")
    assert ctx.results["partition"].predicted == pytest.approx(4 * MS)  # all four there, one at a time
    with pytest.raises(DeviceSetError, match="runs on 'npu'"):
        DeviceSet((timed("cpu", even), timed(pocl, even, runs_on="npu")), (shared,))


def random_dag(count: int, seed: int) -> Graph:
    """Relu/Add nodes, each reading one or two earlier values (a DAG with branches and joins)."""
    rng = np.random.default_rng(seed)
    g = Graph()
    values = [g.add_input("x", TensorType(DType.F32, (1, 64)))]
    for i in range(count):
        picks = rng.choice(len(values), size=min(len(values), int(rng.integers(1, 3))), replace=False)
        operands = [values[int(p)] for p in picks]
        op = "Add" if len(operands) == 2 else "Relu"
        (v,) = Builder(g).op(op, operands, name=f"n{i}")
        values.append(v)
    g.set_outputs([v for v in values[1:] if not v.uses()])
    return g


def random_devices(seed: int, names: tuple[str, ...] = ("cpu", GPU)) -> DeviceSet:
    """Devices with random node times (n<i> by name), linked pairwise with random latencies."""
    rng = np.random.default_rng(seed)
    times = {(d, f"n{i}"): float(rng.uniform(0.1, 2)) * MS for d in names for i in range(64)}

    def model(name: str) -> DeviceModel:
        return DeviceModel(name, 1e9, 1e9, node_time=lambda n: times[name, n.name])

    links = tuple(
        Link(a, b, 1e6, float(rng.uniform(0, 0.3)) * MS) for a, b in itertools.combinations(names, 2)
    )
    return DeviceSet(tuple(model(n) for n in names), links)


@pytest.mark.parametrize("objective", ["latency", "throughput"])
@pytest.mark.parametrize(("seed", "names"), [(0, ("cpu", GPU)), (1, ("cpu", GPU)), (2, ("cpu", GPU)),
                                             (3, (GPU, "cpu", "opencl:accelerator"))])  # fmt: skip
def test_the_exact_search_finds_the_brute_force_optimum(
    seed: int, names: tuple[str, ...], objective: str
) -> None:
    count = 9 if len(names) == 2 else 6
    graph, devices = random_dag(count, seed), random_devices(seed, names)
    units = partition_units(graph)
    problem = build_problem(graph, units, devices, "cpu")
    every = tuple(range(len(names)))
    allowed = [every] * len(units)
    best = min(evaluate(problem, p, objective) for p in itertools.product(every, repeat=len(units)))
    result = search(problem, allowed, objective, exact_units=64, max_states=10**6, beam=1)
    assert result.exact and result.value == pytest.approx(best)
    assert evaluate(problem, result.placement, objective) == pytest.approx(result.value)


@pytest.mark.parametrize("seed", range(3))
def test_the_heuristic_beyond_the_exact_limit_is_never_worse_than_one_device(seed: int) -> None:
    devices = random_devices(seed)
    _, ctx = partition(random_dag(40, seed), devices, exact_units=10, beam=8)
    summary = ctx.results["partition"]
    assert not summary.exact and 0 <= summary.lower_bound <= summary.predicted
    assert summary.gap == pytest.approx(summary.predicted / summary.lower_bound - 1)
    assert "within" in render_summary(summary)[0]
    singles = []
    for device in ("cpu", GPU):
        _, single = partition(random_dag(40, seed), devices, placement=f"*={device}")
        singles.append(single.results["partition"].predicted)
    assert summary.predicted <= min(singles) * (1 + 1e-12)


def test_the_roofline_predicts_from_flops_bytes_and_launch() -> None:
    graph = chain(["MatMul"])
    (unit,) = partition_units(graph)
    slow = DeviceModel("cpu", flops=1e6, bandwidth=1e12, launch=1e-6)
    narrow = DeviceModel("cpu", flops=1e15, bandwidth=1e6, launch=0.0)
    flops, moved = 2 * 64 * 64, 4 * (64 + 64 * 64 + 64)
    assert unit.seconds(slow) == pytest.approx(1e-6 + flops / 1e6)
    assert unit.seconds(narrow) == pytest.approx(moved / 1e6)
    half = DeviceModel("cpu", flops=1e6, bandwidth=1e12, dtype_flops={"f32": 2e6})
    assert unit.seconds(half) == pytest.approx(flops / 2e6)
    assert unit.seconds(DeviceModel("cpu", 1e6, 1e6, dtypes=frozenset({"f16"}))) == math.inf


def test_placement_prints_parses_back_and_the_summary_renders() -> None:
    graph, ctx = partition(chain(["MatMul", "Erf"]), two_devices(FAST_GPU))
    text = print_graph(graph)
    assert 'Transfer(%x) {to = "opencl:gpu", zero_copy = 0} : f32[1,64]{device = "opencl:gpu"}' in text
    parsed = parse_hir(text, weights={v.name: v.constant_array() for v in graph.constants.values()})
    verify(parsed)
    assert print_graph(parsed) == text
    lines = render_summary(ctx.results["partition"])
    assert lines[0].startswith("partition (latency):") and "(exact)" in lines[0]
    assert any(line.strip().startswith("opencl:gpu: 1 nodes") for line in lines)
    assert lines[-1].strip() == "transfers: 2 (0 zero-copy), 512 bytes moved"
    assert ctx.statistics["partition"]["transfers"] == 2
    again = PassManager([Partition()]).run(graph, ctx)  # placed already: left alone, with a note
    assert print_graph(again) == text and "already placed" in str(ctx.diagnostics[-1])


def test_a_device_set_reads_from_json(tmp_path: Path) -> None:
    spec = {
        "devices": [
            {"name": "cpu", "flops": 1e10, "bandwidth": 1e10},
            {"name": GPU, "flops": 1e13, "bandwidth": 1e12, "memory": 2**30, "ops": ["MatMul", "Relu"]},
        ],
        "links": [{"a": "cpu", "b": GPU, "bandwidth": 1e10, "latency": 1e-5}],
    }
    path = tmp_path / "devices.json"
    path.write_text(json.dumps(spec))
    (pass_,) = parse_pipeline(f'partition{{devices="{path}"}}')
    graph = PassManager([pass_], verify_each=True).run(
        chain(["MatMul", "Erf", "Relu"], width=512), PassContext()
    )
    assert placement(graph)["n0"] == GPU and placement(graph)["n1"] == "cpu"
    path.write_text(json.dumps({"devices": [{"name": GPU, "flops": 1, "bandwidth": 1}]}))
    with pytest.raises(DeviceSetError, match="the host 'cpu' among them"):
        DeviceSet.from_json(path)
    with pytest.raises(DeviceSetError, match="no link between"):
        DeviceSet((DeviceModel("cpu", 1, 1), DeviceModel(GPU, 1, 1)))


def residual_model():  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(3)
    w1, w2 = (
        numpy_helper.from_array(rng.standard_normal((16, 16)).astype(np.float32), n) for n in ("w1", "w2")
    )
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="mm1"),
        helper.make_node("Erf", ["h"], ["e"], name="erf"),
        helper.make_node("MatMul", ["e", "w2"], ["m"], name="mm2"),
        helper.make_node("Add", ["m", "h"], ["s"], name="add"),
        helper.make_node("Relu", ["s"], ["y"], name="relu"),
    ]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 16])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 16])
    graph = helper.make_graph(nodes, "residual", [x], [y], [w1, w2])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_a_partitioned_onnx_model_matches_onnxruntime() -> None:
    ort = pytest.importorskip("onnxruntime")
    from hai_compiler.onnx_import import import_onnx

    model = residual_model()
    x = np.random.default_rng(4).standard_normal((2, 16)).astype(np.float32)
    want = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"]).run(
        None, {"x": x}
    )[0]
    graph, ctx = partition(import_onnx(model), two_devices(FAST_GPU))
    assert placement(graph) == {"mm1": GPU, "erf": "cpu", "mm2": GPU, "add": GPU, "relu": GPU}
    # h is read on the CPU (erf) and the GPU (add): made on the GPU, it moves once, to the CPU
    assert [t[:2] for t in transfers(graph)].count(("h", GPU)) == 1
    np.testing.assert_allclose(run_graph(graph, {"x": x})["y"], want, rtol=1e-5, atol=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("objective", ["latency", "throughput"])
def test_a_real_model_partitioned_after_the_default_pipeline_matches_onnxruntime(objective: str) -> None:
    ort = pytest.importorskip("onnxruntime")
    from hai_compiler import real_models
    from hai_compiler.onnx_import import import_onnx

    spec = real_models.MODELS["ppocr_cls"]
    path = real_models.fetch("ppocr_cls")
    feeds = real_models.sample_inputs(spec.input_shapes, "image")
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    want = session.run(None, feeds)
    graph = PassManager(parse_pipeline("default")).run(
        import_onnx(str(path), spec.input_shapes), PassContext()
    )
    devices = DeviceSet(
        (DeviceModel("cpu", 5e10, 2e10, launch=2e-6), DeviceModel(GPU, 2e13, 1e12, launch=8e-6)),
        (Link("cpu", GPU, 1.2e10, 1e-5),),
    )
    graph, ctx = partition(graph, devices, objective=objective)
    summary = ctx.results["partition"]
    assert {s.device for s in summary.shares if s.nodes} == {"cpu", GPU}  # both devices take work
    assert summary.predicted >= summary.lower_bound > 0
    got = run_graph(graph, feeds)
    for actual, expected in zip(got.values(), want, strict=True):
        np.testing.assert_allclose(actual, expected, rtol=1e-4, atol=1e-5)
