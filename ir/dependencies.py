"""Which graph inputs a value is computed from (through operands and region captures).

Rule: walk producers back from the values, through every operand and every value a
producer's regions capture, to the inputs of the outermost graph; constants end a path.
Errors use it to say which inputs decide a condition ("bind sr to a value").
"""

from __future__ import annotations

from collections.abc import Iterable

from ir.graph import Value


def inputs_behind(values: Iterable[Value]) -> list[str]:
    """The names of the model inputs `values` are computed from, sorted."""
    found: set[str] = set()
    seen: set[int] = set()
    stack = list(values)
    while stack:
        value = stack.pop()
        if id(value) in seen:
            continue
        seen.add(id(value))
        if value.producer is None:
            if not value.is_constant and value.graph is not None and value.graph.enclosing is None:
                found.add(value.name)
            continue
        stack.extend(v for v in value.producer.operands if v is not None)
        stack.extend(value.producer.captures())
    return sorted(found)
