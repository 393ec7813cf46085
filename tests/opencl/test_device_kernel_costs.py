"""bench/kernel_costs.py --device-json (bench/device_kernel_costs.py) on a small synthetic runner JSON
and bundle: only the timed platform's batch-1 rows are read (the new `steps` and the old
`slowest_kernels` alike), steps of one anchor add up, each kernel is predicted from the artifact's IR
and kernel library as targets/kernel_costs.py predicts it, and the fraction within 2x counts the
kernels whose ratio lies in [0.5, 2]. bench/opencl_runner.py's step record keeps every step with its
launches, and times one wait for the idle device. No device runs."""

from __future__ import annotations

import argparse
import importlib.util
import json
import math
from pathlib import Path
from types import ModuleType, SimpleNamespace
from typing import Any

import pytest

from ir.parser import parse_hir
from targets.kernel_costs import DeviceSpeed, kernel_seconds
from targets.kernel_launches import KernelLaunches

BENCH = Path(__file__).parents[2] / "bench"
HIR = """// HAI IR text (.hir), format version 1
graph @main(%x: f32[16,64], %w: f32[64,32]) -> (%e) {
  %m = MatMul(%x, %w) : f32[16,32] loc("mm") #{fusion_group = 0}
  %r = Relu(%m) : f32[16,32] loc("relu") #{fused_into = "mm", fusion_group = 0}
  %e = Exp(%r) : f32[16,32] loc("exp")
  return %e
}
"""
LIBRARY = {
    "format": "hai-opencl-2",
    "profile": {"compute_units": 4},
    "kernels": {
        "hai_matmul_0": {"schedule": "Tiled", "launches": [{"global": [32, 1, 1], "local": [16, 1, 1]}]},
        "hai_matmul_1": {"schedule": "Tiled", "launches": [{"global": [512, 1, 1], "local": [256, 1, 1]}]},
        "hai_ew_2": {"schedule": "Fallback", "launches": [{"global": [512, 1, 1], "local": [512, 1, 1]}]},
    },
}
DEVICE = {"device": "opencl:0", "name": "test gpu", "kind": "gpu", "target": "opencl", "runs": 1,
          "flops": {"f32": 2e9}, "unsupported": {}, "gemm_n": None,
          "bandwidth": [{"bytes": 1 << 20, "bytes_per_second": 1e9}], "launch_seconds": 3e-6,
          "transfer": None}  # fmt: skip


