"""ONNX converters: control flow (If, Loop, Scan of opsets 11-21) onto the IR's region ops.

Rule: what is known while importing is flattened while importing, since
HAI's shapes are static and a subgraph often computes shapes from what the
iteration or the condition decides:
- an `If` whose condition is a constant (a shape test, after the importer's
  folding) imports only its taken branch, inline; the other may not even fit
  the model's static shapes;
- a `Loop` runs its body inline, one copy per iteration with the iteration number
  a constant, while the condition stays a constant and the copies stay within
  `SMALL_UNROLL` ONNX nodes (`UNROLL_LIMIT` when it has scan outputs and a
  condition the body computes: unrolled, it stops where the condition does,
  and its scan outputs have that length); any other Loop becomes an IR `Loop`
  run at run time (ir/loops.py) when its body imports as a region, and is
  unrolled within `UNROLL_LIMIT` nodes only when it does not (its body needs
  the iteration number as a constant); a `Scan` is unrolled within `UNROLL_LIMIT`.
Anything else becomes an IR `If`/`Loop`/`Scan` whose regions are the imported
subgraphs (ir/ops/control.py gives their static typing rules, and errors name
the node): a Loop's scan outputs need a constant trip count.
"""

from __future__ import annotations

import functools
import warnings
from collections.abc import Sequence

import numpy as np
import onnx

from hai_compiler.onnx_import.converter import ConversionContext, StaticOperandError, converter
from ir import Builder, Graph, HaiError, Value
from ir.dependencies import inputs_behind
from ir.errors import HaiWarning
from ir.flatten import stack, unrolled_scan
from ir.ops.control import SCALAR_BOOL, SCALAR_I64, scan_layout

UNROLL_LIMIT = 4096
"""The most ONNX nodes a Loop or Scan may become when it is unrolled while importing."""
SMALL_UNROLL = 512
"""A Loop whose copies stay within this many ONNX nodes is unrolled; a larger one runs at run time
when its body imports as a region. Unrolled runs faster (one entry call instead of a few microseconds
of the runtime's per iteration: 100 iterations of a 5-node body, 20 µs against 620 µs), but its
compile time grows faster than its size (3.7 s there, 14 s for 200 iterations, 171 s for 600)."""


def _flag(value: Value | None) -> bool | None:
    """A condition's value when known (an absent one is true), else None."""
    if value is None:
        return True
    if value.is_constant:
        return bool(np.asarray(value.constant_array()).reshape(-1)[0])
    return None


def _graph(ctx: ConversionContext, name: str) -> onnx.GraphProto:
    graph = ctx.attrs.get(name)
    if not isinstance(graph, onnx.GraphProto):
        raise ctx.fail(f"attribute '{name}' must be a graph")
    return graph


def _nodes(graph: onnx.GraphProto) -> int:
    """How many nodes a subgraph has, its own subgraphs' included."""
    count = 0
    for node in graph.node:
        count += 1
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                count += _nodes(attr.g)
    return count


@converter("If")
def convert_if(ctx: ConversionContext) -> Sequence[Value | None]:
    cond = ctx.input(0)
    then_branch, else_branch = _graph(ctx, "then_branch"), _graph(ctx, "else_branch")
    taken = _flag(cond)
    if taken is not None:
        return ctx.subgraphs.inline(then_branch if taken else else_branch, [])
    assert cond is not None  # If's condition is a required input (the checker saw to it)
    regions = []
    for name, branch in (("then_branch", then_branch), ("else_branch", else_branch)):
        try:
            regions.append(ctx.subgraphs.region(name, branch, []))
        except HaiError as exc:
            raise _runtime_condition(ctx, cond, f"its {name} does not fit the static shapes: {exc}") from None
    then_types, else_types = ([v.type for v in r.outputs] for r in regions)
    if len(then_types) != len(else_types) or any(
        not a.same_tensor(b) for a, b in zip(then_types, else_types)
    ):
        shown = ", ".join(map(str, then_types)), ", ".join(map(str, else_types))
        raise _runtime_condition(ctx, cond, f"its branches give ({shown[0]}) and ({shown[1]})")
    return ctx.emit("If", [cond], {}, regions=regions)


def _runtime_condition(ctx: ConversionContext, cond: Value, problem: str) -> StaticOperandError:
    """The error of an If that only a condition known when compiling could import."""
    inputs = inputs_behind([cond])
    fix = f"fix {', '.join(inputs)} to a value (--input-value NAME=VALUE)" if inputs else "fix its inputs"
    return StaticOperandError(
        f"{ctx.where}: condition (%{cond.name}) must be known at compile time: {problem}; a static plan "
        f"needs both branches to fit the static shapes with the same types, or {fix}"
    )


@converter("Loop")
def convert_loop(ctx: ConversionContext) -> Sequence[Value | None]:
    body = _graph(ctx, "body")
    limit, cond = ctx.input(0), ctx.input(1)
    carried = [v for v in ctx.inputs[2:]]
    if any(v is None for v in carried):
        raise ctx.fail("its loop-carried inputs cannot be empty")
    values = [v for v in carried if v is not None]
    trip_count = -1
    if limit is not None and limit.is_constant:
        trip_count = int(np.asarray(limit.constant_array()).reshape(-1)[0])
    if _flag(cond) is False:
        trip_count = 0  # a loop whose condition is false from the start runs no iteration
    count = trip_count if limit is not None else None
    unroll = functools.partial(_unroll_loop, ctx, body, count, _flag(cond), values, UNROLL_LIMIT)
    small = count is not None and 0 <= count and count * _nodes(body) <= SMALL_UNROLL
    may_stop = len(body.output) > 1 + len(values) and not _keeps_condition(body)
    unrolled = unroll() if small or may_stop else None
    if isinstance(unrolled, list):
        return unrolled
    region = _loop_region(ctx, body, limit, values, trip_count)
    if not isinstance(region, str):
        if may_stop:
            warnings.warn(ScanLengthWarning(
                f"{ctx.where}: its condition is computed at run time, but its scan outputs are compiled for "
                f"{trip_count} rows (its M): a run that stops earlier fails, naming it"
            ), stacklevel=2)  # fmt: skip
        return ctx.emit("Loop", [limit, cond, *values], {"trip_count": trip_count}, regions=[region])
    unrolled = unroll() if unrolled is None else unrolled
    if isinstance(unrolled, list):
        return unrolled
    raise StaticOperandError(
        f"{ctx.where}: its body needs values known at compile time ({region}), so it imports only "
        f"unrolled, and it was not unrolled: {unrolled}"
    )


