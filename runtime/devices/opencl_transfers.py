"""How bytes move between the host and an OpenCL device: zero-copy where the memory is shared, else copies.

Rule: a device transfers in one of three modes, chosen when it is opened (`transfer_mode`):
- `mapped`, zero-copy on host-unified memory (CL_DEVICE_HOST_UNIFIED_MEMORY: PoCL, integrated GPUs,
  most NPUs): the host arena and weights are the device's buffers (CL_MEM_USE_HOST_PTR over them:
  nothing is uploaded at load, nothing read back after a run). An input aligned to the device's
  base-address alignment is bound as a USE_HOST_PTR buffer over the caller's array itself, made
  each run (an implementation may cache such a buffer's contents when it is created, so one kept
  from an earlier run could hold stale bytes); another input is copied once into its mapped
  CL_MEM_ALLOC_HOST_PTR buffer (the model copies an input off that alignment into an aligned array
  first: `Capabilities.alignment`). Outputs are mapped for reading (the host's own bytes on such a
  device) and unmapped.
- `staged`, zero-copy asked on a discrete device: device buffers; each input is copied into a pinned
  staging buffer (ALLOC_HOST_PTR, mapped once) and uploaded without blocking; every output is read
  into its pinned staging buffer and copied into the arena.
- `copy`, zero-copy off (`zero_copy=False`, $HAI_OPENCL_ZERO_COPY=0): device buffers, inputs written
  from the caller's arrays, outputs read back into the arena: the baseline `hai bench --transfers`
  measures zero-copy against.
Output reads are enqueued without blocking, after the run's kernels (`start_reads`), and waited for
once, at the last one's event (the queue is in order), when the caller completes them: `run_many`
enqueues an input's reads on its last stage's thread, so they run before the next input's kernels.
In a plan over the host and the device (`--target x86+opencl`), a transfer step to the device uploads
its arena bytes into the device's copy without blocking (`write_mirrored`; nothing in `mapped` mode,
whose copy is the host's memory) and one to the host reads them back as outputs are read.
With profiling (the queue made with PROFILING_ENABLE), every transfer's event is kept and `counters()`
sums their device time (END - START timestamps) beside the host time spent in transfer calls (the
outputs' then from a drained queue, so that waiting for the kernels does not count); the counts are
thread-safe (runtime/devices/opencl_counters.py: `run_many`'s workers update them).
Imports numpy, the standard library and pyopencl.
"""

from __future__ import annotations

import os
import time
import weakref
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np

