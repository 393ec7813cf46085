"""Which results may share their operand's bytes: views, and pointwise ops written in place.

Rule: a *view* (an op whose schema says `view`: Identity, Reshape, Flatten,
Squeeze, Unsqueeze) keeps its operand's elements in the same row-major order, so
its result *is* the operand's bytes under another shape: no copy, no kernel. A
*pointwise* op (schema flag `pointwise`: every result element is computed from
the operand elements at the same index) may write its result over an operand of
exactly the result's dtype and shape, because each element is read before it is
written and never read again. Whether doing so is legal at a given node (the
operand dies there, is no graph input...) is the memory planner's business,
not this module's.
"""

from __future__ import annotations

from ir.graph import Node, Value
from ir.ops.registry import get_schema, has_op


def is_view_op(op: str) -> bool:
    """Whether `op`'s schema declares its result a view of its first operand."""
    return has_op(op) and get_schema(op).view


def is_view(node: Node) -> bool:
    """True when `node`'s one result aliases its first operand's bytes (same byte count)."""
    if not is_view_op(node.op) or len(node.results) != 1 or not node.operands:
        return False
    source = node.operands[0]
    return source is not None and source.type.nbytes == node.results[0].type.nbytes


def is_pointwise(node: Node) -> bool:
    """True when `node`'s op is pointwise (its schema flag)."""
    return has_op(node.op) and get_schema(node.op).pointwise


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
