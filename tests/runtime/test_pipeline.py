"""`Model.run_many` (runtime/pipeline.py) on hand-built artifacts with real TVM kernels: every output, in
order, equal to serial `run`s and to numpy; a two-stage plan (two plugin devices registered in the
`hai.devices` entry-point group) whose stage 0 runs input i+1 while stage 1 runs input i; a
cpu/plugin/cpu plan whose CPU stages, of two models streamed at once, all run on one thread, the
oldest input's ready stage first; the arenas in flight counted in the planned peak and refused when
the host lacks room; an empty stream; a bad feed or a failing kernel in the middle named by its input
index, with the model usable afterwards; a stream closed early releases its arenas."""

from __future__ import annotations

import threading
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_model_devices import RecordingDevice, RecordingDriver, RecordingLaunch
from tiny_artifact import (
    ARENA,
    K,
    M,
    N,
    build_kernels,
    numpy_reference,
    tiny_parts,
    tiny_weights,
    write_tiny_artifact,
)

import runtime
from runtime import available_memory
from runtime.artifact import ExecutionPlan, Slot, Step, TensorBinding, kernel_library_file
from runtime.errors import InsufficientMemoryError, InvalidArgumentError, KernelError, ModelInputError
from runtime.hai import Executable, Fences, KernelArg
from runtime.pipeline import pipeline_plan
from targets.artifact import write_artifact

STAGE_WAIT_SECONDS = 20.0
"""How long stage 1 waits to see stage 0 start the next input: only a broken pipeline waits that long."""


@pytest.fixture(scope="module")
def kernels(tmp_path_factory: pytest.TempPathFactory) -> Path:
    pytest.importorskip("tvm")
    return build_kernels(tmp_path_factory.mktemp("kernels") / "tiny.so")


@pytest.fixture
def model(tmp_path: Path, kernels: Path) -> runtime.Model:
    return runtime.load(write_tiny_artifact(tmp_path / "tiny.hai", kernels))


def stream(count: int, seed: int = 0) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(seed)
    return [{"x": rng.standard_normal((M, K)).astype(np.float32)} for _ in range(count)]


def live_buffers(model: runtime.Model) -> int:
    return model.device.query_memory().live_buffers


def assert_serial(model: runtime.Model, feeds: list[dict[str, np.ndarray]], got: list[dict]) -> None:
    """`got` are the outputs of `feeds` in order: equal to serial runs, and close to numpy."""
    assert len(got) == len(feeds)
    for feed, outputs in zip(feeds, got, strict=True):
        serial = model.run(feed)
        assert list(outputs) == list(serial)
        np.testing.assert_array_equal(outputs["y"], serial["y"])
        np.testing.assert_allclose(
            outputs["y"], numpy_reference(feed["x"], tiny_weights()), rtol=1e-5, atol=1e-5
        )


@pytest.mark.parametrize("in_flight", [None, 1, 3])
def test_run_many_yields_every_output_in_order(model: runtime.Model, in_flight: int | None) -> None:
    feeds = stream(9)
    before = live_buffers(model)
    got = list(model.run_many(iter(feeds), in_flight=in_flight))
    assert_serial(model, feeds, got)
    assert live_buffers(model) == before  # the arenas in flight are released with the stream


def test_empty_stream(model: runtime.Model) -> None:
    before = live_buffers(model)
    assert list(model.run_many([])) == []
    assert live_buffers(model) == before


def test_in_flight_must_be_a_positive_int(model: runtime.Model) -> None:
    for wrong in (0, -1, 1.5, "2"):
        with pytest.raises(InvalidArgumentError, match="in_flight must be an int >= 1"):
            model.run_many([], in_flight=wrong)  # type: ignore[arg-type]


def test_bad_feed_names_its_index_after_the_outputs_before_it(model: runtime.Model) -> None:
    feeds: list[Any] = stream(5)
    feeds[3] = {"x": feeds[3]["x"].astype(np.float64)}
    before = live_buffers(model)
    got = []
    with pytest.raises(ModelInputError, match=r"run_many: input 3: model 'tiny': input 'x' must have"):
        for outputs in model.run_many(feeds, in_flight=2):
            got.append(outputs)
    assert_serial(model, feeds[:3], got)  # every input before the bad one
    assert live_buffers(model) == before
    good = stream(4, seed=1)
    assert_serial(model, good, list(model.run_many(good)))  # still usable


