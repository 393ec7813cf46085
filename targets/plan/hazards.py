"""Checking a static plan step by step: every kernel reads the bytes it expects, and never clobbers them.

Rule: the check trusts neither the memory planner nor the fusion groups. It
replays the plan over the arena, remembering which tensor's data each byte range
holds (a view's data is its source's). Graph inputs are there before the first
step. Each step must find every arena operand's bytes holding that operand's
data; its output may share bytes with an operand only in place: the very same
range, read by a pointwise node of the kernel (ir/aliasing.py). After the
last step every graph output's bytes must hold its data. A failure is a
`PlanHazardError` naming the step, the kernel and the tensors: a compiler bug,
never a user error, caught before an artifact with wrong numbers is written.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence

from ir import HaiError, Value
from ir.aliasing import is_view


class PlanHazardError(HaiError):
    """The static plan would read bytes that another tensor has overwritten."""


@dataclasses.dataclass(frozen=True)
class Access:
    """One arena operand or result of a step: the IR value and its byte range."""

    value: Value
    offset: int
    nbytes: int

    @property
    def end(self) -> int:
        return self.offset + self.nbytes


@dataclasses.dataclass(frozen=True)
class StepAccesses:
    """What one step reads and writes in the arena, and the IR nodes it runs."""

    kernel: str
    reads: tuple[Access, ...]
    writes: tuple[Access, ...]
    nodes: tuple[str, ...] = ()
    in_place: tuple[Value, ...] = ()  # operands the kernel may write over (FusionGroup.in_place_operands)


def data_root(value: Value) -> Value:
    """The value whose data `value` is: views followed back to their source."""
    while value.producer is not None and is_view(value.producer):
        source = value.producer.operands[0]
        assert source is not None
        value = source
    return value


class ArenaContents:
    """Which tensor's data each byte range of the arena holds (disjoint intervals)."""

    def __init__(self) -> None:
        self.intervals: list[tuple[int, int, Value]] = []

    def write(self, access: Access) -> None:
        if not access.nbytes:
            return
        kept = [(s, e, v) for s, e, v in self.intervals if e <= access.offset or s >= access.end]
        for s, e, v in self.intervals:
            if s < access.offset < e:
                kept.append((s, access.offset, v))
            if s < access.end < e:
                kept.append((access.end, e, v))
        kept.append((access.offset, access.end, data_root(access.value)))
        self.intervals = sorted(kept, key=lambda t: t[0])

    def holder(self, access: Access) -> Value | None:
        """The value whose data is in the access's bytes (None: nothing whole, or a mix)."""
        want = data_root(access.value)
        covered = access.offset
        for s, e, v in self.intervals:
            if e <= covered or s >= access.end:
                continue
            if s > covered or v is not want:
                return v if s <= covered else None
            covered = e
            if covered >= access.end:
                return want
        return None if access.nbytes else want


def check_plan(inputs: Sequence[Access], steps: Sequence[StepAccesses], outputs: Sequence[Access]) -> None:
    """Replay the plan; a PlanHazardError at the first read of clobbered bytes or illegal overlap."""
    arena = ArenaContents()
    for access in inputs:
        arena.write(access)
    for index, step in enumerate(steps):
        where = f"step {index} (kernel {step.kernel}, nodes {', '.join(step.nodes) or '-'})"
        for read in step.reads:
            held = arena.holder(read)
            if held is not data_root(read.value):
                other = f"%{held.name}" if held is not None else "other data"
                raise PlanHazardError(
                    f"{where} reads %{read.value.name} at bytes [{read.offset}, {read.end}), "
                    f"which hold {other}: the memory plan or the kernel order is wrong"
                )
        for write in step.writes:
            for read in step.reads:
                if read.offset < write.end and write.offset < read.end and not _in_place(read, write, step):
                    raise PlanHazardError(
                        f"{where} writes %{write.value.name} at bytes [{write.offset}, {write.end}) "
                        f"over its operand %{read.value.name} at [{read.offset}, {read.end}) "
                        "while reading it: the memory plan ignores the fused kernel"
                    )
        for write in step.writes:
            arena.write(write)
    for access in outputs:
        if arena.holder(access) is not data_root(access.value):
            raise PlanHazardError(
                f"graph output %{access.value.name} at bytes [{access.offset}, {access.end}) does not hold "
                "its data after the last step"
            )


def _in_place(read: Access, write: Access, step: StepAccesses) -> bool:
    """An overlap is legal when it is the very same range, over an operand the kernel may overwrite."""
    if (read.offset, read.nbytes) != (write.offset, write.nbytes):
        return False
    root = data_root(read.value)
    return any(data_root(v) is root for v in step.in_place)
