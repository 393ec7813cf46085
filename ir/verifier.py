"""The verifier: checks that a graph keeps every IR invariant, naming the node that breaks one.

Checked: every value is defined once (SSA); each operand is defined before its
use (topological order); use lists match operands exactly (no dangling use);
attributes fit the op's schema; result types agree with the op's inference
(quantization parameters included); every quantized type's parameters fit its
shape and dtype (ir/quantization.py `check_params`); graph outputs are defined
values of this graph; every tensor fits in memory (at most `MAX_TENSOR_BYTES`
bytes, numpy's limit); devices are placed consistently (ir/placement.py).
Regions are verified where their node stands: they see
the values of the graphs around them defined before it (captures), define no
name those graphs define, and their own outputs are values of their own; a use
by a node inside a region counts as a use of the enclosing graph's value.
"""

from __future__ import annotations

from ir.builder import check_types_agree, infer_types
from ir.errors import IRError, VerificationError
from ir.graph import Graph, Node, Value
from ir.ops.registry import get_schema
from ir.placement import check_placement
from ir.quantization import check_params, quant_range

MAX_TENSOR_BYTES = 2**63 - 1
"""The most bytes a tensor may take: numpy's (and a 64-bit address space's) limit."""


def verify(graph: Graph) -> None:
    """Raise VerificationError on the first broken invariant."""
    try:
        _verify(graph)
    except VerificationError:
        raise
    except IRError as exc:
        raise VerificationError(str(exc)) from None


def _verify(graph: Graph, defined: set[int] | None = None, names: set[str] | None = None) -> None:
    """Verify `graph`, which sees the values in `defined` (by id) and `names` of the graphs around it."""
    outer = set(defined or ())
    defined = set(outer)
    names = set(names or ())

    def define(value: Value, where: str) -> None:
        if value.name in names or id(value) in defined:
            raise VerificationError(f"{where}: value %{value.name} is defined twice")
        if value.graph is not graph:
            raise VerificationError(f"{where}: value %{value.name} does not belong to this graph")
        names.add(value.name)
        defined.add(id(value))
        if value.type.nbytes > MAX_TENSOR_BYTES:
            raise VerificationError(
                f"{where}: value %{value.name} {value.type} needs {value.type.nbytes} bytes, more than any "
                f"tensor can hold (at most 2^63 - 1): give smaller dimensions"
            )
        if value.type.quant is not None:
            quant_range(value.type.dtype)
            check_params(value.type.shape, value.type.quant, f"{where} %{value.name}")

    for value in graph.inputs:
        define(value, "graph input")
    for value in graph.constants.values():
        define(value, "constant")
    for node in graph.nodes:
        _verify_node(node, defined)
        for index, region in enumerate(node.regions):
            if region.parent is not node:
                raise VerificationError(f"{node.label()}: region {index} has a wrong parent link")
            try:
                _verify(region, defined, names)
            except IRError as exc:
                raise VerificationError(f"{node.label()}, region {region.name}: {exc}") from None
        for result in node.results:
            define(result, node.label())
    for value in graph.values():
        for user, index in value.uses():
            if user._erased or not _inside(user.graph, graph) or user.operands[index] is not value:
                raise VerificationError(f"value %{value.name} lists a dangling use by {user.label()}")
    for value in graph.outputs:
        if id(value) not in defined or id(value) in outer:
            raise VerificationError(f"graph output %{value.name} is not defined in the graph")
    check_placement(graph)


def _inside(inner: Graph | None, graph: Graph) -> bool:
    """Whether `inner` is `graph` or a region nested in it."""
    while inner is not None:
        if inner is graph:
            return True
        inner = inner.enclosing
    return False


def _verify_node(node: Node, defined: set[int]) -> None:
    where = node.label()
    schema = get_schema(node.op)
    schema.check_operands(len(node.operands), [o is not None for o in node.operands], where)
    if schema.normalize_attrs(node.attrs, where) != node.attrs:
        raise VerificationError(f"{where}: attributes are not normalised to the schema")
    for index, operand in enumerate(node.operands):
        if operand is None:
            continue
        if id(operand) not in defined:
            raise VerificationError(f"{where}: operand {index} %{operand.name} is used before it is defined")
        if (node, index) not in operand._uses:
            raise VerificationError(f"{where}: operand {index} is missing from %{operand.name}'s uses")
    for index, result in enumerate(node.results):
        if result.producer is not node or result.index != index:
            raise VerificationError(f"{where}: result %{result.name} has a wrong producer link")
    operand_types = [o.type if o else None for o in node.operands]
    inferred = infer_types(node.op, operand_types, node.attrs, where, node.regions)
    check_types_agree(where, [r.type for r in node.results], inferred)
