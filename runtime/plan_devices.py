"""The devices an artifact's plan runs on and the calls it makes on them, settled once at load.

Rule: every call of the plan (a step, or the entry or a segment that stands for several) runs on the
device whose kernel library is its executable (`manifest.kernel_libraries`: device -> file), through
that device's HAI driver (runtime/hai.py), found by the device's name among the built-in drivers and
the `hai.devices` entry points. An artifact naming a device whose driver is not installed is refused
at load, naming the device and how to get its driver. The host CPU is always opened: the arena and
the weights are host memory, so another device must be host-visible (its memory the host's) or keep
its own copy of them (the `HostMirror` extension, runtime/hai.py: OpenCL) to run on them. Each
executable is loaded on its device through the descriptor it was verified through
(runtime/artifact_files.py), after the artifact's own TVM runtime, and refused unless it was compiled
for the manifest's plan (runtime/plan_digest.py), before any kernel runs. Imports numpy and
`runtime` only.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from runtime.artifact import TVM_RUNTIME_FILE, Manifest, Slot, Step
from runtime.artifact_files import ArtifactFiles
from runtime.device_names import HOST_DEVICE, KINDS, compiled_kinds, driver_of, qualifier_of
from runtime.errors import DeviceNotFoundError, InvalidArgumentError, UnsupportedError
from runtime.hai import (
    ENTRY_POINT_GROUP,
    Device,
    Executable,
    HostMirror,
    available_drivers,
    get_driver,
    open_device,
)
from runtime.plan_digest import check_plan_digest

PlanCall = tuple[Step, range, int | None]
"""A call `run` makes: the step it launches, the plan steps it runs (their pages come first), and the
step whose weight placement its arguments take (None for an entry or segment: all the weights)."""


def open_devices(
    manifest: Manifest,
    directory: Path,
    threads: int | None,
    selectors: Mapping[str, str] | None = None,
    options: Mapping[str, Any] | None = None,
) -> dict[str, Device]:
    """The host CPU (`threads` wide) and every device the manifest has a kernel library for, by name:
    the device `selectors[name]` picks (an index or a kind: `load(..., device="opencl:1")`), else the
    first of the kind its kernels were compiled for (runtime/device_names.py), else device 0, opened
    with `options` (`load(..., device_options=...)`)."""
    devices = {HOST_DEVICE: open_device(HOST_DEVICE, threads=threads)}
    chosen = {**compiled_kinds(manifest.target.name), **(selectors or {})}
    for name in sorted(set(manifest.kernel_libraries) - {HOST_DEVICE}):
        index = device_index(name, chosen.get(name, ""), manifest, directory)
        try:
            devices[name] = open_step_device(name, directory, index, options or {})
        except DeviceNotFoundError as exc:
            raise DeviceNotFoundError(f"{exc} (the artifact runs {steps_on(manifest, name)} there)") from None
    return devices


def steps_on(manifest: Manifest, name: str) -> str:
    """`3 step(s) of nodes 'conv1', 'relu1', ...` that device `name` runs (for errors)."""
    steps = [s for s in manifest.plan.steps if s.device == name and not s.transfer_from]
    nodes = [n for s in steps for n in s.nodes]
    shown = ", ".join(repr(n) for n in nodes[:3]) + (", ..." if len(nodes) > 3 else "")
    return f"{len(steps)} step(s) of nodes {shown}"


def device_selectors(selector: str | None, manifest: Manifest, directory: Path) -> dict[str, str]:
    """`"opencl:1"` or `"opencl:gpu"` (driver name, optional `:INDEX` or `:KIND`) as {"opencl": "1"};
    the artifact must use that device."""
    if selector is None:
        return {}
    name, qualifier = driver_of(selector), qualifier_of(selector)
    if name not in manifest.kernel_libraries or not (qualifier.isdigit() or qualifier in ("", *KINDS)):
        used = ", ".join(sorted(manifest.kernel_libraries)) or "none"
        raise InvalidArgumentError(
            f"load: device {selector!r} is not NAME[:INDEX] or NAME:KIND ({', '.join(KINDS)}) of a device "
            f"artifact {directory} runs on ({used})"
        )
    return {name: qualifier}


def device_index(name: str, qualifier: str, manifest: Manifest, directory: Path) -> int:
    """The index of driver `name`'s device that `qualifier` picks: itself when an index, else the first
    device of that kind (none: a `DeviceNotFoundError` naming the device and the steps it would run)."""
    if not qualifier or qualifier.isdigit():
        return int(qualifier or "0")
    if name not in available_drivers():
        return 0  # open_step_device says the driver is missing
    found = get_driver(name).probe()
    for info in found:
        if info.kind == qualifier:
            return info.index
    listed = "; ".join(f"{i.index}: {i.name} ({i.kind})" for i in found) or "none"
    raise DeviceNotFoundError(
        f"artifact {directory} runs {steps_on(manifest, name)} on device {name}:{qualifier}, "
        f"but this machine has no {name} device of kind {qualifier} (its {name} devices: {listed}); "
        f'run it where there is one, pick another with load(..., device="{name}:INDEX"), or compile '
        f"for the devices this machine has"
    )


def open_step_device(
    name: str, directory: Path, index: int = 0, options: Mapping[str, Any] | None = None
) -> Device:
    """Device `index` of driver `name`, which must be installed and host-visible or keep its own
    copy of host memory (module doc)."""
    installed = available_drivers()
    if name not in installed:
        raise DeviceNotFoundError(
            f"artifact {directory} runs steps on device {name!r}, whose HAI driver is not installed "
            f"(installed drivers: {', '.join(installed)}); install the package that registers a driver "
            f"named {name!r} in the entry-point group {ENTRY_POINT_GROUP!r}, or compile for the cpu"
        )
    device = open_device(name, index, **(options or {}))
    if not device.capabilities().host_visible and not isinstance(device, HostMirror):
        device.close()
        raise UnsupportedError(
            f"artifact {directory} runs steps on device {name!r}, whose memory is not the host's; this "
            f"runtime runs plans over host memory only (the arena and weights), so compile for the cpu"
        )
    return device


def close_devices(devices: Mapping[str, Device]) -> None:
    """Close every device of a plan: those that mirror host memory first, the host device (which owns the
    arena they may have taken as their own memory) last."""
    for name, device in devices.items():
        if name != HOST_DEVICE:
            device.close()
    if HOST_DEVICE in devices:
        devices[HOST_DEVICE].close()


def load_executables(files: ArtifactFiles, devices: Mapping[str, Device]) -> dict[str, Executable]:
    """Each kernel library, by file name, loaded on its device through its verified descriptor and
    checked against the plan digest (module doc)."""
    manifest = files.manifest
    executables = {}
    for device_name, name in sorted(manifest.kernel_libraries.items()):
        device = devices[device_name]
        runtime = files.open_file(TVM_RUNTIME_FILE) if TVM_RUNTIME_FILE in manifest.files else None
        executable = device.load_executable(files.open_file(name), runtime)
        check_plan_digest(manifest, device, executable)
        executables[name] = executable
    return executables


def plan_calls(manifest: Manifest, weights_bytes: int) -> list[PlanCall]:
    """Each call to make, in order: the steps one by one, or the entry, or each segment; an entry or
    segment as a step on its executable's device taking `(arena, weights, inputs...)` whole
    (`weights_bytes`: the bytes of `weights.bin`, or of the page pool for a paged plan)."""
    plan = manifest.plan
    device_of = {name: device for device, name in manifest.kernel_libraries.items()}
    whole = (
        Slot("arena", (plan.arena_size,), "uint8"),
        Slot("weight", (weights_bytes,), "uint8"),
        *(Slot("input", (b.nbytes,), "uint8", 0, b.name) for b in manifest.inputs),
    )
    if plan.segments:
        return [
            (Step(s.symbol, whole, (f"<steps {s.start} to {s.stop - 1}>",), device_of[s.executable],
                  s.executable), range(s.start, s.stop), None)
            for s in plan.segments
        ]  # fmt: skip
    if plan.entry is not None:
        assert plan.entry_executable is not None  # an entry names its executable (manifest_checks)
        executable = plan.entry_executable
        entry = Step(plan.entry, whole, ("<all steps>",), device_of[executable], executable)
        return [(entry, range(len(plan.steps)), None)]
    return [(step, range(index, index + 1), index) for index, step in enumerate(plan.steps)]
