"""`hai demo` (the README's main job) and `hai doctor` through the CLI."""

from __future__ import annotations

import io
import json
import os

from cli_helpers import ROOT, invoke, run_process
from rich.console import Console

from hai_compiler.demo import load_heldout_digits, run_demo


def test_demo_compiled_accuracy_matches_onnxruntime() -> None:
    result = run_demo(Console(file=io.StringIO()), runs=5)
    assert result.hai.accuracy >= 0.97
    assert result.onnxruntime is not None
    assert abs(result.hai.accuracy - result.onnxruntime.accuracy) <= 1 / len(load_heldout_digits()[1])
    assert result.kernels < result.onnx_nodes  # BatchNormalization folded, epilogues fused
    assert result.hai.peak_rss_bytes > 0 and result.hai.p50_ms > 0


def test_demo_command_runs() -> None:
    result = run_process(["demo", "--runs", "3"])
    assert result.returncode == 0, result.stderr
    assert "HAI (compiled)" in result.stdout and "onnxruntime" in result.stdout


def test_doctor_scan_json_describes_this_machine() -> None:
    result = invoke("doctor", "--scan")  # still accepted: what bare `hai doctor` does
    assert result.exit_code == 0, result.output
    profile = json.loads(result.stdout)
    assert profile["cpu"]["threads"] == os.cpu_count()
    assert profile["recommended"]["target"] in {"x86", "arm64"}


def test_doctor_table_and_bare_doctor_scans() -> None:
    assert "Recommended" in invoke("doctor", "--format", "table").stdout
    bare = invoke("doctor")
    assert bare.exit_code == 0, bare.output
    assert json.loads(bare.stdout)["cpu"]["threads"] == os.cpu_count()


def test_doctor_measure_adds_the_measured_devices() -> None:
    result = invoke("doctor", "--measure", "--quick", "--measure-runs", "1")
    assert result.exit_code == 0, result.output
    measured = json.loads(result.stdout)["measured"]
    assert measured["version"] == 1 and measured["devices"][0]["device"] == "cpu"
    assert measured["devices"][0]["flops"]["f32"] > 0
    table = invoke("doctor", "--measure", "--quick", "--measure-runs", "1", "--format", "table")
    assert table.exit_code == 0 and "Measured" in table.stdout, table.output


def test_no_text_tells_to_run_doctor_with_scan() -> None:
    """Bare `hai doctor` is the command: no docstring, message or document still asks for its `--scan`."""
    stale = "hai doctor " + "--scan"
    folders = ["hai_compiler", "ir", "passes", "targets", "runtime", "docs", "tests", "bench", "scripts"]
    texts = [ROOT / "README.md", *(p for f in folders for p in (ROOT / f).rglob("*") if p.is_file()
                                   and p.suffix in (".py", ".md", ".json", ".sh", ".toml"))]  # fmt: skip
    assert [str(p.relative_to(ROOT)) for p in texts if stale in p.read_text(errors="replace")] == []
