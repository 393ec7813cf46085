"""`hai bench --power` on the embedded digits CNN: joules per inference of several artifacts side by side,
each figure with its source; where this machine's RAPL files cannot be read (checked here, apart from
HAI), the CPU package is reported unavailable with the reason, never as a number. A `hai pack` bundle
reports the same without the compiler; a source that reads gives each row its figure and the total."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Mapping
from pathlib import Path

import numpy as np
import pytest
from cli_helpers import invoke

import runtime
from hai_compiler.demo import EMBEDDED_MODEL
from hai_compiler.pack import pack
from runtime.energy import EnergyMeter
from runtime.energy_sources import CounterSource
from runtime.power_bench import measure, report_lines

POWERCAP = Path("/sys/class/powercap")


def rapl_readable() -> bool:
    """Whether some CPU package's energy counter can be read here (independently of runtime/rapl.py)."""
    for energy in POWERCAP.glob("intel-rapl:*/energy_uj"):
        try:
            int(energy.read_text())
            return True
        except (OSError, ValueError):
            continue
    return False


@pytest.fixture(scope="module")
def digits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    artifact = tmp_path_factory.mktemp("power") / "digits.hai"
    compiled = invoke("compile", EMBEDDED_MODEL, "--input-shape", "image=1,1,8,8", "-o", artifact)
    assert compiled.exit_code == 0, compiled.output
    return artifact


def check_cpu_figure(row: dict, unavailable: dict) -> None:
    cpu = {name: f for name, f in row["sources"].items() if name.startswith("cpu ")}
    if rapl_readable():
        assert cpu and all(
            f["joules_per_inference"] > 0 and f["method"] == "RAPL energy counter" for f in cpu.values()
        )
    else:
        assert cpu == {} and row["total_joules_per_inference"] is None
        assert any(name.startswith("cpu ") for name in unavailable)


def test_bench_power_side_by_side(digits: Path, tmp_path: Path) -> None:
    again = tmp_path / "again.hai"
    assert invoke("compile", EMBEDDED_MODEL, "--input-shape", "image=1,1,8,8", "-o", again).exit_code == 0
    report = tmp_path / "power.json"
    result = invoke(
        "bench", digits, again, "--power", "--runs", "3", "--power-seconds", "0", "--json", report
    )
    assert result.exit_code == 0, result.output
    numbers = json.loads(report.read_text())
    assert [row["artifact"] for row in numbers["artifacts"]] == [str(digits), str(again)]
    for row in numbers["artifacts"]:
        assert row["inferences"] >= 3 * numbers["rounds"] and row["runs_on"][0].startswith("cpu: ")
        check_cpu_figure(row, numbers["unavailable"])
    lines = result.stdout.splitlines()
    assert sum(line.strip().startswith(str(p)) for p in (digits, again) for line in lines) == 2
    if not rapl_readable():
        cpu_lines = [line for line in lines if line.strip().startswith("unavailable cpu ")]
        assert cpu_lines and all(("RAPL" in line or "permission" in line) for line in cpu_lines)
        assert "J total: not given while a source is unavailable" in result.stdout


def test_several_artifacts_only_with_power(digits: Path) -> None:
    result = invoke("bench", digits, digits, "--runs", "3")
    assert result.exit_code == 2 and "several artifacts are compared with --power only" in result.output


def test_packed_bundle_reports_power(digits: Path, tmp_path: Path) -> None:
    bundle = pack(digits, tmp_path / "bundle")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}  # the bundle's own runtime
    done = subprocess.run(
        [sys.executable, "run_model.py", "--power", "2"], capture_output=True, text=True, cwd=bundle, env=env,
        timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert "energy per inference" in done.stdout and str(bundle / "model.hai") in done.stdout
    if not rapl_readable():
        assert "unavailable cpu " in done.stdout


def test_figures_side_by_side_from_a_counter(digits: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """With a source that reads (here: a counter advancing 0.25 J per inference), each row has its figure
    and the total, and the text names the source and how it was read."""
    inferences = [0]
    run = runtime.Model.run

    def counted(self: runtime.Model, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        inferences[0] += 1
        return run(self, feeds)

    monkeypatch.setattr(runtime.Model, "run", counted)
    source = CounterSource("fake package (test)", "test counter", lambda: inferences[0] * 250_000, 1e-6)
    result = measure([digits, digits], runs=3, rounds=2, min_seconds=0, meter=EnergyMeter([source]))
    for row in result["artifacts"]:
        assert row["sources"]["fake package (test)"]["joules_per_inference"] == pytest.approx(0.25)
        assert row["total_joules_per_inference"] == pytest.approx(0.25)
    lines = report_lines(result)
    assert "J/inference fake package (test)" in lines[1]
    assert all(line.split()[-2:] == ["0.25", "0.25"] for line in lines[2:4])
    assert "  source fake package (test): test counter" in lines
