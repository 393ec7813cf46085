"""The `sink-views` pass: move reshapes that only add or drop size-1 dims below the pointwise nodes
that read them, so the pointwise work meets its producer.

Rule: a *unit view* is a view node (Reshape, Squeeze, Unsqueeze, Flatten:
`ir.aliasing.is_view`) whose result keeps its operand's dims other than 1, in
order: the same elements in the same order, only size-1 dims added or
dropped. A node of an epilogue op (`ir.fusion.epilogue_ops`: Add, Mul, Gelu,
Tanh, ...) with one result,

- whose run-time operands are all unit views of the result's shape from
  operands of one shape S,
- and whose constant operands broadcast against that result (they get S's
  rank, their size-1 dims moved as the view moves them),

is computed in S and viewed after: op(view(a), view(b), c) → view(op(a, b,
c')). Nodes are taken in node order, so a chain or a small DAG behind a view
(magika's Conv → Squeeze → bias Add → Gelu chain) sinks to its end, and the
bias Add then follows the Conv: `fold-channel-affine` folds it into the
Conv's bias and `fuse` fuses the Gelu into the Conv's kernel (a view between
them ends an epilogue). The values keep their names (the last view takes the
sunk node's result name); views left unread go. Imports only `ir` and this
package.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ir import Graph, Node, Value
from ir.aliasing import is_view
from ir.builder import Builder
from ir.fusion import epilogue_ops
from passes.cleanup import drop_unused_constants
from passes.manager import Pass, PassContext


def unit_dims(shape: tuple[int, ...]) -> list[int]:
    return [d for d in shape if d != 1]


def unit_view_source(value: Value | None) -> Value | None:
    """The operand of the unit view (module rule) that produces `value`, else None."""
    node = value.producer if value is not None else None
    if node is None or not is_view(node) or node.operands[0] is None:
        return None
    source = node.operands[0]
    same_dims = unit_dims(source.type.shape) == unit_dims(node.results[0].type.shape)
    return source if same_dims and source.type.dtype is value.type.dtype else None  # type: ignore[union-attr]


def moved_constant(array: np.ndarray, shape: tuple[int, ...], source: tuple[int, ...]) -> np.ndarray | None:
    """`array`, which broadcasts against `shape`, reshaped to broadcast the same way against `source`
    (a unit view of the same elements), or None when it does not broadcast against `shape`."""
    if array.ndim > len(shape):
        return None
    padded = (1,) * (len(shape) - array.ndim) + array.shape
    if any(d not in (1, s) for d, s in zip(padded, shape, strict=True)):
        return None
    moved = [1] * len(source)
    kept = [i for i, d in enumerate(source) if d != 1]
    for target, dim in zip(kept, [d for d, s in zip(padded, shape, strict=True) if s != 1], strict=True):
        moved[target] = dim
    return array.reshape(moved)


@dataclasses.dataclass(frozen=True)
class SinkViews(Pass):
    """Compute pointwise nodes behind a reshape that only adds or drops size-1 dims before it, and
    view their result after (module rule)."""

    name = "sink-views"
    requires = ("constants-loaded",)

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        ops = frozenset(epilogue_ops())
        for node in list(graph.nodes):
            if node.op in ops and len(node.results) == 1 and _sink(graph, node):
                ctx.count(self.name, f"{node.op.lower()}-sunk")
        return graph


def _sink(graph: Graph, node: Node) -> bool:
    """Rewrite `node` as view(op(sources, moved constants)) when the module rule allows it."""
    result = node.results[0]
    runtime = [o for o in node.operands if o is not None and not o.is_constant]
    sources = [unit_view_source(o) if o.type.shape == result.type.shape else None for o in runtime]
    if not sources or any(s is None for s in sources):
        return False
    shape = sources[0].type.shape  # type: ignore[union-attr]
    if any(s.type.shape != shape for s in sources):  # type: ignore[union-attr]
        return False
    constants = {
        i: moved_constant(o.constant_array(), result.type.shape, shape)
        for i, o in enumerate(node.operands)
        if o is not None and o.is_constant
    }
    if any(moved is None for moved in constants.values()):
        return False
    operands = [
        _constant(graph, o, constants[i]) if o is not None and i in constants else unit_view_source(o)
        for i, o in enumerate(node.operands)
    ]
    builder = Builder(graph, insert_before=node)
    (computed,) = builder.op(node.op, operands, node.attrs, name=node.name)
    (viewed,) = builder.op("Reshape", [computed], {"shape": result.type.shape})
    name, views = result.name, [o.producer for o in node.operands if o is not None and o.producer]
    graph.replace_value(result, viewed)
    dropped = list(node.operands)
    graph.remove_node(node)
    for view in views:
        if view.graph is graph and not any(r.uses() or r.is_graph_output for r in view.results):
            dropped += view.operands
            graph.remove_node(view)
    drop_unused_constants(graph, dropped)
    if not graph.has_value(name):
        graph.rename(viewed, name)
    return True


def _constant(graph: Graph, original: Value, moved: np.ndarray | None) -> Value:
    """`original` itself when moving changed nothing, else the moved array as a new constant."""
    assert moved is not None
    if moved.shape == original.type.shape:
        return original
    return graph.add_constant(original.name, np.ascontiguousarray(moved))
