"""The generated large MLP: deterministic, valid ONNX with external data, and read by our importer.

References: onnxruntime on the written model, numpy's forward pass over the
weights onnx itself loads from the external data file, and the IR's
reference interpreter on what `load_model_any` imported.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

from hai_compiler.driver import load_model_any
from hai_compiler.large_models import block_bytes, large_mlp, mlp_layers
from ir import run_graph

WIDTH = 128


def numpy_forward(model_path: Path, x: np.ndarray) -> np.ndarray:
    weights = {t.name: numpy_helper.to_array(t) for t in onnx.load(str(model_path)).graph.initializer}
    layers = len(weights) // 2
    for layer in range(layers):
        x = x @ weights[f"w{layer}"] + weights[f"b{layer}"]
        x = np.maximum(x, 0) if layer < layers - 1 else x
    return x


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    return float(np.linalg.norm(got - want) / np.linalg.norm(want))


def test_small_mlp_is_deterministic_valid_and_imported(tmp_path: Path) -> None:
    first = large_mlp("1MB", seed=3, width=WIDTH, batch=2, directory=tmp_path / "a")
    second = large_mlp("1MB", seed=3, width=WIDTH, batch=2, directory=tmp_path / "b")
    layers = mlp_layers("1MB", WIDTH)
    assert first.name == second.name == f"large_mlp-w{WIDTH}-l{layers}-b2-s3.onnx"
    for a, b in ((first, second), (Path(f"{first}.data"), Path(f"{second}.data"))):
        assert a.read_bytes() == b.read_bytes()
    assert large_mlp("1MB", seed=4, width=WIDTH, batch=2, directory=tmp_path / "a") != first
    onnx.checker.check_model(str(first))
    x = np.random.default_rng(0).standard_normal((2, WIDTH)).astype(np.float32)
    session = ort.InferenceSession(str(first), providers=["CPUExecutionProvider"])
    (y,) = session.run(None, {"x": x})
    want = numpy_forward(first, x)
    assert relative_error(y, want) < 1e-5 and np.std(want) > 0.1  # activations keep their scale
    graph = load_model_any(first)
    assert relative_error(run_graph(graph, {"x": x})["y"], want) < 1e-5


def test_200mb_mlp_has_its_size_and_imports() -> None:
    path = large_mlp("200MB")
    layers = mlp_layers("200MB")
    assert abs(layers * block_bytes(2048) - 200 * 2**20) <= block_bytes(2048) / 2
    graph = load_model_any(path)
    assert len(graph.nodes) == 3 * layers - 1
    assert sum(v.constant_array().nbytes for v in graph.constants.values()) == layers * block_bytes(2048)


@pytest.mark.slow
def test_1_2gb_mlp_imports() -> None:
    path = large_mlp("1.2GB")
    graph = load_model_any(path)
    assert sum(v.constant_array().nbytes for v in graph.constants.values()) > 2**30
