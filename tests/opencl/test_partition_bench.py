"""bench/partition.py on the embedded digits over the host and PoCL: the four engines compiled, the
auto ones the CPU-only artifact (the partition keeps the CPU), measured side by side with outputs
matching CPU-only's and the ratios taken against the better single device; the measuring half
imports no compiler, so it runs on a device without one."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
SPEC = importlib.util.spec_from_file_location("partition_bench", ROOT / "bench" / "partition.py")
assert SPEC and SPEC.loader
bench = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(bench)  # puts the repository on sys.path, as running it does
measure = sys.modules["bench.partition_measure"]


def test_the_bench_compiles_and_measures_the_engines(opencl_device: dict, tmp_path: Path) -> None:
    chosen = bench.compile_engines("digits", tmp_path, "opencl:cpu", {"opencl_profile": "pocl-cpu"})
    assert chosen["x86"]["devices"] == ["cpu"] and chosen["opencl"]["devices"] == ["opencl"]
    assert chosen["auto"]["target"] == "x86" and chosen["auto-throughput"]["target"] == "x86"
    want = (tmp_path / "digits" / "x86.hai" / "manifest.json").read_bytes()
    assert (tmp_path / "digits" / "auto.hai" / "manifest.json").read_bytes() == want
    row = measure.measure_model(tmp_path / "digits", rounds=1, runs=3, stream=4)
    assert row["outputs_match"]
    best = min(row["p50_ms"]["x86"], row["p50_ms"]["opencl"])
    assert row["latency_ratio"] == pytest.approx(row["p50_ms"]["auto"] / best)
    assert row["same_artifact"] == {"auto": True, "auto-throughput": True}
    assert "cpu only (x86's artifact) / cpu only (x86's artifact)" in measure.table([row])


def test_the_measuring_half_needs_no_compiler() -> None:
    code = (
        "import sys; import bench.partition_measure; "
        "assert not {'hai_compiler', 'tvm', 'targets', 'passes'} & set(sys.modules), sorted(sys.modules)"
    )
    subprocess.run([sys.executable, "-c", code], cwd=ROOT, check=True)
