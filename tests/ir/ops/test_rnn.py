"""LSTM, GRU and RNN: one-node ONNX models through HAI against onnxruntime and the ONNX reference."""

from __future__ import annotations

import numpy as np
import pytest
from one_node_onnx import (
    assert_close,
    feeds_of,
    one_node_model,
    run_hai,
    run_onnxruntime,
    run_reference,
)

from hai_compiler.onnx_import import import_onnx
from ir import HaiError

GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}
OUTPUTS = {"LSTM": ["Y", "Y_h", "Y_c"], "GRU": ["Y", "Y_h"], "RNN": ["Y", "Y_h"]}
SEQ, BATCH, INPUT, HIDDEN = 5, 3, 4, 6


def operands(op: str, dirs: int, rng: np.random.Generator, *, lengths=None, layout=0, full=True):  # type: ignore[no-untyped-def]
    """(name, array) pairs in ONNX operand order; optional ones present when `full`."""

    def rand(*shape: int) -> np.ndarray:
        return (0.5 * rng.standard_normal(shape)).astype(np.float32)

    rows = GATES[op] * HIDDEN
    x = rand(SEQ, BATCH, INPUT) if layout == 0 else rand(BATCH, SEQ, INPUT)
    state = (dirs, BATCH, HIDDEN) if layout == 0 else (BATCH, dirs, HIDDEN)
    pairs = [("X", x), ("W", rand(dirs, rows, INPUT)), ("R", rand(dirs, rows, HIDDEN))]
    if not full:
        return pairs
    lens = None if lengths is None else np.array(lengths, np.int32)
    pairs += [("B", rand(dirs, 2 * rows)), ("sequence_lens", lens), ("initial_h", rand(*state))]
    if op == "LSTM":
        pairs += [("initial_c", rand(*state)), ("P", rand(dirs, 3 * HIDDEN))]
    return pairs


