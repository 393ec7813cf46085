"""HAI, run-time half: the twelve calls every device driver answers, and how drivers are found.

This module is the one place where the run-time interface is written down. The
compile-time half (codegen target, compile) lives in `targets/`; a new device is
one driver module here (registered in the entry-point group `hai.devices`) plus
one target module there (group `hai.targets`). It imports only the standard
library and numpy, never the compiler.

The model is IREE's HAL (driver -> device -> buffers -> executables -> dispatch ->
semaphores), cut down to what a runtime executing a static plan needs:

| #  | call                                               | IREE HAL counterpart                     |
| -- | -------------------------------------------------- | ---------------------------------------- |
| 1  | `Driver.probe() -> list[DeviceInfo]`               | `driver_query_available_devices`         |
| 2  | `Device.capabilities() -> Capabilities`            | `device_query_i64`                       |
| 3  | `Device.query_memory() -> MemoryInfo`              | `allocator_query_statistics` / heaps     |
| 4  | `Device.allocate(nbytes, alignment) -> Buffer`     | `allocator_allocate_buffer`              |
| 5  | `Device.free(buffer)`                              | `buffer_release`                         |
| 6  | `Device.copy_in(buffer, host, offset)`             | `device_queue_write` (host -> device)    |
| 7  | `Device.copy_out(buffer, offset, shape, dtype)`    | `device_queue_read` (device -> host)     |
| 8  | `Device.map(buffer, offset, shape, dtype)`         | `buffer_map_range`                       |
| 9  | `Device.unmap(view)`                               | `buffer_unmap_range`                     |
| 10 | `Device.load_executable(source) -> Executable`     | `executable_cache_prepare_executable`    |
| 11 | `Device.record(executable, entry, args) -> Launch` | `command_buffer_dispatch` (recorded once)|
| 12 | `Device.synchronize()`                             | `semaphore_wait` / wait idle             |

A recorded `Launch` is run by `launch.run()` (IREE: `device_queue_execute` of the recorded command
buffer), as often as wanted: the arguments are converted once, when recorded, so a model's
inference pays only the kernel calls. Arguments recorded `Unbound` are given each run
(`launch.bind`): a model's inputs. `Device.launch(executable, entry, args)` is the one-off form,
`record(...).run()`. `load_executable` takes a path, or an artifact's verified file as an `OpenFile`
(runtime/fd_library.py), which the driver loads through its descriptor, never by its path again.

Lifecycle is not a hardware call: `Driver.open(index, **options)` builds a
`Device`, `Device.close()` releases it (devices are context managers).

The three optional extensions are small protocols a device may also implement;
`extensions_of(device)` names the ones it does, and `Capabilities.extensions`
repeats them: `PowerControl` (power policy), `ThermalSensors` (thermal
readings), `ProfilingCounters` (profiling counters).

Drivers are found by name: the built-in drivers first (`cpu`), then every entry
point of group `hai.devices` whose value is a `Driver` subclass. A broken entry
point is reported when it is asked for, never while listing the others.
"""

from __future__ import annotations

import os
from abc import ABC, abstractmethod
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, ClassVar, Literal, Protocol, runtime_checkable

import numpy as np

from runtime.errors import DeviceNotFoundError, HaiRuntimeError
from runtime.fd_library import OpenFile
from runtime.plugins import load_plugin, plugin_sources

DeviceKind = Literal["cpu", "gpu", "accelerator"]
ENTRY_POINT_GROUP = "hai.devices"
BUILTIN_DRIVERS: dict[str, str] = {
    "cpu": "runtime.devices.cpu:CpuDriver",
    "opencl": "runtime.devices.opencl:OpenCLDriver",
}


