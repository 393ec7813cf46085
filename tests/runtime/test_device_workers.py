"""The device workers of `run_many` (runtime/device_workers.py), on plain tasks: the oldest ready task
runs first, not the first submitted; a worker hands a fence to its waiter and goes on with the next
task, and the continuation runs once the fence is waited (with its error when it fails); the host's
worker waits a fence itself, before its next task (its cores run that work); streams share a
timeline's worker, and the last release stops its threads; the timeline of a device is its cores."""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from types import SimpleNamespace
from typing import cast

import pytest

from runtime.device_workers import HOST_TIMELINE, Wait, acquire, release, timeline_of
from runtime.devices.cpu import CpuDriver
from runtime.hai import Device, DeviceInfo, DeviceKind

WAIT_SECONDS = 20.0
"""How long a test waits for what a working worker does at once."""


def device(driver: str, index: int, kind: DeviceKind) -> Device:
    """A stand-in device that a driver's probe found (`timeline_of` reads its info only)."""
    return cast(Device, SimpleNamespace(info=DeviceInfo(driver, index, "a device", kind, "tests")))


def nothing(error: BaseException | None) -> None:
    """A continuation with nothing to do."""


def test_the_oldest_ready_task_runs_first() -> None:
    worker = acquire("test:0")
    ran: list[tuple[int, int]] = []
    gate, over = threading.Event(), threading.Event()

    def task(key: tuple[int, int]) -> Callable[[], None]:
        return lambda: ran.append(key)

    def busy() -> None:
        gate.wait(WAIT_SECONDS)

    worker.submit((0, 0), busy, nothing)
    for key in [(5, 0), (2, 3), (2, 1), (9, 9)]:  # ready while the worker is busy, newest input first
        worker.submit(key, task(key), nothing)
    worker.submit((10, 0), lambda: over.set(), nothing)
    gate.set()
    assert over.wait(WAIT_SECONDS)
    release(worker)
    assert ran == [(2, 1), (2, 3), (5, 0), (9, 9)]


def test_a_worker_goes_on_while_its_waiter_waits_the_fence() -> None:
    """The first task's fence is done only once the second task has run: a worker that waited fences
    itself would never get there. The continuations run on the waiter, after the fence."""
    worker = acquire("test:0")
    second_ran, over = threading.Event(), threading.Event()
    threads: list[str] = []

    def fence() -> None:
        assert second_ran.wait(WAIT_SECONDS)

    def then(error: BaseException | None) -> None:
        threads.append(threading.current_thread().name)
        assert second_ran.is_set() and error is None
        over.set()

    worker.submit((0, 0), lambda: fence, then)
    worker.submit((1, 0), lambda: second_ran.set(), nothing)
    assert over.wait(WAIT_SECONDS)
    release(worker)
    assert threads == ["hai-waiter-test:0"]


def test_a_failed_fence_reaches_the_continuation() -> None:
    worker = acquire("test:0")
    errors: list[BaseException | None] = []
    over = threading.Event()

    def fence() -> None:
        raise RuntimeError("the queue fell over")

    def then(error: BaseException | None) -> None:
        errors.append(error)
        over.set()

    worker.submit((0, 0), lambda: fence, then)
    assert over.wait(WAIT_SECONDS)
    release(worker)
    assert [str(e) for e in errors] == ["the queue fell over"]


def test_the_host_waits_its_fences_itself() -> None:
    """On the host's timeline (an OpenCL CPU device computes on its cores) the worker waits a task's fence
    and runs its continuation before the next task; it has no waiter."""
    worker = acquire(HOST_TIMELINE)
    log: list[str] = []
    over = threading.Event()

    def enqueue(name: str) -> Callable[[], Wait]:
        def run() -> Wait:
            log.append(f"enqueue {name}")
            return lambda: log.append(f"wait {name}")

        return run

    def then(name: str) -> Callable[[BaseException | None], None]:
        return lambda error: log.append(f"then {name} on {threading.current_thread().name}")

    worker.submit((0, 0), enqueue("a"), then("a"))
    worker.submit((0, 1), enqueue("b"), then("b"))
    worker.submit((0, 2), lambda: over.set(), nothing)
    assert over.wait(WAIT_SECONDS)
    release(worker)
    assert [thread.name for thread in worker.threads] == ["hai-worker-host"]
    assert log == ["enqueue a", "wait a", "then a on hai-worker-host", "enqueue b", "wait b",
                   "then b on hai-worker-host"]  # fmt: skip


def test_streams_share_a_worker_until_the_last_release() -> None:
    first, second = acquire("test:1"), acquire("test:1")
    assert first is second
    release(first)
    assert all(thread.is_alive() for thread in first.threads)
    release(second)
    assert not any(thread.is_alive() for thread in first.threads)
    third = acquire("test:1")
    assert third is not first  # a fresh worker after the last release
    release(third)


def test_a_device_of_kind_cpu_is_on_the_host_timeline() -> None:
    assert timeline_of(CpuDriver().open()) == HOST_TIMELINE
    assert timeline_of(device("opencl", 0, "cpu")) == HOST_TIMELINE  # PoCL: the host's cores
    assert timeline_of(device("opencl", 1, "gpu")) == "opencl:1"
    assert timeline_of(device("npu", 0, "accelerator")) == "npu:0"


@pytest.fixture(autouse=True)
def no_worker_left() -> Iterator[None]:
    """Every test starts without workers and releases what it acquires."""
    from runtime import device_workers

    assert not device_workers._workers
    yield
    assert not device_workers._workers
