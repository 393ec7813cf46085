"""The weight pager: a fixed pool of page frames, filled from `weights.bin` by a static page schedule.

Rule: the pool (`frames` x `page_size` bytes, 64-byte aligned) is allocated
once; a page only ever lives in the frame its plan names. `before_step(i)`
does, in order: evict step `i`'s evictions (after their reads finished: a
frame is never freed mid-read), issue step `i`'s loads (each into a free
frame; with `prefetch`, to a background thread that reads them in issue
order, else read here), then wait until every page step `i` needs is read.
Step 0 begins a run: frames still holding what step 0 would load into them
(from the previous run) are kept and counted `reused`; every other frame is
freed. Hence the pool never holds more pages than frames, and a step never
starts before its pages are in. A plan that breaks these rules (a load into
a busy frame, a need never loaded, a page outside `weights.bin`) is an
`ArtifactError` naming the step.

Counters (`counters()`): `loads` and `bytes_read` (reads completed),
`reused`, `hits` (needs already read before the step issued its loads),
`misses` (the others), `read_seconds` (time inside reads), `stall_seconds`
(time `before_step` waited for reads). When `prometheus_client` is
importable, `register_metrics` exports them as counters; it is optional.
Thread-safe against the prefetch thread (one condition guards all state);
one caller drives the steps. Imports numpy and the standard library only.
"""

from __future__ import annotations

import dataclasses
import queue
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

from runtime.artifact import PageStep, Paging
from runtime.errors import ArtifactError
from runtime.kernel_library import aligned_empty
from runtime.page_reader import PageReader, WeightsFileReader

COUNTERS = {
    "loads": "pages read from the weights file",
    "reused": "step-0 loads skipped because the frame still held the page",
    "hits": "page needs already satisfied when their step began",
    "misses": "page needs whose read was issued by or still running at their step",
    "bytes_read": "bytes read from the weights file",
    "read_seconds": "seconds spent reading pages",
    "stall_seconds": "seconds steps waited for their pages",
}


@dataclasses.dataclass(frozen=True)
class PagePlan:
    """A page schedule as the manifest holds it, with each page's (offset, nbytes) in `weights.bin`."""

    frames: int
    page_size: int
    extents: tuple[tuple[int, int], ...]
    steps: tuple[PageStep, ...]

    @classmethod
    def of(cls, paging: Paging) -> PagePlan:
        """The plan of a manifest's `plan.paging` (page p at byte p * page_size of `weights.bin`)."""
        extents = tuple((page * paging.page_size, n) for page, n in enumerate(paging.page_bytes))
        return cls(paging.frames, paging.page_size, extents, paging.schedule)

    def check(self) -> None:
        """Refuse a plan whose loads name unknown pages, frames outside the pool or pages over a frame."""
        for index, step in enumerate(self.steps):
            for page, frame in step.loads:
                if not 0 <= page < len(self.extents):
                    raise ArtifactError(f"page plan, step {index}: page {page} has no extent in weights.bin")
                if not 0 <= frame < self.frames:
                    raise ArtifactError(
                        f"page plan, step {index}: frame {frame} outside a pool of {self.frames}"
                    )
                if self.extents[page][1] > self.page_size:
                    raise ArtifactError(
                        f"page plan: page {page} has {self.extents[page][1]} bytes, "
                        f"over the {self.page_size}-byte frame"
                    )