from runtime.devices.opencl_counters import TransferCounters

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
        self.tally = TransferCounters(profiling)  # updated from run_many's worker threads too
        self._read_staging: dict[tuple[int, int], tuple[np.ndarray, int]] = {}  # array, its map's key
        self._pinned_maps: dict[int, Any] = {}  # the maps that keep the staging buffers pinned (`_pinned`)

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
            slot.staging, key = self._pinned(nbytes)
            # a run_many arena's launches are dropped with it; at exit the driver tears down on its own
            weakref.finalize(slot, self.unpin, key).atexit = False
        return slot

    def _pinned(self, nbytes: int) -> tuple[np.ndarray, int]:
        """A host array in pinned memory: an ALLOC_HOST_PTR buffer mapped until `unpin(key)` or `close`
        (the map keeps it), and that key."""
        cl = pyopencl()

        flags = cl.mem_flags.READ_WRITE | cl.mem_flags.ALLOC_HOST_PTR
        buffer = cl.Buffer(self.context, flags, max(nbytes, 1))
        mapped, _ = cl.enqueue_map_buffer(
            self.queue, buffer, cl.map_flags.READ | cl.map_flags.WRITE, 0, (max(nbytes, 1),), np.uint8
        )
        self._pinned_maps[id(mapped.base)] = mapped.base
        return mapped[:nbytes], id(mapped.base)

    def unpin(self, key: int) -> None:
        """Unmap a pinned staging buffer of `_pinned` (its buffer is then released); none if closed."""
        mapping = self._pinned_maps.pop(key, None)
        if mapping is not None:
            mapping.release(self.queue)

    def forget_reads(self, start: int, end: int) -> None:
        """Unpin the read staging of the outputs within host addresses [start, end) (a released arena)."""
        for address, nbytes in [k for k in self._read_staging if start <= k[0] < end]:
            _, key = self._read_staging.pop((address, nbytes))
            self.unpin(key)

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
                self.tally.keep(cl.enqueue_copy(self.queue, buffer, array, is_blocking=False))
            elif self.mode == "staged":
                assert slot.staging is not None
                np.copyto(slot.staging, array.reshape(-1).view(np.uint8))
                self.tally.keep(cl.enqueue_copy(self.queue, buffer, slot.staging, is_blocking=False))
            elif array.ctypes.data % self.alignment == 0 and array.nbytes:
                flags = cl.mem_flags.READ_ONLY | cl.mem_flags.USE_HOST_PTR
                buffer = cl.Buffer(self.context, flags, hostbuf=array)
            else:
                self._copy_mapped(buffer, array)
            if buffer is not slot.current:
                for kernel, index in slot.uses:
                    kernel.set_arg(index, buffer)
                slot.current = buffer
        self.tally.add_host_seconds(time.perf_counter() - began)

    def _copy_mapped(self, buffer: Any, array: np.ndarray) -> None:
        cl = pyopencl()

        if not array.nbytes:
            return
        mapped, event = cl.enqueue_map_buffer(
            self.queue, buffer, cl.map_flags.WRITE_INVALIDATE_REGION, 0, (array.nbytes,), np.uint8
        )
        self.tally.keep(event)
        np.copyto(mapped, array.reshape(-1).view(np.uint8))
        self.tally.keep(mapped.base.release(self.queue))

    def start_reads(self, views: Sequence[tuple[np.ndarray, Mirror, int]]) -> Callable[[], None]:
        """Enqueue the reads of each output `view` (a host array, its mirror and byte offset there), after
        the run's kernels; the result waits for the last (the queue is in order) and completes the views
        (module doc)."""
        cl = pyopencl()

        if self.profiling:  # the host time counts the transfer calls, not the wait for the kernels
            self.queue.finish()
        began = time.perf_counter()
        reads = [(v, m, o) for v, m, o in views if v.nbytes]
        staged: list[tuple[np.ndarray, np.ndarray]] = []
        mapped: list[tuple[np.ndarray, Any]] = []
        events: list[Any] = []
        for view, mirror, offset in reads:
            if self.mode == "staged":
                staging = self._read_staging_of(view)
                events.append(cl.enqueue_copy(self.queue, staging, mirror.buffer, src_offset=offset,
                                              is_blocking=False))  # fmt: skip
                staged.append((view, staging))
            elif mirror.shared:  # the host's own bytes on such a device: mapping copies nothing
                array, event = self._map_read(view, mirror, offset)
                events.append(event)
                mapped.append((view, array))
            else:
                events.append(cl.enqueue_copy(self.queue, view, mirror.buffer, src_offset=offset,
                                              is_blocking=False))  # fmt: skip
        for event in events:
            self.tally.keep(event)
        self.tally.add_host_seconds(time.perf_counter() - began)

        def complete() -> None:
            began = time.perf_counter()
            if events:
                events[-1].wait()
            for view, staging in staged:
                np.copyto(view.reshape(-1).view(np.uint8), staging)
            for view, array in mapped:
                if array.ctypes.data != view.ctypes.data:  # an implementation that maps elsewhere
                    np.copyto(view.reshape(-1).view(np.uint8), array)
                self.tally.keep(array.base.release(self.queue))
            self.tally.add_host_seconds(time.perf_counter() - began)

        return complete

    def read_outputs(self, views: Sequence[tuple[np.ndarray, Mirror, int]]) -> None:
        """Bring each output `view` up to date: `start_reads`, waited for at once."""
        self.start_reads(views)()

    def write_mirrored(self, views: Sequence[tuple[np.ndarray, Mirror, int]]) -> None:
        """Upload each host `view` into its mirror at its byte offset, without blocking, ahead of later
        kernels on the in-order queue; a shared mirror is the host's memory: nothing to move."""
        cl = pyopencl()

        began = time.perf_counter()
        for view, mirror, offset in views:
            if not mirror.shared and view.nbytes:
                self.tally.keep(
                    cl.enqueue_copy(self.queue, mirror.buffer, view, dst_offset=offset, is_blocking=False)
                )
        self.tally.add_host_seconds(time.perf_counter() - began)

    def _map_read(self, view: np.ndarray, mirror: Mirror, offset: int) -> tuple[Any, Any]:
        """The output's bytes mapped for reading without blocking (on host-unified memory the host's own
        bytes: no copy), and the map's event."""
        cl = pyopencl()

        return cl.enqueue_map_buffer(  # type: ignore[no-any-return]
            self.queue, mirror.buffer, cl.map_flags.READ, offset, (view.nbytes,), np.uint8, is_blocking=False
        )

    def _read_staging_of(self, view: np.ndarray) -> np.ndarray:
        key = (view.ctypes.data, view.nbytes)
        if key not in self._read_staging:
            self._read_staging[key] = self._pinned(view.nbytes)
        return self._read_staging[key][0]

    # -- profiling ---------------------------------------------------------------------------------------

    def counters(self) -> dict[str, float]:
        """Transfers so far: their count, device seconds (profiled events; 0 unprofiled) and host
        seconds spent in transfer calls (copies into mapped or staging memory included)."""
        return self.tally.read(self.queue)

    def close(self) -> None:
        """Unmap the staging buffers and wait, then drop them, the queue and the context (in that order:
        the driver releases buffers before their context); the transfers are unusable after."""
        while self._pinned_maps:  # popitem: a finalizer's `unpin` may run meanwhile
            _, mapping = self._pinned_maps.popitem()
            mapping.release(self.queue)
        self.queue.finish()
        self._read_staging.clear()
        self.tally.drop_events()
        self.queue = self.context = None

    def reset(self) -> None:
        self.tally.reset()
