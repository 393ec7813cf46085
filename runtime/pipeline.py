"""Pipelined runs over a stream of inputs (`Model.run_many`): stage k of input i+1 beside k+1 of input i.

Rule: the plan's calls split into stages, the maximal runs of consecutive calls on one device (a
single-device plan, an entry or a paged plan is one stage: the pager's schedule is sequential).
Each input in flight holds an arena of its own with the plan recorded over it, mirrored on every
device with memory of its own (`record_arena`); `in_flight` of them (default: one per stage)
are allocated when the stream starts, after checking that the host and each device have room for
them, and released when it ends (exhausted, closed early or failed). They are counted in the
planned peak (`PipelinePlan`): each adds the arena, the inputs twice and the outputs once (the
aligned copies `run` makes and the arrays it returns), and on a device with memory of its own its
share of the device plan but the weights (runtime/device_memory.py `in_flight_bytes`), which is
also host memory on a host-unified device (its input and scratch buffers) or pinned staging of the
inputs and outputs on a discrete one: the larger of the two is counted.

The stages run on the process's device workers (runtime/device_workers.py): one thread per
timeline (the host's cores, each other device), shared by every stream of the process, that runs the
ready stages of every input in flight, the oldest input first (then the earliest stage), so the host's
kernels run on one thread with one TVM pool, serially, as the partition's cost model counts them.
Workers are shared process-wide rather than per stream because streams of several models in one
process (the OCR pipeline's det beside cls and rec) would otherwise each bring a host thread and its
pool to the same cores; a stream holds them while it runs. A stage runs its calls on its input's
arena (an OpenCL stage enqueues them and returns, so the worker goes on while the queue works; a CPU
stage's kernels run on the worker) and leaves a fence of its device (the device's marker event,
`Fences`; a device without one is synchronized in the stage); the worker's waiter waits it (the
host's worker waits it itself: PoCL computes on its cores), then hands the input to the next
stage's worker. The last stage also enqueues the reads of the outputs from each device that
mirrors the arena (`HostMirror.start_read_back`), right after its launches.
The calling thread checks and binds input i+1 (aligned copies) while the stages run, and waits for
the oldest input's last stage and reads, copies its outputs out, which frees the arena for the input
`in_flight` later, and yields them once the next input has started. Outputs come out in input order
and equal serial `run`s: an input's calls run in plan order on its own arena, and each stage starts
after the one before has finished on its device. A bad feed is an error naming its index, raised
after the outputs before it; a failed kernel names its input too (its later stages are skipped). A
stream that ends early (closed, failed) skips the stages not yet run, waits for those running, and
releases its arenas and workers. A paged plan's stage runs under the model's lock (the pager is
shared with `run`). Imports numpy, the standard library and `runtime`.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import mmap
import threading
from collections import deque
from collections.abc import Generator, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from runtime.arena_views import output_views
from runtime.available_memory import check_available_memory
from runtime.device_memory import check_device_memory, in_flight_bytes
from runtime.device_mirrors import mirror_memory, mirrors
from runtime.device_workers import Wait, Worker, acquire, release, timeline_of
from runtime.errors import HaiRuntimeError, InvalidArgumentError
from runtime.hai import Buffer, Fences
from runtime.loops import LoopRunner
from runtime.plan_devices import HOST_DEVICE

if TYPE_CHECKING:
    from runtime.arena_views import Outputs
    from runtime.call_recording import Call
    from runtime.device_mirrors import StartReadBack
    from runtime.model import Model


@dataclasses.dataclass(frozen=True)
class Stage:
    """Consecutive calls `calls` of the plan on one device."""

    device: str
    calls: range


@dataclasses.dataclass(frozen=True)
class PipelinePlan:
    """A model's stages, how many inputs run in flight, and what each adds to the host's planned peak
    and to each device's memory (module doc)."""

    stages: tuple[Stage, ...]
    in_flight: int
    host_bytes_each: int
    device_bytes_each: Mapping[str, int]
    base_peak_bytes: int | None

    @property
    def planned_peak_bytes(self) -> int | None:
        """The model's planned peak with the arenas in flight (None when the artifact records none)."""
        if self.base_peak_bytes is None:
            return None
        return self.base_peak_bytes + self.in_flight * self.host_bytes_each


def stages_of(model: Model) -> tuple[Stage, ...]:
    """The plan's calls in maximal runs on one device; one stage for a paged plan or one with Loops
    (module doc)."""
    devices = [step.device for step in model._steps]
    if model.pager is not None or model.manifest.plan.loops or not devices:
        return (Stage(devices[0] if devices else HOST_DEVICE, range(len(devices))),)
    stages, start = [], 0
    for index in range(1, len(devices) + 1):
        if index == len(devices) or devices[index] != devices[start]:
            stages.append(Stage(devices[start], range(start, index)))
            start = index
    return tuple(stages)


