"""Loading an artifact and running its static plan: `load(path, threads=N)` -> `Model`, `model.run(feeds)`.

`load` does all the work once: it reads and checks the artifact (runtime/artifact_files.py:
signature against trusted keys, format version, the plan's invariants, size and sha256 of every
file, no links), refuses a machine with less memory available than
the plan's peak (runtime/available_memory.py), refuses a CPU that lacks the architecture or an ISA
feature the kernels need (an error naming them, never SIGILL), maps `weights.bin`
copy-on-write (kernels take writable memory), allocates one 64-byte-aligned
arena through the HAI CPU device, opens the device of every kernel library through its HAI driver
and loads the library on it (runtime/plan_devices.py: after the TVM runtime, refused when compiled
for another plan than the manifest's), and records every call once on its device (`Device.record`:
kernel looked up, arguments converted). `run` then binds the inputs (the caller's arrays themselves
when C-contiguous, writable and 64-byte aligned, else one aligned copy; inputs live outside the
arena) into the recorded launches (`Launch.bind`), runs one launch per step (or the one
`entry(arena, weights, inputs...)` launch when the plan names an entry), skipping a guarded step
(a branch of an If decided at run time) whose condition, read from the arena or the input, does
not hold, repeating a loop span's steps per iteration (runtime/loops.py), synchronizes the
devices and copies the outputs out. The cpu driver's recorded launch
is the kernel's bound call itself, so going through HAI costs an inference nothing.

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

import functools
import mmap
import os
import threading
import weakref
from collections.abc import Callable, Generator, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from runtime.amx import check_tile_state
from runtime.artifact import (
    ALIGNMENT,
    WEIGHTS_FILE,
    Guard,
    Manifest,
    Slot,
    Step,
    TensorBinding,
    numpy_dtype,
)
from runtime.artifact_files import ArtifactFiles, open_artifact
from runtime.available_memory import check_available_memory
from runtime.cpu_features import missing_features
from runtime.device_memory import check_device_memory
from runtime.errors import (
    InvalidArgumentError,
    KernelError,
    ModelClosedError,
    ModelInputError,
    UnsupportedCpuError,
)
from runtime.hai import Capabilities, Device, HostMirror, KernelArg, Unbound
from runtime.kernel_library import aligned_empty
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
    plan_calls,
)
from runtime.plan_transfers import TransferCounts, transfer_call
from runtime.signing import TrustedKey

InputArgument = tuple[Callable[[int, np.ndarray], None], str, int, Slot | None]
"""A launch's `bind`, the input's name, the argument's position, and its slot (None: the whole input)."""
GuardReader = tuple[str, np.ndarray | None, Slot, bool]
"""A step's guard as `run` reads it: the input's name (or ""), the arena view of its bool (None for an
input), its slot, and the truth the step needs."""
Call = tuple[
    Callable[[], None], tuple[InputArgument, ...], range, Callable[[], None] | None, tuple[GuardReader, ...]
]
"""A recorded launch's `run`, its inputs to bind, the plan steps it runs (their pages come first),
the `synchronize` of the previous call's device when that is another one or the step is guarded
(None: no wait), and the step's guards (all must hold for it to run: a branch of an If)."""


Outputs = tuple[tuple[TensorBinding, np.ndarray], ...]
"""Each output's binding and its view of an arena."""
StartReadBack = Callable[[], Callable[[], None]]
"""A `HostMirror.start_read_back` of an arena's outputs: it issues the reads and returns their wait."""


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


def check_load_arguments(path: object, threads: object, verify: object) -> None:
    """`load`'s arguments have the types it documents (an `InvalidArgumentError` names the wrong one)."""
    if not isinstance(path, str | os.PathLike):
        raise InvalidArgumentError(f"load: path must be a str or a Path, got {type(path).__name__}")
    if threads is not None and (type(threads) is not int or threads < 1):
        raise InvalidArgumentError(f"load: threads must be an int >= 1 or None, got {threads!r}")
    if type(verify) is not bool:
        raise InvalidArgumentError(f"load: verify must be True or False, got {verify!r}")


