"""Energy per inference (runtime/energy.py, energy_sources.py, rapl.py, nvml_energy.py): RAPL read from a
fake powercap tree (increments, wrap-around, unreadable and missing files, a package beside zones that
are not packages), NVML absent or without a driver reported unavailable with the reason, a fake NVML's
energy counter and sampled power, and the meter's total given only when nothing that exists is
missing. Expected joules are computed here from the counter values the test writes."""

from __future__ import annotations

import sys
import time
import types
from pathlib import Path

import pytest

from runtime import nvml_energy
from runtime.energy import EnergyMeter
from runtime.energy_sources import CounterSource, PowerSource, Unavailable
from runtime.rapl import POWERCAP, cpu_sources

MAX_RANGE_UJ = 262143328850  # a real package's max_energy_range_uj


def zone(root: Path, name: str, label: str, energy_uj: int, max_uj: int = MAX_RANGE_UJ) -> Path:
    folder = root / POWERCAP / name
    folder.mkdir(parents=True)
    (folder / "name").write_text(f"{label}\n")
    (folder / "energy_uj").write_text(f"{energy_uj}\n")
    (folder / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return folder


def set_energy(folder: Path, energy_uj: int) -> None:
    (folder / "energy_uj").write_text(f"{energy_uj}\n")


def counting_block(folder: Path, values: list[int], inferences: int):  # type: ignore[no-untyped-def]
    """A block that moves the fake counter through `values` and says it ran `inferences` inferences."""

    def block() -> int:
        for value in values:
            set_energy(folder, value)
        return inferences

    return block


def test_rapl_package_counter_on_a_fake_tree(tmp_path: Path) -> None:
    package = zone(tmp_path, "intel-rapl:0", "package-0", 1_000_000)
    zone(tmp_path, "intel-rapl:0:0", "core", 5)  # a subzone: part of the package, not counted again
    zone(tmp_path, "intel-rapl:1", "psys", 7)  # a laptop's platform zone: not a CPU package
    sources, unavailable = cpu_sources(tmp_path)
    assert [s.name for s in sources] == ["cpu package-0 (RAPL)"] and unavailable == []
    energy = EnergyMeter(sources).measure(counting_block(package, [3_500_000], 5))
    assert energy.joules == {"cpu package-0 (RAPL)": pytest.approx(2.5)}
    assert energy.per_inference() == {"cpu package-0 (RAPL)": pytest.approx(0.5)}
    assert energy.total_per_inference == pytest.approx(0.5)
    assert energy.methods["cpu package-0 (RAPL)"] == "RAPL energy counter"


def test_rapl_wrap_around(tmp_path: Path) -> None:
    wrap = MAX_RANGE_UJ + 1  # the counter takes the values 0 .. max_energy_range_uj
    true_start = 5 * wrap - 100
    true_end = 5 * wrap + 200
    package = zone(tmp_path, "intel-rapl:0", "package-0", true_start % wrap)
    sources, _ = cpu_sources(tmp_path)
    energy = EnergyMeter(sources, interval=60).measure(counting_block(package, [true_end % wrap], 1))
    assert energy.joules["cpu package-0 (RAPL)"] == pytest.approx((true_end - true_start) * 1e-6)


def test_counter_polled_across_several_wraps() -> None:
    wrap = 1000
    true = [950, 1900, 2100, 2995, 3500]  # each step shorter than one wrap; three wraps in all
    reads = iter(t % wrap for t in true)
    source = CounterSource("c", "counter", lambda: next(reads), 1e-6, wrap)
    source.start()
    for _ in true[1:]:
        source.poll()
    assert source.joules() == pytest.approx((true[-1] - true[0]) * 1e-6)


def test_rapl_unreadable_energy_file(tmp_path: Path) -> None:
    package = zone(tmp_path, "intel-rapl:0", "package-0", 10)
    (package / "energy_uj").unlink()
    (package / "energy_uj").mkdir()  # unreadable as a file, for root too
    readable = zone(tmp_path, "intel-rapl:1", "package-1", 10)
    sources, unavailable = cpu_sources(tmp_path)
    assert [s.name for s in sources] == ["cpu package-1 (RAPL)"]
    assert [u.name for u in unavailable] == ["cpu package-0 (RAPL)"]
    assert str(package / "energy_uj") in unavailable[0].reason and unavailable[0].exists
    energy = EnergyMeter(sources, unavailable).measure(counting_block(readable, [1_000_010], 2))
    assert energy.per_inference() == {"cpu package-1 (RAPL)": pytest.approx(0.5)}
    assert energy.total_per_inference is None  # package-0's energy is missing: no total, never a guess


def test_rapl_permission_denied(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    package = zone(tmp_path, "intel-rapl:0", "package-0", 10)
    denied = package / "energy_uj"
    read_text = Path.read_text

    def guarded(self: Path, *args: object, **kwargs: object) -> str:
        if self == denied:  # what a non-root user meets on Linux 5.10 and later
            raise PermissionError(13, "Permission denied", str(self))
        return read_text(self, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(Path, "read_text", guarded)
    sources, unavailable = cpu_sources(tmp_path)
    assert sources == []
    assert unavailable[0].name == "cpu package-0 (RAPL)"
    assert "permission denied" in unavailable[0].reason and "root" in unavailable[0].reason


def test_rapl_missing(tmp_path: Path) -> None:
    sources, unavailable = cpu_sources(tmp_path)
    assert sources == []
    assert unavailable == [Unavailable("cpu package (RAPL)", unavailable[0].reason)]
    assert "no RAPL zones" in unavailable[0].reason
    energy = EnergyMeter(sources, unavailable).measure(lambda: 3)
    assert energy.joules == {} and energy.total_per_inference is None


def test_nvml_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # import pynvml raises ImportError
    sources, unavailable = nvml_energy.gpu_sources()
    assert sources == []
    assert unavailable[0].name == "gpu (NVML)" and "nvidia-ml-py is not installed" in unavailable[0].reason
    assert unavailable[0].exists  # a GPU may be there: its energy would be missing


class NVMLError(Exception):
    pass


class NVMLError_LibraryNotFound(NVMLError):  # noqa: N801 (pynvml's names)
    pass


class NVMLError_DriverNotLoaded(NVMLError):  # noqa: N801
    pass


class NVMLError_NotSupported(NVMLError):  # noqa: N801
    pass


def fake_nvml(
    monkeypatch: pytest.MonkeyPatch,
    energy_mj: list[int] | None,
    power_mw: int | None,
    init_error: type | None = None,
) -> None:
    """pynvml with one GPU whose energy counter steps through `energy_mj` (None: not supported) and whose
    power is `power_mw` (None: not supported); `init_error` makes nvmlInit fail."""
    readings = iter(energy_mj or [])

    def init() -> None:
        if init_error is not None:
            raise init_error("NVML Shared Library Not Found")

    def energy(handle: object) -> int:
        if energy_mj is None:
            raise NVMLError_NotSupported("Not Supported")
        return next(readings)

    def power(handle: object) -> int:
        if power_mw is None:
            raise NVMLError_NotSupported("Not Supported")
        return power_mw

    module = types.SimpleNamespace(
        NVMLError=NVMLError, NVMLError_LibraryNotFound=NVMLError_LibraryNotFound,
        NVMLError_DriverNotLoaded=NVMLError_DriverNotLoaded, nvmlInit=init, nvmlDeviceGetCount=lambda: 1,
        nvmlDeviceGetHandleByIndex=lambda i: ("gpu", i), nvmlDeviceGetName=lambda h: b"Fake GPU",
        nvmlDeviceGetTotalEnergyConsumption=energy, nvmlDeviceGetPowerUsage=power,
    )  # fmt: skip
    monkeypatch.setitem(sys.modules, "pynvml", module)


def test_nvml_without_a_driver_is_no_gpu(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nvml(monkeypatch, [0], 0, init_error=NVMLError_LibraryNotFound)
    sources, unavailable = nvml_energy.gpu_sources()
    assert sources == [] and "NVML did not start" in unavailable[0].reason
    assert not unavailable[0].exists  # no NVIDIA driver: no GPU energy is missing


def test_nvml_energy_counter(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nvml(monkeypatch, [10_000, 10_000 + 7_500], 300_000)  # the first read is the probe
    sources, unavailable = nvml_energy.gpu_sources()
    assert unavailable == [] and isinstance(sources[0], CounterSource)
    fake_nvml(monkeypatch, [0, 10_000, 17_500], 300_000)
    sources, _ = nvml_energy.gpu_sources()
    energy = EnergyMeter(sources, interval=60).measure(lambda: 3)
    assert energy.joules == {"gpu 0 Fake GPU (NVML)": pytest.approx(7.5)}
    assert energy.per_inference()["gpu 0 Fake GPU (NVML)"] == pytest.approx(2.5)
    assert energy.methods["gpu 0 Fake GPU (NVML)"] == "NVML energy counter"


def test_nvml_sampled_power_without_a_counter(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nvml(monkeypatch, None, 120_000)  # 120 W, no energy counter
    sources, _ = nvml_energy.gpu_sources()
    assert isinstance(sources[0], PowerSource)
    began = time.perf_counter()
    energy = EnergyMeter(sources, interval=0.01).measure(lambda: time.sleep(0.2) or 1)  # type: ignore[func-returns-value]
    elapsed = time.perf_counter() - began
    assert energy.seconds * 120 <= energy.joules["gpu 0 Fake GPU (NVML)"] <= elapsed * 120


def test_nvml_gpu_without_readings(monkeypatch: pytest.MonkeyPatch) -> None:
    fake_nvml(monkeypatch, None, None)
    sources, unavailable = nvml_energy.gpu_sources()
    assert sources == [] and unavailable[0].name == "gpu 0 Fake GPU (NVML)" and unavailable[0].exists
    assert "neither its energy counter" in unavailable[0].reason


def test_total_counts_an_absent_gpu_as_nothing_missing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    package = zone(tmp_path, "intel-rapl:0", "package-0", 0)
    fake_nvml(monkeypatch, [0], 0, init_error=NVMLError_DriverNotLoaded)
    meter = EnergyMeter.discover(str(tmp_path))
    energy = meter.measure(counting_block(package, [4_000_000], 4))
    assert energy.total_per_inference == pytest.approx(1.0)
