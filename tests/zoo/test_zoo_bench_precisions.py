"""bench/zoo.py's reduced-precision columns (`--precision bf16,auto`) from measured rows, no timing: each
precision's errors against fp32 (HAI's against HAI fp32, OpenVINO default's against OpenVINO f32, from
the engines' outputs), its latency over OpenVINO default's, the per-model error verdict and the geo-means;
the table keeps its columns without `--precision` and gains one cell per column with it."""

from __future__ import annotations

import importlib.util
import math
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest

SPEC = importlib.util.spec_from_file_location("bench_zoo", Path(__file__).parents[2] / "bench" / "zoo.py")
assert SPEC and SPEC.loader
zoo_bench = importlib.util.module_from_spec(SPEC)
SPEC.loader.exec_module(zoo_bench)


def outputs(*arrays: list[float]) -> SimpleNamespace:
    return SimpleNamespace(outputs=[np.asarray(a, np.float32) for a in arrays])


def test_errors_are_against_each_engines_own_fp32() -> None:
    measured = {
        "hai": outputs([1.0, 2.0, -4.0]),
        "hai_bf16": outputs([1.0, 2.0, -4.04]),  # 0.04 / 4
        "ov_f32": outputs([1.0, 2.0, 4.0]),
        "ov": outputs([1.0, 2.02, 4.0]),  # 0.02 / 4
    }
    row: dict = {}
    zoo_bench.reduced_errors(row, measured, ["bf16", "auto"])  # auto not measured: no cell
    assert row == {"hai_bf16_fp32_err": pytest.approx(0.01), "ov_fp32_err": pytest.approx(0.005)}


def test_an_output_of_another_shape_is_the_engines_error() -> None:
    row: dict = {}
    zoo_bench.reduced_errors(row, {"hai": outputs([1.0, 2.0]), "hai_bf16": outputs([1.0])}, ["bf16"])
    assert "shape" in row["hai_bf16_error"] and "hai_bf16_fp32_err" not in row


def test_verdicts_compare_latency_and_error_with_openvino_default() -> None:
    row = {"hai_bf16_ms": 3.0, "hai_auto_ms": 8.0, "ov_ms": 4.0, "hai_bf16_fp32_err": 2e-3,
           "hai_auto_fp32_err": 9e-3, "ov_fp32_err": 5e-3}  # fmt: skip
    verdicts = zoo_bench.precision_verdicts(row, ["bf16", "auto"])
    assert verdicts == {"hai_bf16/ov": 0.75, "bf16_err_ok": True, "hai_auto/ov": 2.0, "auto_err_ok": False}
    assert zoo_bench.precision_verdicts({"hai_bf16_ms": 3.0}, ["bf16"]) == {}  # OpenVINO failed


def test_summary_geomeans_over_the_models_measured() -> None:
    rows = [
        {"hai_bf16/ov": 0.5, "bf16_err_ok": True},
        {"hai_bf16/ov": 2.0, "bf16_err_ok": False, "hai_auto/ov": 0.9},
        {"hai_bf16_error": "skipped"},
    ]
    totals = zoo_bench.summary(rows)
    assert totals["geomean_hai_bf16/ov"] == pytest.approx(1.0) and totals["count_hai_bf16/ov"] == 2
    assert totals["bf16_err_ok"] == 1 and totals["geomean_hai_auto/ov"] == pytest.approx(0.9)
    assert math.isnan(totals["geomean_hai/ort"])
    line = zoo_bench.summary_line({**totals, "geomean_rss_hai/ort": 1.0})
    assert "HAI bf16 / OpenVINO default 1.00 (2 models, error against fp32 within OpenVINO's on 1)" in line


def test_columns_without_and_with_precisions() -> None:
    row = {"model": "m", "hai_ms": 1.0, "hai_bf16_ms": 0.5, "hai_bf16/ov": 0.8, "hai_bf16_fp32_err": 3e-3,
           "bf16_err_ok": False, "ov_fp32_err": 1e-3, "hai_auto_error": "skipped: no bf16",
           "status": "ok"}  # fmt: skip
    assert zoo_bench.columns() == zoo_bench.COLUMNS
    assert len(zoo_bench.cells(row)) == len(zoo_bench.COLUMNS)
    heads, cells = zoo_bench.columns(["bf16", "auto"]), zoo_bench.cells(row, precisions=["bf16", "auto"])
    assert len(cells) == len(heads) and heads[-1] == "status"
    assert cells[heads.index("HAI bf16/OV")] == "0.80"
    assert cells[heads.index("bf16 err/fp32")] == "3.0e-03 (>OV)"
    assert cells[heads.index("OV err/f32")] == "1.0e-03"
    assert cells[heads.index("HAI auto ms")] == "-" and "skipped: no bf16" in cells[-1]
