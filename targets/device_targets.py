"""The targets of a compile over several devices: `--target x86+opencl:gpu` -> one description per device.

Rule: a multi-device target is spelled `HOST+DEVICE[+DEVICE...]` (runtime/device_names.py): the host
part is a CPU target (`x86`, `arm64`) described as `--target HOST` alone would be (`--cpu`,
`--hardware-profile`, `--cpu-features`), and is the IR's `cpu` device; each other part is an IR
device name `DRIVER[:KIND]` whose driver is a target (`opencl`). An OpenCL part is described by
`--opencl-profile NAME` (a preset, targets/opencl/profiles.py), else by the hardware profile's
OpenCL device of that kind (a GPU first when no kind is named), else by this machine's first OpenCL
device of that kind; a profile of another kind than the part names is refused, never swapped in.
One arena and one weights file serve every device (a device with memory of its own mirrors them),
so every description's buffer alignment is the largest of them. Imports `ir`, `runtime` and `targets`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Mapping
from typing import Any

from ir.devices import HOST, check_device_name
from runtime.device_names import KINDS, driver_of, qualifier_of, split_target
from targets.description import TargetDescription, TargetError
from targets.registry import available_targets, get_target, resolve_target

OPENCL_TYPES = {"gpu": "GPU", "accelerator": "ACCELERATOR", "cpu": "CPU"}
"""A device kind's CL_DEVICE_TYPE name."""


@dataclasses.dataclass(frozen=True)
class DeviceTargets:
    """The description of each device a compile places nodes on, by IR device name (`cpu` first)."""

    spelling: str  # what --target said: `x86+opencl:gpu`
    devices: tuple[tuple[str, TargetDescription], ...]  # buffer alignment: the largest of them
    alone: tuple[TargetDescription, ...] = ()  # each as `--target` of that device alone describes it

    @property
    def host(self) -> TargetDescription:
        return self.devices[0][1]

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.devices)

    def of(self, device: str) -> TargetDescription:
        return dict(self.devices)[device]

    def described_alone(self, device: str) -> TargetDescription:
        """Device `device`'s description as a compile for it alone has it (its own buffer alignment)."""
        return self.alone[self.names.index(device)]

    def runtime_device(self, device: str) -> str:
        """The HAI driver that runs device `device`'s kernels: the plan's step device (`opencl`)."""
        return get_target(self.of(device).name).device


def is_multi_device(spelling: str) -> bool:
    return "+" in spelling


def check_spelling(spelling: str) -> tuple[str, tuple[str, ...]]:
    """(host target, device names) of `HOST+DEVICE...`, or a TargetError saying what is wrong."""
    host, devices = split_target(spelling)
    known = available_targets()
    if host not in known or get_target(host).device != HOST:
        cpus = [t for t in known if get_target(t).device == HOST]
        raise TargetError(f"--target {spelling}: {host!r} is not a CPU target ({', '.join(cpus)}) to host it")
    for device in devices:
        check_device_name(device, f"--target {spelling}")
        driver, qualifier = driver_of(device), qualifier_of(device)
        if driver not in known or get_target(driver).device == HOST:
            raise TargetError(f"--target {spelling}: {driver!r} is not a device target (opencl)")
        if qualifier and qualifier not in KINDS:
            raise TargetError(f"--target {spelling}: {device!r} names kind {qualifier!r}, not one of {KINDS}")
    if len({driver_of(d) for d in devices}) != len(devices):
        raise TargetError(f"--target {spelling}: names one driver twice; an artifact holds one per driver")
    return host, devices


def describe_devices(
    spelling: str,
    host: TargetDescription,
    profiled: Callable[[str], Mapping[str, Any]] | None = None,
    opencl_profile: str | None = None,
) -> DeviceTargets:
    """The targets of `spelling` (module doc); `host` is the host part's description, `profiled(kind)`
    the `recommended`-style target of a `hai doctor` profile's OpenCL device of that kind (None: no
    profile was given)."""
    _, devices = check_spelling(spelling)
    described = [(HOST, host)] + [(d, describe_opencl(d, profiled, opencl_profile)) for d in devices]
    alignment = max(desc.buffer_alignment for _, desc in described)
    return DeviceTargets(
        spelling,
        tuple((n, dataclasses.replace(d, buffer_alignment=alignment)) for n, d in described),
        tuple(d for _, d in described),
    )


def describe_opencl(
    device: str, profiled: Callable[[str], Mapping[str, Any]] | None, opencl_profile: str | None
) -> TargetDescription:
    """The description of OpenCL part `device` (`opencl`, `opencl:gpu`, ...): module doc."""
    kind = qualifier_of(device)
    if opencl_profile is not None:
        desc = resolve_target("opencl", cpu=opencl_profile)
    elif profiled is not None:
        desc = resolve_target("opencl", profile=dict(profiled(kind)))
    else:
        desc = host_opencl(kind, device)
    found = str(dict(desc.device).get("type", ""))
    if kind and found != OPENCL_TYPES[kind]:
        raise TargetError(
            f"--target names {device}, but OpenCL profile {desc.cpu!r} is a {found} device: give "
            f"--opencl-profile of a device of type {OPENCL_TYPES[kind]}, or name this one's kind in --target"
        )
    return desc


def host_opencl(kind: str, device: str) -> TargetDescription:
    """This machine's first OpenCL device of `kind` (any kind when none is named)."""
    from runtime.opencl_probe import opencl_inventory
    from targets.opencl import OpenCLTarget

    inventory = opencl_inventory()
    found = [d for p in inventory["platforms"] for d in p.get("devices", [])]
    for facts in found:
        if not kind or facts.get("type") == OPENCL_TYPES[kind]:
            return OpenCLTarget().from_device(facts, "host")
    listed = ", ".join(f"{d.get('name')} ({d.get('type')})" for d in found) or inventory.get("reason", "none")
    raise TargetError(
        f"--target names {device}, but this machine has no such OpenCL device (it has: {listed}); give "
        f"--opencl-profile with a preset or --hardware-profile with a profile taken on the device"
    )
