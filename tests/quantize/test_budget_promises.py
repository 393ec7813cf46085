"""The budgets of mixed precision hold on what `QuantizedModel.verified` reports, recomputed here against
onnxruntime's fp32 digits CNN: top-1 disagreement, weight bytes; bias correction never breaks them."""

from __future__ import annotations

import math

import numpy as np
import onnxruntime
import pytest

from hai_compiler import DynamicQuantizer
from hai_compiler.demo import EMBEDDED_MODEL, load_heldout_digits
from hai_compiler.quantize.mixed import QuantizationBudgetError
from ir import DType, run_graph

SHAPES = {"image": (1, 1, 8, 8)}


@pytest.fixture(scope="module")
def calibration() -> tuple[list[dict[str, np.ndarray]], np.ndarray]:
    """48 held-out digits as feeds, and onnxruntime's fp32 logits on them."""
    images = load_heldout_digits()[0][:48]
    session = onnxruntime.InferenceSession(str(EMBEDDED_MODEL), providers=["CPUExecutionProvider"])
    logits = np.concatenate([session.run(None, {"image": x[None]})[0] for x in images])
    return [{"image": x[None]} for x in images], logits


def stored_bytes(graph) -> int:  # type: ignore[no-untyped-def]
    """Bytes of the graph's constants as the kernels store them: INT4 two values a byte."""
    return sum(
        math.ceil(v.type.size / 2) if v.type.dtype is DType.I4 else v.constant_array().nbytes
        for v in graph.constants.values()
    )


def test_max_disagreement_holds_on_the_verified_samples(calibration) -> None:  # type: ignore[no-untyped-def]
    feeds, reference = calibration
    q = DynamicQuantizer(max_disagreement=0.0, progress=False).fit(EMBEDDED_MODEL, feeds, input_shapes=SHAPES)
    logits = np.concatenate([run_graph(q.graph, f)["logits"] for f in feeds])
    assert q.verified is not None and q.verified.samples == len(feeds)
    assert (logits.argmax(-1) == reference.argmax(-1)).all() and q.verified.agreement == 1.0


def test_target_size_holds_on_the_reported_weight_bytes(calibration) -> None:  # type: ignore[no-untyped-def]
    feeds, _ = calibration
    for target in (20_000, 30_000):
        q = DynamicQuantizer(target_size=target, progress=False).fit(
            EMBEDDED_MODEL, feeds, input_shapes=SHAPES
        )
        assert stored_bytes(q.graph) <= target
    with pytest.raises(
        QuantizationBudgetError, match="--target-size 5,000 bytes is unreachable: the smallest"
    ):
        DynamicQuantizer(target_size=5_000, progress=False).fit(EMBEDDED_MODEL, feeds, input_shapes=SHAPES)