def compare_with_onnxruntime(op: str, pairs, opset: int = 22, **attrs) -> None:  # type: ignore[no-untyped-def]
    model = one_node_model(op, pairs, OUTPUTS[op], opset, hidden_size=HIDDEN, **attrs)
    feeds = feeds_of(pairs)
    assert_close(run_hai(model, feeds), run_onnxruntime(model, feeds), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
def test_all_optional_operands_match_onnxruntime(op: str, direction: str) -> None:
    rng = np.random.default_rng(len(op) + len(direction))
    dirs = 2 if direction == "bidirectional" else 1
    pairs = operands(op, dirs, rng, lengths=[5, 3, 1])
    compare_with_onnxruntime(op, pairs, direction=direction)


@pytest.mark.parametrize("linear_before_reset", [0, 1])
def test_gru_linear_before_reset_with_clip(linear_before_reset: int) -> None:
    pairs = operands("GRU", 2, np.random.default_rng(1), lengths=[4, 5, 2])
    compare_with_onnxruntime(
        "GRU", pairs, direction="bidirectional", linear_before_reset=linear_before_reset, clip=0.7
    )


def test_lstm_empty_sequence_gives_zero_final_states() -> None:
    pairs = operands("LSTM", 2, np.random.default_rng(2), lengths=[5, 0, 3])
    compare_with_onnxruntime("LSTM", pairs, direction="bidirectional")


def test_lstm_input_forget_and_clip() -> None:
    pairs = operands("LSTM", 1, np.random.default_rng(3), lengths=[2, 5, 4])
    compare_with_onnxruntime("LSTM", pairs, direction="reverse", input_forget=1, clip=0.5)


@pytest.mark.parametrize(
    ("op", "direction", "activations", "alpha", "beta"),
    [
        ("LSTM", "bidirectional", ["HardSigmoid", "LeakyRelu", "ScaledTanh", "Sigmoid", "Elu", "Affine"],
         [0.3, 0.05, 1.5, 0.7, 0.9], [0.4, 2.0, 0.1]),
        ("LSTM", "forward", ["Sigmoid", "Softsign", "Softplus"], None, None),
        ("LSTM", "forward", ["ThresholdedRelu", "Relu", "Tanh"], [0.2], None),
        ("GRU", "bidirectional", ["HardSigmoid", "Elu", "Sigmoid", "LeakyRelu"], None, None),  # defaults
        ("GRU", "forward", ["Sigmoid", "ScaledTanh"], [0.8], [1.2]),
        ("RNN", "bidirectional", ["Affine", "Tanh"], [0.5], [0.1]),
    ],
)
def test_activations_and_their_parameters(op, direction, activations, alpha, beta) -> None:  # type: ignore[no-untyped-def]
    pairs = operands(op, 2 if direction == "bidirectional" else 1, np.random.default_rng(4))
    extra = {k: v for k, v in (("activation_alpha", alpha), ("activation_beta", beta)) if v is not None}
    compare_with_onnxruntime(op, pairs, direction=direction, activations=activations, **extra)


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_layout_1_is_layout_0_transposed(op: str) -> None:
    """onnxruntime has no batch-major kernels: compare with its layout-0 run of the same data."""
    rng = np.random.default_rng(5)
    batch_major = operands(op, 2, rng, lengths=[5, 2, 4], layout=1)
    model = one_node_model(op, batch_major, OUTPUTS[op], 22, hidden_size=HIDDEN, direction="bidirectional",
                           layout=1)
    ours = run_hai(model, feeds_of(batch_major))
    time_major = [(n, a if a is None or n not in ("X", "initial_h", "initial_c") else np.swapaxes(a, 0, 1))
                  for n, a in batch_major]
    ref_model = one_node_model(op, time_major, OUTPUTS[op], 22, hidden_size=HIDDEN, direction="bidirectional")
    ref = run_onnxruntime(ref_model, feeds_of(time_major))
    expected = [np.transpose(ref[0], (2, 0, 1, 3))] + [np.swapaxes(r, 0, 1) for r in ref[1:]]
    assert_close(ours, expected, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("opset", [7, 14])
@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_older_opsets(op: str, opset: int) -> None:
    pairs = operands(op, 1, np.random.default_rng(6))
    compare_with_onnxruntime(op, pairs, opset=opset)


@pytest.mark.parametrize("op", ["LSTM", "GRU", "RNN"])
def test_defaults_match_onnx_reference(op: str) -> None:
    pairs = operands(op, 1, np.random.default_rng(7), full=False)
    model = one_node_model(op, pairs, OUTPUTS[op], 22, hidden_size=HIDDEN)
    feeds = feeds_of(pairs)
    assert_close(run_hai(model, feeds), run_reference(model, feeds), rtol=1e-5, atol=1e-6)


def test_ir_node_always_has_every_result_and_none_for_absent_operands() -> None:
    rng = np.random.default_rng(8)
    initial_h = (0.1 * rng.standard_normal((1, BATCH, HIDDEN))).astype(np.float32)
    absent = [("B", None), ("sequence_lens", None)]
    pairs = operands("LSTM", 1, rng, full=False) + absent + [("initial_h", initial_h)]
    model = one_node_model("LSTM", pairs, ["Y"], 22, hidden_size=HIDDEN)
    graph = import_onnx(model)
    (node,) = [n for n in graph.nodes if n.op == "LSTM"]
    assert len(node.results) == 3
    assert node.operands[3] is None and node.operands[4] is None and node.operands[5] is not None
    assert node.attrs["hidden_size"] == HIDDEN
    assert node.attrs["activations"] == ("Sigmoid", "Tanh", "Tanh")
    feeds = feeds_of(pairs)
    assert_close(run_hai(model, feeds), run_onnxruntime(model, feeds), rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize(
    ("attrs", "message"),
    [
        ({"activations": ["Sigmoid", "Swish", "Tanh"]}, "Swish"),
        ({"direction": "sideways"}, "sideways"),
        ({"hidden_size": HIDDEN + 1}, "hidden_size"),
        ({"activations": ["Sigmoid", "Tanh"]}, "per direction"),
    ],
)
def test_bad_attributes_are_user_errors(attrs, message) -> None:  # type: ignore[no-untyped-def]
    pairs = operands("LSTM", 1, np.random.default_rng(9), full=False)
    model = one_node_model("LSTM", pairs, ["Y"], 22, **attrs)
    with pytest.raises(HaiError, match=message):
        import_onnx(model)


def test_dynamic_quantization_is_an_lstm_attribute_with_one_mode() -> None:
    from ir.dtypes import DType
    from ir.errors import IRError
    from ir.ops.registry import get_schema
    from ir.ops.rnn import DYNAMIC_QUANTIZATION
    from ir.types import TensorType

    lstm = get_schema("LSTM")
    types = [TensorType(DType.F32, s) for s in ((5, 1, 3), (1, 8, 3), (1, 8, 2))]
    attrs = lstm.normalize_attrs({"hidden_size": 2, DYNAMIC_QUANTIZATION: "u8"}, "lstm")
    assert [t.shape for t in lstm.infer(types, attrs)] == [(5, 1, 1, 2), (1, 1, 2), (1, 1, 2)]
    with pytest.raises(IRError, match="dynamic_quantization 's8' is not one of u8"):
        lstm.infer(types, {**attrs, DYNAMIC_QUANTIZATION: "s8"})
    with pytest.raises(IRError, match="GRU has no attribute"):
        get_schema("GRU").normalize_attrs({"hidden_size": 2, DYNAMIC_QUANTIZATION: "u8"}, "gru")
