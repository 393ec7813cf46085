"""The HAI `opencl` device: OpenCL devices driven through pyopencl (the run-time half of `--target opencl`).

Rule: `probe` lists every device of every platform (`HAI_OPENCL_DEVICE`, a substring of the platform
or device name, keeps only matching ones; the index counts what is left). A device's memory is its
own, not the host's: the model hands it the host arena and weights through the `HostMirror`
extension (runtime/hai.py), and it keeps one device buffer for each; an argument that is a view of
them is that buffer and the view's element offset (every kernel takes one `int` offset per buffer,
targets/opencl/build.py `with_offsets`; no sub-buffers: NVIDIA's OpenCL computed wrong results
through overlapping sub-buffers of one arena). An input recorded `Unbound` gets a slot of its own, given the
bound host array's bytes at each run; a plain host array (the plan digest's output) a temporary
buffer, read back at `synchronize`. How bytes move (zero-copy on host-unified memory, pinned staging
on a discrete device, plain copies with `zero_copy=False`) is runtime/devices/opencl_transfers.py;
`open(index, zero_copy=..., profiling=True)` picks it and makes the queue profile its events (the
`ProfilingCounters` extension then sums the transfers' timestamps). The library is built at load
(runtime/devices/opencl_programs.py), refused first when its source enables an OpenCL extension the
device lacks; each recorded launch sets its kernels' arguments once (the scratch buffers each kernel
needs are allocated then) and `run` enqueues them in order. Imports numpy, the standard library and
pyopencl (an optional extra: without it the driver finds no device and says why). `close` waits for
the queue and releases, once, in the order the driver needs: kernels, programs, buffers, queue,
context (objects left alive until the driver's own teardown at interpreter exit crashed processes on
the H100).
"""

from __future__ import annotations

import functools
import os
import weakref
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

from runtime.devices.opencl_transfers import InputSlot, Mirror, Transfers, pyopencl, transfer_mode
from runtime.errors import (
    DeviceBufferError,
    DeviceNotFoundError,
    InvalidArgumentError,
    KernelError,
    UnsupportedError,
)
from runtime.fd_library import OpenFile
from runtime.hai import (
    Buffer,
    BufferView,
    Capabilities,
    Device,
    DeviceInfo,
    DeviceKind,
    Driver,
    Executable,
    KernelArg,
    MemoryInfo,
    Unbound,
    extensions_of,
)
from runtime.opencl_probe import device_facts, device_type_name, opencl_inventory

DEVICE_FILTER = "HAI_OPENCL_DEVICE"
PLAN_DIGEST_SYMBOL = "hai_plan_digest"
KINDS: dict[str, DeviceKind] = {"GPU": "gpu", "CPU": "cpu"}


def cl_devices() -> list[Any]:
    """Every OpenCL device (filtered by $HAI_OPENCL_DEVICE); [] without pyopencl or a platform."""
    try:
        cl = pyopencl()

        platforms = cl.get_platforms()
    except Exception:  # no pyopencl, no ICD loader, or no platform: no device
        return []
    wanted = os.environ.get(DEVICE_FILTER, "").lower()
    found = []
    for platform in platforms:
        try:
            devices = platform.get_devices()
        except Exception:  # a platform whose driver fails lists no device
            continue
        found += [d for d in devices if wanted in f"{platform.name} {d.name}".lower()]
    return found


class OpenCLDriver(Driver):
    name = "opencl"

    def probe(self) -> list[DeviceInfo]:
        return [
            DeviceInfo("opencl", i, d.name.strip(), KINDS.get(device_type_name(int(d.type)), "accelerator"),
                       d.vendor.strip(), device_facts(d))
            for i, d in enumerate(cl_devices())
        ]  # fmt: skip

    def open(
        self, index: int = 0, zero_copy: bool | None = None, profiling: bool = False, **options: Any
    ) -> OpenCLDevice:
        """Device `index`; `zero_copy` False copies inputs and outputs (None: $HAI_OPENCL_ZERO_COPY,
        default on), `profiling` makes its queue time every event (runtime/devices/opencl_transfers.py)."""
        if options:
            raise InvalidArgumentError(
                f"the OpenCL driver takes the options zero_copy and profiling, not "
                f"{', '.join(sorted(options))}"
            )
        devices = cl_devices()
        if not 0 <= index < len(devices):
            raise DeviceNotFoundError(no_device(index, len(devices)))
        return OpenCLDevice(self.probe()[index], devices[index], zero_copy, bool(profiling))


