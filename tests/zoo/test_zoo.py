"""The public model zoo (hai_compiler/zoo) compiled for this host and compared with onnxruntime.

The fast tier compiles one small model per pattern (`zoo.FAST`); the slow tier the whole zoo. Each
output must be within relative error 1e-4 of onnxruntime's (DESIGN.md). Models HAI refuses today
are xfail (not strict) with the reason, so they show up as soon as they compile.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from hai_compiler import zoo
from hai_compiler.accuracy import relative_error
from hai_compiler.compiler import CompileOptions, compile_model

ort = pytest.importorskip("onnxruntime")

TOLERANCE = 1e-4

REFUSED: dict[str, str] = {}
"""Zoo models HAI does not compile or match yet, and why."""


def with_known_failures(names: list[str]) -> list[object]:
    return [
        pytest.param(n, marks=pytest.mark.xfail(strict=False, reason=REFUSED[n])) if n in REFUSED else n
        for n in names
    ]


def onnxruntime_outputs(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    options = ort.SessionOptions()
    options.intra_op_num_threads = 2
    session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def compile_and_compare(name: str, tmp_path: Path) -> None:
    import runtime

    model = zoo.get(name).model
    path = model.fetch()
    feeds = model.sample_inputs()
    options = CompileOptions(input_shapes=model.input_shapes, input_values=dict(model.input_values) or None)
    result = compile_model(path, tmp_path / f"{name}.hai", options)
    got = list(runtime.load(result.path, threads=2).run(feeds).values())
    want = onnxruntime_outputs(path, model.onnx_inputs(feeds))
    assert len(got) == len(want)
    for k, (actual, expected) in enumerate(zip(got, want, strict=True)):
        assert actual.shape == expected.shape, f"output {k}"
        assert np.abs(expected).max() > 0, f"output {k} is all zero: a weak check"
        error = relative_error(actual, expected)
        assert error <= TOLERANCE, f"{name} output {k}: relative error {error:.2e}"


def test_zoo_covers_the_patterns_with_trained_and_generated_models() -> None:
    models = list(zoo.ZOO.values())
    assert len(models) >= 25
    assert sum(m.trained for m in models) >= 10
    patterns = {m.pattern for m in models}
    assert {"detector", "recurrent", "transformer", "audio", "segmentation", "super-resolution", "embedding",
            "classic-cnn"} <= patterns  # fmt: skip
    assert sorted(zoo.get(n).pattern for n in zoo.FAST) == sorted(patterns), "one fast model per pattern"


def test_generated_models_are_deterministic() -> None:
    model = zoo.get("espcn").model
    assert isinstance(model, zoo.GeneratedModel)
    first = model.fetch().read_bytes()
    assert model.fetch().read_bytes() == first
    assert (
        zoo.GeneratedModel(model.name, model.build, model.input_shapes, model.what, seed=1)
        .fetch()
        .read_bytes()
        != first
    )


@pytest.mark.parametrize("name", with_known_failures(list(zoo.FAST)))
def test_zoo_pattern_matches_onnxruntime(name: str, tmp_path: Path) -> None:
    compile_and_compare(name, tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", with_known_failures(sorted(set(zoo.ZOO) - set(zoo.FAST))))
def test_zoo_model_matches_onnxruntime(name: str, tmp_path: Path) -> None:
    compile_and_compare(name, tmp_path)


@pytest.mark.slow
def test_ppocrv3_det_is_nearer_a_float64_reference_than_onnxruntime(tmp_path: Path) -> None:
    """ppocrv3_det's sigmoid map is 1.4e-4 (max abs) from onnxruntime's: fp32 summation order. Against
    the exact (float64) result, HAI must be within the fp32 goal (relative error 1e-4) and its worst
    element no farther than onnxruntime's (both are about 1e-4 off somewhere: 1.02e-4 and 1.05e-4
    once the convs ran channels-last)."""
    from float64_reference import float64_outputs

    import runtime

    model = zoo.get("ppocrv3_det").model
    path, feeds = model.fetch(), model.sample_inputs()
    result = compile_model(path, tmp_path / "det.hai", CompileOptions(input_shapes=model.input_shapes))
    (ours,) = runtime.load(result.path, threads=2).run(feeds).values()
    (theirs,) = onnxruntime_outputs(path, model.onnx_inputs(feeds))
    (exact,) = float64_outputs(path, model.onnx_inputs(feeds))
    ours_off, theirs_off = (float(np.abs(a.astype(np.float64) - exact).max()) for a in (ours, theirs))
    assert relative_error([ours], [exact]) <= TOLERANCE
    assert ours_off <= theirs_off, f"HAI {ours_off:.2e} from float64, onnxruntime {theirs_off:.2e}"


def test_openvino_child_measures_the_model_and_returns_its_outputs() -> None:
    pytest.importorskip("openvino")
    from hai_compiler.compiler import bench

    model = zoo.get("oww_wakeword_lstm").model
    path, feeds = model.fetch(), model.sample_inputs()
    measured = bench.openvino_isolated(path, feeds, threads=1, runs=3, hint="f32")
    assert measured.latency is not None and measured.latency.runs == 3
    assert measured.peak_rss_bytes > 0
    (expected,) = onnxruntime_outputs(path, feeds)
    assert relative_error(measured.outputs[0], expected) <= TOLERANCE