def pipeline_plan(model: Model, in_flight: int | None = None) -> PipelinePlan:
    """The stages of `model` and the memory of `in_flight` inputs in flight (default: one per stage)."""
    stages = stages_of(model)
    count = len(stages) if in_flight is None else in_flight
    if type(count) is not int or count < 1:
        raise InvalidArgumentError(f"run_many: in_flight must be an int >= 1 or None, got {in_flight!r}")
    manifest = model.manifest
    inputs = sum(b.nbytes for b in manifest.inputs)
    outputs = sum(b.nbytes for b in manifest.outputs)
    arena = manifest.plan.arena_size
    weights = len(model.weights)
    device = {p.device: in_flight_bytes(p, weights) for p in manifest.plan.device_memory}
    host = arena + 2 * inputs + outputs + sum(max(n - arena, inputs + outputs) for n in device.values())
    return PipelinePlan(stages, count, host, device, manifest.plan.planned_peak_bytes)


class RecordedArena(NamedTuple):
    """An arena of its own with the plan recorded over it (`record_arena`): an input in flight.
    `read_backs` start bringing its outputs back from the devices that mirror it
    (`HostMirror.start_read_back`)."""

    buffer: Buffer
    arena: np.ndarray
    outputs: Outputs
    calls: list[Call]
    read_backs: tuple[StartReadBack, ...]
    loops: LoopRunner | None  # a plan with Loops: its step order over this arena (one stage)


def record_arena(model: Model) -> RecordedArena:
    """One more arena of `model`, page-aligned where a device may take it as its own memory, mirrored
    on the devices with memory of their own, with the plan recorded over it."""
    alignment = mmap.PAGESIZE if mirrors(model.devices) else None
    buffer = model.device.allocate(model.manifest.plan.arena_size, alignment, label="arena in flight")
    arena = model.device.map(buffer)
    outputs = output_views(model.manifest, arena)
    read_backs = mirror_memory(model.devices, model.manifest, arena, outputs)
    _, calls, _ = model.recorder.prepare_calls(arena)
    loops = model.recorder.loop_runner(arena)
    return RecordedArena(buffer, arena, outputs, calls, read_backs, loops)


def release_arena(model: Model, recorded: RecordedArena) -> None:
    """Free an arena of `record_arena` and its mirrors (nothing may run on it any more)."""
    for device in mirrors(model.devices):
        device.unmirror(recorded.arena)
    model.device.free(recorded.buffer)


def run_many(
    model: Model, feeds: Iterable[Mapping[str, np.ndarray]], in_flight: int | None = None
) -> Generator[dict[str, np.ndarray], None, None]:
    """`model.run` of each feed, pipelined: a generator of the outputs in input order (module doc)."""
    plan = pipeline_plan(model, in_flight)
    return Pipeline(model, plan).outputs(iter(feeds))


INPUT_ORDER = itertools.count()
"""Every input given to a stream of this process, numbered: the device workers run the oldest first."""


@dataclasses.dataclass
class Job:
    """One input in flight: its index in its stream, its place among the process's inputs, its arena and
    bound inputs, the waits of its outputs' reads from devices that mirror its arena, the error that
    stopped it, and whether its stages are over."""

    index: int
    order: int
    arena: RecordedArena
    bound: Mapping[str, np.ndarray]
    read_backs: list[Wait] = dataclasses.field(default_factory=list)
    error: BaseException | None = None
    over: threading.Event = dataclasses.field(default_factory=threading.Event)


