"""Running loop spans: the steps of an ONNX Loop repeated at run time (`ExecutionPlan.loops`).

Rule: `LoopRunner.order(bound)` gives the plan's step indices in the order they
run: each span's steps once per iteration, with what `LoopSpan` says happens
around them (skipped whole when its guards do not hold; trip count and
condition read, carried values copied, scan rows written, results copied
out) done between the steps, on the host's
memory (a loop's steps run on the host device: `check_loops`). The caller runs
each step as it gets its index; the generator resumes only after that, so it
reads what the step wrote. A plan without loops gets `range(steps)`.

`check_loops` holds the manifest's loop invariants: spans within the steps,
properly nested under their parents, their steps on the cpu device, no entry,
segments or paging (those call steps in one fixed order), every slot inside
its space, copies between equal byte counts, scan destinations `max_trips`
rows of their sources.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence

import numpy as np

from runtime.artifact import Copy, LoopSpan, Manifest, Slot, numpy_dtype
from runtime.errors import ModelInputError

Bound = Mapping[str, np.ndarray]
View = Callable[[Bound], np.ndarray]
"""A slot's typed array for one run (an input's view of the caller's array; else fixed)."""
Locate = Callable[[Slot], tuple[np.ndarray, int]]
"""(base array, absolute byte offset) of an arena, weight or output slot (runtime/call_recording.py
`CallRecorder.slot_location`)."""
Fail = Callable[[str], None]


def typed(base: np.ndarray, offset: int, slot: Slot) -> np.ndarray:
    dtype = numpy_dtype(slot.dtype)
    count = int(np.prod(slot.shape, dtype=np.int64))
    return base[offset : offset + count * dtype.itemsize].view(dtype).reshape(slot.shape)


def slot_view(slot: Slot, locate: Locate) -> View:
    """How a run finds `slot`'s array."""
    if slot.kind == "input":
        return lambda bound: typed(bound[slot.name].reshape(-1).view(np.uint8), slot.offset, slot)
    base, offset = locate(slot)
    array = typed(base, offset, slot)
    return lambda bound: array


class _Span:
    """One LoopSpan with its slots resolved and the spans directly inside it."""

    def __init__(self, span: LoopSpan, locate: Locate) -> None:
        self.span = span
        self.children: list[_Span] = []

        def view(slot: Slot | None) -> View | None:
            return None if slot is None else slot_view(slot, locate)

        def copies(items: Iterable[Copy]) -> list[tuple[View, View]]:
            return [(slot_view(c.source, locate), slot_view(c.destination, locate)) for c in items]

        self.trip_count, self.condition = view(span.trip_count), view(span.condition)
        self.iteration, self.body_condition = view(span.iteration), view(span.body_condition)
        self.next_condition = slot_view(span.next_condition, locate)
        self.enter, self.carry = copies(span.enter), copies(span.carry)
        self.scans, self.exit = copies(span.scans), copies(span.exit)
        self.guards = [(slot_view(g.slot, locate), g.when) for g in span.guards]


class LoopRunner:
    """The step order of a plan with `count` steps and these loop spans (module rule)."""

    def __init__(self, spans: Sequence[LoopSpan], count: int, locate: Locate, model: str) -> None:
        self.count = count
        self.model = model
        resolved = [_Span(span, locate) for span in spans]
        self.top: list[_Span] = []
        for span in resolved:
            parent = span.span.parent
            (self.top if parent < 0 else resolved[parent].children).append(span)

    def order(self, bound: Bound) -> Iterable[int]:
        """The step indices of one run, in order (module rule)."""
        if not self.top:
            return range(self.count)
        return self._steps(0, self.count, self.top, bound)

    def _steps(self, start: int, stop: int, children: list[_Span], bound: Bound) -> Iterator[int]:
        index = start
        for child in children:
            yield from range(index, child.span.start)
            yield from self._loop(child, bound)
            index = child.span.stop
        yield from range(index, stop)

    def _loop(self, loop: _Span, bound: Bound) -> Iterator[int]:
        span = loop.span
        if not all(bool(view(bound).reshape(-1)[0]) == when for view, when in loop.guards):
            return  # a branch not taken: the span's results are never read
        limit = None if loop.trip_count is None else int(loop.trip_count(bound).reshape(-1)[0])
        cond = True if loop.condition is None else bool(loop.condition(bound).reshape(-1)[0])
        _copy(loop.enter, bound)
        trips = 0
        while cond and (limit is None or trips < limit):
            if loop.scans and trips >= span.max_trips:
                raise self._bound_error(span, f"runs past {span.max_trips} iterations")
            if loop.iteration is not None:
                loop.iteration(bound)[...] = trips
            if loop.body_condition is not None:
                loop.body_condition(bound)[...] = cond
            yield from self._steps(span.start, span.stop, loop.children, bound)
            cond = bool(loop.next_condition(bound).reshape(-1)[0])
            for source, destination in loop.scans:
                destination(bound)[trips] = source(bound)
            _copy(loop.carry, bound)
            trips += 1
        if loop.scans and trips != span.max_trips:
            raise self._bound_error(span, f"stopped after {trips} iterations")
        _copy(loop.exit, bound)

    def _bound_error(self, span: LoopSpan, what: str) -> ModelInputError:
        return ModelInputError(
            f"model {self.model!r}: Loop {span.name!r} {what} on these inputs; its scan outputs were "
            f"compiled for {span.max_trips} rows (a static plan), so it must run exactly that many"
        )


