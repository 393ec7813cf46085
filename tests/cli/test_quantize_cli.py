"""`hai quantize` on the embedded digits CNN: writes a .hir + weights that the interpreter runs, prints the
per-layer table, the size before/after and closeness to fp32 on evaluation data; bad options are one
clear error line."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from cli_helpers import assert_user_error, invoke

from hai_compiler.demo import EMBEDDED_MODEL, load_heldout_digits
from ir import run_graph
from ir.parser import read_hir


def digits_files(tmp_path: Path) -> tuple[Path, Path, Path]:
    x, y = load_heldout_digits()
    np.savez(tmp_path / "cal.npz", image=x[:64])
    np.savez(tmp_path / "eval.npz", image=x[64:128])
    np.save(tmp_path / "labels.npy", y[64:128])
    return tmp_path / "cal.npz", tmp_path / "eval.npz", tmp_path / "labels.npy"


def test_quantize_writes_a_runnable_hir_and_reports(tmp_path: Path) -> None:
    cal, evaluation, labels = digits_files(tmp_path)
    out = tmp_path / "q.hir"
    result = invoke(
        "quantize", EMBEDDED_MODEL, "--input-shape", "image=1,1,8,8", "--calibration-data", cal,
        "--min-sqnr", "30", "--eval-data", evaluation, "--labels", labels, "-o", out,
        "--save-stats", tmp_path / "stats.npz",
    )  # fmt: skip
    assert result.exit_code == 0, result.output
    assert "per-layer precision" in result.output and "node_conv2d_1" in result.output
    assert "smaller than fp32" in result.output and "accuracy" in result.output
    graph = read_hir(out)
    x = load_heldout_digits()[0][200:201]
    assert run_graph(graph, {"image": x})["logits"].shape == (1, 10)
    again = invoke(
        "quantize", EMBEDDED_MODEL, "--input-shape", "image=1,1,8,8", "--precision", "int8",
        "--stats", tmp_path / "stats.npz", "-o", tmp_path / "q8.hir",
    )  # fmt: skip
    assert again.exit_code == 0, again.output


def test_quantize_bad_options_are_one_error_line(tmp_path: Path) -> None:
    cal, _, _ = digits_files(tmp_path)
    base = ["quantize", EMBEDDED_MODEL, "--input-shape", "image=1,1,8,8", "-o", tmp_path / "q.hir"]
    assert_user_error(invoke(*base, "--precision", "int3"), "'int3' is not one of", "'mixed'", code=2)
    assert_user_error(invoke(*base, "--precision", "int8"), "give calibration data")
    assert_user_error(
        invoke(*base, "--calibration-data", cal, "--layer-precision", "conv1"), "write NAME=PRECISION"
    )
    assert_user_error(
        invoke(*base, "--calibration-data", cal, "--min-sqnr", "300"), "--min-sqnr 300.0 dB is unreachable"
    )
    np.savez(tmp_path / "wrong.npz", pixels=np.zeros((4, 1, 8, 8), np.float32))
    assert_user_error(invoke(*base, "--calibration-data", tmp_path / "wrong.npz"), "image")