def no_device(index: int, found: int) -> str:
    """Why there is no OpenCL device `index`: no pyopencl, no platform, or none (matching the filter)."""
    try:
        import pyopencl  # noqa: F401
    except ImportError:
        return "the OpenCL driver needs pyopencl: pip install 'hai-compiler[opencl]'"
    install = "install an OpenCL driver and its ICD (Debian: pocl-opencl-icd for the CPU, or a GPU vendor's)"
    inventory = opencl_inventory()
    if not inventory["available"]:
        return f"{inventory['reason']}; {install}"
    listed = "; ".join(f"{p['name']}: {d['name']}" for p in inventory["platforms"] for d in p["devices"])
    wanted = os.environ.get(DEVICE_FILTER)
    if wanted:
        return (f"no OpenCL device {index}: {found} found matching ${DEVICE_FILTER}={wanted!r} among "
                f"{listed or 'no device'}; set it to part of one of those names, or unset it")  # fmt: skip
    return f"no OpenCL device {index}: {found} found ({listed or install})"


class OpenCLLaunch:
    """A recorded launch: the inputs written before it (bound each run) and its kernels' enqueues."""

    def __init__(self, transfers: Transfers) -> None:
        self.transfers = transfers
        self.enqueues: list[Callable[[], None]] = []
        self.inputs: dict[int, tuple[InputSlot, np.ndarray | None]] = {}
        self.scratch: list[Any] = []
        self.run: Callable[[], None] = self._run

    def bind(self, position: int, array: np.ndarray) -> None:
        slot, _ = self.inputs[position]
        self.inputs[position] = (slot, array)

    def _run(self) -> None:
        if self.inputs:  # the model keeps the arrays alive until it synchronizes
            self.transfers.write_inputs(list(self.inputs.values()))
        for enqueue in self.enqueues:
            enqueue()

    def close(self) -> None:
        """Drop the kernels, then release the input and scratch buffers; the launch no longer runs."""
        self.enqueues.clear()
        self.run = self._closed
        for slot, _ in self.inputs.values():
            slot.uses.clear()
            slot.staging = None
            for buffer in {id(slot.own): slot.own, id(slot.current): slot.current}.values():
                buffer.release()
        self.inputs.clear()
        for buffer in self.scratch:
            buffer.release()
        self.scratch.clear()

    @staticmethod
    def _closed() -> None:
        raise KernelError("this OpenCL launch's device is closed")


