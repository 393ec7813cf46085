"""The static plan's loop spans: each `LoopBegin`..`LoopEnd` of the graph as a `LoopSpan` over its steps.

Rule: a span's steps are the kernels whose anchors lie between its LoopBegin
and its LoopEnd in node order (ir/loops.py); its slots are those of the
values the two ends read and give (runtime/artifact.py `LoopSpan` says what
the runtime does with each). Spans come in LoopBegin order, each naming the
span around it (`parent`). For the hazard check, `replay` writes the accesses
out as the runtime makes them: each span's steps twice (the second iteration
sees what the first left), between the runtime's copies as steps of their own
(reads, then writes: the runtime reads every source before it writes).
"""

from __future__ import annotations

import bisect
import dataclasses
from collections.abc import Callable, Sequence

from ir import Graph, Node, Value
from ir.loops import spans
from ir.ops.loop_span import end_layout
from runtime.artifact import Copy, Guard, LoopSpan, Slot
from targets.plan.hazards import Access, StepAccesses

SlotOf = Callable[[Value, bool], Slot]
"""The slot of a value's bytes (True: the runtime writes it)."""
PlaceOf = Callable[[Slot], int]
"""A slot's absolute byte offset for the hazard check (`PlanBuilder.absolute_offset`)."""
GuardsOf = Callable[[Node], tuple[Guard, ...]]
"""The guards a node runs under (`PlanBuilder.guards`): a span's, its LoopBegin's."""


class LoopPlan:
    """The spans of a planned graph whose kernels' anchors are `anchors`, in step order."""

    def __init__(
        self, graph: Graph, anchors: Sequence[Node], slot_of: SlotOf, place_of: PlaceOf, guards: GuardsOf
    ) -> None:
        position = {node: k for k, node in enumerate(graph.nodes)}
        steps = [position[a] for a in anchors]
        self.slot_of, self.place_of, self.guards = slot_of, place_of, guards
        self.records: list[LoopSpan] = []
        self.accesses: list[tuple[StepAccesses, ...]] = []
        open_spans: list[tuple[int, int]] = []  # (index, LoopEnd position) of the spans around
        for begin, end in spans(graph):
            while open_spans and open_spans[-1][1] < position[begin]:
                open_spans.pop()
            parent = open_spans[-1][0] if open_spans else -1
            start, stop = (bisect.bisect_left(steps, position[n]) for n in (begin, end))
            self.records.append(self._record(begin, end, start, stop, parent))
            self.accesses.append(self._accesses(begin, end))
            open_spans.append((len(self.records) - 1, position[end]))

    def _record(self, begin: Node, end: Node, start: int, stop: int, parent: int) -> LoopSpan:
        ends = _Ends(begin, end)
        read, write = (lambda v: self.slot_of(v, False)), (lambda v: self.slot_of(v, True))
        iteration, condition, *carried = begin.results
        return LoopSpan(
            name=begin.name or begin.attrs["loop"],
            start=start,
            stop=stop,
            next_condition=read(ends.next_condition),
            parent=parent,
            max_trips=end.attrs["trip_count"] if ends.stacked else -1,
            trip_count=read(ends.trip_count) if ends.trip_count is not None else None,
            condition=read(ends.condition) if ends.condition is not None else None,
            iteration=write(iteration),
            body_condition=write(condition),
            enter=tuple(Copy(read(a), write(b)) for a, b in zip(ends.initial, carried, strict=True)),
            carry=tuple(Copy(read(a), write(b)) for a, b in zip(ends.gives, carried, strict=True)),
            scans=tuple(Copy(read(a), write(b)) for a, b in zip(ends.scans, ends.stacked, strict=True)),
            exit=tuple(Copy(read(a), write(b)) for a, b in zip(carried, ends.finals, strict=True)),
            guards=self.guards(begin),
        )

    def _access(self, value: Value, written: bool) -> list[Access]:
        slot = self.slot_of(value, written)
        return [] if slot.kind == "weight" else [Access(value, self.place_of(slot), slot.nbytes)]

    def _step(self, name: str, reads: Sequence[Value], writes: Sequence[Value]) -> StepAccesses:
        found = [[a for v in values for a in self._access(v, written)]
                 for values, written in ((reads, False), (writes, True))]  # fmt: skip
        return StepAccesses(name, tuple(found[0]), tuple(found[1]))

    def _accesses(self, begin: Node, end: Node) -> tuple[StepAccesses, ...]:
        """The runtime's work as steps: entering, after an iteration (reads, then writes), leaving."""
        ends = _Ends(begin, end)
        state = [*begin.results, *ends.stacked]
        entered = [v for v in (ends.trip_count, ends.condition, *ends.initial) if v is not None]
        loop = begin.attrs["loop"]
        return (
            self._step(f"enter loop {loop}", entered, state),
            self._step(
                f"end of an iteration of {loop}",
                [ends.next_condition, *ends.gives, *ends.scans, *ends.stacked],
                [],
            ),  # fmt: skip
            self._step(f"next iteration of {loop}", [], state),
            self._step(f"leave loop {loop}", begin.results[2:], ends.finals),
        )

    def replay(self, steps: Sequence[StepAccesses]) -> list[StepAccesses]:
        """`steps` (one per plan step) as the runtime makes them, each span's twice (module rule)."""
        children: dict[int, list[int]] = {}
        for k, record in enumerate(self.records):
            children.setdefault(record.parent, []).append(k)

        def run(start: int, stop: int, inner: list[int]) -> list[StepAccesses]:
            out: list[StepAccesses] = []
            index = start
            for k in inner:
                record, (enter, after, then, leave) = self.records[k], self.accesses[k]
                body = run(record.start, record.stop, children.get(k, []))
                out += [*steps[index : record.start], enter, *body, after, then, *body, after, then, leave]
                index = record.stop
            return out + list(steps[index:stop])

        return run(0, len(steps), children.get(-1, []))


def with_slots(span: LoopSpan, change: Callable[[Slot], Slot]) -> LoopSpan:
    """`span` with `change` applied to each of its slots (the writer makes weight offsets absolute)."""
    singles = ("next_condition", "trip_count", "condition", "iteration", "body_condition")
    fields: dict[str, object] = {
        name: change(slot) for name in singles if (slot := getattr(span, name)) is not None
    }
    for name in ("enter", "carry", "scans", "exit"):
        fields[name] = tuple(Copy(change(c.source), change(c.destination)) for c in getattr(span, name))
    fields["guards"] = tuple(Guard(change(g.slot), g.when) for g in span.guards)
    return dataclasses.replace(span, **fields)  # type: ignore[arg-type]


class _Ends:
    """What a span's LoopBegin reads and LoopEnd reads and gives, by role (ir/ops/loop_span.py)."""

    def __init__(self, begin: Node, end: Node) -> None:
        operands = list(begin.operands) + [None] * (2 - len(begin.operands))
        self.trip_count, self.condition = operands[0], operands[1]
        self.initial = [v for v in operands[2:] if v is not None]
        carried, scans = end_layout(len(end.operands), end.attrs["carried"])
        given = [v for v in end.operands if v is not None]
        self.next_condition = given[0]
        self.gives = given[1 : 1 + carried]
        self.scans = given[1 + carried : 1 + carried + scans]
        self.finals = end.results[:carried]
        self.stacked = end.results[carried:]
