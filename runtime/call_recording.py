"""Recording a plan's calls over an arena: every step's launch prepared once, ready to run per inference.

Rule: each step of the plan becomes one `Call`, recorded on its device once (`Device.record`: kernel
looked up, arguments converted) over one arena: one call when the plan has an entry, one per segment
for a paged plan with segments. An argument is a typed view of the arena or the weights (a weight of a
paged plan: of the pool frame the static schedule gives its page for that step), or, for an input,
`Unbound` (a run binds the caller's array). A call on another device than the one before waits for
that one first, and so does a guarded step (its condition is read from memory the step before may
still write); a transfer step (runtime/plan_transfers.py) is a call with no inputs to bind.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np

from runtime.arena_views import typed_view
from runtime.artifact import Guard, Manifest, Slot, Step, TensorBinding, numpy_dtype
from runtime.hai import Device, KernelArg, Unbound
from runtime.loops import LoopRunner
from runtime.pager import Pager
from runtime.plan_devices import plan_calls
from runtime.plan_transfers import TransferCounts, transfer_call

InputArgument = tuple[Callable[[int, np.ndarray], None], str, int, Slot | None]
"""A launch's `bind`, the input's name, the argument's position, and its slot (None: the whole input)."""
GuardReader = tuple[str, np.ndarray | None, Slot, bool]
"""A step's guard as a run reads it: the input's name (or ""), the arena view of its bool (None for an
input), its slot, and the truth the step needs."""
Call = tuple[
    Callable[[], None], tuple[InputArgument, ...], range, Callable[[], None] | None, tuple[GuardReader, ...]
]
"""A recorded launch's `run`, its inputs to bind, the plan steps it runs (their pages come first),
the `synchronize` of the previous call's device when that is another one or the step is guarded
(None: no wait), and the step's guards (all must hold for it to run: a branch of an If)."""


class CallRecorder:
    """Records the calls of `manifest`'s plan over any arena of the model (module rule); `weights` is the
    mapped weights or, for a paged plan, the `pager`'s pool."""

    def __init__(
        self,
        manifest: Manifest,
        devices: Mapping[str, Device],
        executables: Mapping[str, Any],
        weights: np.ndarray,
        pager: Pager | None,
        transfers: TransferCounts,
    ) -> None:
        self.manifest = manifest
        self.devices = devices
        self.executables = executables
        self.weights = weights
        self.pager = pager
        self.transfers = transfers
        self.placements = manifest.plan.paging.placements() if manifest.plan.paging is not None else []
        self.bindings: dict[str, TensorBinding] = {b.name: b for b in manifest.inputs + manifest.outputs}

    def prepare_calls(
        self, arena: np.ndarray
    ) -> tuple[list[Step], list[Call], tuple[Callable[[], None], ...]]:
        """Every call over `arena` and the step it runs (module rule); the third result is the
        `synchronize` of every device a run leaves busy."""
        calls: list[Call] = []
        steps: list[Step] = []
        busy: dict[str, None] = {}  # devices launched on since they were last synchronized, in order
        for step, runs, own_step in plan_calls(self.manifest, len(self.weights)):
            record = self._transfer_call if step.transfer_from else self._kernel_call
            run, fed = record(step, own_step, arena)
            previous = steps[-1].device if steps else step.device
            wait = None
            if previous != step.device:
                wait = self.devices[previous].synchronize
                busy.pop(previous)
            elif step.guards:  # its conditions are read from memory the step before may still write
                wait = self.devices[previous].synchronize
            busy[step.device] = None
            guards = tuple(self._guard_reader(g, arena) for g in step.guards)
            calls.append((run, fed, runs, wait, guards))
            steps.append(step)
        return steps, calls, tuple(self.devices[name].synchronize for name in busy)

    def loop_runner(self, arena: np.ndarray) -> LoopRunner | None:
        """The step order of the plan's Loops over `arena` (runtime/loops.py); None for a plan without
        Loops (its calls run in plan order)."""
        if not self.manifest.plan.loops:
            return None
        locate = functools.partial(self.slot_location, step=None, arena=arena)
        return LoopRunner(self.manifest.plan.loops, len(self.manifest.plan.steps), locate, self.manifest.name)

    def slot_location(self, slot: Slot, step: int | None, arena: np.ndarray) -> tuple[np.ndarray, int]:
        """(base array, absolute byte offset) of an arena, weight or output slot (outputs: their binding).

        A weight of a paged plan lies in the pool where the schedule puts its page for `step` (None:
        the whole pool, an entry's argument)."""
        if slot.kind == "weight" and self.pager is not None and step is not None:
            size = self.pager.plan.page_size
            return self.weights, self.placements[step][slot.offset // size] * size + slot.offset % size
        if slot.kind == "weight":
            return self.weights, slot.offset
        if slot.kind == "arena":
            return arena, slot.offset
        offset = self.bindings[slot.name].offset
        assert offset is not None
        return arena, offset + slot.offset

    def _slot_argument(self, slot: Slot, step: int | None, arena: np.ndarray) -> KernelArg:
        """The launch argument for `slot` (module rule)."""
        if slot.kind == "input":
            return Unbound(slot.shape, numpy_dtype(slot.dtype))
        base, offset = self.slot_location(slot, step, arena)
        return typed_view(base, offset, slot.shape, slot.dtype)

    def _guard_reader(self, guard: Guard, arena: np.ndarray) -> GuardReader:
        """What a run reads to decide whether a guarded step runs (`GuardReader`)."""
        if guard.slot.kind == "input":
            return guard.slot.name, None, guard.slot, guard.when
        base, offset = self.slot_location(guard.slot, None, arena)
        return "", typed_view(base, offset, guard.slot.shape, guard.slot.dtype), guard.slot, guard.when

    def _input_part(self, slot: Slot) -> Slot | None:
        """None when input `slot` is its whole input, else the slot (a run binds a view of the input)."""
        return None if slot.offset == 0 and slot.nbytes == self.bindings[slot.name].nbytes else slot

    def _kernel_call(
        self, step: Step, own_step: int | None, arena: np.ndarray
    ) -> tuple[Callable[[], None], tuple[InputArgument, ...]]:
        """The recorded launch of kernel `step` over `arena` on its device, and the inputs a run binds."""
        args = [self._slot_argument(slot, own_step, arena) for slot in step.args]
        launch = self.devices[step.device].record(self.executables[step.executable], step.kernel, args)
        fed = tuple(
            (launch.bind, s.name, i, self._input_part(s))
            for i, s in enumerate(step.args)
            if s.kind == "input"
        )
        return launch.run, fed

    def _transfer_call(
        self, step: Step, own_step: int | None, arena: np.ndarray
    ) -> tuple[Callable[[], None], tuple[()]]:
        """The call of transfer `step` over `arena`, which makes its value visible on another device (no
        inputs to bind: runtime/plan_transfers.py)."""
        view = self._slot_argument(step.args[0], own_step, arena)
        moved = view if isinstance(view, np.ndarray) else None  # an input: the launches take it
        return transfer_call(step, self.devices, moved, self.transfers), ()
