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

Each stage has a thread. It takes the inputs in order from the stage before, waits for the fence
that stage left on its device, runs its calls (a CPU stage's kernels run on its thread; an OpenCL
stage enqueues them and moves on, so the host works while the queue does), leaves a fence of its
own device (the device's marker event, `Fences`; a device without one is synchronized there) and
hands the input on; the last stage also enqueues the reads of the outputs from each device that
mirrors the arena (`HostMirror.start_read_back`), so that they run before the next input's
launches. The calling thread checks and binds input i+1 (aligned copies) while the stages run,
and after the last stage waits for its fence and the reads and copies the outputs out, which frees
the arena for the input `in_flight` later; it yields them once the next input has started.
Outputs come out in input order and equal serial `run`s: an input's calls run in plan order on
its own arena, and every stage waits for the one before. A bad feed is an error naming its index,
raised after the outputs before it; a failed kernel names its input too. A paged plan's stage runs
under the model's lock (the pager is shared with `run`). Imports numpy, the standard library and
`runtime`.
"""

from __future__ import annotations

import dataclasses
import mmap
import queue
import threading
from collections import deque
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from contextlib import AbstractContextManager, nullcontext
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from runtime.available_memory import check_available_memory
from runtime.device_memory import check_device_memory, in_flight_bytes
from runtime.errors import HaiRuntimeError, InvalidArgumentError
from runtime.hai import Buffer, Device, Fences
from runtime.loops import LoopRunner
from runtime.plan_devices import HOST_DEVICE

if TYPE_CHECKING:
    from runtime.model import Call, Model, Outputs, StartReadBack

Wait = Callable[[], None]


def done() -> None:
    """The wait for nothing: the first stage's fence, a synchronized device's."""


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
    alignment = mmap.PAGESIZE if model._mirrors() else None
    buffer = model.device.allocate(model.manifest.plan.arena_size, alignment, label="arena in flight")
    arena = model.device.map(buffer)
    outputs = model._output_views(arena)
    read_backs = model._mirror_memory(arena, outputs)
    _, calls, _ = model._prepare_calls(arena)
    loops = model._loop_runner(arena) if model.manifest.plan.loops else None
    return RecordedArena(buffer, arena, outputs, calls, read_backs, loops)


def release_arena(model: Model, recorded: RecordedArena) -> None:
    """Free an arena of `record_arena` and its mirrors (nothing may run on it any more)."""
    for device in model._mirrors():
        device.unmirror(recorded.arena)
    model.device.free(recorded.buffer)


def run_many(
    model: Model, feeds: Iterable[Mapping[str, np.ndarray]], in_flight: int | None = None
) -> Generator[dict[str, np.ndarray], None, None]:
    """`model.run` of each feed, pipelined: a generator of the outputs in input order (module doc)."""
    plan = pipeline_plan(model, in_flight)
    return Pipeline(model, plan).outputs(iter(feeds))


@dataclasses.dataclass
class Job:
    """One input in flight: its index, arena, bound inputs, the fence of the last stage it passed, the
    waits of its outputs' reads from devices that mirror its arena, and the error that stopped it."""

    index: int
    arena: RecordedArena
    bound: Mapping[str, np.ndarray]
    fence: Wait = done
    read_backs: list[Wait] = dataclasses.field(default_factory=list)
    error: BaseException | None = None


class Pipeline:
    """The stage threads and arenas of one `run_many` stream (module doc)."""

    def __init__(self, model: Model, plan: PipelinePlan) -> None:
        self.model, self.plan = model, plan

    def outputs(
        self, feeds: Iterator[Mapping[str, np.ndarray]]
    ) -> Generator[dict[str, np.ndarray], None, None]:
        """The generator `run_many` returns: arenas and threads exist only while it runs."""
        self.check_memory()
        arenas: list[RecordedArena] = []
        inboxes: list[queue.Queue[Job | None]] = [queue.Queue() for _ in range(len(self.plan.stages) + 1)]
        threads = [
            threading.Thread(target=self.stage_loop, args=(stage, inboxes[k], inboxes[k + 1]), daemon=True,
                             name=f"hai-stage-{k}-{stage.device}")
            for k, stage in enumerate(self.plan.stages)
        ]  # fmt: skip
        try:
            arenas += [record_arena(self.model) for _ in range(self.plan.in_flight)]
            for thread in threads:
                thread.start()
            yield from self.stream(feeds, list(arenas), inboxes[0], inboxes[-1])
        finally:
            inboxes[0].put(None)  # each stage finishes what it holds, then passes the stop on
            for thread in threads:
                if thread.is_alive():
                    thread.join()
            for device in self.model.devices.values():
                device.synchronize()  # nothing may still run on the arenas
            for arena in arenas:
                release_arena(self.model, arena)

    def stream(
        self,
        feeds: Iterator[Mapping[str, np.ndarray]],
        free: list[RecordedArena],
        first: queue.Queue[Job | None],
        last: queue.Queue[Job | None],
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
            ready = self.finish(pending.popleft(), last, free) if not free else None
            job = Job(index, free.pop(), bound)
            pending.append(job)
            first.put(job)
            if ready is not None:  # yielded after the next input started: the caller's work overlaps it
                yield ready
        while pending:
            yield self.finish(pending.popleft(), last, free)
        if failure is not None:
            raise failure

    def finish(
        self, job: Job, last: queue.Queue[Job | None], free: list[RecordedArena]
    ) -> dict[str, np.ndarray]:
        """The outputs of `job` (the oldest in flight) once its last stage is done; its arena is free."""
        finished = last.get()
        assert finished is job  # every stage passes the inputs on in order
        if job.error is not None:
            error = job.error
            message = f"run_many: input {job.index}: {error}"
            raised = type(error)(message) if isinstance(error, HaiRuntimeError) else RuntimeError(message)
            raise raised from error
        job.fence()
        for complete in job.read_backs:
            complete()
        outputs = {binding.name: view.copy() for binding, view in job.arena.outputs}
        free.append(job.arena)
        return outputs

    def stage_loop(
        self, stage: Stage, inbox: queue.Queue[Job | None], outbox: queue.Queue[Job | None]
    ) -> None:
        """A stage's thread: run each input's calls of `stage` after the stage before, in order."""
        device = self.model.devices[stage.device]
        first, last = stage is self.plan.stages[0], stage is self.plan.stages[-1]  # later: the fence waits
        lock: AbstractContextManager[object] = (
            self.model._lock if self.model.pager is not None else nullcontext()
        )
        while (job := inbox.get()) is not None:
            if job.error is None:
                try:
                    job.fence()
                    with lock:
                        self.model._run_calls(job.arena.calls, job.bound, stage.calls, first, job.arena.loops)
                    if last:  # the reads go on the queues now, before the next input's launches
                        job.read_backs = [start() for start in job.arena.read_backs]
                    job.fence = fence(device)
                except BaseException as exc:  # noqa: BLE001  (handed to the caller, naming the input)
                    job.error = exc
            outbox.put(job)
        outbox.put(None)

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


def fence(device: Device) -> Wait:
    """The wait for everything issued on `device` so far: its marker (`Fences`), else synchronized now."""
    if isinstance(device, Fences):
        return device.fence()
    device.synchronize()
    return done
