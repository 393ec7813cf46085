"""LSTM and GRU models of realistic sizes (text-recogniser-like: seq 40-80, batch 1, input 256-512,
hidden 128-256) compiled and run by the runtime against onnxruntime (fp32 relative error <= 1e-4 on
every output): one and both directions, linear_before_reset on and off, and, in the slow tier,
a batch with sequence_lens and initial states whose hidden size leaves a partly padded tile
(targets/lowering/rnn_step.py). The one-node lowering tests (tests/targets/test_lowering_rnn.py)
cover every attribute against the IR reference."""

from __future__ import annotations

from pathlib import Path

import pytest
from compile_helpers import assert_matches_onnxruntime, recurrent_model

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