def check_cpu(manifest: Manifest, caps: Capabilities, directory: Path) -> None:
    """Refuse an artifact whose kernels this CPU cannot execute, naming what is missing."""
    target = manifest.target
    if target.arch != caps.isa:
        raise UnsupportedCpuError(
            f"artifact {directory} was compiled for {target.arch} ({target.name}, cpu {target.cpu}); "
            f"this machine is {caps.isa}: compile it for this machine's target"
        )
    missing = missing_features(target.features, caps.features)
    if missing:
        raise UnsupportedCpuError(
            f"artifact {directory} needs CPU feature(s) {', '.join(missing)} (compiled for cpu "
            f"{target.cpu}), which this CPU lacks; running it would crash with an illegal instruction. "
            f"Recompile with --target {target.name} on this machine, or --cpu with a lower ISA level"
        )


def map_weights(fd: int, size: int) -> tuple[np.ndarray, mmap.mmap | None]:
    """`weights.bin` (open on `fd`) as a writable uint8 array backed by a copy-on-write mapping
    (page-aligned; the mapping outlives the descriptor)."""
    if size == 0:
        return aligned_empty((0,), "u1"), None
    mapping = mmap.mmap(fd, size, access=mmap.ACCESS_COPY)
    return np.frombuffer(mapping, np.uint8, count=size), mapping


def guard_holds(guard: GuardReader, bound: Mapping[str, np.ndarray]) -> bool:
    """Whether a guarded step's condition (`Model._guard_reader`) has the truth it needs."""
    name, view, slot, when = guard
    if view is None:
        view = bound[name].reshape(-1).view(np.uint8)[slot.offset : slot.offset + 1]
    return bool(view.reshape(-1)[0]) == when


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


