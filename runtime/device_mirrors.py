"""Devices with memory of their own (`HostMirror`): each arena and the weights have a copy on them.

Rule: every device but the host that is a `HostMirror` mirrors each arena a model records calls over
(not uploaded: the steps write it) and the weights (uploaded once by the model). After a run, each
such device brings back the outputs its own steps write (one `start_read_back` per device); outputs
another device writes come back through transfer steps (runtime/plan_transfers.py).
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping

import numpy as np

from runtime.arena_views import Outputs
from runtime.artifact import Manifest
from runtime.hai import Device, HostMirror
from runtime.plan_devices import HOST_DEVICE

StartReadBack = Callable[[], Callable[[], None]]
"""A `HostMirror.start_read_back` of an arena's outputs: it issues the reads and returns their wait."""


def mirrors(devices: Mapping[str, Device]) -> list[HostMirror]:
    """The devices with memory of their own (`HostMirror`): they copy each arena and the weights."""
    return [d for n, d in devices.items() if n != HOST_DEVICE and isinstance(d, HostMirror)]


def mirror_memory(
    devices: Mapping[str, Device], manifest: Manifest, arena: np.ndarray, outputs: Outputs
) -> tuple[StartReadBack, ...]:
    """Give each device with memory of its own `arena`; the calls that start bringing the `outputs`
    its own steps write back from them after each run (module rule)."""
    reads = []
    for name, device in devices.items():
        if name == HOST_DEVICE or not isinstance(device, HostMirror):
            continue
        device.mirror(arena, "arena", upload=False)
        written = {s.name for step in manifest.plan.steps if step.device == name
                   for s in step.args if s.kind == "output" and s.writes}  # fmt: skip
        views = tuple(view for b, view in outputs if b.name in written)
        reads += [functools.partial(device.start_read_back, views)] if views else []
    return tuple(reads)
