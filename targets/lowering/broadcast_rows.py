"""The row schedule of an elementwise kernel: no division in the vector loop.

Rule: a flat loop over every element (elementwise.schedule_flat) indexes each
operand through `flat // extent % dim`, which the simplifier folds back only for
a fuse of at most two dims: otherwise every lane gathers and scatters (a same-shape
Add of f32[1,96,40,40] ran 14x slower so), and an operand that broadcasts gathers
anyway (magika's one-hot Equal of i32[1,2048,1] against i32[1,1,257]: 100x its
roofline). So the kernel loops over rows: the trailing output dims (at most
`MAX_ROW_DIMS` above size 1) where every operand keeps one pattern (running along
the output or broadcasting over it) are fused into one row, vectorised by the
widest lanes that divide it, else by the target's lanes over its largest multiple
and a scalar tail (`loop_partition`); the dims before it are fused into one outer
loop, parallel when the kernel is large. A row shorter than one vector keeps the
flat loop.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from targets.lowering.generic import row_lanes

MAX_ROW_DIMS = 2  # a row fused of three dims indexes its operands through nested div/mod again


def dim_patterns(out_shape: Sequence[int], operand_shapes: Sequence[Sequence[int]]) -> list[tuple[bool, ...]]:
    """Per output dim, whether each operand runs along it (numpy broadcasting, aligned right)."""
    rank = len(out_shape)
    padded = [[1] * (rank - len(s)) + [int(d) for d in s] for s in operand_shapes]
    return [tuple(s[d] != 1 for s in padded) for d in range(rank)]


def row_dims(out_shape: Sequence[int], operand_shapes: Sequence[Sequence[int]]) -> int:
    """How many trailing output dims form the row (0: a result without a dim above size 1).

    The row is the trailing run of dims above size 1 where every operand keeps one
    pattern (running along the output or broadcasting over it), at most
    `MAX_ROW_DIMS` of them, with the size-1 dims around them."""
    patterns = dim_patterns(out_shape, operand_shapes)
    sized = [d for d in range(len(out_shape)) if out_shape[d] != 1]
    if not sized:
        return 0
    first = sized[-1]
    for d in reversed(sized[-MAX_ROW_DIMS:]):
        if patterns[d] != patterns[sized[-1]]:
            break
        first = d
    return len(out_shape) - first


def schedule_rows(sch: Any, block: Any, lanes: int, row: int, parallel: bool) -> None:
    """Outer dims fused (parallel if `parallel`), the last `row` dims fused into one vectorised row."""
    loops = sch.get_loops(block)
    inner = sch.fuse(*loops[-row:]) if row > 1 else loops[-1]
    extent = int(sch.get(inner).extent)
    whole = row_lanes(extent, lanes)
    if whole is None:  # the largest multiple of the lanes vectorised, a scalar tail
        inner, _tail = sch.loop_partition(inner, [extent // lanes * lanes, None])
        whole = lanes
    rows, vec = sch.split(inner, [None, whole])
    sch.vectorize(vec)
    if parallel:
        outer = loops[:-row]
        sch.parallel(rows if not outer else sch.fuse(*outer) if len(outer) > 1 else outer[0])


def row_extent(out_shape: Sequence[int], row: int) -> int:
    """Elements of one row: the product of the last `row` output dims."""
    return math.prod(int(d) for d in out_shape[len(out_shape) - row :]) if row else 0
