"""The OpenCL device's transfer counters (`ProfilingCounters`): safe to update and read from any thread.

Rule: `run_many` runs each stage on its device's worker thread while the caller reads or resets the
counters, so every update and read takes one lock: a transfer counted (`keep`), host seconds added
(`add_host_seconds`), the counters read (`read`) or zeroed (`reset`). Each profiled event is summed
exactly once: `read` takes the pending events under the lock, waits for the queue outside it (the
workers go on enqueueing meanwhile) and adds their device time (END - START timestamps) under it
again, unless a `reset` came between. Imports the standard library only.
"""

from __future__ import annotations

import threading
from typing import Any


class TransferCounters:
    """Transfers counted so far, their host seconds, and (with `profiling`) their events' device time."""

    def __init__(self, profiling: bool) -> None:
        self.profiling = profiling
        self._lock = threading.Lock()
        self._events: list[Any] = []  # profiled events not yet summed
        self._count = 0
        self._host_seconds = 0.0
        self._device_seconds = 0.0
        self._resets = 0  # `read` drops the events it took when a reset came meanwhile

    def keep(self, event: Any) -> None:
        """Count one transfer; keep its event for its device time when profiling."""
        with self._lock:
            self._count += 1
            if self.profiling and event is not None:
                self._events.append(event)

    def add_host_seconds(self, seconds: float) -> None:
        with self._lock:
            self._host_seconds += seconds

    def read(self, queue: Any) -> dict[str, float]:
        """The counters now: the pending events' device time is added once `queue` has finished them."""
        with self._lock:
            pending, self._events, resets = self._events, [], self._resets
        seconds = 0.0
        if pending:
            queue.finish()
            seconds = sum(e.profile.end - e.profile.start for e in pending) * 1e-9
        with self._lock:
            if resets == self._resets:
                self._device_seconds += seconds
            return {
                "transfers": float(self._count),
                "transfer_device_seconds": self._device_seconds,
                "transfer_host_seconds": self._host_seconds,
            }

    def reset(self) -> None:
        """Zero every counter; transfers enqueued before are never counted."""
        with self._lock:
            self._events.clear()
            self._resets += 1
            self._count = 0
            self._host_seconds = self._device_seconds = 0.0

    def drop_events(self) -> None:
        """Forget the pending events (their queue is closing); the counts stay."""
        with self._lock:
            self._events.clear()
