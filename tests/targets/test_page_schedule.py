"""The page schedule against independent references on small random schedules.

A replay simulator checks each schedule's invariants (no step runs with a
missing page, never more resident pages than frames, a frame is free before a
page is read into it, pinned pages stay); an LRU pager written here is the
upper bound on loads; an exhaustive search over every eviction choice is the
optimum that Belady's MIN must reach on tiny cases.
"""

from __future__ import annotations

import functools
import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from targets.plan.page_schedule import PageLoad, PagePoolError, PageSchedule, schedule_pages, smallest_pool

PAGE = 4096


def replay(schedule: PageSchedule, needs: list[frozenset[int]], frames: int, pinned: frozenset[int]) -> int:
    """Run the schedule on a model of the pool, asserting every invariant; the number of page reads."""
    in_frame: dict[int, int] = {}  # frame -> page
    reads = 0
    assert len(schedule.loads) == len(schedule.evictions) == len(needs)
    for step, need in enumerate(needs):
        for page in schedule.evictions[step]:
            assert page not in pinned, f"step {step}: pinned page {page} evicted"
            frame = next(f for f, p in in_frame.items() if p == page)  # StopIteration: not resident
            del in_frame[frame]
        for load in schedule.loads[step]:
            assert 0 <= load.frame < frames, f"step {step}: frame {load.frame} outside the pool"
            assert load.frame not in in_frame, f"step {step}: frame {load.frame} still holds a page"
            assert load.page not in in_frame.values(), f"step {step}: page {load.page} read twice"
            assert load.needed_at >= step
            in_frame[load.frame] = load.page
            reads += 1
        resident = set(in_frame.values())
        assert len(in_frame) <= frames
        assert need <= resident, f"step {step} runs without pages {sorted(need - resident)}"
        assert pinned <= resident
    return reads


def lru_loads(needs: list[frozenset[int]], frames: int, pinned: frozenset[int]) -> int:
    """Page reads of demand paging that evicts the least recently used page the step does not need."""
    last_used = {page: -1 for page in pinned}
    reads = len(pinned)
    for step, need in enumerate(needs):
        for page in sorted(need - last_used.keys()):
            if len(last_used) == frames:
                victim = min((p for p in last_used if p not in need and p not in pinned), key=last_used.get)
                del last_used[victim]
            last_used[page] = step
            reads += 1
        last_used.update((page, step) for page in need)
    return reads


def optimal_loads(needs: list[frozenset[int]], frames: int, pinned: frozenset[int]) -> int:
    """The fewest page reads over every choice of evictions (demand paging, which loses nothing)."""

    @functools.cache
    def best(step: int, resident: frozenset[int]) -> int:
        if step == len(needs):
            return 0
        need = needs[step]
        missing = need - resident
        excess = len(resident) + len(missing) - frames
        if excess <= 0:
            return len(missing) + best(step + 1, resident | missing)
        candidates = sorted(resident - need - pinned)
        return len(missing) + min(
            best(step + 1, (resident - set(out)) | missing)
            for out in itertools.combinations(candidates, excess)
        )

    return len(pinned) + best(0, pinned)


@st.composite
def workloads(draw: st.DrawFn, max_pages: int = 7, max_steps: int = 10) -> tuple:
    pages = draw(st.integers(1, max_pages))
    page_ids = st.integers(0, pages - 1)
    needs = draw(st.lists(st.frozensets(page_ids, min_size=1, max_size=min(3, pages)), max_size=max_steps))
    pinned = draw(st.frozensets(page_ids, max_size=2))
    frames = smallest_pool(needs, pinned) + draw(st.integers(0, 3))
    return needs, max(frames, 1), pinned


@settings(max_examples=300, deadline=None)
@given(workloads(), st.booleans())
def test_schedule_replays_and_loads_no_more_than_lru(workload: tuple, prefetch: bool) -> None:
    needs, frames, pinned = workload
    schedule = schedule_pages(needs, frames, PAGE, pinned=pinned, prefetch=prefetch)
    reads = replay(schedule, needs, frames, pinned)
    assert reads == schedule.total_loads
    assert schedule.peak_resident <= frames
    if needs:
        assert schedule.total_loads <= lru_loads(needs, frames, pinned)


@settings(max_examples=200, deadline=None)
@given(workloads(max_pages=6, max_steps=8))
def test_schedule_loads_equal_the_exhaustive_optimum(workload: tuple) -> None:
    needs, frames, pinned = workload
    if not needs:
        return
    schedule = schedule_pages(needs, frames, PAGE, pinned=pinned)
    assert schedule.total_loads == optimal_loads(needs, frames, pinned)


@settings(max_examples=200, deadline=None)
@given(workloads())
def test_prefetch_moves_loads_earlier_only(workload: tuple) -> None:
    needs, frames, pinned = workload
    lazy = schedule_pages(needs, frames, PAGE, pinned=pinned, prefetch=False)
    eager = schedule_pages(needs, frames, PAGE, pinned=pinned, prefetch=True)
    demand = {(ld.page, ld.needed_at): step for step, loads in enumerate(lazy.loads) for ld in loads}
    early = {(ld.page, ld.needed_at): step for step, loads in enumerate(eager.loads) for ld in loads}
    assert demand.keys() == early.keys()  # the same reads, for the same steps
    assert all(early[key] <= demand[key] for key in demand)
    for key, step in demand.items():
        assert step == (0 if key[0] in pinned else key[1])  # without prefetch a page arrives when needed


@settings(max_examples=200, deadline=None)
@given(workloads(), st.integers(1, 3))
def test_too_small_pool_names_the_smallest_that_works(workload: tuple, short: int) -> None:
    needs, _, pinned = workload
    minimum = len(pinned) + max((len(need - pinned) for need in needs), default=0)
    if minimum - short < 0:
        return
    with pytest.raises(PagePoolError, match=f"smallest pool that works has {minimum} frames"):
        schedule_pages(needs, minimum - short, PAGE, pinned=pinned)
    schedule_pages(needs, minimum, PAGE, pinned=pinned)  # and that one works


def test_prefetch_fills_free_frames_before_the_first_step() -> None:
    needs = [{0}, {1}, {2}, {0}, {3}]
    schedule = schedule_pages(needs, frames=3, page_size=PAGE)
    assert [(ld.page, ld.frame) for ld in schedule.loads[0]] == [(0, 0), (1, 1), (2, 2)]
    # none of 0, 1, 2 is used after step 4: page 3 replaces the least recently used, 1, right after its use
    (load,) = [ld for step in schedule.loads for ld in step if ld.page == 3]
    assert load == PageLoad(3, 1, 4) and schedule.loads[2] == (load,) and schedule.total_loads == 4
    assert schedule.peak_resident == 3


def test_min_evicts_the_page_used_furthest_ahead() -> None:
    needs = [{0, 1}, {2}, {0}, {1}]  # at step 1 the pool is full: 1 is needed later than 0
    schedule = schedule_pages(needs, frames=2, page_size=PAGE, prefetch=False)
    assert schedule.evictions[1] == (1,) and schedule.total_loads == 4
    assert schedule.placements()[2] == {0: 0, 2: 1}


def test_malformed_input_is_an_error() -> None:
    with pytest.raises(PagePoolError, match="page size must be positive"):
        schedule_pages([{0}], 1, 0)
    with pytest.raises(PagePoolError, match="non-negative integers"):
        schedule_pages([{-1}], 1, PAGE)
