"""The GPU-machine bundle (bench/opencl_bundle.py) built small for PoCL and run by its runner in a
fresh process, as on the device machine: every artifact matches onnxruntime, every row is timed, and
its slowest kernels name the thread rule that scheduled them."""

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
           "--runs", "3", "--seconds", "0.1", "--profile", "2"]  # fmt: skip
    subprocess.run(run, check=True, cwd=tmp_path, timeout=300)
    report = json.loads(out.read_text())
    rows = {(r["engine"], r["model"], r["batch"]): r for r in report["rows"]}
    for model in MODELS:
        hai, peer = rows[("hai-opencl", model, 1)], rows[("onnxruntime-cpu", model, 1)]
        assert hai["ok"] and hai["max_relative_error"] <= 1e-4, hai
        assert hai["latency_ms_p50"] > 0 and peer["latency_ms_p50"] > 0
        _, *slowest = hai["slowest_kernels"]  # the steps' total, then each kernel with its thread rule
        assert slowest and all(k["schedule"] in ("Tiled", "Reduction", "Rows", "Fallback", "Flat", "Matmul")
                               for k in slowest), slowest  # fmt: skip
    assert report["opencl"]["available"]
