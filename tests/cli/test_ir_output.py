"""The README's first path: `hai samples` writes the files, `hai ir -o` writes the .hir with its weights
(so `hai ir`/`hai interp` of the .hir work), a .hir without weights fails saying how to fix it, and
instruments without passes say that no pass ran."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime
from cli_helpers import assert_user_error, invoke

from hai_compiler.demo import EMBEDDED_MODEL, load_heldout_digits
from hai_compiler.samples import CALIBRATION_SAMPLES

SHAPE = ["--input-shape", "image=1,1,8,8"]


def onnxruntime_logits(image: np.ndarray) -> np.ndarray:
    session = onnxruntime.InferenceSession(str(EMBEDDED_MODEL), providers=["CPUExecutionProvider"])
    return session.run(None, {"image": image})[0]


def test_samples_are_the_heldout_digits_split(tmp_path: Path) -> None:
    result = invoke("samples", tmp_path)
    assert result.exit_code == 0, result.output
    x, y = load_heldout_digits()
    with np.load(tmp_path / "calibration.npz") as cal, np.load(tmp_path / "eval.npz") as evaluation:
        np.testing.assert_array_equal(cal["image"], x[:CALIBRATION_SAMPLES])
        np.testing.assert_array_equal(evaluation["image"], x[CALIBRATION_SAMPLES:])
    np.testing.assert_array_equal(np.load(tmp_path / "labels.npy"), y[CALIBRATION_SAMPLES:])
    assert np.load(tmp_path / "image.npy").shape == (1, 1, 8, 8)
    assert (tmp_path / "digits.onnx").read_bytes() == EMBEDDED_MODEL.read_bytes()


def test_ir_output_writes_weights_that_interp_reads(tmp_path: Path) -> None:
    hir = tmp_path / "digits.hir"
    assert invoke("ir", EMBEDDED_MODEL, *SHAPE, "--passes", "default", "-o", hir).exit_code == 0
    assert (tmp_path / "digits.weights.npz").is_file()
    image = load_heldout_digits()[0][:1]
    np.save(tmp_path / "image.npy", image)
    ran = invoke(
        "interp", hir, "--input", f"image={tmp_path / 'image.npy'}", "--output-dir", tmp_path / "out"
    )
    assert ran.exit_code == 0, ran.output
    np.testing.assert_allclose(np.load(tmp_path / "out" / "logits.npy"), onnxruntime_logits(image), atol=1e-4)


def test_hir_without_weights_says_how_to_write_them(tmp_path: Path) -> None:
    hir = tmp_path / "bare.hir"
    assert invoke("ir", EMBEDDED_MODEL, *SHAPE, "--no-save-weights", "-o", hir).exit_code == 0
    assert not list(tmp_path.glob("*.npz"))
    np.save(tmp_path / "image.npy", load_heldout_digits()[0][:1])
    result = invoke("interp", hir, "--input", f"image={tmp_path / 'image.npy'}")
    assert_user_error(result, "has no data", "hai ir MODEL -o OUT.hir")


def test_instruments_without_passes_say_no_pass_ran(add_relu: Path) -> None:
    result = invoke("ir", add_relu, "--print-ir-after", "all", "--timing")
    assert result.exit_code == 0, result.output
    assert "no pass ran" in result.stderr and "--passes default" in result.stderr
    assert "total" not in result.stderr


def test_print_ir_of_a_pass_outside_the_pipeline_is_named(add_relu: Path) -> None:
    result = invoke("ir", add_relu, "--passes", "fold-constants", "--print-ir-after", "fuse")
    assert result.exit_code == 0, result.output
    assert "--print-ir-after fuse: no such pass in the pipeline (fold-constants)" in result.stderr
