"""`Model.run` drives every step through the HAI driver of the step's device (runtime/hai.py): a recording
driver, registered in the `hai.devices` entry-point group by a fake installed distribution, runs the
tiny artifact's steps on the CPU driver and logs each HAI call; its results are checked against numpy.
Also: the cpu entry plan is one launch of the cpu driver per inference, and a device whose driver is
not installed, or whose memory is not the host's, is refused at load."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from tiny_artifact import (
    ENTRY_BYTES,
    K,
    M,
    build_entry_kernels,
    build_kernels,
    numpy_reference,
    tiny_weights,
    write_entry_artifact,
    write_tiny_artifact,
)

import runtime
from runtime.devices.cpu import CpuDevice, CpuDriver
from runtime.errors import DeviceNotFoundError, UnsupportedError
from runtime.fd_library import OpenFile
from runtime.hai import (
    Buffer,
    Capabilities,
    Device,
    DeviceInfo,
    Driver,
    Executable,
    KernelArg,
    Launch,
    MemoryInfo,
)

LOG: list[tuple[str, str]] = []
"""What the recording devices were asked, in order: (call, kernel or device name)."""


class RecordingLaunch:
    """A launch of the CPU driver that logs each run."""

    def __init__(self, entry: str, inner: Launch) -> None:
        self.entry, self.inner = entry, inner
        self.run: Callable[[], None] = self._run
        self.bind = inner.bind

    def _run(self) -> None:
        LOG.append(("run", self.entry))
        self.inner.run()


class RecordingDevice(Device):
    """A host-visible device that runs its kernels on the host CPU and logs the calls the model makes."""

    def __init__(self, info: DeviceInfo, host_visible: bool = True) -> None:
        super().__init__(info)
        self.cpu = CpuDriver().open()
        self.host_visible = host_visible

    def capabilities(self) -> Capabilities:
        return dataclasses.replace(self.cpu.capabilities(), host_visible=self.host_visible)

    def query_memory(self) -> MemoryInfo:
        return self.cpu.query_memory()

    def allocate(self, nbytes: int, alignment: int | None = None, label: str = "") -> Buffer:
        return self.cpu.allocate(nbytes, alignment, label)

    def free(self, buffer: Buffer) -> None:
        self.cpu.free(buffer)

    def copy_in(self, buffer: Buffer, host: np.ndarray, offset: int = 0) -> None:
        self.cpu.copy_in(buffer, host, offset)

    def copy_out(self, buffer: Buffer, offset: int, shape: Sequence[int], dtype: Any) -> np.ndarray:
        return self.cpu.copy_out(buffer, offset, shape, dtype)

    def map(
        self, buffer: Buffer, offset: int = 0, shape: Sequence[int] | None = None, dtype: Any = "u1"
    ) -> Any:
        return self.cpu.map(buffer, offset, shape, dtype)

    def unmap(self, view: np.ndarray) -> None:
        self.cpu.unmap(view)

    def load_executable(self, source: Any, runtime: OpenFile | None = None) -> Executable:
        assert isinstance(source, OpenFile), "an artifact's library is handed over verified, never as a path"
        LOG.append(("load", source.path.name))
        inner = self.cpu.load_executable(source, runtime)
        return Executable(self.info.driver, inner.path, inner)

    def record(self, executable: Executable, entry: str, args: Sequence[KernelArg]) -> RecordingLaunch:
        LOG.append(("record", entry))
        return RecordingLaunch(entry, self.cpu.record(executable.handle, entry, args))

    def synchronize(self) -> None:
        LOG.append(("synchronize", self.info.driver))


class RecordingDriver(Driver):
    name = "recorder"
    host_visible = True

    def probe(self) -> list[DeviceInfo]:
        return [DeviceInfo(self.name, 0, "recording device", "accelerator", "tests")]

    def open(self, index: int = 0, **options: Any) -> RecordingDevice:
        return RecordingDevice(self.probe()[index], self.host_visible)


class RemoteDriver(RecordingDriver):
    """A device whose memory is not the host's."""

    name = "remote"
    host_visible = False


