"""The compile driver on a small model: outputs match onnxruntime, the plan's corner cases (a fused
group written in place, a view, a constant output, an output that is a view of an input), byte-identical
artifacts, and the Python API."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from compile_helpers import artifact_files, assert_matches_onnxruntime, small_model

import hai_compiler
from hai_compiler.compiler import CompileOptionError, CompileOptions, compile_model


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return small_model(tmp_path_factory.mktemp("small") / "small.onnx")


@pytest.fixture(scope="module")
def feeds() -> dict[str, np.ndarray]:
    return {"x": np.random.default_rng(1).standard_normal((1, 3, 6, 6)).astype(np.float32)}


def test_outputs_match_onnxruntime(model: Path, feeds, tmp_path: Path) -> None:
    result = compile_model(model, tmp_path / "small.hai", CompileOptions())
    assert_matches_onnxruntime(result.path, model, feeds)
    ops = ["+".join(n.op for n in g.nodes) for g in result.groups]
    assert ops == ["Conv", "Transpose", "Relu+Add", "Gemm"]  # Flatten is a view: no kernel
    assert len(result.plan.plan.steps) == 6  # and the constant output and the input view are copied
    assert result.plan.plan.steps[2].nodes == ("relu", "add")


def test_manifest_records_target_options_and_provenance(model: Path, tmp_path: Path) -> None:
    path = hai_compiler.compile(model, output=tmp_path / "m.hai", cpu="x86-64-v3")
    manifest = json.loads((path / "manifest.json").read_text())
    assert manifest["target"]["cpu"] == "x86-64-v3"
    assert "avx2" in manifest["target"]["features"] and "avx512f" not in manifest["target"]["features"]
    assert manifest["compiler"]["options"] == {
        "target": "x86", "cpu": "x86-64-v3", "passes": "default", "input_shapes": {},
        "memory_budget": 512 * 2**20,  # the default budget
    }  # fmt: skip
    steps = [s["nodes"] for s in manifest["plan"]["steps"]][:4]
    assert steps == [["conv"], ["swap"], ["relu", "add"], ["fc"]]
    assert str(tmp_path) not in (path / "manifest.json").read_text()
    assert "Gemm" in (path / "model.hir").read_text()


def test_same_model_and_options_give_byte_identical_artifacts(model: Path, tmp_path: Path) -> None:
    first = hai_compiler.compile(model, output=tmp_path / "a" / "m.hai")
    second = hai_compiler.compile(str(model), output=tmp_path / "b" / "m.hai")
    assert artifact_files(first) == artifact_files(second)


def test_unknown_api_option_is_an_error(model: Path, tmp_path: Path) -> None:
    with pytest.raises(CompileOptionError, match="unknown option"):
        hai_compiler.compile(model, output=tmp_path / "x.hai", threads=2)
