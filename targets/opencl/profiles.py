"""OpenCL device profiles: the facts `--target opencl` compiles for, from a named preset or `hai doctor`.

Rule: a `DeviceProfile` is plain data about one OpenCL device (its type, compute units, work-group
and local-memory limits, preferred vector widths, sub-group size, the extensions kernels may use,
host-unified memory and `CL_DEVICE_MEM_BASE_ADDR_ALIGN`). `--target opencl --cpu NAME` takes a
preset of `PRESETS`; a hardware profile written by `hai doctor` on the device carries the facts
themselves (`recommended.device`, the shape `runtime/opencl_probe.device_facts` reports). The HAI
feature names of a profile are `features()`: `fp16` (cl_khr_fp16), `int8_dot`
(cl_khr_integer_dot_product), `host_unified` (runtime/opencl_probe.py names them). Imports the
standard library and `runtime`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from runtime.opencl_probe import OPENCL_FEATURES as FEATURES


@dataclass(frozen=True)
class DeviceProfile:
    """One OpenCL device as kernels and the planner see it (module doc); `base_align_bits` is
    CL_DEVICE_MEM_BASE_ADDR_ALIGN, in bits as OpenCL reports it."""

    name: str
    type: str  # "GPU", "ACCELERATOR", "CPU"
    compute_units: int
    max_work_group_size: int
    local_memory_bytes: int
    vector_width_float: int = 1
    vector_width_half: int = 0
    sub_group_size: int = 0  # 0: not known (no cl_khr_subgroups / not reported)
    fp16: bool = False
    int8_dot: bool = False
    host_unified: bool = False
    base_align_bits: int = 1024
    global_memory_bytes: int = 0  # CL_DEVICE_GLOBAL_MEM_SIZE: --device-memory-budget's default; 0 unknown
    max_allocation_bytes: int = 0  # CL_DEVICE_MAX_MEM_ALLOC_SIZE; 0 unknown

    @property
    def base_align_bytes(self) -> int:
        return max(self.base_align_bits // 8, 1)

    def features(self) -> frozenset[str]:
        return frozenset(name for name in FEATURES if getattr(self, name))

    def with_features(self, features: frozenset[str]) -> DeviceProfile:
        """The profile with its extension flags as `features` says (`--cpu-features` edits)."""
        flags: dict[str, Any] = {name: name in features for name in FEATURES}
        return dataclasses.replace(self, **flags)

    def to_items(self) -> tuple[tuple[str, Any], ...]:
        return tuple(sorted(dataclasses.asdict(self).items()))

    @classmethod
    def from_items(cls, items: tuple[tuple[str, Any], ...] | Mapping[str, Any]) -> DeviceProfile:
        return cls(**dict(items))

    @classmethod
    def from_probe(cls, facts: Mapping[str, Any]) -> DeviceProfile:
        """From one device of `runtime.opencl_probe.opencl_inventory()` (what `hai doctor` records)."""
        return cls(
            name=str(facts["name"]),
            type=str(facts["type"]),
            compute_units=int(facts["compute_units"]),
            max_work_group_size=int(facts["max_work_group_size"]),
            local_memory_bytes=int(facts["local_memory_bytes"]),
            vector_width_float=int(facts.get("vector_width_float") or 1),
            vector_width_half=int(facts.get("vector_width_half", 0)),
            sub_group_size=int(facts.get("sub_group_size", 0)),
            fp16=bool(facts.get("fp16", False)),
            int8_dot=bool(facts.get("int8_dot_product", False)),
            host_unified=bool(facts.get("host_unified_memory", False)),
            base_align_bits=int(facts.get("base_align_bits") or 1024),
            global_memory_bytes=int(facts.get("global_memory_bytes", 0)),
            max_allocation_bytes=int(facts.get("max_allocation_bytes", 0)),
        )


PRESETS: dict[str, DeviceProfile] = {
    "pocl-cpu": DeviceProfile(
        name="pocl-cpu", type="CPU", compute_units=2, max_work_group_size=4096,
        local_memory_bytes=2 * 2**20, vector_width_float=16, vector_width_half=0,
        host_unified=True, base_align_bits=1024,
        global_memory_bytes=4 * 2**30, max_allocation_bytes=2**30,
    ),
    "nvidia-h100": DeviceProfile(
        name="nvidia-h100", type="GPU", compute_units=132, max_work_group_size=1024,
        local_memory_bytes=48 * 2**10, vector_width_float=1, vector_width_half=0,
        sub_group_size=32, fp16=False, int8_dot=False, host_unified=False, base_align_bits=4096,
        global_memory_bytes=79 * 2**30, max_allocation_bytes=19 * 2**30,
    ),
}  # fmt: skip
"""Named profiles `--cpu` takes: PoCL's CPU device (CI) and the NVIDIA H100 through NVIDIA's OpenCL
3.0 driver (its facts as that driver reported them on the H100, driver 580: no cl_khr_fp16, so no
FP16 rung, and no cl_khr_integer_dot_product; `--cpu-features +fp16` or a `hai doctor` profile of
another driver says otherwise). Their memory is a floor, not a measurement: PoCL reports a share of
the host's RAM (4 GiB is less than any CI machine gives), and the H100 80 GB card about 79 GiB, a
quarter of it in one allocation (rounded down)."""
