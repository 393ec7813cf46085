"""How one ONNX node becomes HAI IR: the converter registry and the context converters see.

Rule: IR ops follow the newest ONNX semantics of the same name, and every
operand that decides a result's *shape* (Reshape's shape, Slice's starts, Pad's
pads, Resize's sizes, axes, K, ...) becomes an attribute, read with
`ctx.static_input(i)`, so the IR is fully static. A converter is registered per
ONNX op type (`@converter("Slice")`) in the family file under `converters/`;
ops without one map onto the IR op of the same name, attributes unchanged.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any, Protocol

import numpy as np
import onnx

from ir import Builder, Graph, HaiError, TensorType, Value
from ir.dtypes import DType
from ir.ops.registry import get_schema, has_op


class UnsupportedModelError(HaiError):
    """The model uses ops or features HAI cannot import; the message lists all of them."""


class ConversionError(HaiError):
    """One node could not be converted; the message names the node and op."""


class SymbolicShapeError(HaiError):
    """A model input has symbolic dimensions and no static shape was given for it."""


class StaticOperandError(ConversionError):
    """An operand that decides a result's shape is computed at run time, not known when compiling."""


ConverterFn = Callable[["ConversionContext"], Sequence[Value | None]]

_CONVERTERS: dict[str, ConverterFn] = {}

ONNX_DOMAINS = ("", "ai.onnx")

_DOMAIN_CONVERTERS: dict[tuple[str, str], ConverterFn] = {}
"""Converters of ops in other domains (onnxruntime's `com.microsoft`), keyed by (domain, op type)."""


def converter(*op_types: str, domain: str = "") -> Callable[[ConverterFn], ConverterFn]:
    """Register the decorated function as the converter of these ONNX op types (of `domain`; the
    default is the ONNX domain)."""

    def register(fn: ConverterFn) -> ConverterFn:
        for op_type in op_types:
            table: dict[Any, ConverterFn] = _CONVERTERS if domain in ONNX_DOMAINS else _DOMAIN_CONVERTERS
            key = op_type if domain in ONNX_DOMAINS else (domain, op_type)
            if key in table:
                raise ValueError(f"ONNX op {domain or 'ai.onnx'}::{op_type} has two converters")
            table[key] = fn
        return fn

    return register


def find_converter(op_type: str, domain: str = "") -> ConverterFn | None:
    if domain not in ONNX_DOMAINS:
        return _DOMAIN_CONVERTERS.get((domain, op_type))
    return _CONVERTERS.get(op_type)


HAI_FORM_FAMILIES = frozenset({"quantized", "layout"})
"""IR op families whose form is HAI's own (quantization parameters in types, storage layouts): an ONNX
op of the same name (QuantizeLinear takes scale and zero point as inputs) is no IR op of that form, so
it imports only through a registered converter (converters/quantized.py), never `default_converter`."""


def imports(op_type: str, domain: str = "") -> bool:
    """Whether the importer converts ONNX `op_type` (of `domain`): by a registered converter, or as
    the IR op of the same name and form (`default_converter`, ONNX domain only)."""
    if domain not in ONNX_DOMAINS:
        return (domain, op_type) in _DOMAIN_CONVERTERS
    if op_type in _CONVERTERS:
        return True
    return has_op(op_type) and get_schema(op_type).family not in HAI_FORM_FAMILIES


def registered_op_types() -> list[str]:
    return sorted(_CONVERTERS)


def onnx_dtype(elem_type: int, where: str) -> DType:
    """The IR dtype of an ONNX TensorProto element type."""
    try:
        return DType.from_numpy(onnx.helper.tensor_dtype_to_np_dtype(elem_type))
    except (KeyError, ValueError, TypeError):
        known = elem_type in onnx.TensorProto.DataType.values()
        name = onnx.TensorProto.DataType.Name(elem_type) if known else f"{elem_type} (unknown)"
        raise ConversionError(f"{where}: element type {name} is not supported") from None


