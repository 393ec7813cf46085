"""Loading an artifact and running its static plan: `load(path, threads=N)` -> `Model`, `model.run(feeds)`.

`load` does all the work once: it checks its arguments (runtime/load_checks.py), reads and checks
the artifact (runtime/artifact_files.py: signature against trusted keys, format version, the plan's
invariants, size and sha256 of every file, no links), refuses a machine with less memory available
than the plan's peak (runtime/available_memory.py), refuses a CPU that lacks the architecture or an
ISA feature the kernels need (runtime/load_checks.py: an error naming them, never SIGILL), maps
`weights.bin` copy-on-write (kernels take writable memory), allocates one 64-byte-aligned arena
through the HAI CPU device, opens the device of every kernel library through its HAI driver and
loads the library on it (runtime/plan_devices.py: after the TVM runtime, refused when compiled for
another plan than the manifest's), mirrors the arena and the weights on every device with memory of
its own (runtime/device_mirrors.py), and records every call once on its device
(runtime/call_recording.py, `Device.record`: kernel looked up, arguments converted). `run` then
binds the inputs (runtime/input_binding.py: the caller's arrays themselves when C-contiguous,
writable and 64-byte aligned, else one aligned copy; inputs live outside the arena) into the
recorded launches (`Launch.bind`) and runs them (runtime/call_running.py): one launch per step (or
the one `entry(arena, weights, inputs...)` launch when the plan names an entry), skipping a guarded
step (a branch of an If decided at run time) whose condition, read from the arena or the input,
does not hold, repeating a loop span's steps per iteration (runtime/loops.py), synchronizes the
devices and copies the outputs out. The cpu driver's recorded launch is the kernel's bound call
itself, so going through HAI costs an inference nothing.

A paged plan (manifest `plan.paging`) never maps `weights.bin`: a `Pager`
(runtime/pager.py) reads its pages into a pool of frames allocated once, by
the static schedule, and before each step (or each segment: one call of
`segment(arena, pool, inputs...)` for several steps) `run` has it evict, issue
loads and wait for the step's pages. Every weight argument is bound at load
time to the place its page has in the pool while that step runs (the schedule
is static, so the place is too). `page_counters()` reports the pager's counts.

Threads: one `Model` may be shared by several threads, but runs never overlap:
the arena holds every intermediate tensor, so `run` takes a lock and concurrent
callers wait their turn. For parallel inference, load the model once per thread
(the weight pages stay shared by the operating system until written), or stream the
inputs through `run_many`, which keeps several in flight, each on an arena of its own, and runs
each stage of the plan (a run of steps on one device) on that device's worker thread, one per
device shared by the process's streams (runtime/pipeline.py, runtime/device_workers.py). Kernels
themselves run on TVM's thread pool, `threads` wide (TVM_NUM_THREADS, read when a
calling thread first launches a parallel kernel, so the first value in a process wins; each thread
that launches CPU kernels has a pool of its own).

`close()` (or leaving a `with runtime.load(...) as model:` block, or the model being collected, or the
interpreter exiting) stops the pager and closes the devices, once (`release`); a closed model refuses
`run`.

Imports numpy and the standard library only; the cpu driver runs kernels through libtvm_ffi's C ABI
(runtime/ffi_abi.py).
"""

from __future__ import annotations

import mmap
import threading
import weakref
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from runtime.amx import check_tile_state
from runtime.arena_views import output_views, typed_view
from runtime.artifact import WEIGHTS_FILE, TensorBinding
from runtime.artifact_files import ArtifactFiles, open_artifact
from runtime.available_memory import check_available_memory
from runtime.call_recording import Call, CallRecorder
from runtime.call_running import run_calls
from runtime.device_memory import check_device_memory
from runtime.device_mirrors import mirror_memory, mirrors
from runtime.errors import InvalidArgumentError, ModelClosedError
from runtime.hai import Device
from runtime.input_binding import InputBinder
from runtime.kernel_library import aligned_empty
from runtime.load_checks import check_cpu, check_load_arguments
from runtime.loops import LoopRunner
from runtime.manifest_checks import allocated_bytes
from runtime.page_reader import WeightsFileReader
from runtime.pager import PagePlan, Pager
from runtime.pipeline import run_many
from runtime.plan_devices import (
    HOST_DEVICE,
    close_devices,
    device_selectors,
    load_executables,
    open_devices,
)
from runtime.plan_transfers import TransferCounts
from runtime.signing import TrustedKey

__all__ = ["Model", "check_cpu", "load", "typed_view"]
"""`check_cpu` and `typed_view` stay importable from here (runtime/load_checks.py, runtime/arena_views.py)."""


