"""`--device-memory-budget` (targets/plan/device_memory.py, runtime/device_memory.py): an OpenCL plan's
device memory is the sum of the buffers the driver really holds, recorded in the manifest and the
report; a budget under it fails the compile naming the bytes and the option; a device too small for the
recorded plan is refused at load, naming the device, the bytes and the option; the driver's buffers
in host memory count towards the host's planned peak."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import runtime
from hai_compiler.cli import app
from hai_compiler.compiler import CompileOptions, compile_model
from hai_compiler.demo import EMBEDDED_MODEL
from runtime.artifact import MANIFEST_FILE
from runtime.device_memory import DeviceMemoryError
from targets.plan.device_memory import DeviceMemoryBudgetError
from targets.plan.memory_budget import DEVICE_TERM

pytest.importorskip("pyopencl")
SHAPES = {"image": (1, 1, 8, 8)}


def compile_digits(out: Path, **options: object) -> object:
    return compile_model(
        Path(EMBEDDED_MODEL),
        out,
        CompileOptions(target="opencl", cpu="pocl-cpu", input_shapes=SHAPES, **options),
    )


def test_the_device_plan_is_what_the_driver_allocates(
    opencl_device: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import pyopencl as cl

    result = compile_digits(tmp_path / "d.hai")
    manifest = json.loads((result.path / MANIFEST_FILE).read_text())
    (record,) = manifest["plan"]["device_memory"]
    assert record["device"] == "opencl"
    assert record["budget_bytes"] == 4 * 2**30  # the pocl-cpu profile's global memory
    allocated = []

    class Counted(cl.Buffer):
        def __init__(self, *args: object, **kwargs: object) -> None:
            super().__init__(*args, **kwargs)
            allocated.append(self.size)

    monkeypatch.setattr(cl, "Buffer", Counted)
    model = runtime.load(result.path, device_options={"zero_copy": False})  # every buffer the device's own
    model.run({"image": np.zeros(SHAPES["image"], np.float32)})
    digest = 32  # the plan digest's output, a buffer of its own while it is checked at load
    assert sum(allocated) == record["total_bytes"] + digest
    assert max(allocated) == record["largest_buffer_bytes"]
    terms = result.device_plan.terms
    assert terms["inputs"] == int(np.prod(SHAPES["image"])) * 4
    assert record["total_bytes"] == sum(terms.values())
    assert (
        result.memory_account.terms[DEVICE_TERM] == terms["inputs"] + terms["kernel scratch"]
    )  # host-unified


def test_a_budget_under_the_plan_fails_the_compile(opencl_device: dict, tmp_path: Path) -> None:
    with pytest.raises(DeviceMemoryBudgetError, match=r"needs .* \((\d+) bytes\) of device memory .*"
                       r"arena .* weights .*over --device-memory-budget 1 KiB \(1024 bytes\)"):  # fmt: skip
        compile_digits(tmp_path / "d.hai", device_memory_budget="1KiB")
    done = CliRunner().invoke(
        app, ["compile", str(EMBEDDED_MODEL), "--input-shape", "image=1,1,8,8", "--target", "opencl",
              "--cpu", "pocl-cpu", "--device-memory-budget", "1KiB", "-o", str(tmp_path / "c.hai")],
    )  # fmt: skip
    assert done.exit_code == 1
    assert "error: model digits_cnn needs" in done.output and "--device-memory-budget" in done.output


def test_a_device_too_small_for_the_plan_is_refused_at_load(opencl_device: dict, tmp_path: Path) -> None:
    artifact = compile_digits(tmp_path / "d.hai").path
    manifest_file = artifact / MANIFEST_FILE
    manifest = json.loads(manifest_file.read_text())
    needed = opencl_device["global_memory_bytes"] + 1
    manifest["plan"]["device_memory"][0]["total_bytes"] = needed  # as a plan for a larger device would be
    manifest_file.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    with pytest.raises(
        DeviceMemoryError,
        match=rf"needs {needed} bytes of device memory .* but opencl device '.*' has "
        rf"{opencl_device['global_memory_bytes']} bytes.*--device-memory-budget",
    ):
        runtime.load(artifact)
    manifest["plan"]["device_memory"][0]["total_bytes"] = 1
    manifest["plan"]["device_memory"][0]["largest_buffer_bytes"] = opencl_device["max_allocation_bytes"] + 1
    manifest_file.write_text(json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    with pytest.raises(DeviceMemoryError, match=r"allocates at most .* \(CL_DEVICE_MAX_MEM_ALLOC_SIZE\)"):
        runtime.load(artifact)


def test_the_report_and_summary_show_the_device_plan(opencl_device: dict, tmp_path: Path) -> None:
    done = CliRunner().invoke(
        app, ["compile", str(EMBEDDED_MODEL), "--input-shape", "image=1,1,8,8", "--target", "opencl",
              "--cpu", "pocl-cpu", "--report", "-o", str(tmp_path / "d.hai")],
    )  # fmt: skip
    assert done.exit_code == 0, done.output
    record = json.loads((tmp_path / "d.hai" / MANIFEST_FILE).read_text())["plan"]["device_memory"][0]
    assert "opencl device memory vs budget 4 GiB" in done.output
    assert re.search(rf"device memory\s*│\s*{record['total_bytes']}\s*│", done.output), done.output
    assert re.search(
        rf"{DEVICE_TERM}\s*│", done.output
    )  # the host's planned peak counts the driver's buffers
    assert ", device memory " in done.output and "of budget 4 GiB" in done.output
