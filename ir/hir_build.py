"""The `.hir` parser's second stage: located declarations → `Graph`, through the builder.

Rule: inputs go through `Graph.add_input`, constants through `Graph.add_constant`,
nodes through `ir.builder.Builder` with their printed names and result types
(so placement and plan facts survive and inference checks them). What the
builder cannot point at — an unknown op or attribute, a literal of the wrong
kind, an undefined or twice-defined value — is checked here first, so every
problem is a `SyntaxProblem` at the line and column of the offending text. A
control-flow node's regions are built first, in a scope inside the graph's
(they see the values defined before the node; a name they define again is an error).
Imports numpy, ml_dtypes and `ir` only.
"""

from __future__ import annotations

import difflib
from collections.abc import Mapping
from typing import Any

import numpy as np

from ir.builder import Builder
from ir.dtypes import DType
from ir.errors import IRError, UnknownOpError
from ir.graph import ElidedConstant, Graph, Value, content_sha256
from ir.hir_syntax import BareName, ConstantDecl, GraphDecl, Located, MetadataDecl, NodeDecl
from ir.ops.registry import AttrKind, OpSchema, all_schemas, get_schema
from ir.weights_file import as_typed


def build_graph(decl: GraphDecl, weights: Mapping[str, np.ndarray]) -> Graph:
    """The graph `decl` describes; `weights` gives constant data by name or by content sha256."""
    graph = Graph(decl.name)
    _build_body(decl, graph, _Scope(graph, None), weights)
    return graph


def _build_body(decl: GraphDecl, graph: Graph, scope: _Scope, weights: Mapping[str, np.ndarray]) -> None:
    for name, type in decl.params:
        scope.define(name)
        graph.add_input(name.text, type)
    builder = Builder(graph)
    for statement in decl.statements:
        if isinstance(statement, MetadataDecl):
            graph.metadata[statement.key] = statement.value
        elif isinstance(statement, ConstantDecl):
            scope.define(statement.name)
            graph.add_constant(statement.name.text, _constant_data(statement, weights), statement.type)
        else:
            regions = []
            for region_decl in statement.regions:
                region = Graph(region_decl.name)
                _build_body(region_decl, region, _Scope(region, scope), weights)
                regions.append(region)
            _add_node(builder, scope, statement, regions)
    graph.set_outputs([scope.lookup(name, own=True) for name in decl.returns])
    _check_signature_outputs(decl)


class _Scope:
    """Where each value name was defined, for 'undefined' and 'defined twice' errors; a region's
    scope sees its enclosing scope's names."""

    def __init__(self, graph: Graph, enclosing: _Scope | None) -> None:
        self.graph = graph
        self.enclosing = enclosing
        self.defined_at: dict[str, Located] = {}

    def _find(self, name: str) -> _Scope | None:
        scope: _Scope | None = self
        while scope is not None and name not in scope.defined_at:
            scope = scope.enclosing
        return scope

    def define(self, name: Located) -> None:
        owner = self._find(name.text)
        if owner is not None:
            first = owner.defined_at[name.text]
            raise name.problem(f"%{name.text} is defined twice (first at line {first.line}:{first.col})")
        self.defined_at[name.text] = name

    def lookup(self, name: Located, own: bool = False) -> Value:
        owner = self._find(name.text)
        if owner is None:
            raise name.problem(f"%{name.text} is not defined before this use")
        if own and owner is not self:
            raise name.problem(
                f"%{name.text} is defined outside this region; a region returns its own values"
            )
        return owner.graph.value(name.text)


def _check_signature_outputs(decl: GraphDecl) -> None:
    header = [n.text for n in decl.outputs]
    returned = [n.text for n in decl.returns]
    if header != returned:
        at = decl.outputs[0] if decl.outputs else decl.return_at
        raise at.problem(
            f"the graph's signature lists outputs {header} but it returns {returned}; they must agree"
        )


# -- constants ----------------------------------------------------------------
def _constant_data(decl: ConstantDecl, weights: Mapping[str, np.ndarray]) -> np.ndarray | ElidedConstant:
    if decl.values is not None:
        return _dense_array(decl, decl.values)
    assert decl.sha256 is not None
    if decl.name.text in weights:
        array = np.asarray(weights[decl.name.text])
        if array.dtype != decl.type.dtype.numpy or tuple(array.shape) != decl.type.shape:
            raise decl.name.problem(
                f"the weights given for %{decl.name.text} are {array.dtype}{list(array.shape)}, "
                f"the .hir declares {decl.type}"
            )
    elif decl.sha256 in weights:
        typed = as_typed(weights[decl.sha256], decl.type)
        if typed is None:
            raise decl.data_at.problem(
                f"the weights file's data for %{decl.name.text} does not fit {decl.type}"
            )
        array = typed
    else:
        return ElidedConstant(decl.sha256)
    actual = content_sha256(array)
    if actual != decl.sha256:
        raise decl.data_at.problem(
            f"the data given for %{decl.name.text} has sha256 {actual[:16]}…, "
            f"the .hir says {decl.sha256[:16]}…"
        )
    return array


