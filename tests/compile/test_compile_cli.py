"""`hai compile`, `hai run` and `hai bench` as a user runs them (in-process through typer's runner)."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from compile_helpers import onnxruntime_outputs, small_model
from typer.testing import CliRunner

from hai_compiler.accuracy import relative_error
from hai_compiler.cli import app


def hai(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_compile_report_run_and_bench(tmp_path: Path) -> None:
    model = small_model(tmp_path / "small.onnx")
    artifact = tmp_path / "small.hai"
    compiled = hai(
        "compile", model, "--target", "x86", "-o", artifact, "--report", "--dump-ir", tmp_path / "ir"
    )
    assert compiled.exit_code == 0, compiled.output
    rows = [line.split("│") for line in compiled.stdout.splitlines() if "│" in line]
    fused = next(i for i, row in enumerate(rows) if "Relu+Add" in row[2])
    assert [rows[fused][3].strip(), rows[fused + 1][3].strip()] == ["relu", "add"]  # one node a line
    assert "arena" in compiled.output and "naive" in compiled.output
    assert sorted(p.name for p in (tmp_path / "ir").iterdir())  # one .hir per pass

    x = np.random.default_rng(3).standard_normal((1, 3, 6, 6)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    ran = hai("run", artifact, "--input", f"x={tmp_path / 'x.npy'}", "--output-dir", tmp_path / "out")
    assert ran.exit_code == 0, ran.output
    assert "y: f32[1, 10]" in ran.output
    want = onnxruntime_outputs(model, {"x": x})
    for name in ("y", "k", "xf"):
        assert relative_error(np.load(tmp_path / "out" / f"{name}.npy"), want[name]) <= 1e-4

    report = tmp_path / "bench.json"
    bench = hai(
        "bench", artifact, "--onnx", model, "--threads", "1", "--runs", "5", "--profile", "--json", report
    )
    assert bench.exit_code == 0, bench.output
    assert "p50" in bench.output and "onnxruntime" in bench.output and "conv" in bench.output
    numbers = json.loads(report.read_text())
    assert numbers["hai"]["peak_rss_bytes"] > 0 and numbers["onnxruntime"]["latency"]["p50_ms"] > 0
    assert [s["nodes"] for s in numbers["steps"]][:3] == [["conv"], ["swap"], ["relu", "add"]]


def test_bad_cpu_and_missing_shape_are_one_line_errors(tmp_path: Path) -> None:
    model = small_model(tmp_path / "small.onnx")
    bad_cpu = hai("compile", model, "--cpu", "pentium-9000", "-o", tmp_path / "o.hai")
    assert bad_cpu.exit_code == 1
    assert "error: LLVM does not know the x86 cpu 'pentium-9000'" in bad_cpu.output
    bad_input = hai("run", tmp_path / "missing.hai")
    assert bad_input.exit_code == 1 and "error:" in bad_input.output
