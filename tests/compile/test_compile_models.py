"""Real models end to end: compiled for x86, run by the minimal runtime, compared with onnxruntime.

The embedded digits CNN runs its whole held-out set in one batch and keeps
onnxruntime's accuracy; the PP-OCR direction classifier runs by default; all
five real models run in the slow tier (`-m slow`). Tolerance: relative error
≤ 1e-4 per output (DESIGN.md).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from compile_helpers import assert_matches_onnxruntime, onnxruntime_outputs

import hai_compiler
from hai_compiler import real_models
from hai_compiler.demo import EMBEDDED_MODEL, load_heldout_digits


def test_embedded_digits_model_matches_onnxruntime_and_keeps_accuracy(tmp_path: Path) -> None:
    import runtime

    x, y = load_heldout_digits()
    artifact = hai_compiler.compile(
        EMBEDDED_MODEL, input_shapes={"image": x.shape}, output=tmp_path / "d.hai"
    )
    assert_matches_onnxruntime(artifact, EMBEDDED_MODEL, {"image": x})
    (logits,) = runtime.load(artifact).run({"image": x}).values()
    (reference,) = onnxruntime_outputs(EMBEDDED_MODEL, {"image": x}).values()
    accuracy = float((logits.argmax(axis=1) == y).mean())
    assert accuracy == float((reference.argmax(axis=1) == y).mean())
    assert accuracy >= 0.95


def compile_and_compare(name: str, tmp_path: Path) -> None:
    model = real_models.MODELS[name]
    path = real_models.fetch(name)
    artifact = hai_compiler.compile(
        path,
        input_shapes=model.input_shapes,
        input_values=model.input_values or None,
        output=tmp_path / f"{name}.hai",
    )
    feeds = model.sample_inputs()
    assert all(isinstance(v, np.ndarray) for v in feeds.values())
    assert_matches_onnxruntime(artifact, path, feeds, model.input_values)


def test_ppocr_direction_classifier_matches_onnxruntime(tmp_path: Path) -> None:
    compile_and_compare("ppocr_cls", tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(real_models.MODELS))
def test_real_model_matches_onnxruntime(name: str, tmp_path: Path) -> None:
    compile_and_compare(name, tmp_path)