@dataclass(frozen=True)
class DeviceInfo:
    """What `probe` found: one device a driver can open, with JSON-friendly facts in `properties`."""

    driver: str
    index: int
    name: str
    kind: DeviceKind
    vendor: str
    properties: Mapping[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class Capabilities:
    """The facts compiled kernels and the planner rely on: ISA, alignment, memory, parallelism."""

    kind: DeviceKind
    isa: str  # "x86_64", "aarch64", "opencl"
    features: frozenset[str]  # HAI feature names (runtime/cpu_features.py), e.g. "avx2", "neon"
    isa_level: str | None  # "x86-64-v3" for x86 CPUs, None where no level applies
    alignment: int  # bytes every buffer and launch argument is aligned to
    host_visible: bool  # map() is zero-copy: device memory is host memory
    compute_units: int  # physical cores, or OpenCL compute units
    max_threads: int
    memory_bytes: int
    cache_bytes: Mapping[str, int] = field(default_factory=dict)  # "L1d", "L2", "L3"
    extensions: tuple[str, ...] = ()


@dataclass(frozen=True)
class MemoryInfo:
    """Memory as the device sees it now; `allocated_bytes` counts this device's live buffers."""

    total_bytes: int
    available_bytes: int
    allocated_bytes: int
    peak_allocated_bytes: int
    live_buffers: int


@dataclass(eq=False)
class Buffer:
    """A block of device memory. `handle` is the driver's own object (a numpy byte array for the CPU)."""

    device: str
    nbytes: int
    alignment: int
    handle: Any
    label: str = ""
    freed: bool = False

    def describe(self) -> str:
        name = f" {self.label!r}" if self.label else ""
        return f"buffer{name} ({self.nbytes} bytes on {self.device})"


@dataclass(frozen=True)
class BufferView:
    """A typed window into a buffer (offset in bytes), usable as a launch argument without a copy."""

    buffer: Buffer
    offset: int
    shape: tuple[int, ...]
    dtype: np.dtype


@dataclass(eq=False)
class Executable:
    """A loaded kernel library; `handle` is the driver's module object, `entries` caches looked-up kernels."""

    device: str
    path: str
    handle: Any
    entries: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Unbound:
    """A recorded launch argument without memory yet: a host array of `shape` and `dtype` the caller
    gives before each run (`Launch.bind`)."""

    shape: tuple[int, ...]
    dtype: np.dtype


KernelArg = np.ndarray | BufferView | Unbound | int | float


class Launch(Protocol):
    """A kernel launch recorded once (`Device.record`), run again and again on the same arguments."""

    run: Callable[[], None]
    """Launch the kernel (may return before it finishes: `Device.synchronize`). An attribute, not a
    method, so that a driver can hand out its bound call itself: it runs on every inference."""

    def bind(self, position: int, array: np.ndarray) -> None:
        """Give argument `position` (recorded `Unbound`) the host `array` for the following runs.

        `array` has the recorded shape and dtype, is C-contiguous, writable and aligned to the
        device's `capabilities().alignment`, and stays alive while the launch runs: the caller
        checks this once (it is on the per-inference path, so drivers need not check it again).
        """
        ...


@dataclass(frozen=True)
class ThermalReading:
    """One temperature sensor; `critical_celsius` is its critical trip point when the device reports one."""

    sensor: str
    kind: str
    celsius: float
    critical_celsius: float | None = None


class Device(ABC):
    """An opened device: calls 2-12 of the table above. Subclasses implement every abstract method."""

    def __init__(self, info: DeviceInfo) -> None:
        self.info = info

    @abstractmethod
    def capabilities(self) -> Capabilities:
        """Call 2. Static facts about the device; cheap, the same answer every time."""

    @abstractmethod
    def query_memory(self) -> MemoryInfo:
        """Call 3. Total and available memory now, and what this device object has allocated."""

    @abstractmethod
    def allocate(self, nbytes: int, alignment: int | None = None, label: str = "") -> Buffer:
        """Call 4. `nbytes` of device memory aligned to at least `capabilities().alignment`."""

    @abstractmethod
    def free(self, buffer: Buffer) -> None:
        """Call 5. Release a buffer; freeing twice or another device's buffer is an error."""

    @abstractmethod
    def copy_in(self, buffer: Buffer, host: np.ndarray, offset: int = 0) -> None:
        """Call 6. Copy a host array's bytes (C order) into the buffer at byte `offset`."""

    @abstractmethod
    def copy_out(
        self, buffer: Buffer, offset: int, shape: Sequence[int], dtype: np.dtype | str
    ) -> np.ndarray:
        """Call 7. A new host array of `shape` and `dtype` copied from the buffer at byte `offset`."""

    @abstractmethod
    def map(
        self,
        buffer: Buffer,
        offset: int = 0,
        shape: Sequence[int] | None = None,
        dtype: np.dtype | str = "u1",
    ) -> np.ndarray:
        """Call 8. A host array aliasing the buffer (zero-copy when `host_visible`); valid until `unmap`."""

    @abstractmethod
    def unmap(self, view: np.ndarray) -> None:
        """Call 9. End a mapping; writes through it reach the device by the next launch."""

    @abstractmethod
    def load_executable(
        self, source: str | os.PathLike[str] | OpenFile, runtime: OpenFile | None = None
    ) -> Executable:
        """Call 10. Load a kernel library built by this device's target module, from a path or, an
        artifact's, through the descriptor it was verified through (`OpenFile`; never reopened by
        path). `runtime`: the verified runtime library the artifact carries for it (the cpu's
        `libtvm_runtime.so`), loaded first; None for a device that needs none."""

    @abstractmethod
    def record(self, executable: Executable, entry: str, args: Sequence[KernelArg]) -> Launch:
        """Call 11. Kernel `entry` on `args` (arrays, buffer views, scalars, `Unbound` inputs), its
        arguments checked and converted now; `run()` of the result launches it."""

    def launch(self, executable: Executable, entry: str, args: Sequence[KernelArg]) -> None:
        """Call 11, once: run kernel `entry` on `args` (no `Unbound` among them); may return early."""
        self.record(executable, entry, args).run()

    @abstractmethod
    def synchronize(self) -> None:
        """Call 12. Wait until every launch and copy issued so far has finished."""

    def close(self) -> None:  # noqa: B027  (optional: devices holding nothing need not override it)
        """Release the device. Buffers still live are released with it."""

    def __enter__(self) -> Device:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class Driver(ABC):
    """A device family (CPU, OpenCL, ...): call 1 (`probe`) and the `open` factory."""

    name: ClassVar[str]

    @abstractmethod
    def probe(self) -> list[DeviceInfo]:
        """Call 1. The devices of this family on this machine; an empty list when there are none."""

    @abstractmethod
    def open(self, index: int = 0, **options: Any) -> Device:
        """Open device `index` of `probe()`; options are driver-specific (e.g. `threads`)."""


@runtime_checkable
class PowerControl(Protocol):
    """Extension: the device's power policy (CPU: the cpufreq governor)."""

    def power_policies(self) -> tuple[str, ...]: ...

    def power_policy(self) -> str | None: ...

    def set_power_policy(self, name: str) -> None: ...


@runtime_checkable
class ThermalSensors(Protocol):
    """Extension: current temperatures of the device's sensors."""

    def thermal_readings(self) -> list[ThermalReading]: ...


@runtime_checkable
class ProfilingCounters(Protocol):
    """Extension: counters of launches, copies and allocations; launch timing only while enabled."""

    def set_profiling(self, enabled: bool) -> None: ...

    def counters(self) -> dict[str, float]: ...

    def reset_counters(self) -> None: ...


@runtime_checkable
class HostMirror(Protocol):
    """Extension of a device whose memory is not the host's (OpenCL): it keeps its own copy of the
    host arena and weights. `mirror(host, label, upload)` makes a device buffer for the host array
    (uploaded once when `upload`: the weights; a device that can take the host's memory as its own,
    zero-copy, uploads nothing); a launch argument that is a view of a mirrored array then stands for
    the same bytes of that buffer; `start_read_back(views)` issues the reads that bring the mirrored
    host `views` (the model's outputs) up to date with the device's bytes, ordered after every launch
    issued so far, and returns the call that waits for them and completes the views (the device's
    `synchronize` need not come first); `read_back(views)` is both at once; `upload(views)` brings the
    device's copy of the mirrored host `views` up to date with the host's bytes before any later
    launch reads them (a transfer step to the device; the host leaves those bytes alone until it
    synchronizes the device). Where the device takes the host's memory as its own, these move
    nothing."""

    def mirror(self, host: np.ndarray, label: str, upload: bool) -> None: ...

    def unmirror(self, host: np.ndarray) -> None:
        """Release the buffer of a mirrored host array (a `run_many` arena), once nothing runs on it."""
        ...

    def start_read_back(self, views: Sequence[np.ndarray]) -> Callable[[], None]: ...

    def read_back(self, views: Sequence[np.ndarray]) -> None: ...

    def upload(self, views: Sequence[np.ndarray]) -> None: ...


@runtime_checkable
class Fences(Protocol):
    """Extension of a device whose launches return before they finish (OpenCL's queue): `fence()` marks
    everything issued on it so far and returns the wait for that mark, which any thread may call later
    (an OpenCL marker event), so one thread can go on issuing work while another waits
    (runtime/pipeline.py). A device without it is waited for by `synchronize`."""

    def fence(self) -> Callable[[], None]: ...


EXTENSIONS: dict[str, type] = {
    "power": PowerControl,
    "thermal": ThermalSensors,
    "profiling": ProfilingCounters,
}


def extensions_of(device: object) -> tuple[str, ...]:
    """Names of the optional extensions `device` implements, in the fixed order power, thermal, profiling."""
    return tuple(name for name, proto in EXTENSIONS.items() if isinstance(device, proto))


def driver_sources() -> dict[str, str]:
    """Driver name -> `module:attribute` it loads from: built-ins, then `hai.devices` entry points."""
    return plugin_sources(ENTRY_POINT_GROUP, BUILTIN_DRIVERS)


def available_drivers() -> list[str]:
    """Names of every driver that can be asked for, sorted."""
    return sorted(driver_sources())


def get_driver(name: str) -> Driver:
    """A fresh driver object for `name`, loading its module on demand (built-ins need no plugin scan)."""
    sources = BUILTIN_DRIVERS if name in BUILTIN_DRIVERS else driver_sources()
    driver_class = load_plugin("device driver", name, sources, Driver, DeviceNotFoundError, HaiRuntimeError)
    return driver_class()


def probed_device(driver: Driver, index: int) -> DeviceInfo:
    """`driver.probe()[index]`, or a `DeviceNotFoundError` that says how many devices there are."""
    found = driver.probe()
    if not 0 <= index < len(found):
        raise DeviceNotFoundError(
            f"driver {driver.name!r} found {len(found)} device(s); there is no device {index}"
        )
    return found[index]


def open_device(name: str = "cpu", index: int = 0, **options: Any) -> Device:
    """Open device `index` of driver `name`; `options` go to `Driver.open`."""
    return get_driver(name).open(index, **options)
