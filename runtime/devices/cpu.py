"""The CPU driver: HAI's run-time calls for the host processor, plus all three extensions.

Device memory is host memory: a buffer is a 64-byte-aligned numpy byte array,
map/unmap are the identity, copies are memcpy and synchronize has nothing to wait
for (kernels run to completion inside `run`). A recorded launch's `run` is the kernel's bound call
itself, with nothing around it: the profiling counters count `launch` calls, not the runs of a
recorded launch (a model's inferences), which stay as fast as a direct call. Kernels are TVM-compiled shared
libraries run through tvm_ffi (see runtime/kernel_library.py). Facts come from
/proc and /sys under `root`, so tests can point the driver at a fake tree.
"""

from __future__ import annotations

import ctypes
import os
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from runtime import host_probe
from runtime.cpu_features import CpuIdentity, host_cpu
from runtime.errors import DeviceBufferError, InsufficientMemoryError, KernelError, UnsupportedError
from runtime.fd_library import OpenFile
from runtime.hai import (
    Buffer,
    BufferView,
    Capabilities,
    Device,
    DeviceInfo,
    Driver,
    Executable,
    KernelArg,
    MemoryInfo,
    ThermalReading,
    Unbound,
    extensions_of,
    probed_device,
)
from runtime.kernel_library import (
    KERNEL_ALIGNMENT,
    KernelTensor,
    aligned_empty,
    kernel_function,
    kernel_tensor,
    kernel_view,
    load_kernel_module,
)


def host_facts(root: Path, cpu: CpuIdentity) -> dict[str, Any]:
    """The CPU's probe facts as JSON-friendly data (the `cpu`/`memory` part of a hardware profile)."""
    return {
        "arch": cpu.arch,
        "vendor": cpu.vendor,
        "model": cpu.model,
        "features": list(cpu.features),
        "isa_level": cpu.isa_level,
        "arm_cpu": cpu.arm_cpu,
        **host_probe.topology(root),
        "caches": host_probe.caches(root),
        "memory": host_probe.memory(root),
        "thermal_zones": host_probe.thermal_zones(root),
        "cpufreq": host_probe.cpufreq(root),
    }


class CpuLaunch:
    """A recorded launch: `run` is the kernel's bound call itself (runtime/kernel_library.py), so running
    it costs what calling the kernel from Python costs, nothing more; `bind` re-points an input's
    argument header at the caller's array (the conditions of `runtime.hai.Launch.bind`, unchecked)."""

    __slots__ = ("run", "_headers")

    def __init__(self, run: Callable[[], None], values: Sequence[Any]) -> None:
        self.run = run
        self._headers = [v.header if isinstance(v, KernelTensor) else None for v in values]

    def bind(self, position: int, array: np.ndarray) -> None:
        self._headers[position].data = array.ctypes.data  # type: ignore[union-attr]


class CpuDriver(Driver):
    """The host CPU, always exactly one device (all sockets together)."""

    name = "cpu"

    def __init__(self, root: str | os.PathLike[str] = "/") -> None:
        self.root = Path(root)

    def probe(self) -> list[DeviceInfo]:
        cpu = host_cpu(str(self.root / "proc/cpuinfo"))
        return [
            DeviceInfo(
                driver=self.name,
                index=0,
                name=cpu.model,
                kind="cpu",
                vendor=cpu.vendor,
                properties=host_facts(self.root, cpu),
            )
        ]

    def open(self, index: int = 0, **options: Any) -> CpuDevice:
        """Options: `threads` (sets TVM_NUM_THREADS for this process before any kernel runs)."""
        unknown = set(options) - {"threads"}
        if unknown:
            raise UnsupportedError(f"cpu device has no option(s) {sorted(unknown)}; it takes 'threads'")
        return CpuDevice(probed_device(self, index), self.root, threads=options.get("threads"))