def load(
    path: str | Path,
    threads: int | None = None,
    verify: bool = True,
    system_root: str | Path = "/",
    trusted_keys: Sequence[TrustedKey] | None = None,
    device: str | None = None,
    device_options: Mapping[str, Any] | None = None,
) -> Model:
    """Load the artifact directory `path`; `verify=False` skips the sha256 of every file (not the sizes).

    With `trusted_keys` (public key files or their bytes; needs the `signing` extra), an artifact whose
    `manifest.sig` verifies with none of them is refused before anything else is read (runtime/signing.py).
    Refuses, before allocating anything, a machine with less memory available than the plan's
    peak (runtime/available_memory.py, read under `system_root`: tests give a fake /proc and /sys).
    `device` picks which device of a driver runs the artifact's steps: `"opencl:1"`, or `"opencl:gpu"`
    (its first GPU; default: the first of the kind the kernels were compiled for, else device 0);
    `device_options` go to its driver's `open` (OpenCL: `{"zero_copy": False, "profiling": True}`).
    """
    check_load_arguments(path, threads, verify)
    if device_options is not None and not isinstance(device_options, Mapping):
        given = type(device_options).__name__
        raise InvalidArgumentError(f"load: device_options must be a dict, got {given}")
    directory = Path(path)
    with open_artifact(directory, verify=verify, trusted_keys=trusted_keys) as files:
        manifest = files.manifest
        peak = manifest.plan.planned_peak_bytes
        check_available_memory(allocated_bytes(manifest) if peak is None else peak, directory, system_root)
        selectors = device_selectors(device, manifest, directory)
        devices = open_devices(manifest, directory, threads, selectors, device_options or {})
        try:
            for name, opened in devices.items():
                check_device_memory(manifest, name, opened, directory)
            if HOST_DEVICE in manifest.kernel_libraries:  # kernels the host CPU runs
                check_cpu(manifest, devices[HOST_DEVICE].capabilities(), directory)
            check_tile_state(manifest.target.features, directory)
            return Model(files, devices)
        except BaseException:  # a refused artifact leaves no device open
            close_devices(devices)
            raise


def map_weights(fd: int, size: int) -> tuple[np.ndarray, mmap.mmap | None]:
    """`weights.bin` (open on `fd`) as a writable uint8 array backed by a copy-on-write mapping
    (page-aligned; the mapping outlives the descriptor)."""
    if size == 0:
        return aligned_empty((0,), "u1"), None
    mapping = mmap.mmap(fd, size, access=mmap.ACCESS_COPY)
    return np.frombuffer(mapping, np.uint8, count=size), mapping


def release(
    pager: Pager | None, calls: list[Call], executables: dict[str, Any], devices: Mapping[str, Device]
) -> None:
    """What closing a model frees, in order: the pager's thread and file, the recorded launches and the
    loaded libraries (the model's references to kernels and programs), then the devices
    (`close_devices`: each device releases what it still holds). Never refers to the model, so that
    `weakref.finalize` may run it when the model is collected or at interpreter exit."""
    if pager is not None:
        pager.close()
    calls.clear()
    executables.clear()
    close_devices(devices)