def _dense_array(decl: ConstantDecl, values: list[Located]) -> np.ndarray:
    dtype = decl.type.dtype
    if len(values) != decl.type.size:
        raise decl.data_at.problem(f"dense data has {len(values)} values, {decl.type} needs {decl.type.size}")
    if dtype is DType.BOOL:
        for v in values:
            if not isinstance(v.text, bool):
                raise v.problem("a bool constant's values are true or false")
        data = np.array([v.text for v in values], dtype=np.bool_)
    elif dtype.is_float:
        for v in values:
            if isinstance(v.text, bool) or not isinstance(v.text, (int, float)):
                raise v.problem(f"a {dtype} constant's values are numbers")
        with np.errstate(over="ignore"):
            data = np.array([float(v.text) for v in values], dtype=np.float64).astype(dtype.numpy)
    else:
        low, high = _int_range(dtype)
        for v in values:
            if isinstance(v.text, bool) or not isinstance(v.text, int):
                raise v.problem(f"a {dtype} constant's values are integers")
            if not low <= v.text <= high:
                raise v.problem(f"{v.text} does not fit {dtype} ({low}..{high})")
        data = np.array([v.text for v in values], dtype=np.int64).astype(dtype.numpy)
    return data.reshape(decl.type.shape)


def _int_range(dtype: DType) -> tuple[int, int]:
    if dtype is DType.U8:
        return 0, 255
    half = 1 << (dtype.bits - 1)
    return -half, half - 1


# -- nodes ------------------------------------------------------------------------
def _add_node(builder: Builder, scope: _Scope, decl: NodeDecl, regions: list[Graph]) -> None:
    schema = _schema(decl.op)
    operands = [None if o is None else scope.lookup(o) for o in decl.operands]
    attrs = _attributes(schema, decl.attrs)
    if len(decl.types) != len(decl.results):
        raise decl.op.problem(f"{len(decl.results)} results are named but {len(decl.types)} types are given")
    for name in decl.results:
        scope.define(name)
    try:
        results = builder.op(
            schema.name,
            operands,
            attrs,
            name=decl.loc,
            result_names=[r.text for r in decl.results],
            result_types=decl.types,
            regions=regions,
        )
    except IRError as exc:
        raise decl.op.problem(str(exc)) from None
    node = results[0].producer
    assert node is not None
    node.annotations.update(decl.annotations)


def _schema(op: Located) -> OpSchema:
    try:
        return get_schema(op.text)
    except UnknownOpError:
        names = [s.name for s in all_schemas()]
        close = difflib.get_close_matches(op.text, names, n=3)
        hint = f" (did you mean {', '.join(close)}?)" if close else ""
        raise op.problem(f"unknown op '{op.text}'{hint}") from None


_KIND_WORDS = {
    AttrKind.INT: "an integer",
    AttrKind.FLOAT: "a number",
    AttrKind.STR: "a quoted string",
    AttrKind.INTS: "a list of integers",
    AttrKind.FLOATS: "a list of numbers",
    AttrKind.STRS: "a list of quoted strings",
    AttrKind.DTYPE: "a dtype name (f32, i64, ...)",
}


def _attributes(schema: OpSchema, attrs: list[tuple[Located, Located]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in attrs:
        if key.text not in schema.attributes:
            known = ", ".join(sorted(schema.attributes)) or "none"
            raise key.problem(f"{schema.name} has no attribute '{key.text}' (known: {known})")
        if key.text in result:
            raise key.problem(f"attribute '{key.text}' is given twice")
        kind = schema.attributes[key.text].kind
        if not _fits(kind, value):
            raise value.problem(f"attribute '{key.text}' of {schema.name} must be {_KIND_WORDS[kind]}")
        result[key.text] = _attr_value(kind, value)
    return result


def _fits(kind: AttrKind, value: Located) -> bool:
    scalar = {AttrKind.INTS: AttrKind.INT, AttrKind.FLOATS: AttrKind.FLOAT, AttrKind.STRS: AttrKind.STR}
    if kind in scalar:
        return isinstance(value.text, list) and all(_fits(scalar[kind], v) for v in value.text)
    text = value.text
    if kind is AttrKind.INT:
        return isinstance(text, int) and not isinstance(text, bool)
    if kind is AttrKind.FLOAT:
        return isinstance(text, (int, float)) and not isinstance(text, bool)
    if kind is AttrKind.STR:
        return isinstance(text, str) and not isinstance(text, BareName)
    return isinstance(text, BareName)


def _attr_value(kind: AttrKind, value: Located) -> Any:
    if kind is AttrKind.DTYPE:
        try:
            return DType.parse(value.text)
        except ValueError as exc:
            raise value.problem(str(exc)) from None
    if isinstance(value.text, list):
        return tuple(v.text for v in value.text)
    return value.text
