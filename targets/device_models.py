"""The partition pass's devices for a compile's targets: `device_set(targets)` -> `DeviceSet`.

Rule: the one place where the compiler turns its targets (targets/device_targets.py) into what
`partition` weighs (ir/devices.py): per device a `DeviceModel` and a `Link` between the host and
each other device.
- Supported ops: what the device's target has a kernel for (`supported_ops(target)`: every
  registered template, less the CPU loop nests on OpenCL, less the composite ops the host's target
  forms that the device's does not list, e.g. FusedAttention); dtypes: every IR dtype but those its
  kernels lack (bf16 and int4 off the CPU, f16 without cl_khr_fp16).
- Memory: the host's `--memory-budget`, an OpenCL device's `--device-memory-budget` (default: its
  profile's global memory).
- Speed: an estimated roofline from the description alone, so that the same options give the same
  partition on any machine: a CPU core's FMA lanes at `CPU_HZ`, `CPU_CORES` of them (`hai run`'s
  default threads); an OpenCL device's compute units x lanes at the clock of its type; bandwidths
  and launch costs per type (below). A link over host-unified memory is zero-copy; otherwise PCIe.
- Processors: an OpenCL device of type CPU computes on the host's own cores (`runs_on = cpu`), so
  the partition never counts the two as working side by side.
Where the hardware profile (`--hardware-profile`) has a `measured` section (`hai doctor --measure`),
each device it measured gets its measured speed and the per-kernel cost model instead
(targets/kernel_costs.py: measured FLOP/s per precision, bandwidth, launch, the CPU's cost rule), the
limits above kept; an OpenCL device is the first measured one of its kind (`opencl:gpu`) or the first
(`opencl`), and its link takes the measured copy-in latency and bandwidth. Imports `ir`, `targets`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from typing import Any

from ir.devices import HOST, DeviceModel, DeviceSet, Link
from ir.dtypes import DType
from targets.description import TargetDescription
from targets.device_targets import DeviceTargets
from targets.registry import get_target

CPU_HZ = 2.5e9
CPU_CORES = 2  # hai run's default --threads
CPU_BANDWIDTH = 20e9  # bytes/s a few cores stream from DRAM
CPU_LAUNCH = 1e-6  # seconds per kernel call
OPENCL = {  # CL_DEVICE_TYPE -> (f32 lanes per compute unit or None: the profile's float vector width,
    # clock Hz, bandwidth B/s, launch s)
    "GPU": (128, 1.5e9, 1e12, 10e-6),
    "ACCELERATOR": (64, 1e9, 100e9, 20e-6),
    "CPU": (None, CPU_HZ, CPU_BANDWIDTH, 50e-6),
}
PCIE_BANDWIDTH = 16e9
PCIE_LATENCY = 10e-6


def device_set(
    targets: DeviceTargets,
    memory: Mapping[str, int | None] | None = None,
    hardware_profile: Mapping[str, Any] | None = None,
) -> DeviceSet:
    """The devices of `targets` with their estimated costs (module doc); `memory`: the budget in bytes
    of each device by IR name (absent or None: the profile's global memory, or no limit)."""
    budgets = dict(memory or {})
    measured = list(dict(hardware_profile or {}).get("measured", {}).get("devices", []))
    models = [
        with_measured(cpu_model(targets.host, budgets.get(HOST)), "cpu", targets.host, hardware_profile)
    ]
    links = []
    composites = get_target(targets.host.name).composite_ops()  # formed for the host's sake
    for name, desc in targets.devices[1:]:
        entry = measured_entry(name, measured)
        model = opencl_model(name, desc, budgets.get(name))
        lacking = composites - get_target(desc.name).composite_ops()
        model = dataclasses.replace(model, ops=(model.ops or frozenset()) - lacking)
        device = entry["device"] if entry is not None else None
        models.append(with_measured(model, device, desc, hardware_profile))
        shared = bool(dict(desc.device).get("host_unified"))
        links.append(link_to(name, shared, entry))
    return DeviceSet(tuple(models), tuple(links))


def measured_entry(name: str, measured: list[Mapping[str, Any]]) -> Mapping[str, Any] | None:
    """The measured OpenCL device standing for IR device `name` (module doc), or None."""
    kind = name.partition(":")[2]
    return next(
        (
            e
            for e in measured
            if str(e["device"]).startswith("opencl") and (not kind or e.get("kind") == kind)
        ),
        None,
    )


def with_measured(
    model: DeviceModel, device: str | None, desc: TargetDescription, profile: Mapping[str, Any] | None
) -> DeviceModel:
    """`model` with the measured speed of the profile's `device` (its limits kept), else itself."""
    from targets.kernel_costs import device_model_from_profile

    entries = dict(profile or {}).get("measured", {}).get("devices", [])
    if device is None or not any(e["device"] == device for e in entries):
        return model
    threads = CPU_CORES if model.name == HOST else None
    assert profile is not None
    found = device_model_from_profile(
        profile, device, name=model.name, target=desc, threads=threads,
        memory=model.memory, ops=model.ops, dtypes=model.dtypes,
    )  # fmt: skip
    return dataclasses.replace(found, runs_on=model.runs_on)


def link_to(name: str, shared: bool, entry: Mapping[str, Any] | None) -> Link:
    """The host's link to device `name`: PCIe estimates, or the measured copy-in where it was measured."""
    copy_in = dict((entry or {}).get("transfer") or {}).get("copy_in")
    if not copy_in:
        return Link(HOST, name, PCIE_BANDWIDTH, PCIE_LATENCY, shared_memory=shared)
    bandwidth = copy_in.get("bytes_per_second") or PCIE_BANDWIDTH
    return Link(HOST, name, float(bandwidth), float(copy_in["latency_seconds"]), shared_memory=shared)


def cpu_model(desc: TargetDescription, budget: int | None) -> DeviceModel:
    from targets.lowering.dispatch import supported_ops

    lanes = desc.vector_bytes // 4
    flops = lanes * 2 * 2 * CPU_HZ * CPU_CORES  # an FMA is 2 FLOPs, 2 FMA ports per core
    return DeviceModel(HOST, flops, CPU_BANDWIDTH, CPU_LAUNCH, budget, frozenset(supported_ops(desc)))


def opencl_model(name: str, desc: TargetDescription, budget: int | None) -> DeviceModel:
    from targets.lowering.dispatch import supported_ops

    facts = dict(desc.device)
    lanes, hz, bandwidth, launch = OPENCL.get(str(facts.get("type")), OPENCL["GPU"])
    lanes = lanes or int(facts.get("vector_width_float") or 1)
    flops = int(facts.get("compute_units") or 1) * lanes * 2 * hz
    memory = budget if budget is not None else (int(facts.get("global_memory_bytes") or 0) or None)
    lacking = {DType.BF16, DType.I4} | (set() if "fp16" in desc.features else {DType.F16})
    dtypes = frozenset(d.value for d in DType if d not in lacking)
    runs_on = HOST if facts.get("type") == "CPU" else None  # an OpenCL CPU device: the host's cores
    return DeviceModel(
        name, flops, bandwidth, launch, memory, frozenset(supported_ops(desc)), dtypes, runs_on=runs_on
    )
