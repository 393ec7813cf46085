"""A compile over several devices whose partition keeps every node on one device is that device's alone.

Rule: the compile first runs its pipeline through `partition` on a copy of the graph (no
instruments). When the partition places every node on one device, the compile goes on exactly as
`--target DEVICE` alone would: that device's own description (its buffer alignment, not the
largest of the set) and the options aimed at it (`x86` with `--cpu`/`--hardware-profile`, or
`opencl` with the `--opencl-profile` preset as its `--cpu`), so its layout pass, one-call entry and
paged weights apply and the artifact equals the single-target compile's; the partition's summary
stays for the report, which says the partition chose that device. Otherwise the compile goes on
over the devices, its pipeline run again in full; so does a compile whose `--passes` names its own
`partition`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from hai_compiler.compiler.options import CompileOptions
from ir import Graph
from ir.clone import clone_graph
from ir.devices import HOST
from runtime.device_names import driver_of, split_target
from targets.device_targets import DeviceTargets


def choose_devices(
    graph: Graph, options: CompileOptions, devices: DeviceTargets, run_passes: Callable[..., Any]
) -> tuple[CompileOptions, Any, DeviceTargets | None, Any]:
    """(options, target description, devices, partition summary) the compile goes on with: the input's
    (summary None) when the partition uses several devices, else those of its one device alone.
    `run_passes` is the driver's (driver.run_passes: it runs the pipeline up to `partition`)."""
    if user_partition(options):
        return options, devices.host, devices, None
    _, ctx = run_passes(clone_graph(graph), options, devices.host, None, devices, until="partition")
    summary = ctx.results.get("partition")
    device = summary.sole_device if summary is not None else None
    if device is None:
        return options, devices.host, devices, None
    return alone(options, device), devices.described_alone(device), None, summary


def alone(options: CompileOptions, device: str) -> CompileOptions:
    """`options` as a compile for `device` of their target alone takes them."""
    if device == HOST:
        return dataclasses.replace(
            options, target=split_target(options.target)[0], placement="", objective="latency",
            opencl_profile=None,
        )  # fmt: skip
    preset = options.opencl_profile
    return dataclasses.replace(
        options, target=driver_of(device), placement="", objective="latency", opencl_profile=None,
        cpu=preset, cpu_features=None, hardware_profile=None if preset else options.hardware_profile,
    )  # fmt: skip


def user_partition(options: CompileOptions) -> bool:
    """Whether `--passes` names its own `partition` (`partition{devices=FILE}`): the compile then
    keeps the placement it asked for over the target's devices."""
    from passes.pipeline import parse_pipeline

    passes = options.passes if options.passes and options.passes != "none" else ""
    return any(p.name == "partition" for p in parse_pipeline(passes)) if passes else False
