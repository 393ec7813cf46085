"""Walking TensorIR statements (this TVM has no Python statement visitor): `walk`, `allocations`.

Rule: a statement's children are the statements held by the attributes of CHILDREN; `walk` yields
them parents first. Imports nothing of ours; TVM lazily.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

CHILDREN = ("block", "body", "seq", "then_case", "else_case", "init")
"""The attributes of TensorIR statements that hold statements."""


def walk(stmt: Any) -> Iterator[Any]:
    """`stmt` and every statement under it, parents first."""
    yield stmt
    for name in CHILDREN:
        child = getattr(stmt, name, None)
        if child is None:
            continue
        for each in child if name == "seq" else (child,):
            yield from walk(each)


def allocations(func: Any) -> dict[str, int]:
    """Bytes `func`'s blocks allocate, by storage scope ("global", "shared", "local")."""
    import numpy as np
    from tvm import s_tir

    found: dict[str, int] = {}
    for node in walk(func.body):
        if isinstance(node, s_tir.SBlock):
            for buf in node.alloc_buffers:
                count = int(np.prod([int(d) for d in buf.shape], dtype=np.int64))
                found[buf.scope()] = found.get(buf.scope(), 0) + count * np.dtype(str(buf.dtype)).itemsize
    return found
