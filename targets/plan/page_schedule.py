"""The page schedule: which weight pages to load into which frame before each step, and which to evict.

Rule: steps run in order; step `i` needs a set of page ids resident in a pool
of `frames` page frames, and `pinned` pages stay resident in frames 0..k-1 from
step 0 on. Residency is decided by Belady's MIN, the optimal offline policy:
a page is loaded at the first step that needs it and is missing; when no frame
is free, the resident page whose next use is furthest in the future is evicted
(never used again counts as furthest; ties go to the page used least recently,
whose frame prefetch can reuse soonest, then the larger page id), never a
pinned page nor one the step itself needs. This gives the fewest loads of any
policy over the same steps and pool (no policy loads less; tests check it by
exhaustive search on small cases).

Prefetch then moves each load as early as its frame allows, without changing
which pages go where: a frame's next page is loaded (and its current page
evicted) at the step right after the current page's last use — the evicted
page's next use is later than the loaded page's, so nothing needed sooner
leaves — and a frame's first page at step 0. Loads and evictions are listed
under the step before which they are issued; evictions come first, then loads
ordered by the step that needs them (then page id). A load listed under step
`i` for a page that step `i` needs must complete before step `i` runs; the
others may complete in the background while earlier steps compute.

A pool smaller than the largest step's pages (plus the pinned ones) cannot
work: `PagePoolError` names that smallest pool. Imports only `ir`.
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Iterable, Sequence

from ir.errors import HaiError
from ir.units import format_size

NEVER = float("inf")


class PagePoolError(HaiError):
    """The page pool is too small for some step, or the schedule's input is malformed."""


@dataclasses.dataclass(frozen=True)
class PageLoad:
    """Read `page` into `frame`; the step that first needs it is `needed_at`."""

    page: int
    frame: int
    needed_at: int


@dataclasses.dataclass
class Residency:
    """One stay of a page in a frame: loaded before `load_step`, needed last at `last_use`,
    evicted before `evict_step` (None: stays until the end)."""

    page: int
    frame: int
    load_step: int
    first_use: int
    last_use: int
    evict_step: int | None = None


@dataclasses.dataclass(frozen=True)
class PageSchedule:
    """Per step: the pages it needs, the evictions then loads issued before it (module doc: the rule)."""

    frames: int
    page_size: int
    needs: tuple[tuple[int, ...], ...]
    loads: tuple[tuple[PageLoad, ...], ...]
    evictions: tuple[tuple[int, ...], ...]
    pinned: tuple[int, ...] = ()

    @property
    def steps(self) -> int:
        return len(self.needs)

    @property
    def total_loads(self) -> int:
        return sum(len(step) for step in self.loads)

    @property
    def peak_resident(self) -> int:
        """The most frames holding a page (loaded or being loaded) at once, over all steps."""
        resident = peak = 0
        for evicted, loaded in zip(self.evictions, self.loads, strict=True):
            resident += len(loaded) - len(evicted)
            peak = max(peak, resident)
        return peak

    def placements(self) -> list[dict[int, int]]:
        """For each step, every resident page's frame when the step runs (its needs among them)."""
        frame_of: dict[int, int] = {}
        result = []
        for evicted, loaded in zip(self.evictions, self.loads, strict=True):
            for page in evicted:
                del frame_of[page]
            frame_of.update((load.page, load.frame) for load in loaded)
            result.append(dict(frame_of))
        return result


def smallest_pool(needs: Sequence[Iterable[int]], pinned: Iterable[int] = ()) -> int:
    """The fewest frames any schedule of `needs` can use: the pinned pages plus the largest step's others."""
    fixed = set(pinned)
    return len(fixed) + max((len(set(need) - fixed) for need in needs), default=0)


