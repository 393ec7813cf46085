"""Choosing and building the one-call entry function of a static plan (option `entry=auto|on|off`).

Rule: the entry function (targets/entry.py) replaces the step-by-step calls only
when every step's kernel can be a subroutine, no step is guarded (a branch of
an If decided at run time, which the runtime checks between calls) and no loop
span repeats steps (a Loop run at run time); `auto` then uses it and otherwise
keeps the steps, `on` makes a kernel that cannot an error naming it, `off` never
builds one. Should the entry fail to compile all the same, `auto` warns
(EntryFallbackWarning) and keeps the steps, and `on` fails. Its calls take
every argument at the absolute byte offset the artifact will have: arena
slots at their offset, graph outputs at their binding's place in the arena,
graph inputs in their own pointer parameter (`input_place`), weights where
`write_artifact` lays them out (the layout it is given, so the offsets agree). The steps stay in the
manifest for provenance and profiling; the library exports their kernels too, and the
entry (or each segment) names it as its executable.

A paged plan gets one function per segment (paging.py `segment_bounds`) instead,
each taking the page pool in place of `weights.bin`, every weight at the place
its page has in the pool while that step runs (paging.py `pool_offset`). Under
`auto` only when segments hold 2 steps or more on average: a segment function
costs about 6.6 KiB of library (measured on a chain of one-step segments), more
than the Python call it saves is worth where pages are read between steps.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any

from ir import HaiError
from ir.errors import HaiWarning
from runtime.artifact import ExecutionPlan, Segment
from targets.plan.paging import WeightLayout, pool_offset, segment_bounds
from targets.plan.static_plan import StaticPlan


class EntryFunctionError(HaiError):
    """`entry=on` was asked for a plan whose kernels cannot all be called from one entry function."""


class EntryFallbackWarning(HaiWarning):
    """`entry=auto` kept step-by-step calls because the entry function failed to compile (a compiler bug)."""


def entry_calls(static: StaticPlan, layout: WeightLayout) -> list[Any]:
    """The EntryCall of every step, each argument at its absolute offset in the arena or `weights.bin`
    (in the page pool for a paged plan)."""
    from targets.artifact import resolve_weight_slots
    from targets.entry import ARENA, WEIGHTS, EntryCall, input_place

    plan = resolve_weight_slots(static.plan, layout[0])
    paging = plan.paging
    placements = paging.placements() if paging is not None else []
    outputs = {b.name: b.offset or 0 for b in static.outputs}
    inputs = {b.name: index for index, b in enumerate(static.inputs)}
    calls = []
    for index, (step, kernel) in enumerate(zip(plan.steps, static.kernels, strict=True)):
        offsets = []
        for slot in step.args:
            if slot.kind == "weight" and paging is not None:
                offsets.append((WEIGHTS, pool_offset(paging, index, slot.offset, placements)))
            elif slot.kind == "weight":
                offsets.append((WEIGHTS, slot.offset))
            elif slot.kind == "arena":
                offsets.append((ARENA, slot.offset))
            elif slot.kind == "input":
                offsets.append((input_place(inputs[slot.name]), slot.offset))
            else:
                offsets.append((ARENA, outputs[slot.name] + slot.offset))
        calls.append(EntryCall(kernel, tuple(offsets)))
    return calls


def entry_capable(target: Any) -> bool:
    """Whether `target`'s kernels can be called from one LLVM entry function (not OpenCL's: the runtime
    launches each of its kernels)."""
    from targets.registry import get_target

    return get_target(target.name).kernel_format == "llvm"


def with_entry(
    static: StaticPlan, mode: str, target: Any, layout: WeightLayout
) -> tuple[StaticPlan, list[Path] | None]:
    """(the plan naming the entry or its segments, the object files of their library) when `mode` and
    the kernels allow, else (static, None). `layout`: the weights' entries in `weights.bin` and its size.
    The driver links the objects with the final plan's digest (runtime/plan_digest.py)."""
    from targets.entry import subroutine_refusal

    if mode == "off" or not static.kernels or not entry_capable(target):
        return static, None
    paging = static.plan.paging
    if mode == "auto" and paging is not None and len(segment_bounds(paging)) * 2 > len(static.plan.steps):
        return static, None  # segments of under 2 steps on average: each costs more library than it saves
    refusals = [f"{k.name} ({', '.join(k.sources) or 'copy'}): {why}"
                for k in static.kernels if (why := subroutine_refusal(k)) is not None]  # fmt: skip
    refusals += [f"{step.kernel} ({', '.join(step.nodes)}): runs only when its guards hold (an If "
                 "decided at run time), which the runtime checks between calls"
                 for step in static.plan.steps if step.guards]  # fmt: skip
    refusals += [f"loop {loop.name}: its steps run again per iteration, which the runtime decides between "
                 "calls" for loop in static.plan.loops]  # fmt: skip
    if refusals:
        if mode == "on":
            raise EntryFunctionError(
                "entry=on, but these kernels cannot be called from one entry function:\n  "
                + "\n  ".join(refusals)
                + "\nuse entry=auto to keep step-by-step calls for such models"
            )
        return static, None
    try:
        plan, objects = entry_plan_objects(static, layout, target)
    except Exception as exc:  # TVM raises its own error types; a failed entry must not fail `auto`
        if mode == "on":
            raise EntryFunctionError(f"entry=on, but the entry function failed to compile: {exc}") from exc
        warnings.warn(EntryFallbackWarning(f"entry function not built, calling kernels one by one: {exc}"),
                      stacklevel=2)  # fmt: skip
        return static, None
    return dataclasses.replace(static, plan=plan), objects


def entry_plan_objects(
    static: StaticPlan, layout: WeightLayout, target: Any
) -> tuple[ExecutionPlan, list[Path]]:
    """The plan naming its entry (or segments) and the object files of the library exporting them."""
    from targets.entry import ENTRY_SYMBOL, BufferSizes, entry_objects, segment_symbol

    calls = entry_calls(static, layout)
    paging = static.plan.paging
    executable = static.plan.steps[0].executable  # the entry's library is its kernels' (one device)
    inputs = tuple(b.nbytes for b in static.inputs)
    if paging is None:
        sizes = BufferSizes(static.plan.arena_size, layout[1], inputs)
        objects = entry_objects([(ENTRY_SYMBOL, calls)], sizes, target)
        return dataclasses.replace(static.plan, entry=ENTRY_SYMBOL, entry_executable=executable), objects
    segments = tuple(Segment(segment_symbol(k), start, stop, executable)
                     for k, (start, stop) in enumerate(segment_bounds(paging)))  # fmt: skip
    sizes = BufferSizes(static.plan.arena_size, paging.frames * paging.page_size, inputs)
    functions = [(s.symbol, calls[s.start : s.stop]) for s in segments]
    return dataclasses.replace(static.plan, segments=segments), entry_objects(functions, sizes, target)
