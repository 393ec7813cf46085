"""Kernel scratch memory: how many bytes a scheduled kernel may allocate while it runs.

Rule: a kernel's scratch is the sum of the global-scope buffers its schedule
allocates (`alloc_buffers` of its blocks: a padded input, a packed panel),
each at its declared shape and dtype. TVM allocates them through its
workspace calls when the kernel starts and frees them when it returns, and
compaction can only shrink them, so this is an upper bound on what one kernel
holds at once; kernels run one at a time, so a plan needs the largest. Local
buffers (registers, the stack) are not counted.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

CHILD_FIELDS = ("body", "block", "seq", "then_case", "else_case", "init")
"""The statement fields through which TIR nests statements (loops, blocks, sequences, branches)."""


def scratch_bytes(func: Any) -> int:
    """The global-scope bytes `func`'s blocks allocate (module doc: the rule)."""
    import tvm

    return sum(
        math.prod(int(d) for d in buffer.shape) * tvm.DataType(str(buffer.dtype)).bits // 8
        for buffer in allocated_buffers(func.body)
        if str(buffer.scope()) == "global"
    )


def allocated_buffers(stmt: Any) -> Iterator[Any]:
    """Every buffer a block under `stmt` allocates."""
    from tvm.s_tir.stmt import SBlock

    if isinstance(stmt, SBlock):
        yield from stmt.alloc_buffers
    for name in CHILD_FIELDS:
        child = getattr(stmt, name, None)
        if child is None:
            continue
        for item in child if type(child).__name__ in ("Array", "list", "tuple") else (child,):
            yield from allocated_buffers(item)