@pytest.fixture
def installed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """A distribution on sys.path registering `recorder` and `remote` under `hai.devices`; a clean LOG."""
    dist = tmp_path / "fake_hai_devices-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-hai-devices\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        f"[hai.devices]\nrecorder = {__name__}:RecordingDriver\nremote = {__name__}:RemoteDriver\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    LOG.clear()
    yield
    LOG.clear()


def tiny_model(tmp_path: Path, devices: tuple[str, str]) -> tuple[runtime.Model, np.ndarray]:
    pytest.importorskip("tvm")
    kernels = build_kernels(tmp_path / "tiny.so", devices=devices)
    model = runtime.load(write_tiny_artifact(tmp_path / "tiny.hai", kernels, devices=devices))
    return model, np.random.default_rng(3).standard_normal((M, K)).astype(np.float32)


def test_every_step_runs_through_its_device_driver(installed: None, tmp_path: Path) -> None:
    model, x = tiny_model(tmp_path, ("recorder", "recorder"))
    assert LOG == [
        ("load", "kernels.recorder.so"),
        *[("record", "hai_plan_digest"), ("run", "hai_plan_digest"), ("synchronize", "recorder")],
        ("record", "matmul"),
        ("record", "bias_relu"),
    ]  # the plan digest is checked through the driver; each step recorded once, at load
    for run in range(3):
        LOG.clear()
        y = model.run({"x": x + run})["y"]
        np.testing.assert_allclose(y, numpy_reference(x + run, tiny_weights()), rtol=1e-5, atol=1e-5)
        assert LOG == [("run", "matmul"), ("run", "bias_relu"), ("synchronize", "recorder")]


def test_steps_on_two_devices_wait_for_each_other(installed: None, tmp_path: Path) -> None:
    """matmul on the recorder, bias_relu on the cpu: the recorder is synchronized before the cpu reads its
    result, and only then (it is not busy at the end of the run)."""
    model, x = tiny_model(tmp_path, ("recorder", "cpu"))
    assert set(model.devices) == {"cpu", "recorder"}
    LOG.clear()
    y = model.run({"x": x})["y"]
    np.testing.assert_allclose(y, numpy_reference(x, tiny_weights()), rtol=1e-5, atol=1e-5)
    assert LOG == [("run", "matmul"), ("synchronize", "recorder")]


def test_entry_plan_is_one_cpu_launch_per_inference(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    pytest.importorskip("tvm")
    offset = np.arange(ENTRY_BYTES, dtype=np.uint8)
    artifact = write_entry_artifact(tmp_path / "entry.hai", build_entry_kernels(tmp_path / "e.so"), offset)
    record = CpuDevice.record
    runs: list[str] = []

    def recording(self: CpuDevice, executable: Executable, entry: str, args: Sequence[KernelArg]) -> Any:
        launch = record(self, executable, entry, args)
        inner = launch.run

        def run() -> None:
            runs.append(entry)
            inner()

        launch.run = run
        return launch

    monkeypatch.setattr(CpuDevice, "record", recording)
    model = runtime.load(artifact)
    a = np.full(ENTRY_BYTES, 250, np.uint8)
    for _ in range(3):
        np.testing.assert_array_equal(model.run({"a": a})["sum"], a + offset)
    assert runs == ["hai_plan_digest", "run_all", "run_all", "run_all"]


def test_device_without_an_installed_driver_is_refused(tmp_path: Path) -> None:
    with pytest.raises(DeviceNotFoundError, match=r"device 'npu', whose HAI driver is not installed "
                       r"\(installed drivers: .*cpu.*\); install .*'hai\.devices'"):  # fmt: skip
        tiny_model(tmp_path, ("npu", "cpu"))


def test_device_whose_memory_is_not_the_hosts_is_refused(installed: None, tmp_path: Path) -> None:
    with pytest.raises(UnsupportedError, match="device 'remote', whose memory is not the host's"):
        tiny_model(tmp_path, ("cpu", "remote"))
