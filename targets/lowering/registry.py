"""The lowering registry: templates register with `@lowering("Op", ...)`; dispatch.py looks them up.

Rule: one template function per op, `fn(node, target, epilogue, layout) ->
LoweredKernel`; a later registration of an op replaces the earlier. This module
imports no template: every template imports it.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from ir.graph import Node
from targets.lowering.kernel import LoweredKernel
from targets.target import TargetDescription

LowerFn = Callable[[Node, TargetDescription, Sequence[Node], str], LoweredKernel]
LOWERINGS: dict[str, LowerFn] = {}
LOOP_NEST_OPS: set[str] = set()
"""Ops whose template writes a CPU loop nest and no compute: a target that schedules computes itself
(`ScheduleTable.loop_nests` False: OpenCL) has no kernel for them."""


def lowering(*ops: str, loop_nest: bool = False) -> Callable[[LowerFn], LowerFn]:
    """Register a template function for `ops`: fn(node, target, epilogue, layout) -> LoweredKernel;
    `loop_nest`: it writes only a CPU loop nest (`LOOP_NEST_OPS`)."""

    def register(fn: LowerFn) -> LowerFn:
        for op in ops:
            LOWERINGS[op] = fn
            if loop_nest:
                LOOP_NEST_OPS.add(op)
        return fn

    return register
