"""The OpenCL transfer counters (runtime/devices/opencl_counters.py) under threads: `run_many`'s
workers update them while the caller reads and resets them; every transfer and event counts once."""

from __future__ import annotations

import sys
import threading
from collections.abc import Callable, Iterator
from types import SimpleNamespace

import numpy as np
import pytest

from runtime.devices.opencl_counters import TransferCounters
from runtime.kernel_library import aligned_empty

THREADS, EACH = 8, 2000
EVENT_NS = 1000


@pytest.fixture
def switch_often() -> Iterator[None]:
    """Threads switch every microsecond, so an unguarded read-modify-write loses updates."""
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)
    yield
    sys.setswitchinterval(interval)


def event() -> SimpleNamespace:
    """A profiled event of EVENT_NS."""
    return SimpleNamespace(profile=SimpleNamespace(start=5, end=5 + EVENT_NS))


def hammer(work: Callable[[], None], while_running: Callable[[], None]) -> None:
    """`work` on THREADS threads at once, `while_running` called over and over until they are done."""
    threads = [threading.Thread(target=work) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    while any(thread.is_alive() for thread in threads):
        while_running()
    for thread in threads:
        thread.join()


def test_counters_updated_and_read_from_threads_count_everything_once(switch_often: None) -> None:
    counters = TransferCounters(profiling=True)
    queue = SimpleNamespace(finish=lambda: None)

    def work() -> None:
        for _ in range(EACH):
            counters.keep(event())
            counters.add_host_seconds(0.5)

    hammer(work, lambda: counters.read(queue))
    got = counters.read(queue)
    assert got["transfers"] == THREADS * EACH
    assert got["transfer_host_seconds"] == 0.5 * THREADS * EACH
    assert got["transfer_device_seconds"] == pytest.approx(THREADS * EACH * EVENT_NS * 1e-9, rel=1e-9)


def test_a_reset_during_a_read_drops_the_events_before_it() -> None:
    counters = TransferCounters(profiling=True)
    counters.keep(event())
    queue = SimpleNamespace(finish=counters.reset)  # the reset comes while the read waits for the queue
    assert counters.read(queue) == {"transfers": 0.0, "transfer_device_seconds": 0.0,
                                    "transfer_host_seconds": 0.0}  # fmt: skip


def test_device_uploads_from_threads_are_all_counted(opencl_device: dict, switch_often: None) -> None:
    """Through the driver on this machine's OpenCL device: copies enqueued from threads at once, the
    counters read meanwhile; each copy is one transfer with its profiled time."""
    pytest.importorskip("pyopencl")
    from runtime.devices.opencl import OpenCLDriver

    uploads = 50
    with OpenCLDriver().open(0, zero_copy=False, profiling=True) as device:
        host = aligned_empty((THREADS, 1024), "f4", 4096)
        host[...] = np.arange(host.size, dtype=np.float32).reshape(host.shape)
        device.mirror(host, "host", upload=False)
        device.reset_counters()
        rows = iter(range(THREADS))
        lock = threading.Lock()

        def work() -> None:
            with lock:
                row = host[next(rows)]
            for _ in range(uploads):
                device.upload([row])

        hammer(work, device.counters)
        got = device.counters()
        assert got["transfers"] == THREADS * uploads
        assert got["transfer_device_seconds"] > 0
        device.reset_counters()
        assert device.counters()["transfers"] == 0
        device.read_back([host])
        assert np.array_equal(host.reshape(-1), np.arange(host.size, dtype=np.float32))
