"""Control flow: `If`, `Loop` and `Scan`, the ops that own regions (`ir.graph.Node.regions`).

Rule: ONNX's semantics (If, Loop and Scan of opsets 11-21) with static types:
- `If(cond)` has regions `then_branch` and `else_branch`, each without inputs; both must give the
  same dtypes and shapes (a static plan holds either), which are its results.
- `Loop(M?, cond?, v_initial*) {trip_count}` has region `body(iter: i64[], cond: bool[], v...) ->
  (cond: one bool, v..., scan...)`; each carried value keeps its type across iterations; the scan
  outputs are stacked to `[trip_count, ...]`, so they need a static `trip_count` (-1: not known,
  the constant M when there is one).
- `Scan(states*, scan_inputs*) {num_scan_inputs, ...axes, ...directions}` has region
  `body(states..., slices...) -> (states..., slices...)`; it iterates over the scan inputs' axes
  (all the same length) and stacks the body's slice outputs along the output axes.

Result types come from the regions (`region_result_types`, which the builder and verifier call);
evaluation runs the regions through a callback the interpreter passes (`run_control`). The
registered schemas give the operands and attributes; their plain `infer` and `compute` refuse,
since without its regions such an op has nothing to infer or run.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from ir.dtypes import DType
from ir.errors import IRError
from ir.graph import Graph
from ir.ops.registry import Attr, AttrKind, define_op
from ir.types import TensorType

RunRegion = Callable[[Graph, list[np.ndarray]], list[np.ndarray]]
"""Runs a region with its input arrays (the interpreter's, so captured values are in reach)."""

REGION_NAMES: dict[str, tuple[str, ...]] = {
    "If": ("then_branch", "else_branch"),
    "Loop": ("body",),
    "Scan": ("body",),
}
"""The regions each control-flow op owns, in order (the names `.hir` prints)."""

SCALAR_I64 = TensorType(DType.I64, ())
SCALAR_BOOL = TensorType(DType.BOOL, ())


def _needs_regions(*_: Any) -> list[Any]:
    raise IRError("a control-flow op's types and values come from its regions (ir/ops/control.py)")


_OPTIONAL_INTS = Attr(AttrKind.INTS, None)
for _name, _operands, _attrs in (
    ("If", ("cond",), {}),
    ("Loop", ("M?", "cond?", "v_initial*"), {"trip_count": Attr(AttrKind.INT, -1)}),
    (
        "Scan",
        ("inputs*",),
        {
            "num_scan_inputs": Attr(AttrKind.INT),
            "scan_input_axes": _OPTIONAL_INTS,
            "scan_input_directions": _OPTIONAL_INTS,
            "scan_output_axes": _OPTIONAL_INTS,
            "scan_output_directions": _OPTIONAL_INTS,
        },
    ),
):
    define_op(
        _name,
        family="control",
        operands=_operands,
        attrs=_attrs,
        infer=_needs_regions,
        compute=_needs_regions,
        foldable=False,
        doc=f"{_name} with regions {', '.join(REGION_NAMES[_name])} (ONNX semantics, static types)",
    )


def is_control(op: str) -> bool:
    return op in REGION_NAMES


# -- types ----------------------------------------------------------------------------------
def region_result_types(
    op: str,
    operand_types: Sequence[TensorType | None],
    attrs: Mapping[str, Any],
    regions: Sequence[Graph],
) -> list[TensorType]:
    """The result types of control-flow op `op` with these operands, attributes and regions."""
    names = REGION_NAMES[op]
    if tuple(r.name for r in regions) != names:
        got = ", ".join(r.name for r in regions) or "none"
        raise IRError(f"{op} has regions {', '.join(names)}; got {got}")
    infer = {"If": _if_types, "Loop": _loop_types, "Scan": _scan_types}[op]
    return infer(list(operand_types), attrs, list(regions))


def _plain(t: TensorType) -> TensorType:
    return TensorType(t.dtype, t.shape)


def _describe(types: Sequence[TensorType]) -> str:
    return "(" + ", ".join(str(_plain(t)) for t in types) + ")"


def _expect(region: Graph, what: str, got: Sequence[TensorType], want: Sequence[TensorType]) -> None:
    if len(got) != len(want) or any(not g.same_tensor(w) for g, w in zip(got, want)):
        raise IRError(f"region {region.name} {what} {_describe(got)}, expected {_describe(want)}")


def _check_condition(t: TensorType | None, what: str) -> None:
    if t is not None and (t.dtype is not DType.BOOL or t.size != 1):
        raise IRError(f"{what} must be one bool, got {t}")


def _if_types(operands: list[TensorType | None], attrs: Mapping[str, Any], regions: list[Graph]) -> list:
    _check_condition(operands[0], "the condition")
    then, other = regions
    for region in regions:
        _expect(region, "takes", [v.type for v in region.inputs], [])
    then_types = [v.type for v in then.outputs]
    else_types = [v.type for v in other.outputs]
    if len(then_types) != len(else_types) or any(
        not a.same_tensor(b) for a, b in zip(then_types, else_types)
    ):
        raise IRError(
            f"its branches give different types, then_branch {_describe(then_types)} and else_branch "
            f"{_describe(else_types)}; a static plan needs the same dtypes and shapes from both"
        )
    return [_plain(t) for t in then_types]


def _loop_types(operands: list[TensorType | None], attrs: Mapping[str, Any], regions: list[Graph]) -> list:
    (body,) = regions
    trip_count_type = operands[0] if operands else None
    if trip_count_type is not None and (trip_count_type.dtype is not DType.I64 or trip_count_type.size != 1):
        raise IRError(f"its trip count M must be one i64, got {trip_count_type}")
    _check_condition(operands[1] if len(operands) > 1 else None, "its condition")
    carried = [t for t in operands[2:]]
    if any(t is None for t in carried):
        raise IRError("its loop-carried values cannot be absent")
    carried_types = [t for t in carried if t is not None]
    _expect(body, "takes", [v.type for v in body.inputs], [SCALAR_I64, SCALAR_BOOL, *carried_types])
    outputs = [v.type for v in body.outputs]
    count = len(carried_types)
    if not outputs:
        raise IRError(f"region {body.name} gives nothing; a Loop's body gives its condition first")
    _check_condition(outputs[0], f"region {body.name}'s condition")
    _expect(body, "gives", outputs[1 : 1 + count], carried_types)
    scans = outputs[1 + count :]
    trip_count = attrs["trip_count"]
    if scans and trip_count < 0:
        raise IRError(
            "its scan outputs are stacked over the iterations, so they need a static trip count "
            "(a constant M, attribute trip_count)"
        )
    return [_plain(t) for t in carried_types] + [TensorType(t.dtype, (trip_count, *t.shape)) for t in scans]


def scan_layout(attrs: Mapping[str, Any], states: int, inputs: int, outputs: int) -> dict[str, list[int]]:
    """Scan's axes and directions, defaults filled (0 each); the axes as given (maybe negative)."""
    scans = inputs - states
    given = {
        "scan_input_axes": scans,
        "scan_input_directions": scans,
        "scan_output_axes": outputs,
        "scan_output_directions": outputs,
    }
    layout = {}
    for key, count in given.items():
        values = list(attrs.get(key) or [0] * count)
        if len(values) != count:
            raise IRError(f"attribute {key} has {len(values)} entries for {count} tensors")
        if "directions" in key and any(v not in (0, 1) for v in values):
            raise IRError(f"attribute {key} must hold 0 (forward) or 1 (reverse), got {values}")
        layout[key] = values
    return layout


def _axis(axis: int, rank: int, what: str) -> int:
    if not -rank <= axis < rank:
        raise IRError(f"{what} axis {axis} is out of range for rank {rank}")
    return axis % rank


def _scan_types(operands: list[TensorType | None], attrs: Mapping[str, Any], regions: list[Graph]) -> list:
    (body,) = regions
    if any(t is None for t in operands):
        raise IRError("its inputs cannot be absent")
    types = [t for t in operands if t is not None]
    scans = attrs["num_scan_inputs"]
    if not 1 <= scans <= len(types):
        raise IRError(f"num_scan_inputs {scans} must be between 1 and its {len(types)} inputs")
    states = len(types) - scans
    outputs = [v.type for v in body.outputs]
    layout = scan_layout(attrs, states, len(types), len(outputs) - states)
    slices, lengths = [], set()
    for t, axis in zip(types[states:], layout["scan_input_axes"]):
        axis = _axis(axis, len(t.shape), "scan input")
        lengths.add(t.shape[axis])
        slices.append(TensorType(t.dtype, t.shape[:axis] + t.shape[axis + 1 :]))
    if len(lengths) != 1:
        raise IRError(f"its scan inputs have different lengths {sorted(lengths)} along their axes")
    (length,) = lengths
    _expect(body, "takes", [v.type for v in body.inputs], [*types[:states], *slices])
    _expect(body, "gives", outputs[:states], types[:states])
    results = [_plain(t) for t in types[:states]]
    for t, axis in zip(outputs[states:], layout["scan_output_axes"]):
        axis = _axis(axis, len(t.shape) + 1, "scan output")
        results.append(TensorType(t.dtype, t.shape[:axis] + (length,) + t.shape[axis:]))
    return results


# -- evaluation -----------------------------------------------------------------------------
def run_control(
    op: str, args: list[np.ndarray | None], attrs: Mapping[str, Any], regions: Sequence[Graph], run: RunRegion
) -> list[np.ndarray]:
    """The results of control-flow op `op` on `args`, running its regions with `run`."""
    evaluate = {"If": _run_if, "Loop": _run_loop, "Scan": _run_scan}[op]
    return evaluate(args, attrs, list(regions), run)


def _run_if(args: list, attrs: Mapping[str, Any], regions: list[Graph], run: RunRegion) -> list[np.ndarray]:
    taken = regions[0] if bool(np.asarray(args[0]).reshape(-1)[0]) else regions[1]
    return run(taken, [])


def _run_loop(args: list, attrs: Mapping[str, Any], regions: list[Graph], run: RunRegion) -> list[np.ndarray]:
    (body,) = regions
    limit = None if args[0] is None else int(np.asarray(args[0]).reshape(-1)[0])
    cond = True if len(args) < 2 or args[1] is None else bool(np.asarray(args[1]).reshape(-1)[0])
    carried = list(args[2:])
    scan_types = [v.type for v in body.outputs[1 + len(carried) :]]
    stacked: list[list[np.ndarray]] = [[] for _ in scan_types]
    iteration = 0
    while cond and (limit is None or iteration < limit):
        outputs = run(body, [np.array(iteration, np.int64), np.array(cond), *carried])
        cond = bool(np.asarray(outputs[0]).reshape(-1)[0])
        carried = outputs[1 : 1 + len(carried)]
        for values, array in zip(stacked, outputs[1 + len(carried) :]):
            values.append(array)
        iteration += 1
    trip_count = attrs["trip_count"]
    if scan_types and iteration != trip_count:
        raise IRError(
            f"it stopped after {iteration} iterations; its scan outputs are typed for trip_count {trip_count}"
        )
    scans = [
        np.stack(values) if values else np.empty((0, *t.shape), t.dtype.numpy)
        for values, t in zip(stacked, scan_types)
    ]
    return [*carried, *scans]


def _run_scan(args: list, attrs: Mapping[str, Any], regions: list[Graph], run: RunRegion) -> list[np.ndarray]:
    (body,) = regions
    scans = attrs["num_scan_inputs"]
    states = list(args[: len(args) - scans])
    inputs = args[len(states) :]
    layout = scan_layout(attrs, len(states), len(args), len(body.outputs) - len(states))
    in_axes = [_axis(a, x.ndim, "scan input") for a, x in zip(layout["scan_input_axes"], inputs)]
    length = inputs[0].shape[in_axes[0]]
    stacked: list[list[np.ndarray]] = [[] for _ in layout["scan_output_axes"]]
    for step in range(length):
        slices = [
            np.take(x, length - 1 - step if reverse else step, axis=axis)
            for x, axis, reverse in zip(inputs, in_axes, layout["scan_input_directions"])
        ]
        outputs = run(body, [*states, *slices])
        states = outputs[: len(states)]
        for values, array in zip(stacked, outputs[len(states) :]):
            values.append(array)
    results = list(states)
    for values, axis, reverse, out in zip(
        stacked, layout["scan_output_axes"], layout["scan_output_directions"], body.outputs[len(states) :]
    ):
        ordered = values[::-1] if reverse else values
        axis = _axis(axis, len(out.type.shape) + 1, "scan output")
        if ordered:
            results.append(np.stack(ordered, axis=axis))
        else:
            shape = out.type.shape[:axis] + (0,) + out.type.shape[axis:]
            results.append(np.empty(shape, out.type.dtype.numpy))
    return results
