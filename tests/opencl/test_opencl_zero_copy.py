"""Zero-copy on OpenCL (runtime/devices/opencl_transfers.py): the digits CNN and PP-OCR cls give the same
outputs with zero-copy on (mapped on a host-unified device like PoCL), off (copies) and staged (the
discrete-GPU path, forced here), equal to onnxruntime's; the mapped path issues no copy and its
buffers are the host's memory; map/unmap; `hai bench --transfers` and the `hai pack` bundle report both
transfer figures (the bundle also streams inputs through run_many: `--stream`)."""

from __future__ import annotations

import os
import subprocess
import sys
import tomllib
from pathlib import Path

import numpy as np
import pytest
from test_models_opencl import TOLERANCE, compile_opencl, onnxruntime_outputs
from typer.testing import CliRunner

import runtime
from hai_compiler import real_models
from hai_compiler.accuracy import relative_error
from hai_compiler.cli import app
from hai_compiler.demo import EMBEDDED_MODEL, load_heldout_digits
from runtime.devices import opencl as opencl_driver
from runtime.errors import DeviceBufferError, InvalidArgumentError

pytest.importorskip("pyopencl")
ROOT = Path(__file__).resolve().parents[2]


def digits() -> tuple[Path, dict[str, tuple[int, ...]], dict[str, np.ndarray]]:
    x, _ = load_heldout_digits()
    return Path(EMBEDDED_MODEL), {"image": (1, 1, 8, 8)}, {"image": np.ascontiguousarray(x[:1])}


def ppocr_cls() -> tuple[Path, dict[str, tuple[int, ...]], dict[str, np.ndarray]]:
    model = real_models.MODELS["ppocr_cls"]
    return real_models.fetch("ppocr_cls"), dict(model.input_shapes), model.sample_inputs()


MODELS = {"digits": digits, "ppocr_cls": ppocr_cls}


@pytest.fixture(scope="module")
def artifacts(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, Path, dict]]:
    """Each model compiled for pocl-cpu once: (onnx, artifact, inputs)."""
    folder = tmp_path_factory.mktemp("zero_copy")
    built = {}
    for name, make in MODELS.items():
        onnx, shapes, inputs = make()
        built[name] = (onnx, compile_opencl(onnx, folder / f"{name}.hai", shapes), inputs)
    return built


def opened(model: runtime.Model) -> opencl_driver.OpenCLDevice:
    device = model.devices["opencl"]
    assert isinstance(device, opencl_driver.OpenCLDevice)
    return device


