"""Fuzzing pipeline strings: random texts over the grammar's characters, pass and option names and
odd values, through `hai ir --passes`. Oracle: fuzz_oracle.py; an accepted pipeline keeps the
model's result (onnxruntime's, within DESIGN.md's tolerance)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from fuzz_oracle import (
    assert_clean_result,
    assert_matches,
    fuzz_settings,
    invoke,
    onnxruntime_outputs,
    seed_models,
)
from hypothesis import given
from hypothesis import strategies as st

from passes.registry import available_passes

PASSES = sorted(available_passes()) + ["default", "nope", "fold-constants.x"]
OPTIONS = ["max-size", "min-gain", "prefer", "budget", "page-size", "enabled", "x", "max_size"]
VALUES = ["1", "-1", "0", "nan", "inf", "1e999", "١٠", "1_0", "true", "none", "NHWC", "auto", "512MB",
          "9" * 5000, '"a b"', '"\\""', "[1,2]", "[" * 40 + "]" * 40, "[]", "2.5", "0x10", "-0"]  # fmt: skip
PUNCTUATION = ["{", "}", "[", "]", ",", "=", " ", '"', "\\", "\n", "\t", "\x00", "é"]


PASS_OPTIONS = {name: sorted(cls.options()) for name, cls in available_passes().items()}


@st.composite
def pipelines(draw: st.DrawFn) -> str:
    """Mostly well-formed pipelines (real passes, their own options, odd values), some with a stray
    character."""
    parts = []
    for _ in range(draw(st.integers(0, 4))):
        name = draw(st.sampled_from(PASSES))
        parts.append(name)
        if draw(st.integers(0, 2)) == 0:
            names = PASS_OPTIONS.get(name) or OPTIONS
            options = [f"{draw(st.sampled_from(names + OPTIONS[:1]))}={draw(st.sampled_from(VALUES))}"]
            parts.append("{" + " ".join(options) + "}")
        parts.append(",")
    text = "".join(parts).rstrip(",")
    if draw(st.integers(0, 4)) == 0:  # a stray character somewhere
        at = draw(st.integers(0, len(text)))
        text = text[:at] + draw(st.sampled_from(PUNCTUATION)) + text[at:]
    return text


@pytest.fixture(scope="module")
def model(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[Path, dict[str, np.ndarray], dict[str, np.ndarray]]:
    """The cnn seed model, an input file and onnxruntime's outputs on it."""
    root = tmp_path_factory.mktemp("pipeline")
    path = root / "cnn.onnx"
    onnx.save(seed_models()["cnn"], str(path))
    x = np.random.default_rng(0).standard_normal((1, 3, 4, 4)).astype(np.float32)
    np.save(root / "x.npy", x)
    expected = onnxruntime_outputs(path, {"x": x})
    assert expected is not None
    return path, {"x": x}, expected


def check(
    model: tuple[Path, dict[str, np.ndarray], dict[str, np.ndarray]], pipeline: str, work: Path
) -> None:
    path, _, expected = model
    result = invoke("ir", path, "--passes", pipeline, "-o", work / "m.hir", "--save-weights")
    if not assert_clean_result(result, pipeline):
        return
    run = invoke(
        "interp", work / "m.hir", "--input", f"x={path.parent / 'x.npy'}", "--output-dir", work / "out"
    )
    assert assert_clean_result(run, pipeline), run.output
    assert_matches(np.load(work / "out" / "y.npy"), expected["y"], pipeline)


FAST = fuzz_settings(200)
SLOW = fuzz_settings(2000)


@FAST
@given(pipeline=pipelines())
def test_pipelines(model, pipeline: str, tmp_path_factory: pytest.TempPathFactory) -> None:  # type: ignore[no-untyped-def]
    check(model, pipeline, tmp_path_factory.mktemp("p"))


@pytest.mark.slow
@SLOW
@given(pipeline=pipelines())
def test_pipelines_slow(model, pipeline: str, tmp_path_factory: pytest.TempPathFactory) -> None:  # type: ignore[no-untyped-def]
    check(model, pipeline, tmp_path_factory.mktemp("p"))


@pytest.mark.parametrize(
    "pipeline",
    ["fold-constants{max-size=" + "[" * 500 + "]" * 500 + "}", "layout{min-gain=nan}", "x" * 100000],
)
def test_known_bad_pipelines_in_a_real_process(model, pipeline: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from fuzz_oracle import assert_clean, run_process

    proc = run_process(["ir", model[0], "--passes", pipeline])
    assert not assert_clean(proc.returncode, proc.stdout, proc.stderr, pipeline[:100])
