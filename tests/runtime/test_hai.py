"""Driver discovery through the `hai.devices` entry-point group, with a fake installed distribution,
and the extension protocols a device may implement."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime.errors import DeviceNotFoundError, HaiRuntimeError
from runtime.hai import Device, available_drivers, extensions_of, get_driver, open_device

FAKE_DRIVER = '''
from runtime.hai import DeviceInfo, Driver, probed_device

class NullDriver(Driver):
    """A driver with one device that cannot be opened: enough to test discovery."""
    name = "null"

    def probe(self):
        return [DeviceInfo("null", 0, "Null NPU", "accelerator", "nobody")]

    def open(self, index=0, **options):
        probed_device(self, index)
        raise NotImplementedError

NOT_A_DRIVER = 42
'''


@pytest.fixture
def installed_plugin(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A distribution on sys.path registering `null` (good), `broken` and `bogus` under hai.devices."""
    (tmp_path / "fake_hai_plugin.py").write_text(FAKE_DRIVER)
    dist = tmp_path / "fake_hai_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: fake-hai-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[hai.devices]\nnull = fake_hai_plugin:NullDriver\nbroken = no_such_module_xyz:Driver\n"
        "bogus = fake_hai_plugin:NOT_A_DRIVER\ncpu = fake_hai_plugin:NullDriver\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    yield tmp_path
    sys.modules.pop("fake_hai_plugin", None)


def test_builtin_cpu_driver_is_always_there() -> None:
    assert "cpu" in available_drivers()
    assert get_driver("cpu").name == "cpu"


def test_unknown_driver_names_the_known_ones() -> None:
    with pytest.raises(DeviceNotFoundError, match="no HAI device driver named 'tpu'.*cpu"):
        open_device("tpu")


def test_entry_point_drivers_are_found(installed_plugin: Path) -> None:
    assert {"cpu", "null", "broken", "bogus"} <= set(available_drivers())
    (info,) = get_driver("null").probe()
    assert (info.name, info.kind) == ("Null NPU", "accelerator")
    with pytest.raises(DeviceNotFoundError, match="found 1 device"):
        open_device("null", index=3)
    assert type(get_driver("cpu")).__module__ == "runtime.devices.cpu"  # built-ins cannot be shadowed


def test_broken_entry_points_fail_only_when_asked_for(installed_plugin: Path) -> None:
    with pytest.raises(HaiRuntimeError, match="'broken' .*failed to load"):
        get_driver("broken")
    with pytest.raises(HaiRuntimeError, match="'bogus' .*not a runtime.hai.Driver subclass"):
        get_driver("bogus")


def test_extensions_are_optional() -> None:
    class Minimal:
        def thermal_readings(self) -> list:
            return []

    assert extensions_of(Minimal()) == ("thermal",)
    assert extensions_of(object()) == ()


def test_device_subclass_must_implement_every_core_call() -> None:
    class Incomplete(Device):
        def capabilities(self):  # type: ignore[override]
            raise NotImplementedError

    with pytest.raises(TypeError, match="abstract"):
        Incomplete(None)  # type: ignore[abstract, arg-type]
