"""`hai bench --memory`: the peak RSS the OS measured in fresh processes, beside the plan's peak.

The plan must bound the process: the measured peak RSS (VmHWM of each fresh process that loads the
artifact and runs it) is checked against the manifest's planned peak, an independent measurement
of what the compiler predicted. A paged artifact also reports its page pool and the pager's reads.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from cli_helpers import ROOT, invoke

from hai_compiler.large_models import large_mlp
from runtime.artifact_files import read_manifest

DIGITS = ROOT / "hai_compiler" / "models" / "digits_cnn.onnx"
PROCESSES = 3


def bench_memory(artifact: Path, tmp_path: Path) -> tuple[str, dict]:
    report = tmp_path / "memory.json"
    result = invoke("bench", artifact, "--memory", "--runs", PROCESSES, "--threads", 2, "--json", report)
    assert result.exit_code == 0, result.output
    return result.stdout, json.loads(report.read_text())


def test_bench_memory_measures_peak_rss_within_the_plan(tmp_path: Path) -> None:
    artifact = tmp_path / "digits.hai"
    compiled = invoke("compile", DIGITS, "-o", artifact, "--input-shape", "image=1,1,8,8")
    assert compiled.exit_code == 0, compiled.output
    planned = read_manifest(artifact).plan.planned_peak_bytes
    assert planned is not None

    printed, numbers = bench_memory(artifact, tmp_path)

    peaks = numbers["hai"]["peaks"]
    assert len(peaks) == PROCESSES and all(p > 0 for p in peaks)
    assert numbers["planned"]["planned_peak_bytes"] == planned
    assert numbers["planned"]["budget_bytes"] == 512 * 2**20  # the default budget, as the manifest says
    assert "peak RSS" in printed and "weights resident" in printed
    assert numbers["hai"]["median_peak_bytes"] <= planned, (numbers["hai"], planned)


@pytest.mark.slow
def test_bench_memory_reports_the_page_pool_and_reads(tmp_path: Path) -> None:
    model = large_mlp("4MB", width=512, directory=tmp_path)  # 4 blocks of 1 MiB
    artifact = tmp_path / "mlp.hai"
    compiled = invoke("compile", model, "-o", artifact, "--memory-budget", "47.5MB", "--page-size", "1MB")
    assert compiled.exit_code == 0, compiled.output
    paging = read_manifest(artifact).plan.paging
    assert paging is not None and paging.frames < len(paging.page_bytes)

    printed, numbers = bench_memory(artifact, tmp_path)

    assert numbers["planned"]["frames"] == paging.frames
    assert f"paged: {paging.frames} frames" in printed
    counters = numbers["hai"]["page_counters"]
    assert counters["bytes_read"] > 0 and counters["loads"] > 0