def attribute_value(attr: onnx.AttributeProto, where: str) -> Any:
    """A Python value for an ONNX attribute (tensors become numpy arrays)."""
    kind = attr.type
    if kind == onnx.AttributeProto.TENSOR:
        return onnx.numpy_helper.to_array(attr.t)
    if kind == onnx.AttributeProto.GRAPH:
        return attr.g  # a control-flow op's subgraph (converters/control.py)
    if kind == onnx.AttributeProto.GRAPHS:
        raise ConversionError(f"{where}: subgraph list attribute '{attr.name}' is not supported")
    if kind == onnx.AttributeProto.SPARSE_TENSOR:
        raise ConversionError(f"{where}: sparse tensor attribute '{attr.name}' is not supported")
    value = onnx.helper.get_attribute_value(attr)
    if isinstance(value, bytes):
        return value.decode()
    if isinstance(value, list) and value and isinstance(value[0], bytes):
        return [v.decode() for v in value]
    if isinstance(value, list) and kind == onnx.AttributeProto.TENSORS:
        return [onnx.numpy_helper.to_array(t) for t in value]
    return value


class Subgraphs(Protocol):
    """How a control-flow converter imports a subgraph (the importer implements it)."""

    def inline(self, body: onnx.GraphProto, args: Sequence[Value]) -> list[Value]: ...

    def region(self, name: str, body: onnx.GraphProto, input_types: Sequence[TensorType]) -> Graph: ...

    def checkpoint(self) -> tuple[object, int]: ...

    def rollback(self, checkpoint: tuple[object, int]) -> None: ...


class ConversionContext:
    """What a converter sees of one ONNX node, and how it emits IR."""

    def __init__(
        self,
        graph: Graph,
        node: onnx.NodeProto,
        inputs: list[Value | None],
        opset: int,
        subgraphs: Subgraphs | None = None,
    ):
        self.graph = graph
        self.node = node
        self.inputs = inputs
        self.opset = opset
        self._subgraphs = subgraphs
        self.where_name = node.name or node.output[0]
        self.where = f"node '{self.where_name}' ({node.op_type})"
        self.attrs: dict[str, Any] = {a.name: attribute_value(a, self.where) for a in node.attribute}
        self._emitted = 0

    @property
    def op_type(self) -> str:
        return self.node.op_type

    @property
    def subgraphs(self) -> Subgraphs:
        if self._subgraphs is None:
            raise self.fail("subgraphs cannot be imported here")
        return self._subgraphs

    def input(self, index: int) -> Value | None:
        return self.inputs[index] if index < len(self.inputs) else None

    def static_input(self, index: int, what: str | None = None) -> np.ndarray | None:
        """The value of input `index`, which must be known at compile time (None if absent)."""
        value = self.input(index)
        if value is None:
            return None
        if not value.is_constant:
            label = what or f"input {index}"
            raise StaticOperandError(
                f"{self.where}: {label} (%{value.name}) must be known at compile time; "
                f"it is computed at run time, which HAI's static shapes do not allow"
            )
        return value.constant_array()

    def output_count(self) -> int:
        """How many outputs the ONNX node names (trailing empty names dropped)."""
        names = list(self.node.output)
        while names and not names[-1]:
            names.pop()
        return len(names)

    def output_used(self, index: int) -> bool:
        return index < len(self.node.output) and bool(self.node.output[index])

    def emit(
        self,
        op: str,
        operands: Sequence[Value | None],
        attrs: Mapping[str, Any] | None = None,
        regions: Sequence[Graph] = (),
    ) -> list[Value]:
        """Add an IR node named after the ONNX node (a suffix for the second and later).

        Results get provisional names; the importer renames the values a
        converter returns to the ONNX output names.
        """
        name = self.node.name or self.node.output[0]
        if self._emitted:
            name = f"{name}/{op.lower()}{self._emitted}"
        self._emitted += 1
        results = Builder(self.graph).op(op, operands, attrs, name=name, regions=regions)
        for index, value in enumerate(results):
            self.graph.rename(value, self.graph.unique_name(f"{name}#{index}"))
        return results

    def constant(self, array: np.ndarray, hint: str = "const") -> Value:
        base = self.node.name or self.node.output[0]
        return self.graph.add_constant(f"{base}/{hint}", np.asarray(array))

    def fail(self, message: str) -> ConversionError:
        return ConversionError(f"{self.where}: {message}")


def default_converter(ctx: ConversionContext) -> list[Value]:
    """Ops whose IR form equals the ONNX one: same name, operands and attributes."""
    return ctx.emit(ctx.op_type, ctx.inputs, ctx.attrs)
