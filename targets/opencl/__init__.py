"""The OpenCL target module: `--target opencl`, kernels as OpenCL C run by the HAI `opencl` device.

Rule: everything OpenCL-specific about compiling lives in this package. The description's `cpu` is a
device profile (profiles.py: a named preset, `--cpu pocl-cpu` or `--cpu nvidia-h100`, or the facts a
`hai doctor` profile took on the device), its features the device's (`fp16`, `int8_dot`,
`host_unified`), `device` its facts and `buffer_alignment` its CL_DEVICE_MEM_BASE_ADDR_ALIGN in bytes,
which the planner aligns every arena offset and weight to (so each is a valid sub-buffer). Kernels
are the shared computes bound to work-groups (threads.py), compiled to OpenCL C with their launch
sizes (build.py) into one JSON library that the driver builds at load. Without `--cpu` or a profile
the first OpenCL device of this machine is described (pyopencl), else the error names the presets.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, ClassVar

from targets.description import IsaFacts, TargetDescription, TargetError
from targets.lowering.kernel import LoweredKernel
from targets.opencl.profiles import FEATURES, PRESETS, DeviceProfile
from targets.registry import TargetBackend
from targets.schedules import ScheduleTable

VECTOR_BYTES = 16
"""The "vector" the shared computes' knobs see (targets/opencl/schedules.py)."""


class OpenCLTarget(TargetBackend):
    """OpenCL GPUs and accelerators (and PoCL's CPU device): OpenCL C kernels run through pyopencl."""

    name = "opencl"
    arches = ("opencl",)
    triple = ""
    device = "opencl"
    kernel_format = "opencl-c"
    channels_last = False
    precision_needs: ClassVar[dict[str, str]] = {
        "f16": "a device with cl_khr_fp16 (feature fp16)", "bf16": "bf16 kernels, which OpenCL has none of",
    }  # fmt: skip
    other_cpus = "the device a `hai doctor` profile describes (--hardware-profile)"

    def cpus(self) -> dict[str, str]:
        return {name: f"OpenCL {p.type} profile" for name, p in PRESETS.items()}

    def cpu_features(self, cpu: str) -> frozenset[str]:
        return self.preset(cpu).features()

    def known_features(self) -> tuple[str, ...]:
        return FEATURES

    def isa(self, features: frozenset[str]) -> IsaFacts:
        """f32 and INT8 kernels on every device (INT8 fast with integer dot products, `int8_dot`); f16
        weights (the FP16 rung: `half` loads, f32 arithmetic) where the device has cl_khr_fp16."""
        supported = ("f32", "i8", "f16") if "fp16" in features else ("f32", "i8")
        preferred = ("f32", "i8") if "int8_dot" in features else ("f32",)
        return IsaFacts(VECTOR_BYTES, 32, supported, preferred)

    def host_cpu_name(self) -> str:
        raise TargetError("the OpenCL target has no host cpu; name a device profile with --cpu")

    def preset(self, cpu: str) -> DeviceProfile:
        if cpu not in PRESETS:
            raise TargetError(
                f"unknown OpenCL device profile {cpu!r} for --target opencl; presets: {', '.join(PRESETS)}, "
                f"or pass --hardware-profile with a profile `hai doctor` took on the device"
            )
        return PRESETS[cpu]

    def description(
        self, cpu: str, features: frozenset[str] | set[str] | tuple[str, ...], *, source: str
    ) -> TargetDescription:
        profile = self.preset(cpu) if cpu in PRESETS else None
        return self.with_profile(super().description(cpu, features, source=source), profile)

    def with_profile(self, desc: TargetDescription, profile: DeviceProfile | None) -> TargetDescription:
        """`desc` carrying `profile`'s facts (its extension flags as the features say)."""
        if profile is None:
            return desc
        profile = profile.with_features(desc.features)
        return dataclasses.replace(
            desc, device=profile.to_items(), buffer_alignment=max(64, profile.base_align_bytes)
        )

    def with_edits(self, desc: TargetDescription, text: str) -> TargetDescription:
        edited = super().with_edits(desc, text)
        return self.with_profile(edited, DeviceProfile.from_items(desc.device) if desc.device else None)

    def host(self) -> TargetDescription:
        """The first OpenCL device of this machine (pyopencl), as a profile named after it."""
        from runtime.opencl_probe import opencl_inventory

        inventory = opencl_inventory()
        devices = [d for p in inventory["platforms"] for d in p.get("devices", [])]
        if not devices:
            reason = inventory.get("reason", "no OpenCL device")
            raise TargetError(
                f"--target opencl without --cpu describes this machine's OpenCL device, but there is none "
                f"({reason}); pass --cpu {' or --cpu '.join(PRESETS)}, or a hardware profile"
            )
        return self.from_device(devices[0], "host")

    def from_device(self, facts: Mapping[str, Any], source: str) -> TargetDescription:
        profile = DeviceProfile.from_probe(facts)
        desc = TargetBackend.description(self, profile.name, profile.features(), source=source)
        return self.with_profile(desc, profile)

    def from_profile(self, recommended: Mapping[str, Any]) -> TargetDescription:
        """A `hai doctor` profile's `recommended` object: a preset name, or the device's facts (`device`)."""
        if recommended.get("target") == self.name and isinstance(recommended.get("device"), Mapping):
            return self.from_device(recommended["device"], "hardware profile")
        return super().from_profile(recommended)

    def profile(self, desc: TargetDescription) -> DeviceProfile:
        return DeviceProfile.from_items(desc.device) if desc.device else self.preset(desc.cpu)

    def tvm_target(self, desc: TargetDescription) -> dict[str, Any]:
        profile = self.profile(desc)
        threads = min(profile.max_work_group_size, 1024)
        target: dict[str, Any] = {
            "kind": "opencl",
            "host": {"kind": "llvm"},
            "max_num_threads": threads,
            "max_threads_per_block": threads,
            "max_shared_memory_per_block": profile.local_memory_bytes,
        }  # no thread_warp_size: TVM would sync a warp's reduction with barriers only some work-items reach
        return target

    def schedules(self) -> ScheduleTable:
        from targets.opencl.schedules import OPENCL_SCHEDULES

        return OPENCL_SCHEDULES

    def kernel_object(self, kernel: LoweredKernel, desc: TargetDescription) -> tuple[Path, bool]:
        from targets.opencl.build import kernel_file

        return kernel_file(kernel, desc, self.tvm_target(desc))

    def link(self, objects: Sequence[Path], desc: TargetDescription, digest: bytes | None) -> Path:
        from targets.opencl.build import link_library

        return link_library(objects, desc, dataclasses.asdict(self.profile(desc)), digest)

    def kernel_scratch(self, library: Path) -> dict[str, tuple[int, ...]]:
        from runtime.devices.opencl_programs import read_library

        kernels = read_library(library.read_bytes(), str(library))["kernels"]
        return {name: tuple(int(n) for n in kernel["scratch"]) for name, kernel in kernels.items()}

    def build(
        self, kernels: Sequence[LoweredKernel], desc: TargetDescription, digest: bytes | None = None
    ) -> Path:
        from targets.llvm_build import unique_kernels

        return self.link([self.kernel_object(k, desc)[0] for k in unique_kernels(kernels)], desc, digest)
