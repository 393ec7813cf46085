"""Closing an OpenCL model (runtime/model.py `release`, runtime/devices/opencl.py `close`): close releases
the device's kernels, programs, buffers, queue and context once, a second close is harmless, a closed
model refuses `run`; a model dropped without close is closed when collected; a process that loads an
OpenCL model and exits without closing it exits 0 (on the H100 such processes died of SIGSEGV at exit)."""

from __future__ import annotations

import gc
import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from test_models_opencl import compile_opencl

import runtime
from hai_compiler.demo import EMBEDDED_MODEL, load_heldout_digits
from runtime.artifact import MANIFEST_FILE
from runtime.device_memory import DeviceMemoryError
from runtime.devices.opencl import OpenCLDevice
from runtime.errors import ModelClosedError

pytest.importorskip("pyopencl")
ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    x, _ = load_heldout_digits()
    artifact = compile_opencl(Path(EMBEDDED_MODEL), tmp_path_factory.mktemp("close") / "digits.hai",
                              {"image": (1, 1, 8, 8)})  # fmt: skip
    return artifact, {"image": np.ascontiguousarray(x[:1])}


def opencl_of(model: runtime.Model) -> OpenCLDevice:
    device = model.devices["opencl"]
    assert isinstance(device, OpenCLDevice)
    return device


@pytest.mark.parametrize("zero_copy", [True, False])
def test_close_releases_once_and_refuses_run(opencl_device: dict, digits: tuple, zero_copy: bool) -> None:
    artifact, inputs = digits
    model = runtime.load(artifact, device_options={"zero_copy": zero_copy})
    first = model.run(inputs)
    device = opencl_of(model)
    launches = list(device._launches)
    assert launches and all(launch.enqueues for launch in launches)
    model.close()
    assert device.closed and device.queue is None and device.context is None
    assert all(not launch.enqueues and not launch.inputs and not launch.scratch for launch in launches)
    assert not model.executables and not device._programs and not device._mirrors
    assert model.devices["cpu"].query_memory().live_buffers == 0  # the host arena is freed too
    model.close()  # harmless
    with pytest.raises(ModelClosedError, match="is closed; load it again"):
        model.run(inputs)
    with runtime.load(artifact, device_options={"zero_copy": zero_copy}) as again:
        np.testing.assert_array_equal(again.run(inputs)["logits"], first["logits"])
    assert opencl_of(again).closed


def test_a_dropped_model_is_closed(opencl_device: dict, digits: tuple) -> None:
    artifact, inputs = digits
    model = runtime.load(artifact)
    model.run(inputs)
    device = opencl_of(model)
    del model
    gc.collect()
    assert device.closed  # nothing the finalizer holds refers back to the model


def test_a_refused_load_closes_the_devices_it_opened(
    opencl_device: dict, digits: tuple, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    artifact = shutil.copytree(digits[0], tmp_path / "big.hai")
    manifest = json.loads((artifact / MANIFEST_FILE).read_text())
    manifest["plan"]["device_memory"][0]["total_bytes"] = opencl_device["global_memory_bytes"] + 1
    (artifact / MANIFEST_FILE).write_text(json.dumps(manifest))
    opened: list[OpenCLDevice] = []
    original = OpenCLDevice.__init__

    def spy(self: OpenCLDevice, *args: object) -> None:
        original(self, *args)  # type: ignore[arg-type]
        opened.append(self)

    monkeypatch.setattr(OpenCLDevice, "__init__", spy)
    with pytest.raises(DeviceMemoryError):
        runtime.load(artifact)
    assert len(opened) == 1 and opened[0].closed


def test_process_exits_cleanly_without_close(opencl_device: dict, digits: tuple) -> None:
    artifact, inputs = digits
    script = textwrap.dedent(
        f"""
        import numpy as np, runtime
        model = runtime.load({str(artifact)!r})
        out = model.run({{"image": np.load({str(artifact.parent / "x.npy")!r})}})
        print(out["logits"].argmax())
        """
    )
    np.save(artifact.parent / "x.npy", inputs["image"])
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().isdigit()