class CpuDevice(Device):
    """The opened host CPU; also implements the power, thermal and profiling extensions."""

    def __init__(self, info: DeviceInfo, root: Path, threads: int | None = None) -> None:
        super().__init__(info)
        self.root = root
        if threads is not None:
            if type(threads) is not int or threads < 1:
                raise UnsupportedError(f"cpu device: threads must be an int >= 1, got {threads!r}")
            os.environ["TVM_NUM_THREADS"] = str(threads)
        self.threads = threads
        self._live: dict[int, Buffer] = {}
        self._allocated = 0
        self._peak = 0
        self._profiling = False
        self._counters: dict[str, float] = {}
        self.reset_counters()

    # -- 2, 3: facts --------------------------------------------------------------------------------

    def capabilities(self) -> Capabilities:
        facts = self.info.properties
        return Capabilities(
            kind="cpu",
            isa=facts["arch"],
            features=frozenset(facts["features"]),
            isa_level=facts["isa_level"],
            alignment=KERNEL_ALIGNMENT,
            host_visible=True,
            compute_units=facts["physical_cores"],
            max_threads=facts["threads"],
            memory_bytes=facts["memory"]["total_bytes"],
            cache_bytes={c["name"]: c["size_bytes"] for c in facts["caches"]},
            extensions=extensions_of(self),
        )

    def query_memory(self) -> MemoryInfo:
        now = host_probe.memory(self.root)
        return MemoryInfo(
            total_bytes=now["total_bytes"] or 0,
            available_bytes=now["available_bytes"] or 0,
            allocated_bytes=self._allocated,
            peak_allocated_bytes=self._peak,
            live_buffers=len(self._live),
        )

    # -- 4, 5: buffers ------------------------------------------------------------------------------

    def allocate(self, nbytes: int, alignment: int | None = None, label: str = "") -> Buffer:
        alignment = max(alignment or KERNEL_ALIGNMENT, KERNEL_ALIGNMENT)
        if nbytes < 0 or alignment & (alignment - 1):
            raise DeviceBufferError(
                f"cpu device cannot allocate {nbytes} bytes aligned to {alignment} "
                f"(size must be >= 0, alignment a power of two)"
            )
        try:
            memory = aligned_empty((nbytes,), "u1", alignment)
        except MemoryError:
            raise InsufficientMemoryError(
                f"cpu device cannot allocate {nbytes} bytes{f' for the {label}' if label else ''}: "
                "out of memory"
            ) from None
        buffer = Buffer("cpu", nbytes, alignment, memory, label)
        self._live[id(buffer)] = buffer
        self._allocated += nbytes
        self._peak = max(self._peak, self._allocated)
        self._counters["allocations"] += 1
        return buffer

    def free(self, buffer: Buffer) -> None:
        self._check_live(buffer)
        del self._live[id(buffer)]
        self._allocated -= buffer.nbytes
        buffer.freed = True
        buffer.handle = None

    def _check_live(self, buffer: Buffer) -> None:
        if buffer.freed:
            raise DeviceBufferError(f"{buffer.describe()} was already freed")
        if self._live.get(id(buffer)) is not buffer:
            raise DeviceBufferError(f"{buffer.describe()} does not belong to this cpu device")

    def _byte_range(self, buffer: Buffer, offset: int, nbytes: int, what: str) -> np.ndarray:
        self._check_live(buffer)
        if offset < 0 or offset + nbytes > buffer.nbytes:
            raise DeviceBufferError(
                f"{what} of {nbytes} bytes at offset {offset} does not fit in {buffer.describe()}"
            )
        return buffer.handle[offset : offset + nbytes]

    # -- 6-9: copies and mappings -------------------------------------------------------------------

    def copy_in(self, buffer: Buffer, host: np.ndarray, offset: int = 0) -> None:
        source = np.ascontiguousarray(host)
        self._byte_range(buffer, offset, source.nbytes, "copy in")[:] = source.reshape(-1).view(np.uint8)
        self._counters["bytes_copied_in"] += source.nbytes

    def copy_out(
        self, buffer: Buffer, offset: int, shape: Sequence[int], dtype: np.dtype | str
    ) -> np.ndarray:
        result = aligned_empty(tuple(shape), dtype)
        result.reshape(-1).view(np.uint8)[:] = self._byte_range(buffer, offset, result.nbytes, "copy out")
        self._counters["bytes_copied_out"] += result.nbytes
        return result

    def map(
        self,
        buffer: Buffer,
        offset: int = 0,
        shape: Sequence[int] | None = None,
        dtype: np.dtype | str = "u1",
    ) -> np.ndarray:
        dtype = np.dtype(dtype)
        if shape is None:
            shape = ((buffer.nbytes - offset) // dtype.itemsize,)
        nbytes = int(np.prod(shape, dtype=np.int64)) * dtype.itemsize
        return self._byte_range(buffer, offset, nbytes, "map").view(dtype).reshape(tuple(shape))

    def unmap(self, view: np.ndarray) -> None:
        """Host memory is the device's memory: nothing to write back."""

    # -- 10-12: kernels -----------------------------------------------------------------------------

    def load_executable(
        self, source: str | os.PathLike[str] | OpenFile, runtime: OpenFile | None = None
    ) -> Executable:
        if isinstance(source, OpenFile):
            module = load_kernel_module(source.path, runtime, source.fd)
        else:
            module = load_kernel_module(source, runtime)
        return Executable("cpu", str(module.path), module)

    def record(self, executable: Executable, entry: str, args: Sequence[KernelArg]) -> CpuLaunch:
        function = executable.entries.get(entry)
        if function is None:
            function = executable.entries[entry] = kernel_function(executable.handle, executable.path, entry)
        values = [self._kernel_arg(arg, i, entry) for i, arg in enumerate(args)]
        try:
            return CpuLaunch(function.bind(values), values)
        except (TypeError, ValueError, ctypes.ArgumentError) as exc:
            raise KernelError(f"kernel {entry!r} of {executable.path} refused its arguments: {exc}") from exc

    def launch(self, executable: Executable, entry: str, args: Sequence[KernelArg]) -> None:
        if any(isinstance(arg, Unbound) for arg in args):
            raise KernelError(f"kernel {entry!r}: launch takes arrays; record it to bind inputs later")
        run = self.record(executable, entry, args).run
        start = time.perf_counter() if self._profiling else 0.0
        run()
        if self._profiling:
            self._counters["launch_seconds"] += time.perf_counter() - start
        self._counters["launches"] += 1

    def _kernel_arg(self, arg: KernelArg, position: int, entry: str) -> Any:
        if isinstance(arg, BufferView):
            arg = self.map(arg.buffer, arg.offset, arg.shape, arg.dtype)
        if isinstance(arg, np.ndarray):
            return kernel_tensor(arg, position, entry)
        if isinstance(arg, Unbound):  # a header without data: `CpuLaunch.bind` points it at each input
            return KernelTensor(kernel_view(np.broadcast_to(np.zeros((), arg.dtype), arg.shape)))
        if isinstance(arg, bool | int | float | np.integer | np.floating):
            return arg
        raise KernelError(
            f"argument #{position} of kernel {entry!r} is a {type(arg).__name__}; "
            f"pass an array, a BufferView, an Unbound input or a scalar"
        )

    def synchronize(self) -> None:
        """Kernels finish inside `launch`; there is nothing in flight."""

    def close(self) -> None:
        for buffer in list(self._live.values()):
            self.free(buffer)

    # -- extension: power ---------------------------------------------------------------------------

    def power_policies(self) -> tuple[str, ...]:
        return tuple(host_probe.cpufreq(self.root)["available_governors"])

    def power_policy(self) -> str | None:
        return host_probe.cpufreq(self.root)["governor"]

    def set_power_policy(self, name: str) -> None:
        offered = self.power_policies()
        if name not in offered:
            raise UnsupportedError(
                f"cpu power policy {name!r} is not offered by cpufreq here "
                f"(offered: {', '.join(offered) or 'none'})"
            )
        try:
            host_probe.set_governor(self.root, name)
        except PermissionError as exc:
            raise UnsupportedError(f"setting the cpufreq governor to {name!r} needs root: {exc}") from exc

    # -- extension: thermal -------------------------------------------------------------------------

    def thermal_readings(self) -> list[ThermalReading]:
        return [
            ThermalReading(z["zone"], z["type"], z["celsius"], z["critical_celsius"])
            for z in host_probe.thermal_zones(self.root)
            if z["celsius"] is not None
        ]

    # -- extension: profiling -----------------------------------------------------------------------

    def set_profiling(self, enabled: bool) -> None:
        self._profiling = enabled

    def counters(self) -> dict[str, float]:
        return dict(self._counters)

    def reset_counters(self) -> None:
        self._counters = dict.fromkeys(
            ("launches", "launch_seconds", "allocations", "bytes_copied_in", "bytes_copied_out"), 0.0
        )
        self._counters.update(launches=0, allocations=0, bytes_copied_in=0, bytes_copied_out=0)