def schedule_pages(
    needs: Sequence[Iterable[int]],
    frames: int,
    page_size: int,
    pinned: Iterable[int] = (),
    prefetch: bool = True,
) -> PageSchedule:
    """The MIN schedule of `needs` over `frames` frames of `page_size` bytes (module doc: the rule)."""
    steps = tuple(tuple(sorted(set(need))) for need in needs)
    fixed = tuple(sorted(set(pinned)))
    _check_input(steps, fixed, frames, page_size)
    if not steps:
        return PageSchedule(frames, page_size, (), (), (), fixed)
    residencies = _min_residencies(steps, fixed, frames)
    if prefetch:
        _hoist(residencies)
    loads: list[list[PageLoad]] = [[] for _ in steps]
    evictions: list[list[int]] = [[] for _ in steps]
    for stay in residencies:
        loads[stay.load_step].append(PageLoad(stay.page, stay.frame, stay.first_use))
        if stay.evict_step is not None:
            evictions[stay.evict_step].append(stay.page)
    return PageSchedule(
        frames=frames,
        page_size=page_size,
        needs=steps,
        loads=tuple(tuple(sorted(step, key=lambda ld: (ld.needed_at, ld.page))) for step in loads),
        evictions=tuple(tuple(sorted(step)) for step in evictions),
        pinned=fixed,
    )


def _check_input(
    steps: Sequence[tuple[int, ...]], pinned: tuple[int, ...], frames: int, page_size: int
) -> None:
    if page_size <= 0:
        raise PagePoolError(f"page size must be positive, got {page_size}")
    bad = sorted({p for need in steps for p in need if not isinstance(p, int) or p < 0})
    if bad or any(not isinstance(p, int) or p < 0 for p in pinned):
        raise PagePoolError(f"page ids must be non-negative integers, got {bad or list(pinned)}")
    minimum = smallest_pool(steps, pinned)
    if frames < minimum:
        fixed = set(pinned)
        step = max(range(len(steps)), key=lambda i: len(set(steps[i]) - fixed), default=None)
        where = (f"step {step} needs {len(set(steps[step]) - fixed)} page(s)" if step is not None
                 else "no step needs a page")  # fmt: skip
        raise PagePoolError(
            f"a pool of {frames} frame(s) of {format_size(page_size)} cannot run this schedule: {where}"
            f"{f' beside {len(pinned)} pinned' if pinned else ''}; the smallest pool that works has "
            f"{minimum} frames ({format_size(minimum * page_size)})"
        )


def _min_residencies(
    steps: Sequence[tuple[int, ...]], pinned: tuple[int, ...], frames: int
) -> list[Residency]:
    """Demand paging by Belady's MIN: every stay of a page in a frame, in the order they begin."""
    uses: dict[int, list[int]] = {}
    for index, need in enumerate(steps):
        for page in need:
            uses.setdefault(page, []).append(index)

    def next_use(page: int, after: int) -> float:
        steps_using = uses.get(page, [])
        at = bisect.bisect_right(steps_using, after)
        return steps_using[at] if at < len(steps_using) else NEVER

    stays = [Residency(page, frame, 0, 0, -1) for frame, page in enumerate(pinned)]
    current = {stay.page: stay for stay in stays}  # resident page -> its stay
    free = list(range(frames - 1, len(pinned) - 1, -1))  # popped lowest first
    for index, need in enumerate(steps):
        for page in need:
            if page in current:
                current[page].last_use = index
                continue
            if free:
                frame = free.pop()
            else:
                victims = [p for p in current if p not in pinned and p not in need]
                victim = max(victims, key=lambda p: (next_use(p, index), -current[p].last_use, p))
                evicted = current.pop(victim)
                evicted.evict_step = index
                frame = evicted.frame
            stay = Residency(page, frame, index, index, index)
            stays.append(stay)
            current[page] = stay
    return stays


def _hoist(stays: list[Residency]) -> None:
    """Prefetch: each frame's next stay begins right after the previous page's last use (module doc)."""
    previous: dict[int, Residency] = {}
    for stay in stays:  # in the order they begin, so per frame in order too
        before = previous.get(stay.frame)
        stay.load_step = 0 if before is None else before.last_use + 1
        if before is not None:
            before.evict_step = stay.load_step
        previous[stay.frame] = stay
