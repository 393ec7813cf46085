"""targets/kernel_launches.py: a built OpenCL kernel's launch count and occupancy (work-groups of its
narrowest launch over compute units x waves, counted here by hand), read from a kernel library
record; with them, the roofline adds one launch per device kernel and computes at FLOP/s x occupancy."""

from __future__ import annotations

from typing import Any

import pytest

from ir.parser import parse_hir
from targets.kernel_costs import DeviceSpeed, kernel_seconds
from targets.kernel_launches import KernelLaunches

GRAPH = """
graph @main(%x: f32[16,64], %w: f32[64,32]) -> (%r) {
  %m = MatMul(%x, %w) : f32[16,32] loc("mm") #{fusion_group = 0}
  %r = Relu(%m) : f32[16,32] loc("relu") #{fused_into = "mm", fusion_group = 0}
  return %r
}
"""
LAUNCH, F32, BANDWIDTH = 3e-6, 2e9, 1e9


def library(**kernels: list[tuple[list[int], list[int]]]) -> dict[str, Any]:
    """An OpenCL kernel library (targets/opencl/build.py's shape) of a 4-compute-unit device."""
    records = {
        name: {"schedule": "Tiled", "launches": [{"global": size, "local": group} for size, group in sizes]}
        for name, sizes in kernels.items()
    }
    return {"profile": {"compute_units": 4}, "kernels": records}


def test_occupancy_is_the_narrowest_launchs_work_groups_over_units_times_waves() -> None:
    # narrowest launch: 3 groups of 16 (48 items) beside an epilogue of 1024 items, on 4 units
    three = KernelLaunches.from_library(
        library(k=[([48, 1, 1], [16, 1, 1]), ([1024, 1, 1], [256, 1, 1])]), ["k"]
    )
    assert three is not None
    assert three.count == 2
    assert three.occupancy() == pytest.approx(3 / 4)
    # 5 groups (of 4 x 4 work-items, a 2-D launch) take 2 waves on 4 units: 5 of 8 slots busy
    five = KernelLaunches.from_library(library(k=[([20, 4, 1], [4, 4, 1])]), ["k"])
    assert five is not None and five.occupancy() == pytest.approx(5 / 8)
    eight = KernelLaunches.from_library(library(k=[([128, 1, 1], [16, 1, 1])]), ["k"])
    assert eight is not None and eight.occupancy() == pytest.approx(1.0)


def test_steps_of_one_kernel_add_their_launches_and_unknown_kernels_give_none() -> None:
    lib = library(a=[([8, 1, 1], [8, 1, 1])], b=[([64, 1, 1], [16, 1, 1]), ([64, 1, 1], [64, 1, 1])])
    both = KernelLaunches.from_library(lib, ["a", "b"])
    assert both is not None and both.count == 3 and both.schedule == "Tiled"
    assert KernelLaunches.from_library(lib, ["a", "missing"]) is None
    assert KernelLaunches.from_library({"kernels": lib["kernels"]}, ["a"]) is None  # no compute units


def test_roofline_with_launches_counts_each_launch_and_divides_compute_by_occupancy() -> None:
    speed = DeviceSpeed("opencl:0", {"f32": F32}, ((1 << 20, BANDWIDTH),), LAUNCH)
    anchor = next(n for n in parse_hir(GRAPH).nodes if n.name == "mm")
    flops = 2 * 16 * 64 * 32 + 16 * 32  # MatMul multiply-adds, one per Relu element
    moved = 4 * (16 * 64 + 64 * 32 + 16 * 32)
    assert flops / F32 > moved / BANDWIDTH  # compute-bound: the occupancy shows
    launches = KernelLaunches.from_library(
        library(k=[([16, 1, 1], [8, 1, 1]), ([512, 1, 1], [256, 1, 1])]), ["k"]
    )
    assert launches is not None  # 2 groups on 4 units: half the device
    assert kernel_seconds(anchor, speed) == pytest.approx(LAUNCH + flops / F32)
    assert kernel_seconds(anchor, speed, launches=launches) == pytest.approx(2 * LAUNCH + flops / F32 / 0.5)
