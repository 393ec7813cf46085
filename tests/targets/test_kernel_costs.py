"""targets/kernel_costs.py: a kernel's predicted time is the roofline of its fusion group's FLOPs and
outside bytes on the measured device (checked against the shapes, counted here by hand), the measured
cost rule scaled by the profile for a dense conv, and a measured time where `hai bench --profile`
gave one; the partition pass's DeviceModel carries it."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from hai_compiler.compiler.bench import write_json
from ir.parser import parse_hir
from runtime.step_timing import StepTime
from targets.cost_model import cost_table
from targets.kernel_costs import (
    DeviceSpeed,
    KernelCostError,
    MeasuredTimes,
    device_model_from_profile,
    kernel_seconds,
    node_seconds,
)
from targets.target import cpu_target

GRAPH = """
graph @main(%x: f32[16,64], %w: f32[64,32]) -> (%e) {
  %m = MatMul(%x, %w) : f32[16,32] loc("mm") #{fusion_group = 0}
  %r = Relu(%m) : f32[16,32] loc("relu") #{fused_into = "mm", fusion_group = 0}
  %e = Exp(%r) : f32[16,32] loc("exp")
  return %e
}
"""
CONV = (
    "graph @main(%x: f32[1,16,28,28]) -> (%y) {\n"
    f"  %w = constant f32[16,16,1,1] dense<[{', '.join(['0.5'] * 256)}]>\n"
    "  %y = Conv(%x, %w) {dilations = [1, 1], group = 1, pads = [0, 0, 0, 0], strides = [1, 1]}"
    ' : f32[1,16,28,28] loc("c")\n  return %y\n}\n'
)
LAUNCH, F32, F16, BANDWIDTH = 3e-6, 2e9, 4e9, 1e9


def measured(**changes: Any) -> dict[str, Any]:
    """A profile's measured section with one device (slow enough that the roofline terms show)."""
    device = {"device": "opencl:0", "name": "test device", "kind": "gpu", "target": "opencl", "runs": 1,
              "flops": {"f32": F32, "f16": F16, "bf16": "unsupported", "int8": "unsupported"},
              "unsupported": {"bf16": "no", "int8": "no"}, "gemm_n": None,
              "bandwidth": [{"bytes": 1 << 20, "bytes_per_second": BANDWIDTH}], "launch_seconds": LAUNCH,
              "transfer": None}  # fmt: skip
    return {"measured": {"version": 1, "devices": [{**device, **changes}]}}


def nodes() -> dict[str, Any]:
    graph = parse_hir(GRAPH)
    return {n.name: n for n in graph.nodes}


def test_roofline_of_a_fusion_group_counts_its_flops_and_outside_bytes() -> None:
    speed = DeviceSpeed.from_measured(measured()["measured"]["devices"][0])
    by_name = nodes()
    flops = 2 * 16 * 64 * 32 + 16 * 32  # the MatMul's multiply-adds, then one per Relu element
    moved = 4 * (16 * 64 + 64 * 32 + 16 * 32)  # x and w read, the Relu's result written (%m stays inside)
    expected = LAUNCH + max(flops / F32, moved / BANDWIDTH)
    assert kernel_seconds(by_name["mm"], speed) == pytest.approx(expected)
    assert node_seconds(by_name["mm"], speed) == pytest.approx(expected)
    assert node_seconds(by_name["relu"], speed) == 0.0  # its time is its anchor's
    exp_moved = 4 * 2 * 16 * 32
    assert kernel_seconds(by_name["exp"], speed) == pytest.approx(LAUNCH + exp_moved / BANDWIDTH)


def test_measured_kernel_times_replace_the_prediction(tmp_path: Path) -> None:
    speed = DeviceSpeed.from_measured(measured()["measured"]["devices"][0])
    by_name = nodes()
    path = tmp_path / "bench.json"
    write_json({"steps": [StepTime(0, "k0", ("mm", "relu"), 7.0), StepTime(1, "k1", ("mm",), 2.0)]}, path)
    times = MeasuredTimes.from_bench_json(path)
    assert kernel_seconds(by_name["mm"], speed, measured=times) == pytest.approx(
        9e-6
    )  # two steps, one kernel
    predicted = kernel_seconds(by_name["exp"], speed)
    assert kernel_seconds(by_name["exp"], speed, measured=times) == predicted  # not measured: predicted
    model = device_model_from_profile(measured(), "opencl:0", measured=times)
    assert model.node_time is not None and model.node_time(by_name["mm"]) == pytest.approx(9e-6)
    assert model.node_time(by_name["relu"]) == 0.0


def test_bad_measured_times_are_user_errors(tmp_path: Path) -> None:
    path = tmp_path / "bench.json"
    path.write_text('{"hai": {}}')
    with pytest.raises(KernelCostError, match="--profile --json"):
        MeasuredTimes.from_bench_json(path)


def test_device_model_carries_the_profile() -> None:
    model = device_model_from_profile(measured(), "opencl:0", name="opencl:gpu", memory=1 << 30)
    assert (model.name, model.flops, model.bandwidth, model.launch, model.memory) == (
        "opencl:gpu", F32, BANDWIDTH, LAUNCH, 1 << 30
    )  # fmt: skip
    assert model.peak("f16") == F16 and model.peak("bf16") == F32  # unsupported: no figure of its own
    bare = device_model_from_profile(measured()["measured"], "opencl:0")  # measure_device.py's file
    assert (bare.flops, bare.launch) == (F32, LAUNCH)
    with pytest.raises(KernelCostError, match="no measured device 'cpu'.*hai doctor --measure"):
        device_model_from_profile(measured(), "cpu")


def test_bandwidth_is_interpolated_by_working_set() -> None:
    points = [{"bytes": 1000, "bytes_per_second": 1e9}, {"bytes": 100_000, "bytes_per_second": 1e11}]
    speed = DeviceSpeed.from_measured(measured(bandwidth=points)["measured"]["devices"][0])
    assert speed.bytes_per_second(10_000) == pytest.approx(1e10)  # halfway in log size: the geometric mean
    assert speed.bytes_per_second(10) == 1e9 and speed.bytes_per_second(10**9) == 1e11  # held at the ends


def test_dense_conv_follows_the_cost_rule_scaled_by_the_profile() -> None:
    target = cpu_target("x86", "sapphirerapids")
    if cost_table(target).cpu == "nominal":
        pytest.skip("no measured cost table applies to sapphirerapids")
    (conv,) = list(parse_hir(CONV).nodes)
    seconds = []
    for f32 in (1e11, 2e11):
        entry = measured(device="cpu", gemm_n=256, flops={"f32": f32})["measured"]["devices"][0]
        speed = DeviceSpeed.from_measured(entry)
        seconds.append(kernel_seconds(conv, speed, target, threads=1) - LAUNCH)
    assert seconds[0] == pytest.approx(2 * seconds[1])  # twice the measured GEMM speed: half the time
    roofline = kernel_seconds(conv, speed)  # no target: the roofline, not the rule
    assert roofline != pytest.approx(seconds[1] + LAUNCH)
