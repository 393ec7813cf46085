"""Loop spans: `LoopBegin` and `LoopEnd`, the two ends of a `Loop` run at run time (ir/loops.py).

Rule: a Loop whose iterations are not known when compiling becomes
`LoopBegin`, its body's nodes inline, then `LoopEnd`; the runtime runs the steps
between them again for each iteration. Both carry the same `loop` attribute
(the Loop's name), which pairs them.
- `LoopBegin(M?, cond?, v_initial*) {loop}` gives what the body reads: the
  iteration number (i64[]), the condition (bool[]) and the loop-carried values
  (the types of `v_initial`). The runtime writes them: 0, `cond` (absent: true)
  and `v_initial` before the first iteration; then the iteration number, the
  condition and the carried values each iteration gave.
- `LoopEnd(cond, values*) {loop, carried, trip_count}` reads what the body gives
  (`cond`, `carried` values, then the scan values) followed by what `LoopBegin`
  gave (iteration number, condition, carried values: so they live until here),
  and gives the Loop's results: the carried values after the last iteration and
  the scan outputs stacked to `[trip_count, ...]` (trip_count -1: no scan
  output; the runtime refuses to run past `trip_count` iterations when there are).
Neither is a kernel and neither folds: evaluating them alone means nothing, so
their references refuse (the interpreter runs the IR `Loop` before it is
lowered).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ir.dtypes import DType
from ir.errors import IRError
from ir.ops.registry import Attr, AttrKind, define_op
from ir.types import TensorType

FAMILY = "control"
MARKERS = ("LoopBegin", "LoopEnd")
ITERATION = TensorType(DType.I64, ())
CONDITION = TensorType(DType.BOOL, ())


def _plain(t: TensorType | None) -> TensorType:
    assert t is not None
    return TensorType(t.dtype, t.shape)


def _begin_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    return [ITERATION, CONDITION, *(_plain(t) for t in types[2:])]


def end_layout(operands: int, carried: int) -> tuple[int, int]:
    """(carried values, scan values) of a LoopEnd with `operands` operands: cond, carried, scans,
    then the LoopBegin's iteration number, condition and carried values."""
    scans = operands - 1 - 2 * carried - 2
    if carried < 0 or scans < 0:
        raise IRError(f"a LoopEnd with {operands} operands cannot have {carried} carried values")
    return carried, scans


def _end_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    carried, scans = end_layout(len(types), attrs["carried"])
    trip_count = attrs["trip_count"]
    if scans and trip_count < 0:
        raise IRError("its scan outputs need a trip count (the most iterations it may run)")
    given = [_plain(t) for t in types[1 : 1 + carried + scans]]
    return given[:carried] + [TensorType(t.dtype, (trip_count, *t.shape)) for t in given[carried:]]


def _refuse(args: Sequence[np.ndarray | None], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    raise IRError(
        f"loop {attrs['loop']!r} is lowered to a span of steps that only a compiled plan repeats; "
        "interpret the graph before `predicate-control-flow` (it holds the IR Loop then)"
    )


define_op(
    "LoopBegin",
    family=FAMILY,
    operands=("M?", "cond?", "v_initial*"),
    attrs={"loop": Attr(AttrKind.STR)},
    infer=_begin_infer,
    compute=_refuse,
    foldable=False,
    doc="start of a Loop run at run time: the body's iteration number, condition and carried values",
)
define_op(
    "LoopEnd",
    family=FAMILY,
    operands=("cond", "values*"),
    attrs={
        "loop": Attr(AttrKind.STR),
        "carried": Attr(AttrKind.INT),
        "trip_count": Attr(AttrKind.INT, -1),
    },
    infer=_end_infer,
    compute=_refuse,
    foldable=False,
    doc="end of a Loop run at run time: its carried values after the last iteration, its scan outputs",
)