class Model:
    """A loaded artifact, ready to run; build it with `load`. `run` is serialised by a lock (module doc)."""

    def __init__(self, files: ArtifactFiles, devices: Mapping[str, Device]) -> None:
        """Build the model from a checked artifact (`open_artifact`) and its devices by name (the host
        `cpu` and one per kernel library: `plan_devices.open_devices`), reading its files through the
        descriptors they were checked through; `files` may be closed once this returns."""
        self.directory = files.directory
        self.manifest = manifest = files.manifest
        self.devices = dict(devices)
        self.device = device = devices[HOST_DEVICE]  # the host: the arena and the weights live here
        # page-aligned when another device may take the arena as its own memory (zero-copy)
        alignment = mmap.PAGESIZE if mirrors(self.devices) else None
        self._arena_buffer = device.allocate(manifest.plan.arena_size, alignment, label="arena")
        self.arena: np.ndarray = device.map(self._arena_buffer)
        paging = manifest.plan.paging
        weights = files.open_file(WEIGHTS_FILE) if WEIGHTS_FILE in manifest.files else None
        self.pager = None
        if paging is not None:
            assert weights is not None  # a paged plan has pages in weights.bin (manifest_checks)
            self.pager = Pager(PagePlan.of(paging), WeightsFileReader(weights.path, weights.fd))
            self.weights, self._weights_mapping = self.pager.pool, None
        elif weights is not None:
            self.weights, self._weights_mapping = map_weights(weights.fd, manifest.weights_size)
        else:
            self.weights, self._weights_mapping = aligned_empty((0,), "u1"), None
        self._outputs = output_views(manifest, self.arena)
        self._bind_inputs = InputBinder(manifest, devices).bind
        self._read_backs = mirror_memory(self.devices, manifest, self.arena, self._outputs)
        for mirror in mirrors(self.devices):  # uploaded once, unless the device takes them as its own memory
            mirror.mirror(self.weights, "weights", upload=True)
        self.executables = load_executables(files, self.devices)  # by file name
        self._transfers = TransferCounts()
        self.recorder = CallRecorder(manifest, self.devices, self.executables, self.weights, self.pager,
                                     self._transfers)  # fmt: skip
        self._steps, self._calls, self._finish = self.recorder.prepare_calls(self.arena)
        self._loops = self.recorder.loop_runner(self.arena)
        self._lock = threading.Lock()
        self._closer = weakref.finalize(
            self, release, self.pager, self._calls, self.executables, self.devices
        )

    # -- public ----------------------------------------------------------------------------------------

    @property
    def inputs(self) -> tuple[TensorBinding, ...]:
        return self.manifest.inputs

    @property
    def outputs(self) -> tuple[TensorBinding, ...]:
        return self.manifest.outputs

    def run(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the plan on `feeds` (input name -> array of exactly the input's shape and dtype).

        Returns a new dict from output name to a fresh array, in the model's output order.
        Thread-safe: concurrent calls wait for each other.
        """
        with self._lock:
            self._execute(self._bind_inputs(feeds))
            return {b.name: view.copy() for b, view in self._outputs}

    def run_many(
        self, feeds: Iterable[Mapping[str, np.ndarray]], in_flight: int | None = None
    ) -> Generator[dict[str, np.ndarray], None, None]:
        """`run` on each of `feeds`, pipelined (runtime/pipeline.py): a generator of the outputs in input
        order, equal to serial runs. Up to `in_flight` inputs (default: one per stage of the plan, a run
        of steps on one device) run at once, each on an arena of its own, allocated for the stream and
        released when it ends; runs beside `run` (its own arenas). `runtime.pipeline.pipeline_plan(model,
        in_flight)` gives the stages and the planned peak with those arenas."""
        self._check_open()
        return run_many(self, feeds, in_flight)

    def transfer_counters(self) -> dict[str, int]:
        """Transfer steps run so far between devices and the bytes they moved (runtime/plan_transfers.py;
        zeros on one device)."""
        return self._transfers.as_dict()

    def page_counters(self) -> dict[str, float]:
        """The pager's counters (runtime/pager.py: loads, hits, bytes read, stall time...); {} unpaged."""
        return self.pager.counters() if self.pager is not None else {}

    def close(self) -> None:
        """Stop the pager and close the devices (`release`); a second call does nothing."""
        with self._lock:
            self._closer()

    def __enter__(self) -> Model:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _check_open(self) -> None:
        if not self._closer.alive:
            raise ModelClosedError(
                f"model {self.manifest.name!r} from {self.directory} is closed; load it again"
            )

    def bind(self, feeds: Mapping[str, np.ndarray]) -> Callable[[], None]:
        """The compiled part of `run` on `feeds`: checks and binds them once; calling it runs the kernels.

        For measuring: `run` minus this is the per-inference Python overhead. Not thread-safe.
        """
        bound = self._bind_inputs(feeds)
        return lambda: self._execute(bound)

    def __repr__(self) -> str:
        return f"<hai Model {self.manifest.name!r} from {self.directory}: {len(self._steps)} steps>"

    # -- per inference ---------------------------------------------------------------------------------

    def _execute(self, bound: Mapping[str, np.ndarray]) -> None:
        self._check_open()
        self._run_calls(self._calls, bound, range(len(self._calls)), first_waits=True, loops=self._loops)
        for complete in [start() for start in self._read_backs]:  # after the launches: one wait for both
            complete()
        for finish in self._finish:
            finish()

    def _run_calls(
        self,
        calls: Sequence[Call],
        bound: Mapping[str, np.ndarray],
        indices: range,
        first_waits: bool,
        loops: LoopRunner | None = None,
    ) -> None:
        """`run_calls` (runtime/call_running.py) of `calls[indices]`, recorded over one of this model's
        arenas, with its pager and steps."""
        run_calls(calls, bound, indices, first_waits, loops, self.pager, self._steps, self.directory)
