"""Transfer steps: a value made visible on another device than the one that wrote it, and their counts.

Rule: a transfer step (`Step.transfer_from`: a `Transfer` node of a plan over several devices) moves
the bytes of its one slot, which both devices see at the same place of the arena (a device with
memory of its own mirrors the whole arena: `HostMirror`, runtime/hai.py):
- from the host to a mirroring device (OpenCL): `upload` of that arena view, queued before the
  device's later launches;
- from a mirroring device to the host: `read_back` of it, which returns once the device wrote it;
- a graph input to a device: nothing here, the device's launches take the caller's array (their
  `Unbound` arguments) as in a plan on that device alone;
- where the device takes the host's memory as its own (OpenCL's zero-copy `mapped` mode, or a
  host-visible device), nothing moves: the model synchronizes the device it leaves at every device
  switch (runtime/call_recording.py), which is all such a transfer needs.
Every transfer run is counted (`TransferCounts`: transfers and bytes of their slots), whatever the
mode physically moved. Imports numpy and `runtime` only.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable, Mapping

import numpy as np

from runtime.artifact import Step
from runtime.device_names import HOST_DEVICE
from runtime.errors import UnsupportedError
from runtime.hai import Device, HostMirror


@dataclasses.dataclass
class TransferCounts:
    """Transfer steps run so far and the bytes of their slots (`Model.transfer_counters`); counted
    under a lock (`run_many`'s device workers run transfer steps on several threads)."""

    transfers: int = 0
    bytes: int = 0
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock, compare=False, repr=False)

    def add(self, nbytes: int) -> None:
        with self.lock:
            self.transfers += 1
            self.bytes += nbytes

    def as_dict(self) -> dict[str, int]:
        with self.lock:
            return {"transfers": self.transfers, "transfer_bytes": self.bytes}


def transfer_call(
    step: Step, devices: Mapping[str, Device], view: np.ndarray | None, counts: TransferCounts
) -> Callable[[], None]:
    """The call that runs transfer `step` (module doc); `view` is its slot's host array (None: an input)."""
    source, destination = devices[step.transfer_from], devices[step.device]
    nbytes = step.args[0].nbytes
    move: Callable[[], None] | None = None
    if view is not None and isinstance(destination, HostMirror) and step.transfer_from == HOST_DEVICE:
        move = lambda: destination.upload((view,))  # noqa: E731
    elif view is not None and isinstance(source, HostMirror) and step.device == HOST_DEVICE:
        move = lambda: source.read_back((view,))  # noqa: E731
    elif view is not None and not all(d.capabilities().host_visible for d in (source, destination)):
        raise UnsupportedError(
            f"transfer step {step.kernel!r} ({', '.join(step.nodes)}) moves a value from "
            f"{step.transfer_from} to {step.device}: this runtime moves values only between the host "
            "and a device"
        )

    def run() -> None:
        if move is not None:
            move()
        counts.add(nbytes)

    return run
