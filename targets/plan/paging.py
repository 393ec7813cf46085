"""Paging a static plan's weights: their page layout in `weights.bin`, the page schedule, the segments.

Rule: the weights are placed in order of first use into pages of one fixed
size (targets/plan/weight_pages.py; a weight must fit one page whole, since a kernel
reads it contiguously: the `split-weights` pass cuts larger MatMul, Gemm and
Conv weights first when the compile knows it must page; a weight still larger
than the page size widens the pages to hold it, with a `WidePagesWarning`),
page `p` at byte `p * page_size` of `weights.bin`. Each
step needs the pages of the weights it reads; targets/plan/page_schedule.py
schedules them over the frames the budget leaves (Belady's MIN, prefetch).
The schedule is for one run, and a run reuses only what the previous one left
where its first step loads: so when the pages outnumber the frames, the most
used pages (then the first used) are pinned, resident from the first run on,
in all frames but the largest step's pages and PREFETCH_FRAMES, and every
later run reads only the others.
While step `i` runs, its weight at file offset `o` lies at byte
`frame * page_size + o % page_size` of the pool, `frame` being where the
schedule put page `o // page_size` for that step. The steps are grouped into
segments, each called at once: a new segment starts at every step that waits
for a page (one it needs that is not resident and already waited for) or that
evicts one, so a segment never waits once started and never evicts what its
own steps still read. Imports the compiler's passes and the artifact format.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections import Counter
from collections.abc import Sequence

from ir.errors import HaiError, HaiWarning
from ir.units import format_size
from runtime.artifact import ExecutionPlan, PageStep, Paging, Step, WeightEntry
from targets.plan.page_schedule import PageSchedule, schedule_pages, smallest_pool
from targets.plan.weight_pages import DEFAULT_ALIGNMENT, PageLayout, WeightTensor, cut_into_pages, step_pages

WeightLayout = tuple[tuple[WeightEntry, ...], int]  # the entries of weights.bin and its size
PREFETCH_FRAMES = 2
"""Frames beyond the largest step's pages left to the schedule when pages are pinned, so the reads for
the next steps overlap the running one."""


class WidePagesWarning(HaiWarning):
    """Weights larger than the page size, left whole, are paged in pages that hold the largest."""


def page_size_holding(weights: Sequence[WeightEntry], page_size: int) -> int:
    """`page_size`, or the least multiple of the weights' alignment that holds the largest of `weights`
    whole when that is larger (which warns, naming it)."""
    largest = max(weights, key=lambda w: w.nbytes, default=None)
    if largest is None or largest.nbytes <= page_size:
        return page_size
    wide = -(-largest.nbytes // DEFAULT_ALIGNMENT) * DEFAULT_ALIGNMENT
    warnings.warn(
        WidePagesWarning(
            f"weight {largest.name!r} ({format_size(largest.nbytes)}) is larger than a page of "
            f"{format_size(page_size)} and is read whole: weights are paged in pages of {format_size(wide)}"
        ),
        stacklevel=2,
    )
    return wide


@dataclasses.dataclass(frozen=True)
class WeightPages:
    """The weights of one plan cut into pages: the layout, the pages each step needs, the file layout."""

    pages: PageLayout
    needs: list[frozenset[int]]
    layout: WeightLayout

    @property
    def smallest_frames(self) -> int:
        """The fewest frames any schedule can run the steps with (the largest step's pages)."""
        return smallest_pool(self.needs)

    @property
    def page_size(self) -> int:
        return self.pages.page_size


def cut_weights(steps: Sequence[Step], weights: Sequence[WeightEntry], page_size: int) -> WeightPages:
    """The page layout of `weights` (shapes and dtypes as stored; offsets ignored) read by `steps`."""
    by_name = {w.name: w for w in weights}
    reads = [[s.name for s in step.args if s.kind == "weight"] for step in steps]
    order = list(dict.fromkeys(name for names in reads for name in names))
    order += [name for name in by_name if name not in order]  # stored but read by no step: last
    pages = cut_into_pages([WeightTensor(name, by_name[name].nbytes) for name in order], page_size)
    entries = tuple(
        dataclasses.replace(by_name[piece.tensor], offset=pages.file_offset(piece.page) + piece.page_offset)
        for piece in pages.pieces
    )
    end = pages.file_offset(pages.pages - 1) + pages.page_bytes[-1] if pages.pages else 0
    return WeightPages(pages, step_pages(pages, reads), (entries, end))


def paging_of(weight_pages: WeightPages, frames: int) -> Paging:
    """The manifest's paging facts: the MIN schedule with prefetch over `frames` frames, the pages of
    `pinned_pages` resident throughout."""
    needs = weight_pages.needs
    schedule = schedule_pages(needs, frames, weight_pages.page_size, pinned_pages(needs, frames))
    return Paging(weight_pages.page_size, frames, weight_pages.pages.page_bytes, page_steps(schedule))


def page_steps(schedule: PageSchedule) -> tuple[PageStep, ...]:
    """A page schedule as the manifest holds it: each step's needs, evictions and (page, frame) loads."""
    return tuple(
        PageStep(needs, evictions, tuple((load.page, load.frame) for load in loads))
        for needs, evictions, loads in zip(schedule.needs, schedule.evictions, schedule.loads, strict=True)
    )


def pinned_pages(needs: Sequence[frozenset[int]], frames: int) -> tuple[int, ...]:
    """The pages to keep resident from one run to the next (module doc), most used first."""
    uses = Counter(page for need in needs for page in need)
    room = frames - max((len(need) for need in needs), default=0) - PREFETCH_FRAMES
    if len(uses) <= frames or room <= 0:
        return ()
    first = {}
    for index, need in enumerate(needs):
        for page in need:
            first.setdefault(page, index)
    return tuple(sorted(sorted(uses, key=lambda p: (-uses[p], first[p], p))[:room]))


def pool_offset(paging: Paging, step: int, file_offset: int, placements: Sequence[dict[int, int]]) -> int:
    """Where the weight byte at `file_offset` of `weights.bin` lies in the pool while `step` runs."""
    size = paging.page_size
    return placements[step][file_offset // size] * size + file_offset % size


def segment_bounds(paging: Paging) -> list[tuple[int, int]]:
    """The `[start, stop)` step ranges of the segments (module doc: where one starts)."""
    starts, awaited = [], set()
    for index, step in enumerate(paging.schedule):
        awaited -= set(step.evictions)
        if index == 0 or step.evictions or not awaited.issuperset(step.needs):
            starts.append(index)
        awaited |= set(step.needs)
    return list(zip(starts, [*starts[1:], len(paging.schedule)], strict=True))


class LoopPagingError(HaiError):
    """A plan that repeats loop spans cannot page its weights (its page schedule is for one order)."""


def with_paging(plan: ExecutionPlan, paging: Paging) -> ExecutionPlan:
    if plan.loops:
        names = ", ".join(loop.name for loop in plan.loops)
        raise LoopPagingError(
            f"the weights do not fit the memory budget beside the rest, and paging them needs one fixed "
            f"step order, which Loop(s) {names} run at run time do not have: raise --memory-budget"
        )
    return dataclasses.replace(plan, paging=paging, entry=None, entry_executable=None, segments=())
