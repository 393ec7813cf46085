"""Replacing a node whose operands are all constants by constants holding its results.

The one folding mechanism: the ONNX importer folds shape computations with it
and the `fold-constants` pass folds whatever its size limit allows. Folded
constants keep the result names, so graph outputs keep theirs.
"""

from __future__ import annotations

from ir.graph import Graph, Node
from ir.ops.registry import get_schema


def is_foldable(node: Node, max_elements: int | None = None) -> bool:
    """A foldable op (OpSchema.foldable), all operands loaded constants, results within `max_elements`."""
    if not get_schema(node.op).foldable:
        return False
    if any(o is not None and not o.is_constant for o in node.operands):
        return False
    if any(o is not None and not hasattr(o.const, "shape") for o in node.operands):
        return False  # elided constants cannot be evaluated
    if max_elements is None:
        return True
    return sum(r.type.size for r in node.results) <= max_elements


def fold_node(graph: Graph, node: Node) -> None:
    """Evaluate `node` with its reference semantics and replace it by constants."""
    args = [o.constant_array() if o is not None else None for o in node.operands]
    types = [o.type if o is not None else None for o in node.operands]
    arrays = get_schema(node.op).evaluate(args, node.attrs, types)
    replacements = []
    for result, array in zip(node.results, arrays, strict=True):
        const = graph.add_constant(graph.unique_name(result.name + ".folded"), array, result.type)
        result.replace_all_uses_with(const)
        graph.outputs = [const if v is result else v for v in graph.outputs]
        replacements.append((result.name, const))
    graph.remove_node(node)
    for name, const in replacements:
        graph.rename(const, name)
