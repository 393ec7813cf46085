"""bench/opencl_report.py: the docs table from a runner JSON (cells, ratios, absent and failed rows)."""

from __future__ import annotations

import importlib.util
from pathlib import Path

SPEC = importlib.util.spec_from_file_location(
    "opencl_report", Path(__file__).parents[2] / "bench" / "opencl_report.py"
)
assert SPEC and SPEC.loader
report_module = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(report_module)


def hai(model: str, batch: int, ms: float, error: float = 1e-7, platform: str = "NVIDIA") -> dict:
    row = {"engine": "hai-opencl", "platform": platform, "model": model, "batch": batch, "ok": error <= 1e-4}
    return row | {"max_relative_error": error, "latency_ms_p50": ms, "throughput_per_s": batch * 1e3 / ms}


def ort(model: str, batch: int, ms: float) -> dict:
    return {"engine": "onnxruntime-cpu", "model": model, "batch": batch, "ok": True, "latency_ms_p50": ms,
            "throughput_per_s": batch * 1e3 / ms}  # fmt: skip


def test_table_compares_latency_and_throughput() -> None:
    rows = [hai("det", 1, 2.0), hai("det", 8, 4.0), ort("det", 1, 10.0), ort("det", 8, 80.0),
            hai("det", 1, 9.0, platform="Portable Computing Language", error=3e-2)]  # fmt: skip
    text = report_module.render({"platform": "NVIDIA", "cpus": 16, "rows": rows})
    line = next(x for x in text.splitlines() if x.startswith("| det"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells[1] == "ok (1e-07)" and cells[2] == "off (3e-02)"
    assert cells[3:6] == ["2.00", "10.00", "5×"]
    assert cells[6:] == ["500 / 100", "2000 / 100", "— / —"]
    assert "onnxruntime-cpu (16 threads)" in text


def test_failed_rows_are_cells_and_listed() -> None:
    broken = {"engine": "hai-opencl", "platform": "NVIDIA", "model": "rec", "batch": 1, "ok": False,
              "error": "KernelError: build failed"}  # fmt: skip
    text = report_module.render({"platform": "NVIDIA", "rows": [broken, ort("rec", 1, 5.0)], "absent": []})
    line = next(x for x in text.splitlines() if x.startswith("| rec"))
    assert "| failed | — | failed | 5.00 | — |" in line
    assert "- hai-opencl NVIDIA rec batch 1: KernelError: build failed" in text


def test_transfers_table_gives_the_reduction() -> None:
    row = hai("det", 1, 2.0) | {"transfers": {
        "copy": {"mode": "copy", "device_us": 200.0, "host_us": 40.0, "transfers": 2.0},
        "zero_copy": {"mode": "staged", "device_us": 50.0, "host_us": 30.0, "transfers": 2.0},
        "reduction_percent": 75.0}}  # fmt: skip
    text = report_module.render({"platform": "NVIDIA", "rows": [row, ort("det", 1, 10.0)]})
    line = next(x for x in text.splitlines() if x.startswith("| det | staged"))
    cells = [c.strip() for c in line.strip("|").split("|")]
    assert cells == ["det", "staged", "200.0", "50.0", "-75%", "40.0 / 30.0"]
