"""The runtime pager on a temp `weights.bin` of random bytes, driven by targets/plan/page_schedule.py.

The reference is the file itself: after `before_step(i)` (and again at the
end of the step, after the prefetch thread had time to run), each page the
step needs must hold exactly its byte range of the file.
"""

from __future__ import annotations

import os
import sys
import time
import types
from pathlib import Path

import numpy as np
import pytest

from runtime.artifact import PageStep
from runtime.errors import ArtifactError, ArtifactIntegrityError
from runtime.page_reader import WeightsFileReader
from runtime.pager import COUNTERS, PagePlan, Pager
from targets.plan.page_schedule import schedule_pages
from targets.plan.paging import page_steps

PAGE = 256


def random_case(seed: int, tmp_path: Path, pages: int = 12, steps: int = 20) -> tuple[PagePlan, bytes, list]:
    """A weights file of `pages` pages (random lengths), random step needs, their MIN schedule as a plan."""
    rng = np.random.default_rng(seed)
    data = rng.integers(0, 256, pages * PAGE, dtype=np.uint8).tobytes()
    path = tmp_path / "weights.bin"
    path.write_bytes(data)
    extents = [(page * PAGE, int(rng.integers(1, PAGE + 1))) for page in range(pages)]
    needs = [set(rng.choice(pages, int(rng.integers(1, 4)), replace=False).tolist()) for _ in range(steps)]
    frames = max(len(n) for n in needs) + int(rng.integers(0, 4))
    schedule = schedule_pages(needs, frames, PAGE)
    return PagePlan(frames, PAGE, tuple(extents), page_steps(schedule)), data, needs


def check_step_bytes(pager: Pager, plan: PagePlan, data: bytes, step: int) -> None:
    for page in plan.steps[step].needs:
        offset, nbytes = plan.extents[page]
        assert pager.page_view(page).tobytes() == data[offset : offset + nbytes], f"step {step} page {page}"


@pytest.mark.parametrize("prefetch", [True, False])
@pytest.mark.parametrize("seed", range(6))
def test_every_step_sees_its_pages_bytes(tmp_path: Path, seed: int, prefetch: bool) -> None:
    plan, data, needs = random_case(seed, tmp_path)
    total_loads = sum(len(s.loads) for s in plan.steps)
    with Pager(plan, tmp_path / "weights.bin", prefetch=prefetch) as pager:
        assert pager.pool.ctypes.data % 64 == 0 and pager.pool.nbytes == plan.frames * PAGE
        for run in range(2):
            for step in range(len(plan.steps)):
                pager.before_step(step)
                assert len(pager.resident()) <= plan.frames
                check_step_bytes(pager, plan, data, step)
                time.sleep(0.0005)  # the prefetch thread runs meanwhile; it must not touch these frames
                check_step_bytes(pager, plan, data, step)
            counts = pager.counters()
            assert counts["loads"] + counts["reused"] == total_loads * (run + 1)
            assert counts["hits"] + counts["misses"] == sum(len(n) for n in needs) * (run + 1)
        read_bytes = sum(plan.extents[page][1] for s in plan.steps for page, _ in s.loads)
        assert counts["bytes_read"] == read_bytes * 2 - sum(plan.extents[p][1] for p, _ in reused_loads(plan))
        assert set(counts) == set(COUNTERS)


def reused_loads(plan: PagePlan) -> list[tuple[int, int]]:
    """Step 0's loads that find their page still in its frame at the end of a run."""
    end: dict[int, int] = {}
    for step in plan.steps:
        for page in step.evictions:
            end = {f: p for f, p in end.items() if p != page}
        end.update((frame, page) for page, frame in step.loads)
    return [(page, frame) for page, frame in plan.steps[0].loads if end.get(frame) == page]


class SlowReader:
    """The file reader, `delay` seconds slower per page, as a slow flash card would be."""

    def __init__(self, path: Path, delay: float) -> None:
        self.file = WeightsFileReader(path)
        self.delay = delay

    def read_into(self, buffer: memoryview, offset: int) -> None:
        time.sleep(self.delay)
        self.file.read_into(buffer, offset)


def run_slow(tmp_path: Path, prefetch: bool) -> dict[str, float]:
    pages = 8
    (tmp_path / "weights.bin").write_bytes(os.urandom(pages * PAGE))
    schedule = schedule_pages([{page} for page in range(pages)], frames=4, page_size=PAGE)
    plan = PagePlan(4, PAGE, tuple((p * PAGE, PAGE) for p in range(pages)), page_steps(schedule))
    with Pager(plan, SlowReader(tmp_path / "weights.bin", 0.02), prefetch=prefetch) as pager:
        for step in range(pages):
            pager.before_step(step)
            time.sleep(0.03)  # compute
        return pager.counters()


