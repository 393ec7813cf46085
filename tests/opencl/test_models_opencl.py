"""Models compiled `--target opencl --cpu pocl-cpu` and run by HAI's runtime on this machine's OpenCL
device (PoCL in CI) through the `opencl` driver, against onnxruntime (fp32 ≤ 1e-4 relative error):
the digits CNN and PP-OCR cls in the fast tier, PP-OCR rec, magika, orientation and det in the slow
tier. The artifact names the opencl device for every step and carries OpenCL C, not a shared library."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

import runtime
from hai_compiler import real_models
from hai_compiler.accuracy import relative_error
from hai_compiler.compiler import CompileOptions, compile_model
from hai_compiler.demo import EMBEDDED_MODEL, load_heldout_digits
from runtime.artifact import MANIFEST_FILE, TVM_RUNTIME_FILE, kernel_library_file
from runtime.manifest_checks import parse_manifest

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("pyopencl")

TOLERANCE = 1e-4
FAST_REAL = ("ppocr_cls",)
SLOW_REAL = ("ppocr_rec", "magika", "orientation", "ppocr_det")


def onnxruntime_outputs(path: Path, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    names = [o.name for o in session.get_outputs()]
    return dict(zip(names, session.run(names, inputs), strict=True))


def compile_opencl(model: Path, out: Path, shapes: dict[str, tuple[int, ...]]) -> Path:
    options = CompileOptions(target="opencl", cpu="pocl-cpu", input_shapes=shapes)
    return compile_model(model, out, options).path


def check_model(model: Path, shapes: dict, inputs: dict, folder: Path) -> Path:
    artifact = compile_opencl(model, folder / "model.hai", shapes)
    loaded = runtime.load(artifact)
    got = loaded.run(inputs)
    want = onnxruntime_outputs(model, inputs)
    for name, expected in want.items():
        assert relative_error(got[name], expected) <= TOLERANCE, name
    return artifact


def test_digits_matches_onnxruntime(opencl_device: dict, tmp_path: Path) -> None:
    x, _ = load_heldout_digits()
    inputs = {"image": np.ascontiguousarray(x[:1])}
    artifact = check_model(Path(EMBEDDED_MODEL), {"image": (1, 1, 8, 8)}, inputs, tmp_path)
    manifest = parse_manifest((artifact / MANIFEST_FILE).read_text())
    assert {step.device for step in manifest.plan.steps} == {"opencl"}
    assert manifest.target.name == "opencl"
    assert TVM_RUNTIME_FILE not in manifest.files  # OpenCL kernels need no TVM runtime
    library = json.loads((artifact / kernel_library_file("opencl")).read_text())
    assert "__kernel void" in library["source"]
    for kernel in library["kernels"].values():
        for launch in kernel["launches"]:
            assert all(g % w == 0 for g, w in zip(launch["global"], launch["local"], strict=True))


def test_outputs_stable_across_runs(opencl_device: dict, tmp_path: Path) -> None:
    """Weights are uploaded once; a second run on other inputs still matches onnxruntime."""
    x, _ = load_heldout_digits()
    artifact = compile_opencl(Path(EMBEDDED_MODEL), tmp_path / "d.hai", {"image": (1, 1, 8, 8)})
    loaded = runtime.load(artifact)
    for i in range(3):
        inputs = {"image": np.ascontiguousarray(x[i : i + 1])}
        want = onnxruntime_outputs(Path(EMBEDDED_MODEL), inputs)["logits"]
        assert relative_error(loaded.run(inputs)["logits"], want) <= TOLERANCE


@pytest.mark.parametrize("name", FAST_REAL)
def test_real_model_fast(opencl_device: dict, name: str, tmp_path: Path) -> None:
    model = real_models.MODELS[name]
    check_model(real_models.fetch(name), dict(model.input_shapes), model.sample_inputs(), tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", SLOW_REAL)
def test_real_model_slow(opencl_device: dict, name: str, tmp_path: Path) -> None:
    model = real_models.MODELS[name]
    check_model(real_models.fetch(name), dict(model.input_shapes), model.sample_inputs(), tmp_path)