def test_closed_early_releases_the_arenas(model: runtime.Model) -> None:
    pulled = []

    def feeds() -> Iterator[dict[str, np.ndarray]]:
        for index, feed in enumerate(stream(50)):
            pulled.append(index)
            yield feed

    before = live_buffers(model)
    outputs = model.run_many(feeds(), in_flight=3)
    first = next(outputs)
    assert live_buffers(model) == before + 3  # one arena per input in flight
    next(outputs)
    outputs.close()
    assert live_buffers(model) == before
    assert len(pulled) <= 6  # the stream stops pulling inputs when closed
    np.testing.assert_array_equal(first["y"], model.run(stream(1)[0])["y"])


def test_arenas_in_flight_are_counted_in_the_peak_and_checked(
    model: runtime.Model, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = pipeline_plan(model, 4)
    each = ARENA + 2 * M * K * 4 + M * N * 4  # arena, inputs twice (aligned copy), outputs once
    assert plan.in_flight == 4 and plan.host_bytes_each == each
    assert len(plan.stages) == 1 and plan.stages[0].device == "cpu"
    peak = 10 * 2**20
    manifest = model.manifest
    monkeypatch.setattr(
        model, "manifest", replace(manifest, plan=replace(manifest.plan, planned_peak_bytes=peak))
    )
    assert pipeline_plan(model, 4).planned_peak_bytes == peak + 4 * each
    monkeypatch.setattr(available_memory, "memory", lambda root: fake_memory(4 * each - 1))
    with pytest.raises(
        InsufficientMemoryError, match=r"keeps 4 input\(s\) in flight in run_many.*in_flight="
    ):
        next(model.run_many(stream(1), in_flight=4))
    assert len(list(model.run_many(stream(3), in_flight=3))) == 3  # 3 fit


def fake_memory(available: int) -> dict[str, Any]:
    return {"cgroup_limit_bytes": None, "available_bytes": available}


# -- two stages on two plugin devices ------------------------------------------------------------------

HOOKS: dict[str, Callable[[str, int], None]] = {}
"""Per device name, called before each kernel run with (kernel, how many runs of it so far)."""


class HookedDevice(RecordingDevice):
    """A recording device that calls `HOOKS[its name]` before each run of a kernel (counted per device)."""

    def __init__(self, info: Any) -> None:
        super().__init__(info)
        self.runs: dict[str, int] = {}

    def record(self, executable: Executable, entry: str, args: Sequence[KernelArg]) -> RecordingLaunch:
        launch = super().record(executable, entry, args)
        inner, name = launch.run, self.info.driver

        def run() -> None:
            count = self.runs.get(entry, 0)
            self.runs[entry] = count + 1
            HOOKS.get(name, lambda kernel, count: None)(entry, count)
            inner()

        launch.run = run
        return launch


class FencedDevice(HookedDevice):
    """A hooked device with the `Fences` extension: each wait on a fence logs the thread that waits."""

    def fence(self) -> Callable[[], None]:
        return lambda: FENCE_WAITS.append(threading.current_thread().name)


FENCE_WAITS: list[str] = []


class FirstDriver(RecordingDriver):
    name = "first"

    def open(self, index: int = 0, **options: Any) -> HookedDevice:
        return FencedDevice(self.probe()[index])


class SecondDriver(RecordingDriver):
    name = "second"

    def open(self, index: int = 0, **options: Any) -> HookedDevice:
        return HookedDevice(self.probe()[index])


@pytest.fixture
def plugins(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A distribution on sys.path registering `first` and `second` under `hai.devices`; clean logs."""
    pytest.importorskip("tvm")
    dist = tmp_path / "fake_hai_stages-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-hai-stages\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        f"[hai.devices]\nfirst = {__name__}:FirstDriver\nsecond = {__name__}:SecondDriver\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    HOOKS.clear()
    FENCE_WAITS.clear()
    yield
    HOOKS.clear()


@pytest.fixture
def two_stages(plugins: None, tmp_path: Path) -> runtime.Model:
    """The tiny plan with matmul on device `first`, bias_relu on `second`."""
    devices = ("first", "second")
    kernels = build_kernels(tmp_path / "tiny.so", devices=devices)
    return runtime.load(write_tiny_artifact(tmp_path / "tiny.hai", kernels, devices=devices))


def test_stage_0_runs_the_next_input_while_stage_1_runs_this_one(two_stages: runtime.Model) -> None:
    """bias_relu of input 0 (stage 1) waits until matmul of input 1 (stage 0) has started: a serial run
    never gets there. The waiter of stage 0's device (`Fences`) waits its fence for each input before
    stage 1 runs it. Outputs equal serial runs."""
    plan = pipeline_plan(two_stages)
    assert [s.device for s in plan.stages] == ["first", "second"] and plan.in_flight == 2
    assert isinstance(two_stages.devices["first"], Fences)
    assert not isinstance(two_stages.devices["second"], Fences)  # synchronized at its stage's end
    second_started = threading.Event()
    overlapped = []

    def first(kernel: str, count: int) -> None:
        if count == 1:
            second_started.set()

    def second(kernel: str, count: int) -> None:
        if count == 0:
            overlapped.append(second_started.wait(STAGE_WAIT_SECONDS))

    HOOKS.update(first=first, second=second)
    feeds = stream(6)
    got = list(two_stages.run_many(feeds))
    assert overlapped == [True]
    assert FENCE_WAITS == ["hai-waiter-first:0"] * len(feeds)
    HOOKS.clear()
    assert_serial(two_stages, feeds, got)


def three_stages(tmp_path: Path, devices: tuple[str, str]) -> runtime.Model:
    """matmul on `devices[0]`, bias_relu on `devices[1]`, bias_relu again on `devices[0]` (z = relu(y + b)):
    three stages, two of them on the same device."""
    base = tiny_parts(devices=devices)
    f32 = "float32"
    again = Step(
        "bias_relu",
        (Slot("output", (M, N), f32, name="y"), Slot("weight", (N,), f32, name="b"),
         Slot("output", (M, N), f32, name="z", writes=True)),
        ("/again/Add", "/again/Relu"), devices[0], kernel_library_file(devices[0]),
    )  # fmt: skip
    parts = replace(
        base,
        outputs=(*base.outputs, TensorBinding("z", (M, N), f32, ARENA)),
        plan=ExecutionPlan(ARENA + M * N * 4, (*base.plan.steps, again)),
    )
    kernels = build_kernels(tmp_path / "three.so", parts=parts)
    out = tmp_path / f"three-{'-'.join(devices)}.hai"
    model = runtime.load(
        write_artifact(out, parts, tiny_weights(), dict.fromkeys(devices, kernels), "// 3\n")
    )
    assert [s.device for s in pipeline_plan(model).stages] == [devices[0], devices[1], devices[0]]
    return model


def assert_three_serial(model: runtime.Model, feeds: list[dict[str, np.ndarray]], got: list[dict]) -> None:
    """`got` equal serial runs of `feeds` and numpy (y, and z = relu(y + b))."""
    assert len(got) == len(feeds)
    for feed, outputs in zip(feeds, got, strict=True):
        serial = model.run(feed)
        for name in ("y", "z"):
            np.testing.assert_array_equal(outputs[name], serial[name])
        y = numpy_reference(feed["x"], tiny_weights())
        np.testing.assert_allclose(outputs["z"], np.maximum(y + tiny_weights()["b"], 0), rtol=1e-5, atol=1e-5)


def test_three_stages_with_one_device_twice(plugins: None, tmp_path: Path) -> None:
    """Stages on `first`, `second`, `first`: outputs equal serial runs and numpy; the waiter of `first`
    (`Fences`) waits both of its stages' fences, `second` is synchronized on its worker."""
    model = three_stages(tmp_path, ("first", "second"))
    assert pipeline_plan(model).in_flight == 3
    feeds = stream(8)
    got = list(model.run_many(feeds))
    assert Counter(FENCE_WAITS) == {"hai-waiter-first:0": 2 * len(feeds)}
    assert_three_serial(model, feeds, got)


StageRun = tuple[int, int, int]
"""(thread id, the input's index in its stream, the stage's first call) of one stage run."""


def record_stage_runs(
    monkeypatch: pytest.MonkeyPatch, feeds: list[dict[str, np.ndarray]], device: str
) -> tuple[list[StageRun], dict[int, Callable[[int], None]]]:
    """Every run of a stage on `device` from now on, in order, and per (stage's first call) a hook called
    before it runs (the input's index is found by its value among `feeds`)."""
    runs: list[StageRun] = []
    before: dict[int, Callable[[int], None]] = {}
    real = runtime.Model._run_calls

    def recorded(self: runtime.Model, calls: Any, bound: Any, indices: range, *rest: Any) -> None:
        if self._steps[indices.start].device == device:
            index = next(i for i, feed in enumerate(feeds) if np.array_equal(feed["x"], bound["x"]))
            runs.append((threading.get_ident(), index, indices.start))
            before.get(indices.start, lambda index: None)(index)
        real(self, calls, bound, indices, *rest)

    monkeypatch.setattr(runtime.Model, "_run_calls", recorded)
    return runs, before


def test_cpu_stages_of_every_stream_run_on_one_thread(
    plugins: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two models, each with stages cpu, second, cpu, streamed at once from two threads: every CPU stage
    of both streams runs on one thread (the host's worker: one TVM pool), another than the callers';
    outputs equal serial runs."""
    first = three_stages(tmp_path, ("cpu", "second"))
    models = [first, runtime.load(first.directory)]  # two loaded models: each its own devices
    feeds = stream(10)
    runs, _ = record_stage_runs(monkeypatch, feeds, "cpu")
    together = threading.Barrier(2, timeout=STAGE_WAIT_SECONDS)  # both streams run at once

    def fed() -> Iterator[dict[str, np.ndarray]]:
        together.wait()
        yield from feeds

    got: dict[int, list[dict]] = {}
    callers = [threading.Thread(target=lambda k=k: got.update({k: list(models[k].run_many(fed()))}))
               for k in range(2)]  # fmt: skip
    for caller in callers:
        caller.start()
    for caller in callers:
        caller.join()
    assert len(runs) == 2 * 2 * len(feeds)  # two CPU stages per input, two streams
    (worker,) = {thread for thread, _, _ in runs}
    assert worker not in {caller.ident for caller in callers} | {threading.get_ident()}
    monkeypatch.undo()
    for k, model in enumerate(models):
        assert_three_serial(model, feeds, got[k])


def test_the_oldest_input_goes_first(plugins: None, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Stages cpu, second, cpu with 4 inputs in flight: stage 0 of inputs 0-3 is ready at once; while the
    CPU runs stage 0 of input 2, input 0 comes back from `second`. The CPU then runs input 0's last stage
    before stage 0 of input 3, which was ready earlier: the oldest input first, not the first ready."""
    model = three_stages(tmp_path, ("cpu", "second"))
    feeds = stream(6)
    runs, before = record_stage_runs(monkeypatch, feeds, "cpu")
    back = threading.Event()

    def second(kernel: str, count: int) -> None:
        if count == 1:  # input 0 left `second` (its last stage is on the CPU's worker) before input 1 came
            back.set()

    def first_stage(index: int) -> None:
        if index == 2:
            assert back.wait(STAGE_WAIT_SECONDS)

    HOOKS["second"] = second
    before[0] = first_stage
    got = list(model.run_many(feeds, in_flight=4))
    order = [(index, start) for _, index, start in runs]
    assert order[:4] == [(0, 0), (1, 0), (2, 0), (0, 2)]
    assert order.index((0, 2)) < order.index((3, 0))
    monkeypatch.undo()
    HOOKS.clear()
    assert_three_serial(model, feeds, got)


def test_failing_kernel_names_its_input_and_the_model_stays_usable(two_stages: runtime.Model) -> None:
    def second(kernel: str, count: int) -> None:
        if count == 2:
            raise KernelError("the device fell over")

    HOOKS["second"] = second
    feeds = stream(5)
    got = []
    with pytest.raises(KernelError, match=r"run_many: input 2: step 1 of .*'bias_relu'.*fell over"):
        for outputs in two_stages.run_many(feeds):
            got.append(outputs)
    HOOKS.clear()
    assert_serial(two_stages, feeds[:2], got)
    assert_serial(two_stages, feeds, list(two_stages.run_many(feeds)))
