"""The OCR bundle (bench/ocr_bundle.py) built small for PoCL and run by its runner in a fresh process,
as on the GPU machine: every engine reads onnxruntime's lines and its stream matches onnxruntime;
bench/ocr_report.py turns the JSON into the tables, energy never guessed."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from runtime.cpu_features import X86_64_LEVELS, X86_FEATURES

ROOT = Path(__file__).resolve().parents[2]
SPEC = importlib.util.spec_from_file_location("ocr_report", ROOT / "bench" / "ocr_report.py")
assert SPEC and SPEC.loader
ocr_report = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(ocr_report)


@pytest.mark.slow
def test_ocr_bundle_runs_on_pocl(opencl_device: dict, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("PIL")
    bundle = tmp_path / "bundle"
    build = [sys.executable, str(ROOT / "bench" / "ocr_bundle.py"), str(bundle), "--profile", "pocl-cpu",
             "--pages", "1", "--lines", "2", "--line-batch", "3",
             "--partitioned", "x86+opencl:cpu"]  # fmt: skip
    subprocess.run(build, check=True, cwd=ROOT, timeout=900)
    assert sum(f.stat().st_size for f in bundle.rglob("*") if f.is_file()) <= 64 << 20
    with tarfile.open(bundle / "payload.tar.xz") as payload:
        manifest = json.load(payload.extractfile("artifacts/hai-x86/cls.hai/manifest.json"))  # type: ignore[arg-type]
    portable = {name for name, flag in X86_FEATURES.items() if flag in X86_64_LEVELS["x86-64-v3"]}
    assert set(manifest["target"]["features"]) <= portable  # loads on any AVX2 CPU, Intel or AMD
    wheels = {w.name.split("-")[0] for w in (bundle / "wheels").glob("*.whl")}
    assert wheels >= {"pyopencl", "apache_tvm_ffi", "nvidia_ml_py"}
    out = tmp_path / "out" / "ocr.json"
    run = [sys.executable, str(bundle / "runner.py"), "--json", str(out), "--platform", "Portable",
           "--stream", "10", "--seconds", "0"]  # fmt: skip
    subprocess.run(run, check=True, cwd=tmp_path, timeout=900)
    report = json.loads(out.read_text())
    rows = {(r["engine"], r["workload"]): r for r in report["rows"]}
    engines = {r["engine"] for r in report["rows"]} - {"onnxruntime-cpu"}
    partitioned = {"hai-partitioned"} & (engines | {x["engine"] for x in report["left_out"]})
    assert engines | partitioned == {"hai-x86", "hai-opencl", "hai-partitioned"}
    reference = rows[("onnxruntime-cpu", "ocr")]["lines"]
    assert len(reference) == 2 and all(len(page) >= 1 for page in reference)  # warm-up page + 1 page
    for engine in engines:
        ocr, stream = rows[(engine, "ocr")], rows[(engine, "stream")]
        assert ocr["ok"] and stream["ok"], (ocr.get("error"), stream.get("error"))
        assert ocr["lines"] == reference
        assert stream["max_relative_error"] <= 1e-4 and stream["inputs"] == 10
        assert ocr["stream"]["pages_per_s"] > 0 and ocr["serial"]["p99_ms"] >= ocr["serial"]["p50_ms"] > 0
    table = ocr_report.render(report)
    assert all(f"| {engine} |" in table for engine in engines)


def energy(gpu: float | None, cpu: float | None) -> dict:
    """An energy entry as the runner writes it; None: that source exists but could not be read."""
    measured = {name: j for name, j in (("gpu 0 H100 (NVML)", gpu), ("cpu package-0 (RAPL)", cpu)) if j}
    missing = [{"source": "cpu package-0 (RAPL)", "reason": "permission denied", "exists": True}] * (
        cpu is None
    )
    whole = None if missing else sum(measured.values())
    return {"per_item_j": measured, "methods": {}, "total_per_item_j": whole, "unavailable": missing}


def ocr_row(engine: str, pages_per_s: float, joules: dict, differing: int | None = 0) -> dict:
    row = {"engine": engine, "workload": "ocr", "ok": True, "pages": 4, "lines_per_page": 12.0,
           "serial": {"p50_ms": 100.0, "p99_ms": 120.0}, "stream": {"pages_per_s": pages_per_s,
           "p50_ms": 200.0, "p99_ms": 250.0}, "energy_per_page": joules}  # fmt: skip
    return row if engine == "onnxruntime-cpu" else row | {"lines_differing": differing}


def cells(text: str, engine: str) -> list[str]:
    line = next(x for x in text.splitlines() if x.startswith(f"| {engine} |"))
    return [c.strip() for c in line.strip("|").split("|")]


def test_report_copies_figures_and_never_guesses_energy() -> None:
    rows = [ocr_row("onnxruntime-cpu", 2.0, energy(None, 3.0)), ocr_row("hai-x86", 4.0, energy(None, 2.0)),
            ocr_row("hai-opencl", 16.0, energy(0.5, None), differing=2)]  # fmt: skip
    left = [{"engine": "hai-partitioned", "why": "--target x86+opencl:gpu does not compile here"}]
    text = ocr_report.render({"cpus": 16, "platform": "NVIDIA", "rows": rows, "left_out": left})
    assert cells(text, "hai-x86")[2:6] == ["yes", "4.00", "1.00×", "2.00×"]
    assert cells(text, "hai-x86")[8:] == ["—", "2", "2"]
    assert cells(text, "hai-opencl")[2:6] == ["2 lines differ", "16.00", "4.00×", "8.00×"]
    assert cells(text, "hai-opencl")[8:] == ["0.5", "unavailable", "—"]  # no total without the CPU
    assert "cpu package-0 (RAPL): unavailable: permission denied" in text
    assert "hai-partitioned not measured: --target x86+opencl:gpu does not compile here" in text
