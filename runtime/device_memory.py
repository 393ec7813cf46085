"""Device memory of a plan (`--device-memory-budget`): planned by the compiler, recorded, checked at load.

Rule: a device with memory of its own (OpenCL, runtime/devices/opencl.py) holds, while a model is
loaded, one buffer for the arena and one for the weights, one for each input argument of its
launches (written each run) and the scratch buffers of every launch (the kernel library lists each
kernel's; they are allocated when the launch is recorded and kept). Their sum is the plan's device
memory, and its largest buffer must fit one allocation. The compiler records both per device, with
the budget it planned against (`ExecutionPlan.device_memory`); `load` refuses a device whose global
memory (CL_DEVICE_GLOBAL_MEM_SIZE) is less than the sum, or whose largest allocation
(CL_DEVICE_MAX_MEM_ALLOC_SIZE) is less than the largest buffer, naming the device, the bytes and the
option, before it allocates anything there. Each arena `run_many` keeps in flight (runtime/pipeline.py)
adds the plan's device memory but the weights, which they share: its own arena, input buffers and
kernel scratch (`in_flight_bytes`), checked the same way before they are allocated. Imports the
standard library and `runtime` only.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from runtime.artifact import DeviceMemory, ExecutionPlan, Manifest
from runtime.errors import InsufficientMemoryError
from runtime.hai import Device

OPTION = "--device-memory-budget"


class DeviceMemoryError(InsufficientMemoryError):
    """The device has less memory (or a smaller largest allocation) than the artifact's plan holds there."""


def device_buffers(
    plan: ExecutionPlan, weights_size: int, scratch: Mapping[str, Sequence[int]], device: str
) -> dict[str, list[int]]:
    """The sizes of the buffers `device` holds for `plan`, by term (module doc); `scratch`: each
    kernel's scratch buffer sizes, from its library."""
    steps = [step for step in plan.steps if step.device == device]
    return {
        "arena": [plan.arena_size],
        "weights": [weights_size],
        "inputs": [slot.nbytes for step in steps for slot in step.args if slot.kind == "input"],
        "kernel scratch": [n for step in steps for n in scratch.get(step.kernel, ())],
    }


def device_memory(
    plan: ExecutionPlan,
    weights_size: int,
    scratch: Mapping[str, Sequence[int]],
    device: str,
    budget: int | None,
) -> DeviceMemory:
    """The manifest's record of what `device` holds for `plan` (module doc)."""
    buffers = device_buffers(plan, weights_size, scratch, device)
    every = [n for sizes in buffers.values() for n in sizes]
    return DeviceMemory(device, sum(every), max(every, default=0), budget)


def in_flight_bytes(planned: DeviceMemory, weights_bytes: int) -> int:
    """What one more arena in flight holds on the device: the plan's device memory but the weights."""
    return planned.total_bytes - weights_bytes


def check_device_memory(
    manifest: Manifest, name: str, device: Device, directory: Path, in_flight: int = 0, weights_bytes: int = 0
) -> None:
    """Refuse `device` (the plan's device `name`) when it is too small for what the plan holds there,
    with `in_flight` more arenas (`run_many`; `weights_bytes`: the weights the plan's figure counts)."""
    for planned in manifest.plan.device_memory:
        if planned.device != name:
            continue
        total = device.capabilities().memory_bytes
        largest = int(device.info.properties.get("max_allocation_bytes") or total)
        where = f"{name} device {device.info.name!r}"
        budget = f"{planned.budget_bytes} bytes" if planned.budget_bytes is not None else "no budget"
        needed = planned.total_bytes + in_flight * in_flight_bytes(planned, weights_bytes)
        arenas = f", and {in_flight} more arena(s) in flight for run_many" if in_flight else ""
        if needed > total:
            raise DeviceMemoryError(
                f"artifact {directory} needs {needed} bytes of device memory (arena, weights, "
                f"inputs and kernel scratch{arenas}; planned with {OPTION} {budget}), but {where} has "
                f"{total} bytes: run it on a device with at least {needed} bytes, "
                f"{'keep fewer inputs in flight (run_many in_flight=), ' if in_flight else ''}or compile "
                f"smaller input shapes ({OPTION} {total}, or this device's hai doctor profile, checks a "
                f"plan against it when compiling)"
            )
        if planned.largest_buffer_bytes > largest:
            raise DeviceMemoryError(
                f"artifact {directory} needs a device buffer of {planned.largest_buffer_bytes} bytes, but "
                f"{where} allocates at most {largest} bytes at once (CL_DEVICE_MAX_MEM_ALLOC_SIZE): run it "
                f"on a device that allocates that much, or compile smaller input shapes (this device's hai "
                f"doctor profile checks a plan against it when compiling)"
            )
