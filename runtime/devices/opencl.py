"""The HAI `opencl` device: OpenCL devices driven through pyopencl (the run-time half of `--target opencl`).

Rule: `probe` lists every device of every platform (`HAI_OPENCL_DEVICE`, a substring of the platform
or device name, keeps only matching ones; the index counts what is left). A device's memory is its
own, not the host's: the model hands it the host arena and weights through the `HostMirror`
extension (runtime/hai.py), and it keeps one device buffer for each (the weights uploaded once, at
load); an argument that is a view of them is the sub-buffer at the view's offset, which must be a
multiple of CL_DEVICE_MEM_BASE_ADDR_ALIGN (the planner aligns offsets to it). An input recorded
`Unbound` gets a device buffer of its own, written from the bound host array at each run; a plain
host array (the plan digest's output) a temporary one, read back at `synchronize`. The library is
built at load (runtime/devices/opencl_programs.py); each recorded launch sets its kernels' arguments
once (the scratch buffers each kernel needs are allocated then) and `run` enqueues them in order.
Imports numpy, the standard library and pyopencl (an optional extra: without it the driver finds no
device and says why).
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from runtime.errors import DeviceBufferError, DeviceNotFoundError, KernelError, UnsupportedError
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
)
from runtime.opencl_probe import device_facts, device_type_name

DEVICE_FILTER = "HAI_OPENCL_DEVICE"
PLAN_DIGEST_SYMBOL = "hai_plan_digest"
KINDS: dict[str, DeviceKind] = {"GPU": "gpu", "CPU": "cpu"}


def cl_devices() -> list[Any]:
    """Every OpenCL device (filtered by $HAI_OPENCL_DEVICE); [] without pyopencl or a platform."""
    try:
        import pyopencl as cl

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

    def open(self, index: int = 0, **options: Any) -> OpenCLDevice:
        devices = cl_devices()
        if not 0 <= index < len(devices):
            try:
                import pyopencl  # noqa: F401
            except ImportError:
                raise DeviceNotFoundError(
                    "the OpenCL driver needs pyopencl: pip install 'hai-compiler[opencl]'"
                ) from None
            raise DeviceNotFoundError(
                f"no OpenCL device {index}: {len(devices)} found"
                + (
                    f" matching ${DEVICE_FILTER}={os.environ[DEVICE_FILTER]!r}"
                    if os.environ.get(DEVICE_FILTER)
                    else ""
                )
                + " (install an OpenCL driver, e.g. Debian's pocl-opencl-icd, and its ICD)"
            )
        device = devices[index]
        return OpenCLDevice(self.probe()[index], device)


@dataclass
class Mirror:
    """A host array's device copy: its address range and buffer."""

    start: int
    end: int
    buffer: Any


