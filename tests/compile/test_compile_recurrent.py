"""LSTM and GRU models of realistic sizes (text-recogniser-like: seq 40-80, batch 1, input 256-512,
hidden 128-256) compiled and run by the runtime against onnxruntime (fp32 relative error <= 1e-4 on
every output): one and both directions, linear_before_reset on and off, and, in the slow tier,
a batch with sequence_lens and initial states whose hidden size leaves a partly padded tile
(targets/lowering/rnn_step.py); and an LSTM whose W and R are int8 behind DequantizeLinear
(weight-only). The one-node lowering tests (tests/targets/test_lowering_rnn.py) cover every
attribute against the IR reference."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from compile_helpers import assert_matches_onnxruntime, recurrent_model
from onnx import TensorProto, helper, numpy_helper

from hai_compiler.compiler import CompileOptions, compile_model

CASES = {
    "lstm_bidirectional": dict(op="LSTM", direction="bidirectional", seq=80, batch=1, inputs=512, hidden=256),
    "gru_forward_linear_before_reset": dict(
        op="GRU", direction="forward", seq=48, batch=1, inputs=256, hidden=192, linear_before_reset=1
    ),
}
SLOW_CASES = {
    "lstm_forward": dict(op="LSTM", direction="forward", seq=40, batch=1, inputs=256, hidden=128),
    "gru_bidirectional": dict(op="GRU", direction="bidirectional", seq=64, batch=1, inputs=384, hidden=128),
    "lstm_reverse_lens_padded_tile": dict(
        op="LSTM",
        direction="reverse",
        seq=40,
        batch=3,
        inputs=256,
        hidden=100,
        lens=[40, 17, 0],
        initial=True,
    ),
    "gru_bidirectional_lens_padded_tile": dict(
        op="GRU",
        direction="bidirectional",
        seq=50,
        batch=2,
        inputs=128,
        hidden=72,
        lens=[31, 50],
        initial=True,
    ),
}


def check(name: str, case: dict, tmp_path: Path) -> None:
    model, feeds = recurrent_model(tmp_path / f"{name}.onnx", **case)  # type: ignore[arg-type]
    result = compile_model(model, tmp_path / f"{name}.hai", CompileOptions())
    assert [g.nodes[0].op for g in result.groups] == [case["op"]]
    assert_matches_onnxruntime(result.path, model, feeds)


@pytest.mark.parametrize("name", list(CASES))
def test_recurrent_model_matches_onnxruntime(name: str, tmp_path: Path) -> None:
    check(name, CASES[name], tmp_path)


@pytest.mark.slow
@pytest.mark.parametrize("name", list(SLOW_CASES))
def test_recurrent_model_matches_onnxruntime_slow(name: str, tmp_path: Path) -> None:
    check(name, SLOW_CASES[name], tmp_path)


def weight_only_lstm(path: Path, seq: int, inputs: int, hidden: int) -> tuple[Path, dict[str, np.ndarray]]:
    """A bidirectional LSTM whose W (a scale per gate row, zero point 0) and R (one scale, zero point 5)
    come from DequantizeLinear of int8 constants, as QDQ models store them."""
    rng = np.random.default_rng(3)
    rows = 4 * hidden
    arrays = {
        "w_q": rng.integers(-127, 128, (2, rows, inputs)).astype(np.int8),
        "w_scale": (rng.uniform(0.5, 1.5, rows) / (127 * np.sqrt(inputs))).astype(np.float32),
        "w_zero": np.zeros(rows, np.int8),
        "r_q": rng.integers(-127, 128, (2, rows, hidden)).astype(np.int8),
        "r_scale": np.array(1 / (127 * np.sqrt(hidden)), np.float32),
        "r_zero": np.array(5, np.int8),
        "b": rng.normal(0, 0.1, (2, 2 * rows)).astype(np.float32),
    }
    nodes = [
        helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zero"], ["W"], axis=1),
        helper.make_node("DequantizeLinear", ["r_q", "r_scale", "r_zero"], ["R"]),
        helper.make_node(
            "LSTM", ["x", "W", "R", "b"], ["y", "y_h", "y_c"], hidden_size=hidden, direction="bidirectional"
        ),
    ]
    graph = helper.make_graph(
        nodes, "lstm_qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [seq, 1, inputs])],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("y", "y_h", "y_c")],
        [numpy_helper.from_array(a, n) for n, a in arrays.items()],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)])
    model.ir_version = 10
    onnx.save(model, str(path))
    return path, {"x": rng.standard_normal((seq, 1, inputs)).astype(np.float32)}


def test_weight_only_8_bit_lstm_matches_onnxruntime(tmp_path: Path) -> None:
    """W and R read as int8 panels by the tiled kernel (the scales factored out of its sums)."""
    model, feeds = weight_only_lstm(tmp_path / "lstm_qdq.onnx", seq=40, inputs=256, hidden=128)
    result = compile_model(model, tmp_path / "lstm_qdq.hai", CompileOptions())
    assert ["+".join(n.op for n in g.nodes) for g in result.groups] == [
        "DequantizeLinear+DequantizeLinear+LSTM"
    ]
    assert result.plan.kernels[0].workload["template"] == "tiled-gemv"
    assert_matches_onnxruntime(result.path, model, feeds)