class OpenCLDevice(Device):
    """One OpenCL device: a context and an in-order queue (module doc)."""

    def __init__(self, info: DeviceInfo, device: Any, zero_copy: bool | None, profiling: bool) -> None:
        cl = pyopencl()

        super().__init__(info)
        self.cl_device = device
        self.context = cl.Context([device])
        properties = cl.command_queue_properties.PROFILING_ENABLE if profiling else 0
        self.queue = cl.CommandQueue(self.context, device, properties=properties)
        self.alignment = max(int(device.mem_base_addr_align) // 8, 1)
        mode = transfer_mode(zero_copy, bool(info.properties.get("host_unified_memory")))
        self.transfers = Transfers(self.context, self.queue, self.alignment, mode, profiling)
        self._mirrors: list[Mirror] = []
        self._read_backs: list[tuple[np.ndarray, Any]] = []
        self._maps: dict[int, Any] = {}
        self._launches: weakref.WeakSet[OpenCLLaunch] = weakref.WeakSet()  # released with their owner
        self._programs: list[Any] = []
        self.closed = False
        self._allocated = self._peak = self._live = 0

    # -- calls 2 and 3 ----------------------------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        facts = self.info.properties
        features = {"fp16"} if facts.get("fp16") else set()
        features |= {"int8_dot"} if facts.get("int8_dot_product") else set()
        features |= {"host_unified"} if facts.get("host_unified_memory") else set()
        return Capabilities(
            kind=self.info.kind, isa="opencl", features=frozenset(features), isa_level=None,
            alignment=self.alignment, host_visible=self.transfers.mode == "mapped",
            compute_units=int(facts["compute_units"]), max_threads=int(facts["max_work_group_size"]),
            memory_bytes=int(facts["global_memory_bytes"]), extensions=extensions_of(self),
        )  # fmt: skip

    def query_memory(self) -> MemoryInfo:
        total = int(self.info.properties["global_memory_bytes"])
        return MemoryInfo(total, total - self._allocated, self._allocated, self._peak, self._live)

    # -- calls 4 to 9 -----------------------------------------------------------------------------------

    def allocate(self, nbytes: int, alignment: int | None = None, label: str = "") -> Buffer:
        cl = pyopencl()

        if alignment is not None and alignment > self.alignment and alignment % self.alignment:
            raise DeviceBufferError(f"OpenCL buffers are aligned to {self.alignment} bytes, not {alignment}")
        flags = cl.mem_flags.READ_WRITE
        if self.transfers.mode == "mapped":  # host-unified: map() then costs no copy (on a discrete GPU
            flags |= cl.mem_flags.ALLOC_HOST_PTR  # it would put the buffer in host memory, across the bus)
        try:
            handle = cl.Buffer(self.context, flags, max(int(nbytes), 1))
        except cl.Error as exc:
            raise DeviceBufferError(f"cannot allocate {nbytes} bytes{f' for {label}' if label else ''} on "
                                    f"{self.info.name}: {exc}") from None  # fmt: skip
        self._count(int(nbytes))
        return Buffer("opencl", int(nbytes), self.alignment, handle, label)

    def _count(self, nbytes: int) -> None:
        """One more live buffer of `nbytes` (query_memory's statistics)."""
        self._allocated += nbytes
        self._peak = max(self._peak, self._allocated)
        self._live += 1

    def free(self, buffer: Buffer) -> None:
        if buffer.device != "opencl" or buffer.freed:
            raise DeviceBufferError(f"cannot free {buffer.describe()}: not a live buffer of this device")
        buffer.handle.release()
        buffer.freed = True
        self._allocated -= buffer.nbytes
        self._live -= 1

    def copy_in(self, buffer: Buffer, host: np.ndarray, offset: int = 0) -> None:
        cl = pyopencl()

        cl.enqueue_copy(
            self.queue, buffer.handle, np.ascontiguousarray(host), dst_offset=offset, is_blocking=True
        )

    def copy_out(
        self, buffer: Buffer, offset: int, shape: Sequence[int], dtype: np.dtype | str
    ) -> np.ndarray:
        cl = pyopencl()

        out = np.empty(tuple(shape), dtype)
        cl.enqueue_copy(self.queue, out, buffer.handle, src_offset=offset, is_blocking=True)
        return out

    def map(
        self,
        buffer: Buffer,
        offset: int = 0,
        shape: Sequence[int] | None = None,
        dtype: np.dtype | str = "u1",
    ) -> np.ndarray:
        """A host array over the buffer's bytes (read and write) until `unmap`; on a host-unified device
        in zero-copy mode (`capabilities().host_visible`) it is the buffer's own memory."""
        cl = pyopencl()

        if buffer.device != "opencl" or buffer.freed:
            raise DeviceBufferError(f"cannot map {buffer.describe()}: not a live buffer of this device")
        dtype = np.dtype(dtype)
        shape = tuple(shape) if shape is not None else ((buffer.nbytes - offset) // dtype.itemsize,)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        if offset < 0 or offset + nbytes > buffer.nbytes:
            raise DeviceBufferError(f"cannot map {nbytes} bytes at offset {offset} of {buffer.describe()}")
        if not nbytes:
            return np.empty(shape, dtype)
        flags = cl.map_flags.READ | cl.map_flags.WRITE
        view, _ = cl.enqueue_map_buffer(self.queue, buffer.handle, flags, offset, shape, dtype)
        self._maps[id(view)] = view.base  # pyopencl's MemoryMap: its release() unmaps
        return view

    def unmap(self, view: np.ndarray) -> None:
        if not view.nbytes:
            return
        mapping = self._maps.pop(id(view), None)
        if mapping is None:
            raise DeviceBufferError("unmap of an array that is not a live mapping of this OpenCL device")
        mapping.release(self.queue).wait()

    # -- the HostMirror extension -----------------------------------------------------------------------

    def mirror(self, host: np.ndarray, label: str, upload: bool) -> None:
        """Keep a device buffer for the host array `host`: the host's memory itself when zero-copy on
        host-unified memory, else one uploaded now when `upload` (runtime/devices/opencl_transfers.py)."""
        try:
            self._mirrors.append(self.transfers.mirror(host, upload))
            self._count(host.nbytes)
        except Exception as exc:  # pyopencl's errors: the allocation failed
            raise DeviceBufferError(
                f"cannot allocate the {label} ({host.nbytes} bytes) on {self.info.name}: {exc}"
            ) from None

    def unmirror(self, host: np.ndarray) -> None:
        """Release the device buffer of the mirrored host array `host` (the caller waited for its work)."""
        start = host.ctypes.data
        for mirror in self._mirrors:
            if mirror.start == start and mirror.end == start + host.nbytes:
                self._mirrors.remove(mirror)
                self.transfers.forget_reads(mirror.start, mirror.end)
                mirror.buffer.release()
                self._allocated -= host.nbytes
                self._live -= 1
                return
        raise DeviceBufferError(f"unmirror of a host array ({host.nbytes} bytes) that is not mirrored here")

    def start_read_back(self, views: Sequence[np.ndarray]) -> Callable[[], None]:
        """Enqueue the reads of the mirrored host `views` (the outputs); the result waits for them."""
        return self.transfers.start_reads(self._located(views, "read_back"))

    def read_back(self, views: Sequence[np.ndarray]) -> None:
        """Bring the mirrored host `views` (the outputs) up to date with the device's bytes."""
        self.start_read_back(views)()

    def upload(self, views: Sequence[np.ndarray]) -> None:
        """Bring the device's copy of the mirrored host `views` up to date (nothing where it is shared)."""
        self.transfers.write_mirrored(self._located(views, "upload"))

    def _located(self, views: Sequence[np.ndarray], call: str) -> list[tuple[np.ndarray, Mirror, int]]:
        """Each view with its mirror and byte offset there."""
        located = []
        for view in views:
            mirror, offset = self._mirrored(view)
            if mirror is None:
                raise KernelError(f"{call} of a host array that is not mirrored on the OpenCL device")
            located.append((view, mirror, offset))
        return located

    # -- the ProfilingCounters extension ----------------------------------------------------------------

    def set_profiling(self, enabled: bool) -> None:
        if enabled and not self.transfers.profiling:
            raise UnsupportedError(
                f"OpenCL device {self.info.name} was opened without profiling: open it with profiling=True "
                f"(runtime.load(..., device_options={{'profiling': True}}))"
            )

    def counters(self) -> dict[str, float]:
        return self.transfers.counters()

    def reset_counters(self) -> None:
        self.transfers.reset()

    def _mirrored(self, array: np.ndarray) -> tuple[Mirror | None, int]:
        start = array.ctypes.data
        for mirror in self._mirrors:
            if mirror.start <= start and start + array.nbytes <= mirror.end and array.flags.c_contiguous:
                return mirror, start - mirror.start
        return None, 0

    # -- calls 10 to 12 ---------------------------------------------------------------------------------

    def load_executable(
        self, source: str | os.PathLike[str] | OpenFile, runtime: OpenFile | None = None
    ) -> Executable:
        from runtime.devices.opencl_programs import build_program, check_extensions, read_library

        if isinstance(source, OpenFile):
            data, where = os.pread(source.fd, os.fstat(source.fd).st_size, 0), str(source.path)
        else:
            with open(source, "rb") as handle:
                data, where = handle.read(), str(source)
        library = read_library(data, where)
        check_extensions(self.cl_device, library["source"], where)
        program, _ = build_program(self.context, self.cl_device, library["source"], where)
        self._programs.append(program)
        return Executable("opencl", where, (program, library["kernels"]))

    def record(self, executable: Executable, entry: str, args: Sequence[KernelArg]) -> OpenCLLaunch:
        cl = pyopencl()

        program, kernels = executable.handle
        meta: dict[str, Any]
        if entry == PLAN_DIGEST_SYMBOL:
            one = [1, 1, 1]
            meta = {"launches": [{"kernel": entry, "global": one, "local": one, "args": [["param", 0, 1]]}],
                    "scratch": [], "params": 1}  # fmt: skip
        elif entry in kernels:
            meta = kernels[entry]
        else:
            raise KernelError(f"kernel {entry!r} is not in {executable.path}")
        if len(args) != meta["params"]:
            raise KernelError(f"kernel {entry!r} takes {meta['params']} arguments, got {len(args)}")
        launch = OpenCLLaunch(self.transfers)
        self._launches.add(launch)
        params = [self._argument(arg, i, entry, launch) for i, arg in enumerate(args)]
        scratch = [cl.Buffer(self.context, cl.mem_flags.READ_WRITE, max(int(n), 1)) for n in meta["scratch"]]
        launch.scratch = scratch
        for step in meta["launches"]:
            kernel = cl.Kernel(program, step["kernel"])
            buffers = [params[i] if kind == "param" else (scratch[i], 0) for kind, i, _ in step["args"]]
            sizes = [size for _, _, size in step["args"]]
            offsets = [np.int32(self._elements(offset, size, entry, n))
                       for n, ((_, offset), size) in enumerate(zip(buffers, sizes, strict=True))]  # fmt: skip
            kernel.set_args(*[buffer for buffer, _ in buffers], *offsets)
            for index, (kind, i, _) in enumerate(step["args"]):
                if kind == "param" and i in launch.inputs:  # an input's buffer may change each run
                    launch.inputs[i][0].uses.append((kernel, index))
            global_size, local_size = tuple(step["global"]), tuple(step["local"])
            # the launch keeps its buffers alive: clSetKernelArg does not retain them
            launch.enqueues.append(
                functools.partial(self._enqueue, kernel, global_size, local_size, (params, scratch))
            )
        return launch

    def _enqueue(
        self, kernel: Any, global_size: tuple[int, ...], local_size: tuple[int, ...], buffers: Any
    ) -> None:
        """Launch one device kernel (`buffers`: its arguments and scratch, kept alive with the launch);
        a refused launch is a `KernelError` naming the kernel, its sizes and the device."""
        cl = pyopencl()

        try:
            cl.enqueue_nd_range_kernel(self.queue, kernel, global_size, local_size)
        except cl.Error as exc:
            raise KernelError(
                f"OpenCL kernel {kernel.function_name!r} (global {global_size}, local {local_size}) "
                f"could not be launched on {self.cl_device.name.strip()}: {exc}"
            ) from exc

    def _argument(self, arg: KernelArg, position: int, entry: str, launch: OpenCLLaunch) -> tuple[Any, int]:
        """The buffer an argument lives in and the byte its view starts at."""
        cl = pyopencl()

        if isinstance(arg, Unbound):
            nbytes = int(np.prod(arg.shape, dtype=np.int64)) * np.dtype(arg.dtype).itemsize
            slot = self.transfers.input_slot(nbytes)
            launch.inputs[position] = (slot, None)
            return slot.own, 0
        if isinstance(arg, BufferView):
            return arg.buffer.handle, arg.offset
        if isinstance(arg, np.ndarray):
            mirror, offset = self._mirrored(arg)
            if mirror is not None:
                return mirror.buffer, offset
            buffer = (
                cl.Buffer(self.context, cl.mem_flags.READ_WRITE | cl.mem_flags.COPY_HOST_PTR, hostbuf=arg)
                if arg.nbytes
                else cl.Buffer(self.context, cl.mem_flags.READ_WRITE, 1)
            )
            self._read_backs.append((arg, buffer))
            return buffer, 0
        raise KernelError(f"kernel {entry!r}: argument #{position} is a {type(arg).__name__}; OpenCL kernels "
                          f"take buffers only")  # fmt: skip

    @staticmethod
    def _elements(offset: int, itemsize: int, entry: str, position: int) -> int:
        """A view's byte offset in elements of the kernel's pointer type."""
        if offset % itemsize:
            raise UnsupportedError(f"kernel {entry!r}: argument #{position} starts at byte {offset}, not a "
                                   f"whole {itemsize}-byte element of its buffer")  # fmt: skip
        return offset // itemsize

    def fence(self) -> Callable[[], None]:
        """The `Fences` extension: a marker after everything enqueued so far; the result waits for it."""
        return pyopencl().enqueue_marker(self.queue).wait  # type: ignore[no-any-return]

    def synchronize(self) -> None:
        cl = pyopencl()

        self.queue.finish()
        for host, buffer in self._read_backs:
            cl.enqueue_copy(self.queue, host, buffer, is_blocking=True)
        self._read_backs.clear()

    def close(self) -> None:
        """Wait for the queue, then release kernels, programs, buffers, the queue and the context (module
        doc); a second call does nothing. A program still referenced elsewhere (a model's executables)
        is released when that reference goes."""
        if self.closed:
            return
        self.closed = True
        self.queue.finish()
        for launch in list(self._launches):
            launch.close()
        self._launches.clear()
        self._programs.clear()
        for mapping in self._maps.values():
            mapping.release(self.queue)
        for buffer in [mirror.buffer for mirror in self._mirrors] + [b for _, b in self._read_backs]:
            buffer.release()
        self._maps.clear()
        self._mirrors.clear()
        self._read_backs.clear()
        self.transfers.close()  # its staging buffers, then its queue and context
        self.queue = self.context = None