class Pipeline:
    """The arenas and device workers of one `run_many` stream (module doc)."""

    def __init__(self, model: Model, plan: PipelinePlan) -> None:
        self.model, self.plan = model, plan
        self.devices = [model.devices[stage.device] for stage in plan.stages]
        # per stage, the fence of its device (`Fences`), else None: synchronized (asked once: a slow check)
        self.fences = [device.fence if isinstance(device, Fences) else None for device in self.devices]
        self.workers: list[Worker] = []  # per stage, while the stream runs
        self.lock: AbstractContextManager[object] = model._lock if model.pager is not None else nullcontext()
        self.condition = threading.Condition()
        self.unfinished = 0  # inputs started whose stages are not over
        self.closing = False  # the stream ended early: stages not yet run are skipped

    def outputs(
        self, feeds: Iterator[Mapping[str, np.ndarray]]
    ) -> Generator[dict[str, np.ndarray], None, None]:
        """The generator `run_many` returns: arenas exist, and workers are held, only while it runs."""
        self.check_memory()
        arenas: list[RecordedArena] = []
        held: dict[str, Worker] = {}
        try:
            for timeline in dict.fromkeys(timeline_of(device) for device in self.devices):
                held[timeline] = acquire(timeline)
            self.workers = [held[timeline_of(device)] for device in self.devices]
            arenas += [record_arena(self.model) for _ in range(self.plan.in_flight)]
            yield from self.stream(feeds, list(arenas))
        finally:
            with self.condition:
                self.closing = True
                while self.unfinished:
                    self.condition.wait()
            for worker in held.values():
                release(worker)
            for device in self.model.devices.values():
                device.synchronize()  # nothing may still run on the arenas
            for arena in arenas:
                release_arena(self.model, arena)

    def stream(
        self, feeds: Iterator[Mapping[str, np.ndarray]], free: list[RecordedArena]
    ) -> Generator[dict[str, np.ndarray], None, None]:
        """Bind each feed and start it on a free arena; when none is free, the oldest input's outputs free
        one, and are yielded once the new input has started."""
        pending: deque[Job] = deque()
        failure: HaiRuntimeError | None = None
        for index, feed in enumerate(feeds):
            try:
                bound = self.model._bind_inputs(feed)
            except HaiRuntimeError as exc:
                failure = type(exc)(f"run_many: input {index}: {exc}")
                failure.__cause__ = exc
                break
            ready = self.finish(pending.popleft(), free) if not free else None
            job = Job(index, next(INPUT_ORDER), free.pop(), bound)
            pending.append(job)
            with self.condition:
                self.unfinished += 1
            self.submit(job, 0)
            if ready is not None:  # yielded after the next input started: the caller's work overlaps it
                yield ready
        while pending:
            yield self.finish(pending.popleft(), free)
        if failure is not None:
            raise failure

    def finish(self, job: Job, free: list[RecordedArena]) -> dict[str, np.ndarray]:
        """The outputs of `job` (the oldest in flight) once its last stage is over; its arena is free."""
        job.over.wait()
        if job.error is not None:
            error = job.error
            message = f"run_many: input {job.index}: {error}"
            raised = type(error)(message) if isinstance(error, HaiRuntimeError) else RuntimeError(message)
            raise raised from error
        for complete in job.read_backs:
            complete()
        outputs = {binding.name: view.copy() for binding, view in job.arena.outputs}
        free.append(job.arena)
        return outputs

    def submit(self, job: Job, k: int) -> None:
        """Stage `k` of `job` to its device's worker, keyed oldest input first, then earliest stage."""
        self.workers[k].submit((job.order, k), functools.partial(self.run_stage, job, k),
                               functools.partial(self.after_stage, job, k))  # fmt: skip

    def run_stage(self, job: Job, k: int) -> Wait | None:
        """Issue stage `k`'s calls of `job` (on a worker); the fence of its device, None when done."""
        if job.error is not None or self.closing:
            return None
        stage, device = self.plan.stages[k], self.devices[k]
        try:
            with self.lock:
                self.model._run_calls(job.arena.calls, job.bound, stage.calls, k == 0, job.arena.loops)
            if k == len(self.plan.stages) - 1:  # the reads go on the queues now, before later launches
                job.read_backs = [start() for start in job.arena.read_backs]
            fence = self.fences[k]
            if fence is not None:
                return fence()
            device.synchronize()
        except BaseException as exc:  # noqa: BLE001  (handed to the caller, naming the input)
            job.error = exc
        return None

    def after_stage(self, job: Job, k: int, error: BaseException | None) -> None:
        """Stage `k` of `job` is over on its device (`error`: its fence failed): the next stage, or done."""
        if error is not None and job.error is None:
            job.error = error
        if job.error is None and not self.closing and k + 1 < len(self.plan.stages):
            self.submit(job, k + 1)
            return
        job.over.set()
        with self.condition:
            self.unfinished -= 1
            self.condition.notify_all()

    def check_memory(self) -> None:
        """Refuse the stream before allocating its arenas when the host or a device lacks room for them."""
        model, plan = self.model, self.plan
        check_available_memory(
            plan.in_flight * plan.host_bytes_each, model.directory,
            what=f"keeps {plan.in_flight} input(s) in flight in run_many, whose arenas and copies take",
            remedy="free memory, or keep fewer inputs in flight (run_many in_flight=)",
        )  # fmt: skip
        for name in plan.device_bytes_each:
            if name in model.devices:
                check_device_memory(model.manifest, name, model.devices[name], model.directory,
                                    plan.in_flight, len(model.weights))  # fmt: skip
