"""The GPU-machine bundle (bench/opencl_bundle.py) built small for PoCL and run by its runner in a
fresh process, as on the device machine: every artifact matches onnxruntime, every row is timed, and
`--profile` records every step of the plan at batch 1 with its launches."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
MODELS = ("digits", "ppocr_cls")


def test_bundle_runs_on_pocl(opencl_device: dict, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    bundle = tmp_path / "bundle"
    build = [sys.executable, str(ROOT / "bench" / "opencl_bundle.py"), str(bundle), "--profile", "pocl-cpu",
             "--models", *MODELS]  # fmt: skip
    subprocess.run(build, check=True, cwd=ROOT, timeout=300)
    assert sum(f.stat().st_size for f in bundle.rglob("*") if f.is_file()) <= 64 << 20
    assert {w.name.split("-")[0] for w in (bundle / "wheels").glob("*.whl")} >= {"pyopencl", "apache_tvm_ffi"}
    out = tmp_path / "out" / "opencl.json"
    run = [sys.executable, str(bundle / "runner.py"), "--json", str(out), "--platform", "Portable",
           "--runs", "3", "--seconds", "0.1", "--transfers", "3", "--profile", "2"]  # fmt: skip
    subprocess.run(run, check=True, cwd=tmp_path, timeout=300)
    report = json.loads(out.read_text())
    rows = {(r["engine"], r["model"], r["batch"]): r for r in report["rows"]}
    for model in MODELS:
        hai, peer = rows[("hai-opencl", model, 1)], rows[("onnxruntime-cpu", model, 1)]
        assert hai["ok"] and hai["max_relative_error"] <= 1e-4, hai
        assert hai["latency_ms_p50"] > 0 and peer["latency_ms_p50"] > 0
        transfers = hai["transfers"]  # PoCL shares the host's memory: zero-copy maps instead of copying
        assert transfers["copy"]["mode"] == "copy" and transfers["zero_copy"]["mode"] == "mapped", transfers
        assert transfers["copy"]["transfers"] >= 2 and transfers["copy"]["device_us"] > 0, transfers
        plan = json.loads((bundle_payload(tmp_path, model) / "manifest.json").read_text())["plan"]["steps"]
        assert [s["kernel"] for s in hai["steps"]] == [s["kernel"] for s in plan]  # every step, in order
        assert all(s["launches"] and s["schedule"] and s["ms"] > 0 for s in hai["steps"])
        assert hai["steps_total_ms"] == pytest.approx(sum(s["ms"] for s in hai["steps"]))
        assert hai["sync_ms"] >= 0
    assert report["opencl"]["available"]


def bundle_payload(work: Path, model: str) -> Path:
    """`model`'s batch-1 artifact as the runner unpacked it (its `work/payload`, beside the bundle)."""
    return work / "bundle" / "work" / "payload" / "artifacts" / f"{model}.hai"
