"""Choosing and building the one-call entry function of a static plan (option `entry=auto|on|off`).

Rule: the entry function (targets/entry.py) replaces the step-by-step calls only
when every step's kernel can be a subroutine; `auto` then uses it and otherwise
keeps the steps, `on` makes a kernel that cannot an error naming it, `off` never
builds one. Should the entry fail to compile all the same, `auto` warns
(EntryFallbackWarning) and keeps the steps, and `on` fails. Its calls take
every argument at the absolute byte offset the artifact will have: arena
slots at their offset, graph outputs at their binding's place in the arena,
graph inputs in their own pointer parameter (`input_place`), weights where
`write_artifact` lays them out (the same `layout_weights`, so the offsets agree). The steps stay in the
manifest for provenance and profiling; the library exports their kernels too.
"""

from __future__ import annotations

import dataclasses
import warnings
from pathlib import Path
from typing import Any

from hai_compiler.compiler.plan import StaticPlan
from ir import HaiError


class EntryFunctionError(HaiError):
    """`entry=on` was asked for a plan whose kernels cannot all be called from one entry function."""


class EntryFallbackWarning(UserWarning):
    """`entry=auto` kept step-by-step calls because the entry function failed to compile (a compiler bug)."""


def entry_calls(static: StaticPlan) -> list[Any]:
    """The EntryCall of every step, each argument at its absolute offset in the arena or `weights.bin`."""
    from targets.artifact import layout_weights, resolve_weight_slots
    from targets.entry import ARENA, WEIGHTS, EntryCall, input_place

    layout, _ = layout_weights(static.weights)
    plan = resolve_weight_slots(static.plan, layout)
    outputs = {b.name: b.offset or 0 for b in static.outputs}
    inputs = {b.name: index for index, b in enumerate(static.inputs)}
    calls = []
    for step, kernel in zip(plan.steps, static.kernels, strict=True):
        offsets = []
        for slot in step.args:
            if slot.kind == "weight":
                offsets.append((WEIGHTS, slot.offset))
            elif slot.kind == "arena":
                offsets.append((ARENA, slot.offset))
            elif slot.kind == "input":
                offsets.append((input_place(inputs[slot.name]), slot.offset))
            else:
                offsets.append((ARENA, outputs[slot.name] + slot.offset))
        calls.append(EntryCall(kernel, tuple(offsets)))
    return calls


def with_entry(static: StaticPlan, mode: str, target: Any) -> tuple[StaticPlan, Path | None]:
    """(the plan naming the entry, its library) when `mode` and the kernels allow one, else (static, None)."""
    from targets.artifact import layout_weights
    from targets.entry import ENTRY_SYMBOL, BufferSizes, build_entry_library, subroutine_refusal

    if mode == "off" or not static.kernels:
        return static, None
    refusals = [f"{k.name} ({', '.join(k.sources) or 'copy'}): {why}"
                for k in static.kernels if (why := subroutine_refusal(k)) is not None]  # fmt: skip
    if refusals:
        if mode == "on":
            raise EntryFunctionError(
                "entry=on, but these kernels cannot be called from one entry function:\n  "
                + "\n  ".join(refusals)
                + "\nuse entry=auto to keep step-by-step calls for such models"
            )
        return static, None
    _, weights_size = layout_weights(static.weights)
    try:
        sizes = BufferSizes(static.plan.arena_size, weights_size, tuple(b.nbytes for b in static.inputs))
        library = build_entry_library(entry_calls(static), sizes, target)
    except Exception as exc:  # TVM raises its own error types; a failed entry must not fail `auto`
        if mode == "on":
            raise EntryFunctionError(f"entry=on, but the entry function failed to compile: {exc}") from exc
        warnings.warn(EntryFallbackWarning(f"entry function not built, calling kernels one by one: {exc}"),
                      stacklevel=2)  # fmt: skip
        return static, None
    plan = dataclasses.replace(static.plan, entry=ENTRY_SYMBOL)
    return dataclasses.replace(static, plan=plan), library
