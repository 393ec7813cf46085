"""`Model.run_many` on an OpenCL artifact (runtime/pipeline.py): the digits CNN on PoCL gives every output, in
order, equal to serial runs and close to onnxruntime, with zero-copy on (mapped), off (copies) and
staged (the discrete-GPU path, forced); each arena in flight is mirrored on the device and released
with the stream, staging included; the device's memory check counts the arenas in flight; the
stream waits on marker events, never draining the queue per input."""

from __future__ import annotations

import dataclasses
import gc
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from test_models_opencl import TOLERANCE, compile_opencl, onnxruntime_outputs

import runtime
from hai_compiler.accuracy import relative_error
from hai_compiler.demo import EMBEDDED_MODEL, load_heldout_digits
from runtime.device_memory import DeviceMemoryError
from runtime.devices import opencl as opencl_driver
from runtime.hai import Fences
from runtime.pipeline import pipeline_plan

pytest.importorskip("pyopencl")
IMAGES = 7


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return compile_opencl(Path(EMBEDDED_MODEL), tmp_path_factory.mktemp("pipeline") / "digits.hai",
                          {"image": (1, 1, 8, 8)})  # fmt: skip


def feeds() -> list[dict[str, np.ndarray]]:
    x, _ = load_heldout_digits()
    return [{"image": np.ascontiguousarray(x[i : i + 1])} for i in range(IMAGES)]


@pytest.mark.parametrize("mode", ["mapped", "copy", "staged"])
def test_run_many_equals_serial_runs(
    opencl_device: dict, artifact: Path, mode: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(opencl_driver, "transfer_mode", lambda zero_copy, host_unified: mode)
    model = runtime.load(artifact)
    device = model.devices["opencl"]
    assert isinstance(device, opencl_driver.OpenCLDevice) and device.transfers.mode == mode
    assert isinstance(device, Fences)
    stream = feeds()
    before = live(model, device)
    got = list(model.run_many(stream, in_flight=3))
    gc.collect()  # the arenas' recorded launches hold their input staging (staged mode) until collected
    assert live(model, device) == before  # each arena in flight, its device mirror and staging are released
    assert len(got) == IMAGES
    for feed, outputs in zip(stream, got, strict=True):
        serial = model.run(feed)
        assert list(outputs) == list(serial)
        for name, value in serial.items():
            np.testing.assert_array_equal(outputs[name], value)
    want = onnxruntime_outputs(Path(EMBEDDED_MODEL), stream[-1])
    for name, expected in want.items():
        assert relative_error(got[-1][name], expected) <= TOLERANCE, name


def live(model: runtime.Model, device: opencl_driver.OpenCLDevice) -> tuple[int, int, int]:
    """Live buffers on the device and the host, and the device's pinned staging buffers."""
    pinned = len(device.transfers._pinned_maps)  # noqa: SLF001  (staging has no public count)
    return device.query_memory().live_buffers, model.device.query_memory().live_buffers, pinned


def test_device_memory_counts_the_arenas_in_flight(
    opencl_device: dict, artifact: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    model = runtime.load(artifact)
    (planned,) = model.manifest.plan.device_memory
    each = pipeline_plan(model, 2).device_bytes_each["opencl"]
    assert each == planned.total_bytes - model.manifest.weights_size  # all but the weights, once more
    capabilities = opencl_driver.OpenCLDevice.capabilities

    def small(self: opencl_driver.OpenCLDevice) -> runtime.hai.Capabilities:
        return dataclasses.replace(capabilities(self), memory_bytes=planned.total_bytes + each)

    monkeypatch.setattr(opencl_driver.OpenCLDevice, "capabilities", small)
    assert len(list(model.run_many(feeds()[:3], in_flight=1))) == 3  # one more arena fits
    with pytest.raises(DeviceMemoryError, match=r"2 more arena\(s\) in flight for run_many.*in_flight="):
        list(model.run_many(feeds()[:3], in_flight=2))


def test_the_stream_waits_on_events_never_on_the_whole_queue(
    opencl_device: dict, artifact: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each input's stage leaves a marker event that the caller waits on; the queue is drained only when
    the stream ends (so the stage's thread enqueues the next input while the queue runs this one)."""
    model = runtime.load(artifact)
    calls: list[str] = []

    def counted(name: str) -> Callable[[opencl_driver.OpenCLDevice], Any]:
        real = getattr(opencl_driver.OpenCLDevice, name)

        def call(self: opencl_driver.OpenCLDevice) -> Any:
            calls.append(name)
            return real(self)

        return call

    for name in ("synchronize", "fence"):
        monkeypatch.setattr(opencl_driver.OpenCLDevice, name, counted(name))
    assert len(list(model.run_many(feeds(), in_flight=2))) == IMAGES
    assert calls == ["fence"] * IMAGES + ["synchronize"]
