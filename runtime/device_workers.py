"""The threads that run `run_many`'s stages: one worker per timeline, shared by every stream of the process.

Rule: a timeline is the processors a device computes on: every device of kind `cpu` (the host CPU,
an OpenCL CPU device such as PoCL) is on the host's, any other device is a timeline of its own
(`driver:index`). Each timeline in use has ONE worker thread, whichever streams (`run_many` of one
model or of several, on any threads) give it work, so the host's kernels of every stream run on one
thread: one TVM thread pool (TVM's pool belongs to the thread that launches: several threads
launching CPU kernels would each bring a pool as wide as the machine, pinned to the same cores) and
the host's work serial, as the partition's cost model counts it. The worker runs its ready tasks
oldest first: the smallest key, (the input's place in the process's order of inputs, its stage). A
task issues a stage's work on its device and returns the fence of that work (`Fences`: an OpenCL
marker event) or None when the work is done (a device without fences is synchronized in the task);
the worker of a device hands a fence to its waiter thread, which waits the fences in the order given
(one waiter per timeline: the queues of several models on one GPU are waited in the order their work
was issued) and then calls each task's continuation (the next stage's submission), so that worker
never waits for its device while it has work to issue: an OpenCL GPU's worker enqueues a stage and
goes on to the next. The host's worker waits a fence itself (PoCL's work runs on the host's cores:
anything else it ran meanwhile would compete for them) and goes on with the continuation, which
spares a thread hand-off per stage. Workers are counted per stream that uses them (`acquire`,
`release`): the last release stops the threads (a later stream starts new ones); a forked child
starts afresh. Imports the standard library and `runtime`.
"""

from __future__ import annotations

import dataclasses
import heapq
import itertools
import os
import queue
import threading
from collections.abc import Callable

from runtime.hai import Device

HOST_TIMELINE = "host"
Wait = Callable[[], None]
Task = Callable[[], Wait | None]
Then = Callable[[BaseException | None], None]
"""A task's continuation: called with None once its work is done, or with the error its fence raised."""


def timeline_of(device: Device) -> str:
    """The processors `device` computes on (module doc)."""
    info = device.info
    return HOST_TIMELINE if info.kind == "cpu" else f"{info.driver}:{info.index}"


@dataclasses.dataclass(order=True)
class Ready:
    """A task ready to run on a worker; ordered by `key`, then by submission."""

    key: tuple[int, int]
    order: int
    run: Task = dataclasses.field(compare=False)
    then: Then = dataclasses.field(compare=False)


class Worker:
    """The worker thread of one timeline and, but for the host's, its waiter thread (module doc)."""

    def __init__(self, timeline: str) -> None:
        self.timeline = timeline
        self.ready: list[Ready] = []
        self.submitted = itertools.count()
        self.condition = threading.Condition()
        self.stopping = False
        self.fences: queue.SimpleQueue[tuple[Wait, Then] | None] = queue.SimpleQueue()
        waiter = [] if timeline == HOST_TIMELINE else [(self.wait, f"hai-waiter-{timeline}")]
        self.threads = tuple(
            threading.Thread(target=target, name=name, daemon=True)
            for target, name in [(self.work, f"hai-worker-{timeline}"), *waiter]
        )
        for thread in self.threads:
            thread.start()

    def submit(self, key: tuple[int, int], run: Task, then: Then) -> None:
        """Run `run` on this worker when it is the oldest ready task, then `then` once its work is done.
        `run` and `then` must not raise (a failure is the caller's to record)."""
        with self.condition:
            heapq.heappush(self.ready, Ready(key, next(self.submitted), run, then))
            self.condition.notify()

    def next_task(self) -> Ready | None:
        with self.condition:
            while not self.ready and not self.stopping:
                self.condition.wait()
            return heapq.heappop(self.ready) if self.ready else None

    def work(self) -> None:
        """The worker thread: the oldest ready task first; its fence to the waiter, or waited here (host)."""
        while (task := self.next_task()) is not None:
            fence = task.run()
            if fence is None:
                task.then(None)
            elif self.timeline == HOST_TIMELINE:
                task.then(waited(fence))
            else:
                self.fences.put((fence, task.then))
        self.fences.put(None)  # stops the waiter, if any

    def wait(self) -> None:
        """The waiter thread: each fence in the order given, then its task's continuation."""
        while (item := self.fences.get()) is not None:
            fence, then = item
            then(waited(fence))

    def stop(self) -> None:
        """End the threads once the tasks given are done."""
        with self.condition:
            self.stopping = True
            self.condition.notify()
        for thread in self.threads:
            if thread is not threading.current_thread():
                thread.join()


def waited(fence: Wait) -> BaseException | None:
    """Wait `fence`: None once its work is done, else the error it raised."""
    try:
        fence()
    except BaseException as exc:  # noqa: BLE001  (handed to the task's stream)
        return exc
    return None


_lock = threading.Lock()
_workers: dict[str, tuple[Worker, int]] = {}
"""Per timeline, its worker and how many streams use it."""


def acquire(timeline: str) -> Worker:
    """The worker of `timeline`, started if no stream uses it yet; `release` it when done."""
    with _lock:
        worker, users = _workers.get(timeline) or (Worker(timeline), 0)
        _workers[timeline] = (worker, users + 1)
        return worker


def release(worker: Worker) -> None:
    """A stream is done with `worker`: the last one stops it."""
    with _lock:
        _, users = _workers[worker.timeline]
        if users > 1:
            _workers[worker.timeline] = (worker, users - 1)
            return
        del _workers[worker.timeline]
    worker.stop()


def _forget_workers() -> None:
    """In a forked child: the parent's threads are not there."""
    global _lock
    _lock = threading.Lock()
    _workers.clear()


os.register_at_fork(after_in_child=_forget_workers)
