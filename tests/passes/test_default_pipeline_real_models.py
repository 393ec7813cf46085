"""The `default` pipeline on the real models: verified after every pass, numbers kept.

The pipeline must change the interpreter's outputs by at most 1e-4 (relative
L2), and move them no further from onnxruntime's than 1e-4: the distance of
the unoptimised graph to onnxruntime is the op families' business, not the passes'.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from hai_compiler.onnx_import.importer import import_onnx
from ir import run_graph
from passes import PassContext, PassManager, parse_pipeline

MODELS = Path(__file__).resolve().parents[2] / ".cache" / "models"
CASES = {
    "ppocr_cls": ("x", (1, 3, 48, 192)),
    "ppocr_rec": ("x", (1, 3, 48, 320)),
    "orientation": ("x", (1, 3, 224, 224)),
    "magika": ("bytes", (1, 2048)),
    "ppocr_det": ("x", (1, 3, 640, 640)),
}


@pytest.mark.slow
@pytest.mark.parametrize("name", list(CASES))
def test_default_pipeline_keeps_onnxruntime_numbers(name: str) -> None:
    path = MODELS / f"{name}.onnx"
    if not path.exists():
        pytest.skip(f"{path} is not downloaded")
    input_name, shape = CASES[name]
    graph = import_onnx(path, input_shapes={input_name: shape})
    rng = np.random.default_rng(0)
    dtype = graph.inputs[0].type.dtype.numpy
    data = rng.integers(0, 256, shape) if np.issubdtype(dtype, np.integer) else rng.standard_normal(shape)
    inputs = {input_name: data.astype(dtype)}
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = dict(zip([o.name for o in session.get_outputs()], session.run(None, inputs), strict=True))
    before = run_graph(graph, inputs)
    nodes_before = len(graph.nodes)
    graph = PassManager(parse_pipeline("default"), verify_each=True).run(graph, PassContext())
    assert len(graph.nodes) <= nodes_before
    assert not any(node.op == "BatchNormalization" for node in graph.nodes)
    after = run_graph(graph, inputs)
    assert list(after) == list(before)
    for output, got in after.items():
        assert relative_error(got, before[output]) <= 1e-4, output
        drift = relative_error(got, expected[output]) - relative_error(before[output], expected[output])
        assert drift <= 1e-4, f"{output}: the pipeline moved it {drift:.2e} further from onnxruntime"


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    want = want.astype(np.float64)
    return float(np.linalg.norm(got.astype(np.float64) - want) / max(np.linalg.norm(want), 1e-30))