@pytest.mark.parametrize("name", list(MODELS))
def test_zero_copy_on_off_and_staged_give_identical_outputs(
    opencl_device: dict, artifacts: dict, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    onnx, artifact, inputs = artifacts[name]
    want = onnxruntime_outputs(onnx, inputs)
    outputs = {}
    for zero_copy in (True, False):
        model = runtime.load(artifact, device_options={"zero_copy": zero_copy})
        outputs[zero_copy] = [model.run(inputs), model.run(inputs)]  # twice: the buffers are reused
    monkeypatch.setattr(opencl_driver, "transfer_mode", lambda zero_copy, host_unified: "staged")
    staged = runtime.load(artifact)
    assert opened(staged).transfers.mode == "staged"
    outputs["staged"] = [staged.run(inputs), staged.run(inputs)]
    for key, runs in outputs.items():
        for got in runs:
            for output, expected in want.items():
                assert np.array_equal(got[output], outputs[False][0][output]), (key, output)
                assert relative_error(got[output], expected) <= TOLERANCE, (key, output)


def test_the_switch_and_its_environment_variable(
    opencl_device: dict, artifacts: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    _, artifact, _ = artifacts["digits"]
    zero_copy = "mapped" if opencl_device["host_unified_memory"] else "staged"
    assert opened(runtime.load(artifact)).transfers.mode == zero_copy
    assert opened(runtime.load(artifact, device_options={"zero_copy": False})).transfers.mode == "copy"
    monkeypatch.setenv("HAI_OPENCL_ZERO_COPY", "0")
    assert opened(runtime.load(artifact)).transfers.mode == "copy"
    assert opened(runtime.load(artifact, device_options={"zero_copy": True})).transfers.mode == zero_copy
    with pytest.raises(InvalidArgumentError, match="takes the options zero_copy and profiling, not bogus"):
        runtime.load(artifact, device_options={"bogus": 1})


def test_the_mapped_path_issues_no_copy(
    opencl_device: dict, artifacts: dict, monkeypatch: pytest.MonkeyPatch
) -> None:
    if not opencl_device["host_unified_memory"]:
        pytest.skip(f"{opencl_device['name']} has no host-unified memory: zero-copy stages instead")
    import pyopencl as cl

    _, artifact, inputs = artifacts["ppocr_cls"]
    copies = []
    real_copy = cl.enqueue_copy
    monkeypatch.setattr(cl, "enqueue_copy", lambda *a, **k: copies.append(1) or real_copy(*a, **k))
    counted = {}
    for zero_copy in (True, False):
        model = runtime.load(artifact, device_options={"zero_copy": zero_copy})
        copies.clear()
        model.run(inputs)
        counted[zero_copy] = len(copies)
        device = opened(model)
        flags = [m.buffer.get_info(cl.mem_info.FLAGS) for m in device._mirrors]
        uses_host = [bool(f & cl.mem_flags.USE_HOST_PTR) for f in flags]
        assert uses_host == [zero_copy, zero_copy]  # the arena and the weights are the host's memory
        if zero_copy:
            host = [m.buffer.get_host_array((1,), np.uint8).ctypes.data for m in device._mirrors]
            assert host == [model.arena.ctypes.data, model.weights.ctypes.data]
    assert counted[True] == 0
    assert counted[False] == 2  # the input written, the output read back


def test_map_and_unmap_reach_the_buffer(opencl_device: dict) -> None:
    device = runtime.open_device("opencl")
    buffer = device.allocate(256)
    view = device.map(buffer, 64, (16,), "float32")
    view[:] = np.arange(16, dtype=np.float32)
    device.unmap(view)
    np.testing.assert_array_equal(device.copy_out(buffer, 64, (16,), "float32"), np.arange(16))
    device.copy_in(buffer, np.full(4, 7, np.float32), offset=128)
    again = device.map(buffer, 128, (4,), "float32")
    np.testing.assert_array_equal(again, np.full(4, 7))
    device.unmap(again)
    with pytest.raises(DeviceBufferError, match="not a live mapping"):
        device.unmap(again)


def test_bench_transfers_prints_both_figures(opencl_device: dict, artifacts: dict) -> None:
    _, artifact, _ = artifacts["ppocr_cls"]
    done = CliRunner().invoke(app, ["bench", str(artifact), "--transfers", "--runs", "5"])
    assert done.exit_code == 0, done.output
    off = [line for line in done.output.splitlines() if "zero-copy off (copy)" in line]
    on = [line for line in done.output.splitlines() if "zero-copy on  (" in line]
    assert len(off) == len(on) == 1, done.output
    device_us = [float(line.split(":")[1].split("us")[0]) for line in (off[0], on[0])]
    assert device_us[0] > 0 and device_us[1] < device_us[0]  # the copies' events take time; the maps less
    assert "reduction:" in done.output


@pytest.mark.parametrize(
    ("arguments", "printed"),
    [
        (["--transfers", "3"], ["zero-copy off (copy)", "zero-copy on "]),
        (["--stream", "5", "--in-flight", "2"], ["2 input(s) in flight", "run_many / run throughput"]),
    ],
)
def test_the_packed_bundle_measures_transfers_and_streams(
    opencl_device: dict,
    artifacts: dict,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    arguments: list[str],
    printed: list[str],
) -> None:
    """The bundle's run_model.py measures transfers (`--transfers`) and a stream through run_many
    (`--stream`, runtime/stream_bench.py) with the runtime it carries (no compiler on its path)."""
    from hai_compiler import pack as pack_module

    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]
    monkeypatch.setattr(pack_module, "extra_requirements", lambda extra: list(extras[extra]))
    _, artifact, _ = artifacts["digits"]
    bundle = pack_module.pack(artifact, tmp_path / "bundle")
    assert any(line.startswith("pyopencl") for line in (bundle / "requirements.txt").read_text().splitlines())
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    script = (
        "import runpy, sys\n"
        f"sys.argv = ['run_model.py', *{arguments!r}]\n"
        "try:\n    runpy.run_path('run_model.py', run_name='__main__')\n"
        "except SystemExit as done:\n    code = done.code\n"
        "print('compiler modules:', sorted(m for m in ('tvm', 'hai_compiler', 'targets', 'ir', 'onnx') "
        "if m in sys.modules))\n"
        "print('runtime from', sys.modules['runtime'].__file__)\n"
        "sys.exit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, cwd=bundle, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    assert all(text in done.stdout for text in printed), done.stdout
    assert "compiler modules: []" in done.stdout, done.stdout
    assert f"runtime from {bundle / 'runtime' / '__init__.py'}" in done.stdout, done.stdout


def test_transfers_of_a_cpu_artifact_are_refused(tmp_path: Path) -> None:
    """No OpenCL device needed: an artifact for the host CPU has no transfers to measure, and says so."""
    from hai_compiler.compiler import CompileOptions, compile_model
    from runtime.errors import UnsupportedError
    from runtime.transfer_bench import measure

    options = CompileOptions(input_shapes={"image": (1, 1, 8, 8)})  # for this machine
    artifact = compile_model(Path(EMBEDDED_MODEL), tmp_path / "cpu.hai", options).path
    with pytest.raises(UnsupportedError, match="runs on the host CPU only.*--target opencl"):
        measure(artifact, runs=1)
