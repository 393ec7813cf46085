"""How bytes move between the host and an OpenCL device: zero-copy where the memory is shared, else copies.

Rule: a device transfers in one of three modes, chosen when it is opened (`transfer_mode`):
- `mapped`, zero-copy on host-unified memory (CL_DEVICE_HOST_UNIFIED_MEMORY: PoCL, integrated GPUs,
  most NPUs): the host arena and weights are the device's buffers (CL_MEM_USE_HOST_PTR over them:
  nothing is uploaded at load, nothing read back after a run). An input aligned to the device's
  base-address alignment is bound as a USE_HOST_PTR buffer over the caller's array itself, made
  each run (an implementation may cache such a buffer's contents when it is created, so one kept
  from an earlier run could hold stale bytes); another input is copied once into its mapped
  CL_MEM_ALLOC_HOST_PTR buffer (the model copies an input off that alignment into an aligned array
  first: `Capabilities.alignment`). Outputs are mapped for reading without blocking (the host's own
  bytes on such a device), waited on once (the last map blocks) and unmapped.
- `staged`, zero-copy asked on a discrete device: device buffers; each input is copied into a pinned
  staging buffer (ALLOC_HOST_PTR, mapped once) and uploaded without blocking; every output is read
  into its pinned staging buffer without blocking but the last, whose wait is the only one, and
  copied into the arena.
- `copy`, zero-copy off (`zero_copy=False`, $HAI_OPENCL_ZERO_COPY=0): device buffers, inputs written
  from the caller's arrays, outputs read back blocking: the baseline `hai bench --transfers` measures
  zero-copy against.
In a plan over the host and the device (`--target x86+opencl`), a transfer step to the device uploads
its arena bytes into the device's copy without blocking (`write_mirrored`; nothing in `mapped` mode,
whose copy is the host's memory) and one to the host reads them back as outputs are read.
With profiling (the queue made with PROFILING_ENABLE), every transfer's event is kept and `counters()`
sums their device time (END - START timestamps) beside the host time spent in transfer calls (the
outputs' then from a drained queue, so that waiting for the kernels does not count).
Imports numpy, the standard library and pyopencl.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

ZERO_COPY_ENV = "HAI_OPENCL_ZERO_COPY"
TransferMode = Literal["mapped", "staged", "copy"]


def pyopencl() -> Any:
    """The pyopencl module, untyped (its stubs type flags as enums that do not combine with `|`)."""
    import pyopencl

    return pyopencl


def transfer_mode(zero_copy: bool | None, host_unified: bool) -> TransferMode:
    """The mode of a device (module doc); `zero_copy` None reads $HAI_OPENCL_ZERO_COPY (default on)."""
    if zero_copy is None:
        zero_copy = os.environ.get(ZERO_COPY_ENV, "1").strip().lower() not in ("0", "off", "false", "no")
    if not zero_copy:
        return "copy"
    return "mapped" if host_unified else "staged"


@dataclass
class Mirror:
    """A host array's device buffer: its address range, and whether it is the host's memory itself."""

    start: int
    end: int
    buffer: Any
    shared: bool


@dataclass
class InputSlot:
    """A launch argument bound to a host array each run: the buffer its kernels read now, the buffer
    made for it at record time, and its pinned staging array (`staged` mode)."""

    nbytes: int
    own: Any
    current: Any
    staging: np.ndarray | None = None
    uses: list[tuple[Any, int]] = field(default_factory=list)  # (kernel, argument index)


class Transfers:
    """The transfers of one device and queue in one mode (module doc)."""

    def __init__(self, context: Any, queue: Any, alignment: int, mode: TransferMode, profiling: bool) -> None:
        self.context, self.queue, self.alignment, self.mode = context, queue, alignment, mode
        self.profiling = profiling
        self._events: list[Any] = []
        self._host_seconds = 0.0
        self._device_seconds = 0.0
        self._count = 0
        self._read_staging: dict[tuple[int, int], np.ndarray] = {}
        self._pinned_maps: list[Any] = []  # the maps that keep the staging buffers pinned, until `close`

    # -- load time ---------------------------------------------------------------------------------------

    def mirror(self, host: np.ndarray, upload: bool) -> Mirror:
        """The device buffer of the host array `host` (uploaded now when `upload`, unless shared)."""
        cl = pyopencl()

        start = host.ctypes.data
        flags = cl.mem_flags.READ_WRITE
        if self.mode == "mapped" and host.nbytes and start % self.alignment == 0:
            buffer = cl.Buffer(self.context, flags | cl.mem_flags.USE_HOST_PTR, hostbuf=host)
            return Mirror(start, start + host.nbytes, buffer, shared=True)
        buffer = cl.Buffer(self.context, flags, max(host.nbytes, 1))
        if upload and host.nbytes:
            cl.enqueue_copy(self.queue, buffer, np.ascontiguousarray(host), is_blocking=True)
        return Mirror(start, start + host.nbytes, buffer, shared=False)

    def input_slot(self, nbytes: int) -> InputSlot:
        """The buffer of an input argument recorded `Unbound` (and its pinned staging when staged)."""
        cl = pyopencl()

        flags = cl.mem_flags.READ_ONLY | (cl.mem_flags.ALLOC_HOST_PTR if self.mode == "mapped" else 0)
        buffer = cl.Buffer(self.context, flags, max(nbytes, 1))
        slot = InputSlot(nbytes, buffer, buffer)
        if self.mode == "staged":
            slot.staging = self._pinned(nbytes)
        return slot

    def _pinned(self, nbytes: int) -> np.ndarray:
        """A host array in pinned memory: an ALLOC_HOST_PTR buffer mapped for good (the map keeps it)."""
        cl = pyopencl()

        flags = cl.mem_flags.READ_WRITE | cl.mem_flags.ALLOC_HOST_PTR
        buffer = cl.Buffer(self.context, flags, max(nbytes, 1))
        mapped, _ = cl.enqueue_map_buffer(
            self.queue, buffer, cl.map_flags.READ | cl.map_flags.WRITE, 0, (max(nbytes, 1),), np.uint8
        )
        self._pinned_maps.append(mapped.base)
        return mapped[:nbytes]

    # -- per run -----------------------------------------------------------------------------------------

    def write_inputs(self, inputs: Sequence[tuple[InputSlot, np.ndarray | None]]) -> None:
        """Give each input slot its host array's bytes, before the launch's kernels (module doc)."""
        cl = pyopencl()

        began = time.perf_counter()
        for slot, array in inputs:
            if array is None:
                continue
            buffer = slot.own
            if self.mode == "copy":
                self._keep(cl.enqueue_copy(self.queue, buffer, array, is_blocking=False))
            elif self.mode == "staged":
                assert slot.staging is not None
                np.copyto(slot.staging, array.reshape(-1).view(np.uint8))
                self._keep(cl.enqueue_copy(self.queue, buffer, slot.staging, is_blocking=False))
            elif array.ctypes.data % self.alignment == 0 and array.nbytes:
                flags = cl.mem_flags.READ_ONLY | cl.mem_flags.USE_HOST_PTR
                buffer = cl.Buffer(self.context, flags, hostbuf=array)
            else:
                self._copy_mapped(buffer, array)
            if buffer is not slot.current:
                for kernel, index in slot.uses:
                    kernel.set_arg(index, buffer)
                slot.current = buffer
        self._host_seconds += time.perf_counter() - began

    def _copy_mapped(self, buffer: Any, array: np.ndarray) -> None:
        cl = pyopencl()

        if not array.nbytes:
            return
        mapped, event = cl.enqueue_map_buffer(
            self.queue, buffer, cl.map_flags.WRITE_INVALIDATE_REGION, 0, (array.nbytes,), np.uint8
        )
        self._keep(event)
        np.copyto(mapped, array.reshape(-1).view(np.uint8))
        self._keep(mapped.base.release(self.queue))

    def read_outputs(self, views: Sequence[tuple[np.ndarray, Mirror, int]]) -> None:
        """Bring each output `view` (a host array, its mirror and byte offset there) up to date, after
        the run's kernels were enqueued; returns when they are (module doc)."""
        cl = pyopencl()

        if self.profiling:  # the host time counts the transfer calls, not the wait for the kernels
            self.queue.finish()
        began = time.perf_counter()
        if self.mode == "staged":
            pending = []
            reads = [(v, m, o) for v, m, o in views if v.nbytes]
            for i, (view, mirror, offset) in enumerate(reads):
                staging = self._read_staging_of(view)
                wait = i == len(reads) - 1  # it blocks: on the in-order queue the reads before it are done
                self._keep(
                    cl.enqueue_copy(self.queue, staging, mirror.buffer, src_offset=offset, is_blocking=wait)
                )
                pending.append((view, staging))
            for view, staging in pending:
                np.copyto(view.reshape(-1).view(np.uint8), staging)
        else:
            shared = [(v, m, o) for v, m, o in views if m.shared and v.nbytes]
            final = len(shared) - 1  # it blocks: on the in-order queue every map before it is done too
            mapped = [self._map_read(v, m, o, blocking=i == final) for i, (v, m, o) in enumerate(shared)]
            for view, mirror, offset in views:
                if not mirror.shared and view.nbytes:
                    self._keep(
                        cl.enqueue_copy(self.queue, view, mirror.buffer, src_offset=offset, is_blocking=True)
                    )
            for (view, _, _), array in zip(shared, mapped, strict=True):
                if array.ctypes.data != view.ctypes.data:  # an implementation that maps elsewhere
                    np.copyto(view.reshape(-1).view(np.uint8), array)
                self._keep(array.base.release(self.queue))
        self._host_seconds += time.perf_counter() - began

    def write_mirrored(self, views: Sequence[tuple[np.ndarray, Mirror, int]]) -> None:
        """Upload each host `view` into its mirror at its byte offset, without blocking, ahead of later
        kernels on the in-order queue; a shared mirror is the host's memory: nothing to move."""
        cl = pyopencl()

        began = time.perf_counter()
        for view, mirror, offset in views:
            if not mirror.shared and view.nbytes:
                self._keep(
                    cl.enqueue_copy(self.queue, mirror.buffer, view, dst_offset=offset, is_blocking=False)
                )
        self._host_seconds += time.perf_counter() - began

    def _map_read(self, view: np.ndarray, mirror: Mirror, offset: int, blocking: bool) -> Any:
        """The output's bytes mapped for reading (on host-unified memory the host's own bytes: no copy),
        waited for when `blocking`."""
        cl = pyopencl()

        mapped, event = cl.enqueue_map_buffer(
            self.queue,
            mirror.buffer,
            cl.map_flags.READ,
            offset,
            (view.nbytes,),
            np.uint8,
            is_blocking=blocking,
        )
        self._keep(event)
        return mapped

    def _read_staging_of(self, view: np.ndarray) -> np.ndarray:
        key = (view.ctypes.data, view.nbytes)
        if key not in self._read_staging:
            self._read_staging[key] = self._pinned(view.nbytes)
        return self._read_staging[key]

    # -- profiling ---------------------------------------------------------------------------------------

    def _keep(self, event: Any) -> None:
        self._count += 1
        if self.profiling and event is not None:
            self._events.append(event)

    def counters(self) -> dict[str, float]:
        """Transfers so far: their count, device seconds (profiled events; 0 unprofiled) and host
        seconds spent in transfer calls (copies into mapped or staging memory included)."""
        if self._events:
            self.queue.finish()
            self._device_seconds += sum(e.profile.end - e.profile.start for e in self._events) * 1e-9
            self._events.clear()
        return {
            "transfers": float(self._count),
            "transfer_device_seconds": self._device_seconds,
            "transfer_host_seconds": self._host_seconds,
        }

    def close(self) -> None:
        """Unmap the staging buffers and wait: the driver then releases them before its context."""
        for mapping in self._pinned_maps:
            mapping.release(self.queue)
        self._pinned_maps.clear()
        self.queue.finish()

    def reset(self) -> None:
        self.counters()
        self._host_seconds = self._device_seconds = 0.0
        self._count = 0
