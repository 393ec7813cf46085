"""Targets over several devices (targets/device_targets.py) and the partition's devices for them
(targets/device_models.py): the spelling checked, each part described, what each device can run,
its memory and its link; the device names the runtime reads back from the manifest's target."""

from __future__ import annotations

import pytest

from ir import HaiError
from ir.devices import HOST
from runtime.device_names import compiled_kinds, split_target
from targets.description import TargetError
from targets.device_models import device_set
from targets.device_targets import check_spelling, describe_devices
from targets.lowering.dispatch import supported_ops
from targets.opencl.profiles import PRESETS
from targets.registry import resolve_target


def devices_of(spelling: str, preset: str):  # type: ignore[no-untyped-def]
    return describe_devices(spelling, resolve_target("x86", cpu="x86-64-v3"), opencl_profile=preset)


def test_a_gpu_beside_the_cpu() -> None:
    targets = devices_of("x86+opencl:gpu", "nvidia-h100")
    assert targets.names == ("cpu", "opencl:gpu")
    assert targets.runtime_device("opencl:gpu") == "opencl" and targets.runtime_device("cpu") == "cpu"
    align = PRESETS["nvidia-h100"].base_align_bytes
    assert {desc.buffer_alignment for _, desc in targets.devices} == {align}  # one arena for both
    found = device_set(targets, {HOST: 2**29})
    cpu, gpu = found.device("cpu"), found.device("opencl:gpu")
    assert cpu.memory == 2**29 and gpu.memory == PRESETS["nvidia-h100"].global_memory_bytes
    assert cpu.ops == frozenset(supported_ops())
    assert gpu.ops is not None and "Conv" in gpu.ops
    assert {"ScatterND", "LSTM", "GRU", "FusedAttention"}.isdisjoint(gpu.ops)  # loop nests, x86's composite
    assert gpu.dtypes is not None and "f32" in gpu.dtypes and {"bf16", "f16"}.isdisjoint(gpu.dtypes)
    assert gpu.flops > cpu.flops
    assert not found.link("cpu", "opencl:gpu").shared_memory


def test_host_unified_memory_is_a_zero_copy_link() -> None:
    found = device_set(devices_of("x86+opencl", "pocl-cpu"), {"opencl": 2**20})
    assert found.names == ("cpu", "opencl")
    assert found.link("cpu", "opencl").shared_memory
    assert found.device("opencl").memory == 2**20


@pytest.mark.parametrize(
    ("spelling", "message"),
    [
        ("opencl+x86", "'opencl' is not a CPU target"),
        ("x86+arm64", "'arm64' is not a device target"),
        ("x86+opencl:npu", "kind 'npu'"),
        ("x86+opencl+opencl:gpu", "names one driver twice"),
        ("x86+opencl:GPU", "is not DRIVER"),
    ],
)
def test_bad_spellings_are_refused(spelling: str, message: str) -> None:
    with pytest.raises(HaiError, match=message):
        check_spelling(spelling)


def test_a_profile_of_another_kind_is_refused() -> None:
    with pytest.raises(TargetError, match="OpenCL profile 'nvidia-h100' is a GPU device"):
        devices_of("x86+opencl:cpu", "nvidia-h100")


def test_the_runtime_reads_the_kinds_from_the_spelling() -> None:
    assert split_target("arm64+opencl:accelerator") == ("arm64", ("opencl:accelerator",))
    assert compiled_kinds("x86+opencl:gpu") == {"opencl": "gpu"}
    assert compiled_kinds("x86+opencl") == {} and compiled_kinds("opencl") == {}


def test_a_measured_profile_replaces_the_estimates_and_keeps_the_limits() -> None:
    targets = devices_of("x86+opencl:gpu", "nvidia-h100")
    gpu = {"device": "opencl:0", "name": "a gpu", "kind": "gpu", "target": "opencl", "runs": 1,
           "flops": {"f32": 3e13, "f16": "unsupported", "bf16": "unsupported", "int8": "unsupported"},
           "unsupported": {}, "gemm_n": None, "dense_conv": None, "launch_seconds": 4e-6,
           "bandwidth": [{"bytes": 1 << 24, "bytes_per_second": 2e12}],
           "transfer": {"copy_in": {"latency_seconds": 2e-5, "bytes_per_second": 2.5e10},
                        "copy_out": {"latency_seconds": 2e-5, "bytes_per_second": 2.5e10},
                        "zero_copy": None}}  # fmt: skip
    cpu = {**gpu, "device": "cpu", "kind": "cpu", "target": "x86", "transfer": None,
           "flops": {**gpu["flops"], "f32": 1e11},
           "bandwidth": [{"bytes": 1 << 24, "bytes_per_second": 3e10}]}  # fmt: skip
    estimated = device_set(targets, {HOST: 2**29})
    found = device_set(targets, {HOST: 2**29}, {"measured": {"version": 1, "devices": [cpu, gpu]}})
    for name, entry in (("cpu", cpu), ("opencl:gpu", gpu)):
        model, before = found.device(name), estimated.device(name)
        assert (model.flops, model.launch) == (entry["flops"]["f32"], entry["launch_seconds"])
        assert model.node_time is not None  # the per-kernel cost model (targets/kernel_costs.py)
        assert (model.memory, model.ops, model.dtypes) == (before.memory, before.ops, before.dtypes)
    link = found.link("cpu", "opencl:gpu")
    assert (link.bandwidth, link.latency) == (2.5e10, 2e-5)
    other = device_set(devices_of("x86+opencl:cpu", "pocl-cpu"), None, {"measured": {"devices": [gpu]}})
    assert other.device("opencl:cpu").flops != 3e13  # no measured OpenCL device of that kind: estimated
