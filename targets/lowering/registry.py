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


def lowering(*ops: str) -> Callable[[LowerFn], LowerFn]:
    """Register a template function for `ops`: fn(node, target, epilogue, layout) -> LoweredKernel."""

    def register(fn: LowerFn) -> LowerFn:
        for op in ops:
            LOWERINGS[op] = fn
        return fn

    return register
