"""Quantization metrics against hand-computed numpy on tiny arrays, and ONNX weight bytes by hand count."""

from __future__ import annotations

import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from hai_compiler.quantize import metrics


def test_sqnr_is_signal_over_noise_power_in_db() -> None:
    reference = np.array([[1.0, 2.0], [3.0, -4.0]], np.float32)
    quantized = np.array([[1.1, 2.0], [2.9, -4.2]], np.float32)
    signal = 1 + 4 + 9 + 16
    noise = 0.1**2 + 0.1**2 + 0.2**2
    assert metrics.sqnr_db(quantized, reference) == pytest.approx(10 * math.log10(signal / noise), rel=1e-5)


def test_sqnr_of_identical_outputs_is_infinite() -> None:
    x = np.arange(6, dtype=np.float32)
    assert metrics.sqnr_db(x, x) == math.inf


def test_sqnr_rejects_mismatched_shapes() -> None:
    with pytest.raises(ValueError, match="shape"):
        metrics.sqnr_db(np.zeros(3), np.zeros(4))


def test_top1_agreement_per_sample_and_per_timestep() -> None:
    reference = np.array([[0.1, 0.9], [0.8, 0.2], [0.3, 0.7]])
    quantized = np.array([[0.2, 0.8], [0.4, 0.6], [0.1, 0.9]])
    assert metrics.top1_agreement(quantized, reference) == pytest.approx(2 / 3)
    # [N=1, T=4, C=3]: steps 0, 1 and 3 agree
    ref_seq = np.array([[[1, 0, 0], [0, 1, 0], [0, 0, 1], [1, 0, 0]]], np.float32)
    q_seq = np.array([[[0.9, 0, 0], [0, 1, 0.5], [0, 1, 0.2], [1, 0.1, 0]]], np.float32)
    assert metrics.top1_agreement(q_seq, ref_seq) == pytest.approx(3 / 4)


def test_accuracy_against_labels() -> None:
    logits = np.array([[3.0, 1.0, 0.0], [0.0, 0.5, 2.0], [1.0, 2.0, 0.0], [0.0, 0.0, 1.0]])
    assert metrics.accuracy(logits, np.array([0, 2, 0, 2])) == pytest.approx(0.75)
    with pytest.raises(ValueError, match="labels"):
        metrics.accuracy(logits, np.array([0, 1]))


def test_ctc_greedy_decode_merges_repeats_and_drops_blanks() -> None:
    vocabulary = ("blank", "a", "b", " ")
    steps = [1, 1, 0, 1, 2, 2, 3, 0, 0]  # a a _ a b b ␠ _ _ → "aab "
    scores = np.eye(4, dtype=np.float32)[steps][None]
    assert metrics.ctc_greedy_decode(scores, vocabulary) == ["aab "]
    assert metrics.text_accuracy(np.concatenate([scores, scores]), ["aab", "ab"], vocabulary) == 0.5


def test_compression_percent() -> None:
    assert metrics.compression_percent(22, 100) == pytest.approx(78.0)
    assert metrics.compression_percent(100, 100) == 0.0


def test_onnx_weight_bytes_counts_initializers_and_constants() -> None:
    weights = helper.make_tensor("w", TensorProto.FLOAT, [2, 3], np.ones(6))  # 24 bytes
    packed = helper.make_tensor("p", TensorProto.INT4, [5], [1, 2, 3, 4, 5])  # 3 bytes, two per byte
    nodes = [
        helper.make_node(
            "Constant", [], ["c"], value=helper.make_tensor("c", TensorProto.INT64, [4], [1] * 4)
        ),
        helper.make_node("Constant", [], ["f"], value_floats=[1.0, 2.0, 3.0]),  # 12 bytes
        helper.make_node("Constant", [], ["s"], value_float=1.0),  # 4 bytes
        helper.make_node("Add", ["x", "w"], ["y"]),
    ]
    graph = helper.make_graph(
        nodes, "g",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])],
        initializer=[weights, packed],
    )  # fmt: skip
    model = helper.make_model(graph)
    assert metrics.onnx_weight_bytes(model) == 24 + 3 + 32 + 12 + 4


def test_onnx_weight_bytes_of_a_model_file_matches_its_evaluated_constants() -> None:
    from onnx.reference import ReferenceEvaluator

    from hai_compiler.demo import EMBEDDED_MODEL

    model = onnx.load(str(EMBEDDED_MODEL))
    by_hand = sum(onnx.numpy_helper.to_array(t).nbytes for t in model.graph.initializer)
    for node in model.graph.node:
        if node.op_type == "Constant":
            alone = helper.make_graph(
                [node], "c", [], [helper.make_value_info(node.output[0], onnx.TypeProto())]
            )
            (value,) = ReferenceEvaluator(helper.make_model(alone)).run(None, {})
            by_hand += np.asarray(value).nbytes
    assert metrics.onnx_weight_bytes(EMBEDDED_MODEL) == by_hand
