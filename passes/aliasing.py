"""Which results may share their operand's bytes: views, and pointwise ops written in place.

Rule: a *view* (Identity, Reshape, Flatten, Squeeze, Unsqueeze) keeps its
operand's elements in the same row-major order, so its result *is* the operand's
bytes under another shape: no copy, no kernel. A *pointwise* op (the
`elementwise` and `activation` families: every result element is computed from
the operand elements at the same index) may write its result over an operand of
exactly the result's dtype and shape, because each element is read before it is
written and never read again. Whether doing so is legal at a given node (the
operand dies there, is no graph input...) is the memory planner's business,
not this module's. Imports only `ir`.
"""

from __future__ import annotations

from ir import Node, Value
from ir.ops.registry import get_schema, has_op

VIEW_OPS = frozenset({"Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze"})
"""Ops whose result is their first operand's bytes, reinterpreted."""

POINTWISE_FAMILIES = frozenset({"elementwise", "activation"})
"""Op families whose every op is pointwise (see the families' module rules)."""


def is_view(node: Node) -> bool:
    """True when `node`'s one result aliases its first operand's bytes (same byte count)."""
    if node.op not in VIEW_OPS or len(node.results) != 1 or not node.operands:
        return False
    source = node.operands[0]
    return source is not None and source.type.nbytes == node.results[0].type.nbytes


def is_pointwise(node: Node) -> bool:
    """True when `node` is an op of a pointwise family (views excepted)."""
    return node.op not in VIEW_OPS and has_op(node.op) and get_schema(node.op).family in POINTWISE_FAMILIES


def in_place_operands(node: Node) -> list[Value]:
    """The operands `node` could overwrite with its result, in operand order: it is pointwise,
    and they are non-constant values of the result's dtype and shape."""
    if len(node.results) != 1 or not is_pointwise(node):
        return []
    result = node.results[0].type
    return [
        operand
        for operand in node.operands
        if operand is not None and not operand.is_constant and operand.type.same_tensor(result)
    ]
