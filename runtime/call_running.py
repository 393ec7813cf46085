"""Running recorded calls (runtime/call_recording.py) on one inference's bound inputs.

Rule: the calls run in plan order, or in the order a plan's Loops give (`LoopRunner.order`: computed
per run, since a Loop's trip count and condition are read from that run's inputs and arena). Before
each call: its wait (the previous device's `synchronize`), its pages (a paged plan), and its guards (a
branch of an If not taken is skipped); then each input is bound (the whole array, or an aligned view of
its part) and the launch runs. A `KernelError` names the step, its kernel and nodes, and the artifact.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path

import numpy as np

from runtime.arena_views import typed_view
from runtime.artifact import Step
from runtime.call_recording import Call, GuardReader
from runtime.errors import KernelError
from runtime.loops import LoopRunner
from runtime.pager import Pager


def guard_holds(guard: GuardReader, bound: Mapping[str, np.ndarray]) -> bool:
    """Whether a guarded step's condition (`GuardReader`) has the truth it needs."""
    name, view, slot, when = guard
    if view is None:
        view = bound[name].reshape(-1).view(np.uint8)[slot.offset : slot.offset + 1]
    return bool(view.reshape(-1)[0]) == when


def run_calls(
    calls: Sequence[Call],
    bound: Mapping[str, np.ndarray],
    indices: range,
    first_waits: bool,
    loops: LoopRunner | None,
    pager: Pager | None,
    steps: Sequence[Step],
    directory: Path,
) -> None:
    """Run `calls[indices]` on the `bound` inputs (module rule); `first_waits` False skips the wait before
    the first (runtime/pipeline.py waits on the fence of the stage before instead: another device's).
    With `loops` (over the arena the calls were recorded on), all the calls run in the order it gives.
    `steps` (one a call) and `directory` name a failed kernel."""
    order: Iterable[int] = indices if loops is None else loops.order(bound)
    index = indices.start
    try:
        for index in order:
            run, inputs, runs, wait, guards = calls[index]
            if wait is not None and (first_waits or index != indices.start):
                wait()
            if pager is not None:
                for planned in runs:
                    pager.before_step(planned)
            if guards and not all(guard_holds(guard, bound) for guard in guards):
                continue  # a branch not taken (Step.guards)
            for bind, name, position, slot in inputs:
                if slot is None:  # the whole input (`bound` keeps the array alive)
                    bind(position, bound[name])
                else:  # aligned: slot offsets are multiples of 64 (manifest_checks)
                    array = bound[name].reshape(-1).view(np.uint8)
                    bind(position, typed_view(array, slot.offset, slot.shape, slot.dtype))
            run()
    except KernelError as exc:
        step = steps[index]
        raise KernelError(
            f"step {index} of {directory}: kernel {step.kernel!r} (from {', '.join(step.nodes)}) "
            f"failed: {exc}"
        ) from exc
