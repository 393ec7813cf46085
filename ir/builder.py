"""The one way nodes are made: check operands and attributes against the op's
schema, fill attribute defaults, infer result types, insert at a point.

The ONNX frontend, the `.hir` parser and every pass build nodes through a
`Builder`, so every node in every graph is normalised the same way. A
control-flow op (ir/ops/control.py) is given its regions, which its types come from.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from ir.errors import IRError
from ir.graph import Graph, Node, Value
from ir.ops.control import is_control, region_result_types
from ir.ops.registry import get_schema
from ir.types import TensorType


class Builder:
    """Builds nodes into `graph` before `insert_before` (at the end when None)."""

    def __init__(self, graph: Graph, insert_before: Node | None = None) -> None:
        self.graph = graph
        self.insert_before = insert_before

    def op(
        self,
        op: str,
        operands: Sequence[Value | None],
        attrs: Mapping[str, Any] | None = None,
        *,
        name: str = "",
        result_names: Sequence[str] | None = None,
        result_types: Sequence[TensorType] | None = None,
        regions: Sequence[Graph] = (),
    ) -> list[Value]:
        """Add one node and return its results.

        Result types are inferred; when `result_types` is given (the parser
        passes the printed ones, with their placement and plan facts) they must
        agree with inference in dtype and shape. `regions` are a control-flow
        op's regions (built beforehand; the node becomes their parent).
        """
        node = self.make_node(op, operands, attrs, name, result_names, result_types, regions)
        self.graph.insert_node(node, before=self.insert_before)
        return node.results

    def make_node(
        self,
        op: str,
        operands: Sequence[Value | None],
        attrs: Mapping[str, Any] | None,
        name: str = "",
        result_names: Sequence[str] | None = None,
        result_types: Sequence[TensorType] | None = None,
        regions: Sequence[Graph] = (),
    ) -> Node:
        schema = get_schema(op)
        where = f"{op} node '{name}'" if name else f"{op} node"
        operands = list(operands)
        while operands and operands[-1] is None:
            operands.pop()
        schema.check_operands(len(operands), [o is not None for o in operands], where)
        normalized = schema.normalize_attrs(attrs or {}, where)
        inferred = infer_types(op, [o.type if o else None for o in operands], normalized, where, regions)
        if result_types is None:
            result_types = inferred
        else:
            check_types_agree(where, list(result_types), inferred)
        if result_names is None:
            base = name or op.lower()
            result_names = [base if len(inferred) == 1 else f"{base}.{i}" for i in range(len(inferred))]
        unique = [self.graph.unique_name(n) for n in result_names]
        if len(set(unique)) != len(unique):
            unique = [self.graph.unique_name(f"{n}.{i}") for i, n in enumerate(unique)]
        node = Node(op, operands, normalized, result_types, unique, name)
        node.set_regions(regions)
        return node


def infer_types(
    op: str,
    operand_types: Sequence[TensorType | None],
    attrs: Mapping[str, Any],
    where: str,
    regions: Sequence[Graph] = (),
) -> list[TensorType]:
    """Run an op's inference (a control-flow op's from its regions), turning its complaints into an
    IRError that names `where`."""
    if regions and not is_control(op):
        raise IRError(f"{where}: {op} has no regions")
    try:
        if is_control(op):
            return region_result_types(op, operand_types, attrs, regions)
        return list(get_schema(op).infer(operand_types, attrs))
    except IRError as exc:
        raise IRError(f"{where}: {exc}") from None
    except (ValueError, IndexError, TypeError, ZeroDivisionError) as exc:
        raise IRError(f"{where}: cannot infer result types: {exc}") from None


def check_types_agree(where: str, declared: list[TensorType], inferred: list[TensorType]) -> None:
    if len(declared) != len(inferred):
        raise IRError(f"{where}: declares {len(declared)} results, the op gives {len(inferred)}")
    for i, (d, t) in enumerate(zip(declared, inferred)):
        if not d.same_tensor(t):
            raise IRError(f"{where}: result {i} is declared {d} but the op gives {t}")
        if t.quant is not None and d.quant != t.quant:  # ops that decide quantization (ir/ops/quantized.py)
            raise IRError(f"{where}: result {i} is declared with quant {d.quant} but the op gives {t.quant}")