class Pager:
    """Executes a `PagePlan` over a frame pool (module doc: the rule). `close()` it when done."""

    def __init__(self, plan: PagePlan, weights: str | Path | PageReader, prefetch: bool = True) -> None:
        plan.check()
        self.plan = plan
        self.reader: PageReader = WeightsFileReader(weights) if isinstance(weights, str | Path) else weights
        if isinstance(self.reader, WeightsFileReader) and plan.extents:
            end, page = max((offset + nbytes, page) for page, (offset, nbytes) in enumerate(plan.extents))
            self.reader.check_covers(end, f"page {page}")
        self.prefetch = prefetch
        self.pool = aligned_empty((plan.frames * plan.page_size,), "u1")
        self._frame_page: list[int | None] = [None] * plan.frames
        self._page_frame: dict[int, int] = {}
        self._ready: set[int] = set()
        self._in_flight = 0
        self._error: BaseException | None = None
        self._counts: dict[str, float] = dict.fromkeys(COUNTERS, 0)
        self._cond = threading.Condition()
        self._queue: queue.SimpleQueue[tuple[int, int] | None] = queue.SimpleQueue()
        self._worker: threading.Thread | None = None

    # -- what kernels see ------------------------------------------------------------------------------

    def frame_view(self, frame: int) -> np.ndarray:
        """The whole frame `frame` (uint8, `page_size` bytes, 64-byte aligned)."""
        size = self.plan.page_size
        return self.pool[frame * size : (frame + 1) * size]

    def page_view(self, page: int) -> np.ndarray:
        """The bytes of resident page `page` in its frame (uint8, the page's length)."""
        with self._cond:
            frame = self._page_frame.get(page)
        if frame is None:
            raise ArtifactError(f"page {page} is not resident")
        return self.frame_view(frame)[: self.plan.extents[page][1]]

    # -- driving the schedule --------------------------------------------------------------------------

    def before_step(self, index: int) -> None:
        """Evict, issue loads, and wait for step `index`'s pages (module doc: the rule)."""
        step = self.plan.steps[index]
        with self._cond:
            self._raise_failure()
            if index == 0:
                self._begin_run(step)
            for page in step.evictions:
                self._evict(page, index)
            hits = sum(page in self._ready for page in step.needs)
            issued = [load for load in step.loads if self._claim(*load, index)]
            missing = [page for page in step.needs if page not in self._page_frame]
            if missing:
                raise ArtifactError(f"page plan, step {index}: needs page(s) {missing}, never loaded")
            self._counts["hits"] += hits
            self._counts["misses"] += len(step.needs) - hits
        start = time.perf_counter()
        for page, frame in issued:
            if self.prefetch:
                self._start_worker()
                self._queue.put((page, frame))
            else:
                self._read(page, frame)
        with self._cond:
            self._cond.wait_for(lambda: self._error is not None or all(p in self._ready for p in step.needs))
            self._counts["stall_seconds"] += time.perf_counter() - start
            self._raise_failure()

    def counters(self) -> dict[str, float]:
        """A snapshot of the counters (module doc: what each counts)."""
        with self._cond:
            return dict(self._counts)

    def resident(self) -> dict[int, int]:
        """Page -> frame of every page loaded or being loaded."""
        with self._cond:
            return dict(self._page_frame)

    def close(self) -> None:
        """Stop the prefetch thread (after the reads it has) and close the weights file."""
        if self._worker is not None:
            self._queue.put(None)
            self._worker.join()
            self._worker = None
        close = getattr(self.reader, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Pager:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def register_metrics(self, registry: Any = None) -> bool:
        """Export the counters to Prometheus (`registry` or the default); False when prometheus_client
        is not installed (it is optional)."""
        try:
            from prometheus_client.core import REGISTRY, CounterMetricFamily
        except ImportError:
            return False
        pager = self

        class PagerCollector:
            def collect(self) -> Any:
                values = pager.counters()
                for name, documentation in COUNTERS.items():
                    yield CounterMetricFamily(f"hai_pager_{name}", documentation, value=values[name])

        (registry if registry is not None else REGISTRY).register(PagerCollector())
        return True

    # -- under the lock --------------------------------------------------------------------------------

    def _begin_run(self, first: PageStep) -> None:
        """Keep frames that already hold what step 0 loads into them; free every other frame."""
        self._cond.wait_for(lambda: self._in_flight == 0)
        wanted = dict((frame, page) for page, frame in first.loads)
        for frame, page in enumerate(self._frame_page):
            if page is not None and wanted.get(frame) != page:
                self._free(frame, page)

    def _evict(self, page: int, index: int) -> None:
        frame = self._page_frame.get(page)
        if frame is None:
            raise ArtifactError(f"page plan, step {index}: evicts page {page}, which is not resident")
        self._cond.wait_for(lambda: page in self._ready or self._error is not None)
        self._raise_failure()
        self._free(frame, page)

    def _free(self, frame: int, page: int) -> None:
        self._frame_page[frame] = None
        del self._page_frame[page]
        self._ready.discard(page)

    def _claim(self, page: int, frame: int, index: int) -> bool:
        """Give `frame` to `page`; False when it already holds it (a step-0 reuse), True when to read."""
        holder = self._frame_page[frame]
        if index == 0 and holder == page:
            self._counts["reused"] += 1
            return False
        if holder is not None or page in self._page_frame:
            busy = (
                f"frame {frame} still holds page {holder}"
                if holder is not None
                else f"page {page} is resident"
            )
            raise ArtifactError(
                f"page plan, step {index}: cannot load page {page} into frame {frame}: {busy}"
            )
        self._frame_page[frame] = page
        self._page_frame[page] = frame
        self._in_flight += 1
        return True

    def _raise_failure(self) -> None:
        if self._error is not None:
            raise self._error

    # -- reading ---------------------------------------------------------------------------------------

    def _read(self, page: int, frame: int) -> None:
        offset, nbytes = self.plan.extents[page]
        start = time.perf_counter()
        try:
            self.reader.read_into(self.frame_view(frame)[:nbytes].data, offset)
        except BaseException as exc:
            with self._cond:
                self._error = exc
                self._in_flight -= 1
                self._cond.notify_all()
            if not self.prefetch:
                raise
            return
        with self._cond:
            self._ready.add(page)
            self._in_flight -= 1
            self._counts["loads"] += 1
            self._counts["bytes_read"] += nbytes
            self._counts["read_seconds"] += time.perf_counter() - start
            self._cond.notify_all()

    def _start_worker(self) -> None:
        if self._worker is None:
            self._worker = threading.Thread(target=self._work, name="hai-pager-prefetch", daemon=True)
            self._worker.start()

    def _work(self) -> None:
        while (job := self._queue.get()) is not None:
            self._read(*job)