class ScanLengthWarning(HaiWarning):
    """A Loop run at run time whose scan outputs have a static length its condition may cut short."""


def _keeps_condition(body: onnx.GraphProto) -> bool:
    """Whether the body gives back the condition it got (so the Loop runs exactly M times)."""
    given, cond = body.input[1].name, body.output[0].name
    return cond == given or any(
        node.op_type == "Identity" and list(node.input) == [given] and list(node.output) == [cond]
        for node in body.node
    )


def _loop_region(
    ctx: ConversionContext, body: onnx.GraphProto, limit: Value | None, values: list[Value], trip_count: int
) -> Graph | str:
    """The Loop's body as a region (the Loop then runs at run time: ir/loops.py), or what in it
    needs a value known when compiling."""
    scans = len(body.output) - 1 - len(values)
    if scans and trip_count < 0:
        what = f"trip count M (%{limit.name})" if limit is not None else "a trip count M"
        raise StaticOperandError(
            f"{ctx.where}: {what} must be known at compile time: its scan outputs are stacked over the "
            "iterations, and HAI's static shapes need their length"
        )
    try:
        return ctx.subgraphs.region("body", body, [SCALAR_I64, SCALAR_BOOL, *(v.type for v in values)])
    except StaticOperandError as exc:
        return str(exc).splitlines()[-1].strip(" -")


def _unroll_loop(
    ctx: ConversionContext,
    body: onnx.GraphProto,
    count: int | None,
    cond: bool | None,
    carried: list[Value],
    most: int,
) -> list[Value] | str:
    """The Loop's results with its body inlined per iteration, or why not (nothing made) when its
    iterations are not known or its copies would pass `most` ONNX nodes."""
    if cond is None:
        return "its condition is computed at run time"
    if count is not None and count < 0:
        return "its trip count is computed at run time"
    checkpoint = ctx.subgraphs.checkpoint()
    scans: list[list[Value]] = [[] for _ in body.output[1 + len(carried) :]]
    iteration = 0
    while cond and (count is None or iteration < count):
        if (iteration + 1) * _nodes(body) > most:
            ctx.subgraphs.rollback(checkpoint)
            return (
                f"{iteration + 1} iterations of its {_nodes(body)}-node body pass the {most} ONNX "
                "nodes an unrolled loop may become"
            )
        step = ctx.constant(np.array(iteration, np.int64), "iteration")
        outputs = ctx.subgraphs.inline(body, [step, ctx.constant(np.array(True), "cond"), *carried])
        cond = _flag(outputs[0])
        if cond is None:
            ctx.subgraphs.rollback(checkpoint)
            return f"its condition after iteration {iteration} is computed at run time"
        carried = outputs[1 : 1 + len(carried)]
        for values, value in zip(scans, outputs[1 + len(carried) :]):
            values.append(value)
        iteration += 1
    if scans and not iteration:
        ctx.subgraphs.rollback(checkpoint)
        return "it runs no iteration"  # the region's types give the empty scan outputs
    builder = Builder(ctx.graph)
    return [*carried, *(stack(builder, values, 0, ctx.where_name) for values in scans)]


@converter("Scan")
def convert_scan(ctx: ConversionContext) -> Sequence[Value | None]:
    if ctx.opset < 9:
        raise ctx.fail("Scan of opset 8 (batched, with sequence_lens) is not supported")
    body = _graph(ctx, "body")
    inputs = [v for v in ctx.inputs]
    if any(v is None for v in inputs):
        raise ctx.fail("its inputs cannot be empty")
    values = [v for v in inputs if v is not None]
    attrs = {k: v for k, v in ctx.attrs.items() if k != "body"}
    count = attrs.get("num_scan_inputs", 0)
    states = values[: len(values) - count]
    layout = scan_layout(attrs, len(states), len(values), len(body.output) - len(states))
    scanned = values[len(states) :]
    axes = [a % max(len(x.type.shape), 1) for a, x in zip(layout["scan_input_axes"], scanned)]
    length = scanned[0].type.shape[axes[0]] if scanned and scanned[0].type.shape else 0
    if 0 < length and length * _nodes(body) <= UNROLL_LIMIT:
        return _unroll_scan(ctx, body, states, scanned, axes, layout, length)
    slices = [x.type.with_(shape=x.type.shape[:a] + x.type.shape[a + 1 :]) for x, a in zip(scanned, axes)]
    region = ctx.subgraphs.region("body", body, [*(v.type for v in states), *slices])
    return ctx.emit("Scan", values, attrs, regions=[region])


def _unroll_scan(
    ctx: ConversionContext,
    body: onnx.GraphProto,
    states: list[Value],
    scanned: list[Value],
    axes: list[int],
    layout: dict[str, list[int]],
    length: int,
) -> list[Value]:
    inline = functools.partial(ctx.subgraphs.inline, body)
    return unrolled_scan(Builder(ctx.graph), inline, states, scanned, axes, layout, length, ctx.where_name)
