"""`hai bench --throughput --stream N`: serial runs against `run_many` on one stream
(runtime/stream_bench.py): inputs/s and p50/p99 latency of each side, as text and JSON; the same from
`python -m runtime.stream_bench` (what a `hai pack` bundle's `run_model.py --stream N` runs). The
figures are measured, never asserted beyond their consistency: the stream's length, the seconds it
took, percentiles in order."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import ROOT, add_relu_model, invoke

from runtime import stream_bench
from runtime.artifact_files import read_manifest

DIGITS = ROOT / "hai_compiler" / "models" / "digits_cnn.onnx"
STREAM = 12


@pytest.fixture(scope="module")
def artifact(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("throughput") / "digits.hai"
    compiled = invoke("compile", DIGITS, "-o", out, "--input-shape", "image=1,1,8,8")
    assert compiled.exit_code == 0, compiled.output
    return out


def check_figures(numbers: dict, artifact: Path, in_flight: int) -> None:
    assert numbers["stream"] == STREAM and numbers["in_flight"] == in_flight and numbers["stages"] == ["cpu"]
    planned = read_manifest(artifact).plan.planned_peak_bytes
    assert planned is not None and numbers["planned_peak_bytes"] > planned  # the arenas in flight count
    for side in ("run", "run_many"):
        figures = numbers[side]
        assert figures["throughput_per_s"] == pytest.approx(STREAM / figures["seconds"])
        assert 0 < figures["p50_ms"] <= figures["p99_ms"]
    ratio = numbers["run_many"]["throughput_per_s"] / numbers["run"]["throughput_per_s"]
    assert numbers["speedup"] == pytest.approx(ratio)


@pytest.mark.parametrize("in_flight", [None, 2])
def test_bench_throughput_reports_both_sides(artifact: Path, tmp_path: Path, in_flight: int | None) -> None:
    report = tmp_path / "throughput.json"
    flight = ["--in-flight", str(in_flight)] if in_flight else []
    result = invoke("bench", artifact, "--throughput", "--stream", str(STREAM), *flight, "--json", report)
    assert result.exit_code == 0, result.output
    check_figures(json.loads(report.read_text()), artifact, in_flight or 1)
    assert f"a stream of {STREAM} inputs" in result.stdout
    assert "run_many:" in result.stdout and "inputs/s, latency p50" in result.stdout


def test_json_dash_is_stdout(artifact: Path) -> None:
    result = invoke("bench", artifact, "--throughput", "--stream", str(STREAM), "--json", "-")
    assert result.exit_code == 0, result.output
    check_figures(json.loads(result.stdout), artifact, 1)  # the text went to stderr


def test_stream_bench_without_the_compiler(
    artifact: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    report = tmp_path / "stream.json"
    assert (
        stream_bench.main([str(artifact), "--stream", str(STREAM), "--rounds", "1", "--json", str(report)])
        == 0
    )
    check_figures(json.loads(report.read_text()), artifact, 1)
    assert "run_many / run throughput" in capsys.readouterr().out


def test_stream_of_no_inputs_is_refused(tmp_path: Path) -> None:
    artifact = tmp_path / "add.hai"
    assert invoke("compile", add_relu_model(tmp_path / "add.onnx"), "-o", artifact).exit_code == 0
    result = invoke("bench", artifact, "--throughput", "--stream", "0")
    assert result.exit_code == 2 and "--stream" in result.output
