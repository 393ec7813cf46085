"""targets/plan/paging.py on small hand-made schedules: which pages are pinned across runs and
where segments start (each expectation worked out by hand from the module's rule)."""

from __future__ import annotations

from runtime.artifact import PageStep, Paging
from targets.plan.page_schedule import schedule_pages
from targets.plan.paging import PREFETCH_FRAMES, page_steps, pinned_pages, segment_bounds

SWEEP = [
    frozenset({0, 9}),
    frozenset({1}),
    frozenset({2, 9}),
    frozenset({3}),
    frozenset({4, 9}),
    frozenset({5}),
]


def test_most_used_then_first_used_pages_are_pinned_in_the_room_left() -> None:
    # 7 pages, largest step 2 pages: 6 frames leave 6 - 2 - PREFETCH_FRAMES = 2 to pin
    assert PREFETCH_FRAMES == 2
    assert pinned_pages(SWEEP, frames=6) == (0, 9)  # page 9 (3 uses), then page 0 (first used)
    assert pinned_pages(SWEEP, frames=5) == (9,)
    assert pinned_pages(SWEEP, frames=4) == ()  # no room beside the largest step and prefetch
    assert pinned_pages(SWEEP, frames=7) == ()  # every page fits: nothing is ever evicted


def test_segments_start_where_a_step_evicts_or_waits_for_a_new_page() -> None:
    schedule = (
        PageStep((0,), (), ((0, 0), (1, 1))),  # starts: the first step
        PageStep((0,)),  # page 0 already awaited: same segment
        PageStep(()),  # no page: same segment
        PageStep((1,)),  # page 1 loaded at step 0 but never waited for: a new segment
        PageStep((1,), (0,), ((2, 0),)),  # evicts: a new segment
        PageStep((2,)),  # waits for page 2: a new segment
    )
    paging = Paging(page_size=64, frames=2, page_bytes=(64, 64, 64), schedule=schedule)
    assert segment_bounds(paging) == [(0, 3), (3, 4), (4, 5), (5, 6)]


def test_the_manifest_form_of_a_schedule_lists_every_step() -> None:
    schedule = schedule_pages([{0, 1}, {2}], frames=2, page_size=64)
    # both pages are never used again: the tie goes to the larger id, page 1 in frame 1
    assert page_steps(schedule) == (PageStep((0, 1), (), ((0, 0), (1, 1))), PageStep((2,), (1,), ((2, 1),)))