def test_prefetch_overlaps_reads_with_compute(tmp_path: Path) -> None:
    overlapped = run_slow(tmp_path, prefetch=True)
    assert overlapped["loads"] == 8 and overlapped["read_seconds"] >= 0.16
    assert overlapped["stall_seconds"] < 0.5 * overlapped["read_seconds"]
    serial = run_slow(tmp_path, prefetch=False)
    assert serial["stall_seconds"] >= 0.9 * serial["read_seconds"]


def test_a_truncated_weights_file_is_refused_before_reading(tmp_path: Path) -> None:
    plan, data, _ = random_case(1, tmp_path)
    path = tmp_path / "weights.bin"
    path.write_bytes(data[: PAGE * 5 + 7])
    with pytest.raises(
        ArtifactIntegrityError, match=rf"weights file {path} is truncated: page \d+ ends at byte"
    ):
        Pager(plan, path)


@pytest.mark.parametrize("prefetch", [True, False])
def test_a_file_truncated_while_running_names_the_file_and_offset(tmp_path: Path, prefetch: bool) -> None:
    plan, data, _ = random_case(2, tmp_path)
    path = tmp_path / "weights.bin"
    with Pager(plan, path, prefetch=prefetch) as pager:
        os.truncate(path, 0)
        with pytest.raises(
            ArtifactIntegrityError, match=rf"weights file {path} is truncated: .* at offset \d+"
        ):
            for step in range(len(plan.steps)):
                pager.before_step(step)


def test_reads_are_dropped_from_the_page_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    if not hasattr(os, "posix_fadvise"):
        pytest.skip("no posix_fadvise on this platform")
    advised = []
    monkeypatch.setattr(os, "posix_fadvise", lambda fd, off, n, advice: advised.append((off, n, advice)))
    path = tmp_path / "weights.bin"
    path.write_bytes(os.urandom(3 * PAGE))
    reader = WeightsFileReader(path)
    buffer = bytearray(100)
    reader.read_into(memoryview(buffer), PAGE + 5)
    assert buffer == path.read_bytes()[PAGE + 5 : PAGE + 105]
    assert advised == [(PAGE + 5, 100, os.POSIX_FADV_DONTNEED)]


def test_a_plan_loading_into_a_busy_frame_is_refused(tmp_path: Path) -> None:
    (tmp_path / "weights.bin").write_bytes(bytes(2 * PAGE))
    steps = (PageStep((0,), (), ((0, 0),)), PageStep((1,), (), ((1, 0),)))
    plan = PagePlan(1, PAGE, ((0, PAGE), (PAGE, PAGE)), steps)
    with Pager(plan, tmp_path / "weights.bin") as pager:
        pager.before_step(0)
        with pytest.raises(
            ArtifactError, match="step 1: cannot load page 1 into frame 0: frame 0 still holds page 0"
        ):
            pager.before_step(1)


def test_counters_export_to_prometheus_when_installed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    collectors = []

    class CounterMetricFamily:  # the part of prometheus_client's API the pager uses
        def __init__(self, name: str, documentation: str, value: float) -> None:
            self.name, self.value = name, value

    core = types.SimpleNamespace(CounterMetricFamily=CounterMetricFamily,
                                 REGISTRY=types.SimpleNamespace(register=collectors.append))  # fmt: skip
    monkeypatch.setitem(sys.modules, "prometheus_client", types.ModuleType("prometheus_client"))
    monkeypatch.setitem(sys.modules, "prometheus_client.core", core)
    plan, _, _ = random_case(3, tmp_path)
    with Pager(plan, tmp_path / "weights.bin") as pager:
        assert pager.register_metrics()
        pager.before_step(0)
        exported = {m.name: m.value for m in collectors[0].collect()}
        assert exported == {f"hai_pager_{k}": v for k, v in pager.counters().items()}


def test_metrics_are_optional(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "prometheus_client", None)  # import fails as when not installed
    monkeypatch.setitem(sys.modules, "prometheus_client.core", None)
    plan, _, _ = random_case(4, tmp_path)
    with Pager(plan, tmp_path / "weights.bin") as pager:
        assert pager.register_metrics() is False
