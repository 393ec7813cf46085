"""`--device-memory-budget`: what a plan holds in a device's own memory, against that device's budget.

Rule: for a target whose device has memory of its own (its `device` is not the host `cpu`), the plan's
device memory is runtime/device_memory.py's: the arena, the weights, each launch's input buffers and
every launch's kernel scratch (the library lists them: `TargetBackend.kernel_scratch`). The budget
is `--device-memory-budget`, by default the device profile's global memory (`global_memory_bytes`;
unknown: no budget); a plan over it, or whose largest buffer exceeds the profile's largest
allocation, is a `DeviceMemoryBudgetError` naming the bytes, the terms and the option (device memory
is not paged). The record goes into the manifest (`ExecutionPlan.device_memory`), which `load` checks
against the actual device. Host memory: the driver's buffers that live in host memory count towards
`--memory-budget` (`host_bytes`).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ir import HaiError
from ir.units import format_size
from runtime.artifact import DeviceMemory, ExecutionPlan, TensorBinding
from runtime.device_memory import OPTION, device_buffers, device_memory

HOST_DEVICE = "cpu"


class DeviceMemoryBudgetError(HaiError):
    """The plan holds more on the device than `--device-memory-budget` (or one allocation) allows."""


@dataclass(frozen=True)
class DevicePlan:
    """A plan's device memory: the manifest's record and its terms in bytes (for the report)."""

    record: DeviceMemory
    terms: dict[str, int]

    def breakdown(self) -> str:
        return " + ".join(f"{name} {format_size(nbytes)}" for name, nbytes in self.terms.items())


def plan_device_memory(
    plan: ExecutionPlan,
    weights_size: int,
    library: Path | None,
    target: Any,
    budget: int | None,
    model: str,
) -> DevicePlan | None:
    """The device memory of `plan` for `target` (None for the host CPU), checked against `budget`
    (None: the profile's global memory) and the profile's largest allocation (module doc)."""
    from targets.registry import get_target

    backend = get_target(target.name)
    if backend.device == HOST_DEVICE:
        return None
    facts = dict(target.device)
    budget = budget if budget is not None else (int(facts.get("global_memory_bytes", 0)) or None)
    scratch = backend.kernel_scratch(library) if library is not None else {}
    buffers = device_buffers(plan, weights_size, scratch, backend.device)
    result = DevicePlan(
        device_memory(plan, weights_size, scratch, backend.device, budget),
        {name: sum(sizes) for name, sizes in buffers.items()},
    )
    record, device = result.record, f"{backend.device} device {target.cpu!r}"
    if budget is not None and record.total_bytes > budget:
        raise DeviceMemoryBudgetError(
            f"model {model} needs {exact(record.total_bytes)} of device memory on the {device} "
            f"({result.breakdown()}), over {OPTION} {exact(budget)}; device memory is not paged: give "
            f"a larger {OPTION} for a device that has it, or compile smaller input shapes"
        )
    largest = int(facts.get("max_allocation_bytes", 0))
    if largest and record.largest_buffer_bytes > largest:
        raise DeviceMemoryBudgetError(
            f"model {model} needs a device buffer of {exact(record.largest_buffer_bytes)} on the {device}, "
            f"which allocates at most {exact(largest)} at once; compile smaller input shapes, or for a "
            f"device profile that allocates more (hai doctor on it)"
        )
    return result


def host_bytes(
    plan: DevicePlan | None,
    target: Any,
    inputs: tuple[TensorBinding, ...],
    outputs: tuple[TensorBinding, ...],
) -> int:
    """Host memory the device driver holds for the plan (its `--memory-budget` term): on host-unified
    memory the device's buffers are host memory (zero-copy shares the arena and weights, so its input
    and scratch buffers); on a discrete device its pinned staging buffers of the inputs and outputs."""
    if plan is None:
        return 0
    if dict(target.device).get("host_unified"):
        return plan.terms["inputs"] + plan.terms["kernel scratch"]
    return sum(b.nbytes for b in inputs) + sum(b.nbytes for b in outputs)


def exact(nbytes: int) -> str:
    return f"{format_size(nbytes)} ({nbytes} bytes)"