def typed_view(base: np.ndarray, offset: int, shape: Sequence[int], dtype: str) -> np.ndarray:
    """A view of `base` (uint8) at byte `offset` with `shape` and `dtype`."""
    np_dtype = numpy_dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * np_dtype.itemsize
    return base[offset : offset + nbytes].view(np_dtype).reshape(tuple(shape))


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
        mirrored = any(isinstance(d, HostMirror) for n, d in devices.items() if n != HOST_DEVICE)
        # page-aligned when another device may take the arena as its own memory (zero-copy)
        alignment = mmap.PAGESIZE if mirrored else None
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
        self._placements = paging.placements() if paging is not None else []
        self._bindings = {b.name: b for b in manifest.inputs + manifest.outputs}
        self._outputs = self._output_views(self.arena)
        self._input_names = frozenset(b.name for b in manifest.inputs)
        self._input_dtypes = [(b, numpy_dtype(b.dtype)) for b in manifest.inputs]
        # a device that binds the caller's arrays themselves (zero-copy) may want them aligned further
        shared = [d.capabilities().alignment for n, d in devices.items() if n != HOST_DEVICE and
                  d.capabilities().host_visible]  # fmt: skip
        self._input_alignment = max([ALIGNMENT, *shared])
        self._read_backs = self._mirror_memory(self.arena, self._outputs)
        for mirror in self._mirrors():  # uploaded once, unless the device takes them as its own memory
            mirror.mirror(self.weights, "weights", upload=True)
        self.executables = load_executables(files, self.devices)  # by file name
        self._transfers = TransferCounts()
        self._steps, self._calls, self._finish = self._prepare_calls(self.arena)
        self._loops = self._loop_runner(self.arena)
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

    # -- load-time preparation -------------------------------------------------------------------------

    def _mirrors(self) -> list[HostMirror]:
        """The devices with memory of their own (`HostMirror`): they copy each arena and the weights."""
        return [d for n, d in self.devices.items() if n != HOST_DEVICE and isinstance(d, HostMirror)]

    def _mirror_memory(self, arena: np.ndarray, outputs: Outputs) -> tuple[StartReadBack, ...]:
        """Give each device with memory of its own `arena`; the calls that start bringing the `outputs`
        its own steps write back from them after each run (one per device: `HostMirror.start_read_back`;
        outputs other devices write come through transfer steps)."""
        reads = []
        for name, device in self.devices.items():
            if name == HOST_DEVICE or not isinstance(device, HostMirror):
                continue
            device.mirror(arena, "arena", upload=False)
            written = {s.name for step in self.manifest.plan.steps if step.device == name
                       for s in step.args if s.kind == "output" and s.writes}  # fmt: skip
            views = tuple(view for b, view in outputs if b.name in written)
            reads += [functools.partial(device.start_read_back, views)] if views else []
        return tuple(reads)

    def _output_views(self, arena: np.ndarray) -> Outputs:
        """Each output's binding and its view of `arena` (outputs live in the arena: validated)."""
        return tuple((b, typed_view(arena, b.offset or 0, b.shape, b.dtype)) for b in self.manifest.outputs)

    def _loop_runner(self, arena: np.ndarray) -> LoopRunner:
        """The step order of the plan's Loops over `arena` (runtime/loops.py)."""
        locate = functools.partial(self._slot_location, step=None, arena=arena)
        return LoopRunner(self.manifest.plan.loops, len(self._steps), locate, self.manifest.name)

    def _slot_location(self, slot: Slot, step: int | None, arena: np.ndarray) -> tuple[np.ndarray, int]:
        """(base array, absolute byte offset) of an arena, weight or output slot (outputs: their binding).

        A weight of a paged plan lies in the pool where the schedule puts its page for `step` (None:
        the whole pool, an entry's argument)."""
        if slot.kind == "weight" and self.pager is not None and step is not None:
            size = self.pager.plan.page_size
            return self.weights, self._placements[step][slot.offset // size] * size + slot.offset % size
        if slot.kind == "weight":
            return self.weights, slot.offset
        if slot.kind == "arena":
            return arena, slot.offset
        offset = self._bindings[slot.name].offset
        assert offset is not None
        return arena, offset + slot.offset

    def _slot_argument(self, slot: Slot, step: int | None, arena: np.ndarray) -> KernelArg:
        """The launch argument for `slot`: a typed view of the arena or the weights (of the pool where
        the schedule puts its page for `step`), or, for an input, `Unbound` (`run` binds the caller's
        array)."""
        if slot.kind == "input":
            return Unbound(slot.shape, numpy_dtype(slot.dtype))
        base, offset = self._slot_location(slot, step, arena)
        return typed_view(base, offset, slot.shape, slot.dtype)

    def _guard_reader(self, guard: Guard, arena: np.ndarray) -> GuardReader:
        """(input name or "", the arena view of its bool or None for an input, its slot, the truth it
        needs): what `_execute` reads to decide whether a guarded step runs."""
        if guard.slot.kind == "input":
            return guard.slot.name, None, guard.slot, guard.when
        base, offset = self._slot_location(guard.slot, None, arena)
        return "", typed_view(base, offset, guard.slot.shape, guard.slot.dtype), guard.slot, guard.when

    def _input_part(self, slot: Slot) -> Slot | None:
        """None when input `slot` is its whole input, else the slot (`run` binds a view of the input)."""
        return None if slot.offset == 0 and slot.nbytes == self._bindings[slot.name].nbytes else slot

    def _prepare_calls(
        self, arena: np.ndarray
    ) -> tuple[list[Step], list[Call], tuple[Callable[[], None], ...]]:
        """Record every call over `arena` once on its device (kernel looked up, arguments converted); one
        call when the plan has an entry, one per segment for a paged plan with segments. A call on another
        device than the one before waits for that one first; the third result is the `synchronize` of every
        device a run leaves busy."""
        calls: list[Call] = []
        steps: list[Step] = []
        busy: dict[str, None] = {}  # devices launched on since they were last synchronized, in order
        for step, runs, own_step in plan_calls(self.manifest, len(self.weights)):
            record = self._transfer_call if step.transfer_from else self._kernel_call
            run, fed = record(step, own_step, arena)
            previous = steps[-1].device if steps else step.device
            wait = None
            if previous != step.device:
                wait = self.devices[previous].synchronize
                busy.pop(previous)
            elif step.guards:  # its conditions are read from memory the step before may still write
                wait = self.devices[previous].synchronize
            busy[step.device] = None
            guards = tuple(self._guard_reader(g, arena) for g in step.guards)
            calls.append((run, fed, runs, wait, guards))
            steps.append(step)
        return steps, calls, tuple(self.devices[name].synchronize for name in busy)

    def _kernel_call(
        self, step: Step, own_step: int | None, arena: np.ndarray
    ) -> tuple[Callable[[], None], tuple[InputArgument, ...]]:
        """The recorded launch of kernel `step` over `arena` on its device, and the inputs `run` binds."""
        args = [self._slot_argument(slot, own_step, arena) for slot in step.args]
        launch = self.devices[step.device].record(self.executables[step.executable], step.kernel, args)
        fed = tuple(
            (launch.bind, s.name, i, self._input_part(s))
            for i, s in enumerate(step.args)
            if s.kind == "input"
        )
        return launch.run, fed

    def _transfer_call(
        self, step: Step, own_step: int | None, arena: np.ndarray
    ) -> tuple[Callable[[], None], tuple[()]]:
        """The call of transfer `step` over `arena`, which makes its value visible on another device (no
        inputs to bind: runtime/plan_transfers.py)."""
        view = self._slot_argument(step.args[0], own_step, arena)
        moved = view if isinstance(view, np.ndarray) else None  # an input: the launches take it
        return transfer_call(step, self.devices, moved, self._transfers), ()

    # -- per inference ---------------------------------------------------------------------------------

    def _bind_inputs(self, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Each input as kernels may read it: the caller's array when C-contiguous, writable and
        aligned (64 bytes, or a zero-copy device's base-address alignment), else one aligned copy
        (checked against the binding's shape and dtype)."""
        try:
            names = feeds.keys()
        except AttributeError:
            raise ModelInputError(self._not_a_mapping(feeds)) from None
        if names != self._input_names:
            raise ModelInputError(self._name_mismatch(feeds))
        bound = {}
        for binding, dtype in self._input_dtypes:
            value = feeds[binding.name]
            if not isinstance(value, np.ndarray) or value.shape != binding.shape or value.dtype != dtype:
                raise ModelInputError(self._value_mismatch(binding, value))
            flags = value.flags
            alignment = self._input_alignment
            if not (flags.c_contiguous and flags.writeable) or (value.size and value.ctypes.data % alignment):
                copy = aligned_empty(binding.shape, dtype, alignment)
                np.copyto(copy, value)
                value = copy
            bound[binding.name] = value
        return bound

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
        """Run `calls[indices]` on the `bound` inputs; `first_waits` False skips the wait before the first
        (runtime/pipeline.py waits on the fence of the stage before instead: another device's). With
        `loops` (over the arena the calls were recorded on), all the calls run in the order it gives."""
        index = indices.start
        pager = self.pager
        try:
            for index in indices if loops is None else loops.order(bound):  # a Loop's steps per iteration
                run, inputs, runs, wait, guards = calls[index]
                if wait is not None and (first_waits or index != indices.start):
                    wait()
                if pager is not None:
                    for planned in runs:
                        pager.before_step(planned)
                if guards and not all(guard_holds(guard, bound) for guard in guards):
                    continue  # a branch not taken (Step.guards)
                for bind, name, position, slot in inputs:
                    if slot is None:  # the whole input (`bound` keeps the array alive)
                        bind(position, bound[name])
                    else:  # aligned: slot offsets are multiples of 64 (manifest_checks)
                        array = bound[name].reshape(-1).view(np.uint8)
                        bind(position, typed_view(array, slot.offset, slot.shape, slot.dtype))
                run()
        except KernelError as exc:
            step = self._steps[index]
            raise KernelError(
                f"step {index} of {self.directory}: kernel {step.kernel!r} (from {', '.join(step.nodes)}) "
                f"failed: {exc}"
            ) from exc

    def _not_a_mapping(self, feeds: object) -> str:
        expected = ", ".join(f"{b.name!r}: array" for b in self.inputs)
        return f"model {self.manifest.name!r}: run takes a dict {{{expected}}}, got a {type(feeds).__name__}"

    def _name_mismatch(self, feeds: Mapping[str, Any]) -> str:
        given = {str(k) for k in feeds}
        missing = sorted(self._input_names - given)
        unexpected = sorted(given - self._input_names)
        parts = [f"missing input(s) {missing}"] if missing else []
        parts += [f"unexpected input(s) {unexpected}"] if unexpected else []
        expected = ", ".join(f"{b.name} {list(b.shape)} {b.dtype}" for b in self.inputs)
        return f"model {self.manifest.name!r}: {'; '.join(parts)}; it takes {expected}"

    def _value_mismatch(self, binding: TensorBinding, value: object) -> str:
        want = f"shape {list(binding.shape)} dtype {binding.dtype}"
        if not isinstance(value, np.ndarray):
            got = f"a {type(value).__name__}, not a numpy array"
        else:
            got = f"shape {list(value.shape)} dtype {value.dtype}"
            if value.shape == binding.shape:
                got += f"; convert it with .astype(np.{binding.dtype})"
        return f"model {self.manifest.name!r}: input {binding.name!r} must have {want}, got {got}"