class OpenCLLaunch:
    """A recorded launch: the inputs written before it (bound each run) and its kernels' enqueues."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue
        self.enqueues: list[Callable[[], None]] = []
        self.inputs: dict[int, tuple[Any, np.ndarray | None]] = {}
        self.run: Callable[[], None] = self._run

    def bind(self, position: int, array: np.ndarray) -> None:
        buffer, _ = self.inputs[position]
        self.inputs[position] = (buffer, array)

    def _run(self) -> None:
        import pyopencl as cl

        for buffer, array in self.inputs.values():
            if array is not None:  # the model keeps the array alive until it synchronizes
                cl.enqueue_copy(self.queue, buffer, array, is_blocking=False)
        for enqueue in self.enqueues:
            enqueue()


class OpenCLDevice(Device):
    """One OpenCL device: a context and an in-order queue (module doc)."""

    def __init__(self, info: DeviceInfo, device: Any) -> None:
        import pyopencl as cl

        super().__init__(info)
        self.cl_device = device
        self.context = cl.Context([device])
        self.queue = cl.CommandQueue(self.context, device)
        self.alignment = max(int(device.mem_base_addr_align) // 8, 1)
        self._mirrors: list[Mirror] = []
        self._read_backs: list[tuple[np.ndarray, Any]] = []
        self._allocated = self._peak = self._live = 0

    # -- calls 2 and 3 ----------------------------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        facts = self.info.properties
        features = {"fp16"} if facts.get("fp16") else set()
        features |= {"int8_dot"} if facts.get("int8_dot_product") else set()
        features |= {"host_unified"} if facts.get("host_unified_memory") else set()
        return Capabilities(
            kind=self.info.kind, isa="opencl", features=frozenset(features), isa_level=None,
            alignment=self.alignment, host_visible=False, compute_units=int(facts["compute_units"]),
            max_threads=int(facts["max_work_group_size"]), memory_bytes=int(facts["global_memory_bytes"]),
            extensions=(),
        )  # fmt: skip

    def query_memory(self) -> MemoryInfo:
        total = int(self.info.properties["global_memory_bytes"])
        return MemoryInfo(total, total - self._allocated, self._allocated, self._peak, self._live)

    # -- calls 4 to 9 -----------------------------------------------------------------------------------

    def allocate(self, nbytes: int, alignment: int | None = None, label: str = "") -> Buffer:
        import pyopencl as cl

        if alignment is not None and alignment > self.alignment and alignment % self.alignment:
            raise DeviceBufferError(f"OpenCL buffers are aligned to {self.alignment} bytes, not {alignment}")
        try:
            handle = cl.Buffer(self.context, cl.mem_flags.READ_WRITE, max(int(nbytes), 1))
        except cl.Error as exc:
            raise DeviceBufferError(f"cannot allocate {nbytes} bytes{f' for {label}' if label else ''} on "
                                    f"{self.info.name}: {exc}") from None  # fmt: skip
        self._allocated += int(nbytes)
        self._peak = max(self._peak, self._allocated)
        self._live += 1
        return Buffer("opencl", int(nbytes), self.alignment, handle, label)

    def free(self, buffer: Buffer) -> None:
        if buffer.device != "opencl" or buffer.freed:
            raise DeviceBufferError(f"cannot free {buffer.describe()}: not a live buffer of this device")
        buffer.handle.release()
        buffer.freed = True
        self._allocated -= buffer.nbytes
        self._live -= 1

    def copy_in(self, buffer: Buffer, host: np.ndarray, offset: int = 0) -> None:
        import pyopencl as cl

        cl.enqueue_copy(
            self.queue, buffer.handle, np.ascontiguousarray(host), dst_offset=offset, is_blocking=True
        )

    def copy_out(
        self, buffer: Buffer, offset: int, shape: Sequence[int], dtype: np.dtype | str
    ) -> np.ndarray:
        import pyopencl as cl

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
        raise UnsupportedError("mapping OpenCL buffers (zero-copy) is not implemented yet; use copy_out")

    def unmap(self, view: np.ndarray) -> None:
        raise UnsupportedError("mapping OpenCL buffers (zero-copy) is not implemented yet")

    # -- the HostMirror extension -----------------------------------------------------------------------

    def mirror(self, host: np.ndarray, label: str, upload: bool) -> None:
        """Keep a device buffer for the host array `host` (uploaded now when `upload`)."""
        buffer = self.allocate(host.nbytes, label=label)
        if upload and host.nbytes:
            self.copy_in(buffer, host)
        start = host.ctypes.data
        self._mirrors.append(Mirror(start, start + host.nbytes, buffer.handle))

    def read_back(self, view: np.ndarray) -> None:
        """Copy the device's bytes of the mirrored host `view` into it."""
        import pyopencl as cl

        mirror, offset = self._mirrored(view)
        if mirror is None:
            raise KernelError("read_back of a host array that is not mirrored on the OpenCL device")
        if view.nbytes:
            cl.enqueue_copy(self.queue, view, mirror.buffer, src_offset=offset, is_blocking=True)

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
        from runtime.devices.opencl_programs import build_program, read_library

        if isinstance(source, OpenFile):
            data, where = os.pread(source.fd, os.fstat(source.fd).st_size, 0), str(source.path)
        else:
            with open(source, "rb") as handle:
                data, where = handle.read(), str(source)
        library = read_library(data, where)
        program, _ = build_program(self.context, self.cl_device, library["source"], where)
        return Executable("opencl", where, (program, library["kernels"]))

    def record(self, executable: Executable, entry: str, args: Sequence[KernelArg]) -> OpenCLLaunch:
        import pyopencl as cl

        program, kernels = executable.handle
        meta: dict[str, Any]
        if entry == PLAN_DIGEST_SYMBOL:
            one = [1, 1, 1]
            meta = {"launches": [{"kernel": entry, "global": one, "local": one, "args": [["param", 0]]}],
                    "scratch": [], "params": 1}  # fmt: skip
        elif entry in kernels:
            meta = kernels[entry]
        else:
            raise KernelError(f"kernel {entry!r} is not in {executable.path}")
        if len(args) != meta["params"]:
            raise KernelError(f"kernel {entry!r} takes {meta['params']} arguments, got {len(args)}")
        launch = OpenCLLaunch(self.queue)
        params = [self._argument(arg, i, entry, launch) for i, arg in enumerate(args)]
        scratch = [cl.Buffer(self.context, cl.mem_flags.READ_WRITE, max(int(n), 1)) for n in meta["scratch"]]
        for step in meta["launches"]:
            kernel = cl.Kernel(program, step["kernel"])
            kernel.set_args(*[params[i] if kind == "param" else scratch[i] for kind, i in step["args"]])
            global_size, local_size = tuple(step["global"]), tuple(step["local"])
            # the launch keeps its buffers alive: clSetKernelArg does not retain them, and a collected
            # sub-buffer is released (NVIDIA then refuses the launch, INVALID_MEM_OBJECT)
            launch.enqueues.append(
                functools.partial(self._enqueue, kernel, global_size, local_size, (params, scratch))
            )
        return launch

    def _enqueue(
        self, kernel: Any, global_size: tuple[int, ...], local_size: tuple[int, ...], buffers: Any
    ) -> None:
        """Launch one device kernel (`buffers`: its arguments and scratch, kept alive with the launch);
        a refused launch is a `KernelError` naming the kernel, its sizes and the device."""
        import pyopencl as cl

        try:
            cl.enqueue_nd_range_kernel(self.queue, kernel, global_size, local_size)
        except cl.Error as exc:
            raise KernelError(
                f"OpenCL kernel {kernel.function_name!r} (global {global_size}, local {local_size}) "
                f"could not be launched on {self.cl_device.name.strip()}: {exc}"
            ) from exc

    def _argument(self, arg: KernelArg, position: int, entry: str, launch: OpenCLLaunch) -> Any:
        import pyopencl as cl

        if isinstance(arg, Unbound):
            nbytes = int(np.prod(arg.shape, dtype=np.int64)) * np.dtype(arg.dtype).itemsize
            buffer = cl.Buffer(self.context, cl.mem_flags.READ_ONLY, max(nbytes, 1))
            launch.inputs[position] = (buffer, None)
            return buffer
        if isinstance(arg, BufferView):
            return self._sub_buffer(
                arg.buffer.handle, arg.offset, arg.buffer.nbytes - arg.offset, entry, position
            )
        if isinstance(arg, np.ndarray):
            mirror, offset = self._mirrored(arg)
            if mirror is not None:
                return self._sub_buffer(mirror.buffer, offset, arg.nbytes, entry, position)
            buffer = (
                cl.Buffer(self.context, cl.mem_flags.READ_WRITE | cl.mem_flags.COPY_HOST_PTR, hostbuf=arg)
                if arg.nbytes
                else cl.Buffer(self.context, cl.mem_flags.READ_WRITE, 1)
            )
            self._read_backs.append((arg, buffer))
            return buffer
        raise KernelError(f"kernel {entry!r}: argument #{position} is a {type(arg).__name__}; OpenCL kernels "
                          f"take buffers only")  # fmt: skip

    def _sub_buffer(self, buffer: Any, offset: int, nbytes: int, entry: str, position: int) -> Any:
        import pyopencl as cl

        if offset == 0 and nbytes == buffer.size:
            return buffer
        if offset % self.alignment:
            raise UnsupportedError(
                f"kernel {entry!r}: argument #{position} lies at byte {offset} of its buffer, not a multiple "
                f"of this device's base-address alignment ({self.alignment} bytes); recompile for this "
                f"device's profile (hai doctor) so the planner aligns it"
            )
        return buffer.get_sub_region(offset, max(nbytes, 1), cl.mem_flags.READ_WRITE)

    def synchronize(self) -> None:
        import pyopencl as cl

        self.queue.finish()
        for host, buffer in self._read_backs:
            cl.enqueue_copy(self.queue, host, buffer, is_blocking=True)
        self._read_backs.clear()

    def close(self) -> None:
        self.queue.finish()
