"""silero-vad v5 (opset 16, 25 If nodes; the pinned wheel in hai_compiler/real_models.py, cached under
$HAI_CACHE_DIR): its shape-test Ifs fold while importing, the one on the sample rate `sr` is refused
naming the node unless `sr` is fixed, and the compiled model streams chunks like onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest

import hai_compiler
from hai_compiler import real_models
from hai_compiler.accuracy import relative_error
from ir import HaiError

ort = pytest.importorskip("onnxruntime")
pytestmark = pytest.mark.slow

SPEC = real_models.MODELS["silero_vad_v5"]


def if_nodes(graph: onnx.GraphProto) -> int:
    count = 0
    for node in graph.node:
        count += node.op_type == "If"
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                count += if_nodes(attr.g)
    return count


def test_silero_vad_refuses_an_unfixed_sample_rate_naming_the_if(tmp_path: Path) -> None:
    path = real_models.fetch("silero_vad_v5")
    assert if_nodes(onnx.load(str(path)).graph) == 25
    with pytest.raises(HaiError, match=r"node 'If_0' \(If\): condition .* fix sr to a value \(--input-value"):
        hai_compiler.compile(path, input_shapes=SPEC.input_shapes, output=tmp_path / "refused.hai")


def test_silero_vad_streams_like_onnxruntime(tmp_path: Path) -> None:
    import runtime

    path = real_models.fetch("silero_vad_v5")
    artifact = hai_compiler.compile(
        path, input_shapes=SPEC.input_shapes, input_values=SPEC.input_values, output=tmp_path / "vad.hai"
    )
    model = runtime.load(artifact, threads=2)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    ours = theirs = np.zeros((2, 1, 128), np.float32)
    for chunk in range(4):  # the state each run returns is the next run's input, as a stream runs it
        audio = SPEC.sample_inputs(seed=chunk)["input"]
        got = model.run({"input": audio, "state": ours})
        want = session.run(None, SPEC.onnx_inputs({"input": audio, "state": theirs}))
        for name, reference in zip(got, want, strict=True):
            assert relative_error(got[name], reference) <= 1e-4, (chunk, name)
        ours, theirs = got["stateN"], want[1]