def load(name: str) -> ModuleType:
    spec = importlib.util.spec_from_file_location(name, BENCH / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def row(platform: str, batch: int, model: str, **profile: Any) -> dict[str, Any]:
    return {
        "engine": "hai-opencl",
        "platform": platform,
        "model": model,
        "batch": batch,
        "ok": True,
        **profile,
    }


def runner_json() -> dict[str, Any]:
    """The timed platform's batch-1 row (the matmul lowered as two steps, a copy step the IR has no
    node for), beside rows the reader must skip: batch 8, PoCL, onnxruntime."""
    steps = [
        {"kernel": "hai_matmul_0", "nodes": ["mm", "relu"], "ms": 0.02},
        {"kernel": "hai_matmul_1", "nodes": ["mm"], "ms": 0.01},
        {"kernel": "hai_ew_2", "nodes": ["exp"], "ms": 0.005},
        {"kernel": "hai_copy", "nodes": ["not_in_the_ir"], "ms": 0.001},
    ]
    other = [{"kernel": "hai_ew_2", "nodes": ["exp"], "ms": 9.0}]
    return {"platform": "NVIDIA", "bundle": {"profile": "test"}, "rows": [
        row("NVIDIA", 1, "m", steps_total_ms=0.036, steps=steps, sync_ms=0.004),
        row("NVIDIA", 8, "m", slowest_kernels=[{"steps_total_ms": 9.0, "steps": 1}, *other]),
        row("Portable Computing Language", 1, "m", steps=other),
        row("NVIDIA", 1, "old", slowest_kernels=[{"steps_total_ms": 9.0, "steps": 1}, *other]),
        {"engine": "onnxruntime-cpu", "model": "m", "batch": 1, "ok": True, "latency_ms_p50": 1.0},
    ]}  # fmt: skip


def bundle(folder: Path) -> Path:
    """An unpacked bundle: bundle.json and one artifact's IR, manifest and kernel library."""
    artifact = folder / "artifacts" / "m.hai"
    artifact.mkdir(parents=True)
    (artifact / "model.hir").write_text(HIR)
    (artifact / "manifest.json").write_text(json.dumps({"kernel_libraries": {"opencl": "kernels.opencl.so"}}))
    (artifact / "kernels.opencl.so").write_text(json.dumps(LIBRARY))
    index = {"profile": "test", "models": [{"name": "m", "artifacts": {"1": "artifacts/m.hai"}}]}
    (folder / "bundle.json").write_text(json.dumps(index))
    return folder


def test_reader_takes_the_timed_platforms_batch_1_steps_old_and_new() -> None:
    device = load("device_kernel_costs")
    steps = device.device_steps(runner_json())
    assert sorted(steps) == ["m", "old"]
    assert [s["kernel"] for s in steps["m"]] == ["hai_matmul_0", "hai_matmul_1", "hai_ew_2", "hai_copy"]
    assert steps["old"] == [{"kernel": "hai_ew_2", "nodes": ["exp"], "ms": 9.0}]  # the total dropped


def test_kernels_add_their_steps_and_are_predicted_from_the_artifact(tmp_path: Path) -> None:
    device = load("device_kernel_costs")
    speed = DeviceSpeed.from_measured(DEVICE)
    rows, unmatched = device.kernel_rows("m", device.device_steps(runner_json())["m"],
                                         bundle(tmp_path) / "artifacts" / "m.hai", speed)  # fmt: skip
    assert unmatched == ["hai_copy"]
    by_kernel = {r["kernel"]: r for r in rows}
    assert sorted(by_kernel) == ["exp", "mm"]
    assert by_kernel["mm"]["measured_us"] == pytest.approx(30.0)  # 0.02 + 0.01 ms
    graph = {n.name: n for n in parse_hir(HIR).nodes}
    launches = KernelLaunches(
        "Tiled", (((32, 1, 1), (16, 1, 1)), ((512, 1, 1), (256, 1, 1))), compute_units=4
    )  # 2 launches; narrowest 2 groups of 4 units
    want = kernel_seconds(graph["mm"], speed, launches=launches) * 1e6
    flops, moved = 2 * 16 * 64 * 32 + 16 * 32, 4 * (16 * 64 + 64 * 32 + 16 * 32)
    assert want == pytest.approx((2 * 3e-6 + max(flops / 2e9 / 0.5, moved / 1e9)) * 1e6)
    assert by_kernel["mm"]["predicted_us"] == pytest.approx(want)
    assert by_kernel["mm"]["roofline_us"] == pytest.approx(kernel_seconds(graph["mm"], speed) * 1e6)
    assert by_kernel["mm"]["ratio"] == pytest.approx(want / 30.0)
    assert by_kernel["exp"]["schedule"] == "Fallback"


def test_fraction_within_2x_counts_ratios_from_half_to_twice() -> None:
    costs = load("kernel_costs")
    ratios = [0.4, 0.5, 1.0, 2.0, 2.5, 10.0]
    rows = [{"measured_us": 10.0, "predicted_us": 10.0 * r, "ratio": r} for r in ratios]
    rows.append({"measured_us": 0.5, "predicted_us": 50.0, "ratio": 100.0})  # under the floor: not scored
    summary = costs.score(rows, floor=1.0)
    assert summary["scored"] == 6 and summary["kernels"] == 7
    assert summary["within_2x"] == pytest.approx(3 / 6)
    logs = [abs(math.log(r)) for r in ratios]
    assert summary["geo_mean_error"] == pytest.approx(math.exp(sum(logs) / len(logs)))


def test_device_mode_writes_the_kernels_and_the_fraction(tmp_path: Path) -> None:
    costs = load("kernel_costs")
    (tmp_path / "device.json").write_text(json.dumps(runner_json()))
    (tmp_path / "profile.json").write_text(json.dumps({"measured": {"version": 1, "devices": [DEVICE]}}))
    args = argparse.Namespace(device_json=tmp_path / "device.json", profile=tmp_path / "profile.json",
                              bundle=bundle(tmp_path / "bundle"), floor=0.0, show=1,
                              json_path=tmp_path / "out.json")  # fmt: skip
    assert costs.device_main(args) == 0
    out = json.loads((tmp_path / "out.json").read_text())
    assert out["models"]["old"] == {"error": "the bundle has no batch-1 artifact of old"}
    rows = out["models"]["m"]["rows"]
    within = sum(0.5 <= r["ratio"] <= 2 for r in rows) / len(rows)
    assert out["overall"]["within_2x"] == pytest.approx(within)
    assert out["overall"]["kernels"] == 2
    assert out["sync_us"] == pytest.approx(4.0)


def test_launch_check_groups_the_tiny_kernels_by_their_launches() -> None:
    device = load("device_kernel_costs")
    one, two = [[[64, 1, 1], [64, 1, 1]]], [[[64, 1, 1], [64, 1, 1]], [[8, 1, 1], [8, 1, 1]]]
    rows = [
        {"launches": one, "launch_us": 10.0, "predicted_us": 10.5, "measured_us": 8.0},
        {"launches": one, "launch_us": 10.0, "predicted_us": 10.9, "measured_us": 12.0},
        {"launches": one, "launch_us": 10.0, "predicted_us": 10.2, "measured_us": 30.0},
        {"launches": one, "launch_us": 10.0, "predicted_us": 50.0, "measured_us": 60.0},  # work: not tiny
        {"launches": two, "launch_us": 20.0, "predicted_us": 21.0, "measured_us": 15.0},
        {"launches": None, "launch_us": 10.0, "predicted_us": 10.0, "measured_us": 9.0},  # not built
    ]
    assert device.launch_check(rows) == {
        1: {"kernels": 3, "launches_us": 10.0, "median_measured_us": 12.0},
        2: {"kernels": 1, "launches_us": 20.0, "median_measured_us": 15.0},
    }


def test_runner_records_every_step_with_its_launches() -> None:
    runner = load("opencl_runner")
    ran: list[str] = []
    steps = [SimpleNamespace(kernel=k, nodes=(n,), device="opencl") for k, n in (("a", "x"), ("b", "y"))]
    calls: list[tuple[Any, ...]] = [(lambda k=s.kernel: ran.append(k), [], None, None, ()) for s in steps]
    device = SimpleNamespace(synchronize=lambda: None)
    loaded = SimpleNamespace(_bind_inputs=lambda inputs: inputs, _steps=steps, _calls=calls,
                             devices={"opencl": device})  # fmt: skip
    library = {"a": {"schedule": "Tiled", "launches": [{"global": [64, 1, 1], "local": [16, 1, 1]}]}}
    recorded = runner.step_times(loaded, {}, library)
    assert ran == ["a", "b"] * 3  # three passes over every step
    assert [(s["index"], s["kernel"], s["nodes"]) for s in recorded] == [(0, "a", ["x"]), (1, "b", ["y"])]
    assert recorded[0]["launches"] == [[[64, 1, 1], [16, 1, 1]]] and recorded[0]["schedule"] == "Tiled"
    assert recorded[1]["launches"] == [] and recorded[1]["schedule"] is None
    assert all(s["ms"] >= 0 for s in recorded)
    waits: list[int] = []
    waiting = SimpleNamespace(devices={"opencl": SimpleNamespace(synchronize=lambda: waits.append(1))})
    assert runner.sync_ms(waiting) >= 0 and len(waits) == 20
    assert runner.sync_ms(SimpleNamespace(devices={})) is None  # no OpenCL device: nothing to wait for