def _copy(copies: list[tuple[View, View]], bound: Bound) -> None:
    """Every source read before any destination is written (a carried value may feed another)."""
    sources = [np.array(source(bound)) for source, _ in copies]
    for (_, destination), array in zip(copies, sources):
        destination(bound)[...] = array.reshape(destination(bound).shape)


# -- manifest invariants ----------------------------------------------------------------------------


def check_loops(manifest: Manifest, in_space: Callable[[str, Slot], None], fail: Fail) -> None:
    """The module's invariants of `manifest.plan.loops`; `in_space(what, slot)` checks one slot's range."""
    plan = manifest.plan
    if plan.loops and (plan.entry is not None or plan.segments or plan.paging is not None):
        fail("the plan repeats loop spans, but it calls its steps through an entry or pages its weights")
    for index, span in enumerate(plan.loops):
        what = f"loop {index} ({span.name})"
        outer = (0, len(plan.steps)) if span.parent < 0 else None
        if 0 <= span.parent < index:
            parent = plan.loops[span.parent]
            outer = (parent.start, parent.stop)
        if outer is None or not outer[0] <= span.start <= span.stop <= outer[1]:
            fail(f"{what} spans steps [{span.start}, {span.stop}) outside its parent's or the plan's")
        for step in plan.steps[span.start : span.stop]:
            if step.device != "cpu":
                fail(f"{what} repeats a step on {step.device}; loops run on the cpu device only")
        _check_slots(span, what, in_space, fail)


def written_by_loops(spans: Sequence[LoopSpan]) -> dict[int, list[Slot]]:
    """The slots the runtime writes for the spans, by the step before which the first is written."""
    writes: dict[int, list[Slot]] = {}
    for span in spans:
        slots = [span.iteration, span.body_condition]
        slots += [c.destination for group in (span.enter, span.carry, span.scans, span.exit) for c in group]
        writes.setdefault(span.start, []).extend(s for s in slots if s is not None)
    return writes


def _check_slots(span: LoopSpan, what: str, in_space: Callable[[str, Slot], None], fail: Fail) -> None:
    singles = {"trip_count": ("int64", span.trip_count), "condition": ("bool", span.condition),
               "iteration": ("int64", span.iteration), "body_condition": ("bool", span.body_condition),
               "next_condition": ("bool", span.next_condition)}  # fmt: skip
    for name, (dtype, slot) in singles.items():
        if slot is not None:
            if slot.dtype != dtype or int(np.prod(slot.shape, dtype=np.int64)) != 1:
                fail(f"{what}: its {name} is {slot.dtype}{list(slot.shape)}, not one {dtype}")
            in_space(f"{what}: its {name}", slot)
    for k, guard in enumerate(span.guards):
        if guard.slot.dtype != "bool" or guard.slot.nbytes != 1 or guard.slot.kind == "weight":
            fail(f"{what}: its guard #{k} is a {guard.slot.kind} {guard.slot.dtype}; a guard reads one bool")
        in_space(f"{what}: its guard #{k}", guard.slot)
    for group in ("enter", "carry", "scans", "exit"):
        for k, copy in enumerate(getattr(span, group)):
            where = f"{what}: {group} copy #{k}"
            in_space(where, copy.source)
            in_space(where, copy.destination)
            if copy.destination.kind in ("weight", "input"):
                fail(f"{where} writes a {copy.destination.kind}")
            rows = span.max_trips if group == "scans" else 1
            if copy.destination.nbytes != rows * copy.source.nbytes or (
                group == "scans" and copy.destination.shape[:1] != (span.max_trips,)
            ):
                fail(f"{where} copies {copy.source.nbytes} bytes into {copy.destination.nbytes}")
