"""ONNX model → HAI IR graph.

Rules: a model passes the ONNX checker (loader.py) once its ops are known to
be ones HAI imports; input shapes must be static (symbolic dimensions come from
`input_shapes` or the import fails naming them); initializers and Constant
nodes become IR constants; small computations on constants (the
Shape→Gather→Concat→Reshape chains) fold while importing, so shape operands
become attributes; every unsupported op in the model is listed in one error (subgraphs included).
IR values keep their ONNX names. Control flow (converters/control.py) imports a
subgraph either inline into the graph being built or as a region of its node:
its values then see the outer ones (a scope), its own stay inside.
"""

from __future__ import annotations

import contextlib
import dataclasses
import os
from collections import ChainMap
from collections.abc import Iterator, Mapping, MutableMapping, Sequence
from pathlib import Path

import numpy as np
import onnx

from hai_compiler.onnx_import import converters  # noqa: F401  (registers the converters)
from hai_compiler.onnx_import.converter import (
    ONNX_DOMAINS,
    ConversionContext,
    ConversionError,
    SymbolicShapeError,
    UnsupportedModelError,
    default_converter,
    find_converter,
    imports,
    onnx_dtype,
)
from hai_compiler.onnx_import.loader import check_onnx, load_model
from ir import Builder, Graph, HaiError, IRError, TensorType, Value
from ir.folding import fold_node, is_foldable

FOLD_LIMIT = 4096
"""Results up to this many elements fold while importing (shape arithmetic, small tables)."""

MIN_OPSET = 7


def import_onnx(
    model: onnx.ModelProto | str | os.PathLike[str],
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    bind_inputs: Mapping[str, np.ndarray] | None = None,
) -> Graph:
    """Import an ONNX model (a path or a loaded ModelProto) into a verified-ready IR graph.

    `input_shapes` fixes the shapes of inputs (required for symbolic dims);
    `bind_inputs` turns the named inputs into constants with the given values.
    """
    path = None
    if not isinstance(model, onnx.ModelProto):
        path = Path(model)
        model = load_model(path)
    opset = _default_opset(model)
    check_supported(model, opset)
    check_onnx(model, path)
    return _Importer(model, opset, dict(input_shapes or {}), dict(bind_inputs or {})).run()


def _default_opset(model: onnx.ModelProto) -> int:
    for entry in model.opset_import:
        if entry.domain in ONNX_DOMAINS:
            newest = onnx.defs.onnx_opset_version()
            if not MIN_OPSET <= entry.version <= newest:
                raise UnsupportedModelError(
                    f"model uses ONNX opset {entry.version}; HAI imports opsets {MIN_OPSET} to {newest}"
                )
            return int(entry.version)
    raise UnsupportedModelError("model declares no default ONNX opset (ai.onnx)")


def check_supported(model: onnx.ModelProto, opset: int) -> None:
    """Raise one UnsupportedModelError listing every node HAI cannot import."""
    problems: dict[tuple[str, str], list[str]] = {}
    for node in _all_nodes(model.graph):
        if imports(node.op_type, node.domain):
            continue
        key = (node.domain or "ai.onnx", node.op_type)
        problems.setdefault(key, []).append(node.name or node.output[0])
    if not problems:
        return
    lines = []
    for (domain, op_type), names in sorted(problems.items()):
        version = opset if domain == "ai.onnx" else _domain_version(model, domain)
        shown = ", ".join(names[:5]) + (f", … ({len(names)} nodes)" if len(names) > 5 else "")
        lines.append(f"  {domain}::{op_type} (opset {version}): {shown}")
    raise UnsupportedModelError(
        f"model '{model.graph.name}' uses {len(problems)} unsupported op type(s):\n" + "\n".join(lines)
    )


def _all_nodes(graph: onnx.GraphProto) -> Iterator[onnx.NodeProto]:
    """A graph's nodes and those of every subgraph in it."""
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.type == onnx.AttributeProto.GRAPH:
                yield from _all_nodes(attr.g)
            elif attr.type == onnx.AttributeProto.GRAPHS:
                for graph_attr in attr.graphs:
                    yield from _all_nodes(graph_attr)


def _reads(node: onnx.NodeProto) -> Iterator[str]:
    """The value names a node reads: its inputs and those its subgraphs' nodes read."""
    yield from node.input
    for attr in node.attribute:
        if attr.type == onnx.AttributeProto.GRAPH:
            for inner in _all_nodes(attr.g):
                yield from inner.input


def _domain_version(model: onnx.ModelProto, domain: str) -> str:
    for entry in model.opset_import:
        if entry.domain == domain:
            return str(entry.version)
    return "?"


class _Importer:
    def __init__(
        self,
        model: onnx.ModelProto,
        opset: int,
        input_shapes: dict[str, Sequence[int]],
        bind_inputs: dict[str, np.ndarray],
    ) -> None:
        self.model = model
        self.opset = opset
        self.input_shapes = input_shapes
        self.bind_inputs = bind_inputs
        self.graph = Graph(model.graph.name or "main")
        self.values: MutableMapping[str, Value] = {}

    def run(self) -> Graph:
        onnx_graph = self.model.graph
        initializers = {init.name for init in onnx_graph.initializer}
        self._check_names(onnx_graph, initializers)
        for init in onnx_graph.initializer:
            self.values[init.name] = self.graph.add_constant(init.name, _tensor_array(init))
        for vi in onnx_graph.input:
            if vi.name not in initializers:
                self._add_input(vi)
        self._convert_all(onnx_graph.node)
        self._set_outputs(onnx_graph)
        for prop in self.model.metadata_props:
            self.graph.metadata[prop.key] = prop.value
        return self.graph

    def _check_names(self, onnx_graph: onnx.GraphProto, initializers: set[str]) -> None:
        inputs = {vi.name for vi in onnx_graph.input}
        for name in set(self.input_shapes) | set(self.bind_inputs):
            if name not in inputs or name in initializers:
                raise HaiError(f"model has no input named '{name}' (inputs: {sorted(inputs - initializers)})")

    def _add_input(self, vi: onnx.ValueInfoProto) -> None:
        where = f"input '{vi.name}'"
        if not vi.type.HasField("tensor_type"):
            raise UnsupportedModelError(f"{where} is not a tensor (sequences and maps are not supported)")
        dtype = onnx_dtype(vi.type.tensor_type.elem_type, where)
        if vi.name in self.bind_inputs:
            array = np.asarray(self.bind_inputs[vi.name]).astype(dtype.numpy, copy=False)
            self.values[vi.name] = self.graph.add_constant(vi.name, self._bound_shape(vi, array))
            return
        shape = self._static_shape(vi)
        self.values[vi.name] = self.graph.add_input(vi.name, TensorType(dtype, shape))

    @staticmethod
    def _bound_shape(vi: onnx.ValueInfoProto, array: np.ndarray) -> np.ndarray:
        """A bound value in its input's declared shape, when that is static and holds as many elements."""
        dims = vi.type.tensor_type.shape.dim
        if not vi.type.tensor_type.HasField("shape") or any(not d.HasField("dim_value") for d in dims):
            return array
        shape = tuple(d.dim_value for d in dims)
        if array.shape != shape and array.size == int(np.prod(shape)):
            return array.reshape(shape)
        if array.shape != shape:
            raise HaiError(
                f"input '{vi.name}' is bound to a value of shape {list(array.shape)}; it is {list(shape)}"
            )
        return array

    def _static_shape(self, vi: onnx.ValueInfoProto) -> tuple[int, ...]:
        dims = vi.type.tensor_type.shape.dim
        declared = [  # a negative dim_value (some exporters write -1) is as unknown as a dim_param
            d.dim_value if d.HasField("dim_value") and d.dim_value >= 0 else (d.dim_param or "?")
            for d in dims
        ]
        given = self.input_shapes.get(vi.name)
        if given is not None:
            given = tuple(int(d) for d in given)
            if len(given) != len(declared) or any(
                isinstance(d, int) and d != g for d, g in zip(declared, given)
            ):
                raise HaiError(f"input '{vi.name}': shape {list(given)} does not fit the model's {declared}")
            return given
        symbolic = [d for d in declared if not isinstance(d, int)]
        if symbolic or not vi.type.tensor_type.HasField("shape"):
            example = ",".join(str(d) if isinstance(d, int) else "1" for d in declared)
            raise SymbolicShapeError(
                f"input '{vi.name}' has symbolic dimensions {declared}; give a static shape, "
                f"e.g. --input-shape {vi.name}={example}"
            )
        return tuple(int(d) for d in declared)

    def _convert_all(self, nodes: Sequence[onnx.NodeProto]) -> None:
        """Convert every node; one ConversionError lists every node that failed (e.g. each quantized
        layer of an unsupported scheme), none of those that only read what a failed node makes."""
        failures: list[ConversionError] = []
        failed: set[str] = set()  # ONNX values a failed node, or one downstream of it, would make
        for node in nodes:
            if not any(name in failed for name in _reads(node)):
                try:
                    self._convert(node)
                    continue
                except ConversionError as exc:
                    failures.append(exc)
            failed.update(name for name in node.output if name)
        if len(failures) == 1:
            raise failures[0]
        if failures:
            kinds = {type(exc) for exc in failures}
            kind = kinds.pop() if len(kinds) == 1 else ConversionError
            listed = "\n  - ".join(map(str, failures))
            raise kind(f"{len(failures)} nodes cannot be converted:\n  - {listed}")

    def _convert(self, node: onnx.NodeProto) -> None:
        inputs: list[Value | None] = []
        for name in node.input:
            if not name:
                inputs.append(None)
            elif name in self.values:
                inputs.append(self.values[name])
            else:
                raise ConversionError(
                    f"node '{node.name or node.output[0]}' ({node.op_type}) reads '{name}', "
                    "which no earlier node, input or initializer defines"
                )
        ctx = ConversionContext(self.graph, node, inputs, self.opset, subgraphs=self)
        anchor = self.graph.nodes.last
        convert = find_converter(node.op_type, node.domain) or default_converter
        try:
            outputs = list(convert(ctx))
        except IRError as exc:
            raise ConversionError(f"{ctx.where}: {exc}") from None
        folded = self._fold_new_nodes(anchor)
        outputs = [folded.get(v, v) if v is not None else None for v in outputs]
        _keep_view_quant(ctx, outputs)
        self._bind_outputs(ctx, outputs)

    def _fold_new_nodes(self, anchor) -> dict[Value, Value]:  # type: ignore[no-untyped-def]
        """Fold the converter's new constant-only nodes; maps each folded result to its constant."""
        folded: dict[Value, Value] = {}
        for new in self.graph.nodes.after(anchor):
            if is_foldable(new, FOLD_LIMIT):
                results = list(new.results)
                fold_node(self.graph, new)
                folded.update((r, self.graph.value(r.name)) for r in results)
        return folded

    def _bind_outputs(self, ctx: ConversionContext, outputs: list[Value | None]) -> None:
        for index, name in enumerate(ctx.node.output):
            if not name:
                continue
            value = outputs[index] if index < len(outputs) else None
            if value is None or value.graph is None:
                raise ctx.fail(f"output {index} ('{name}') is not supported")
            fresh = value.producer is not None or value.is_constant  # made by this converter
            if fresh and not self.graph.in_scope(name) and value.name not in self.values:
                self.graph.rename(value, name)  # IR values keep their ONNX names
            self.values[name] = value

    # -- subgraphs (converters/control.py) -------------------------------------------------
    def inline(self, body: onnx.GraphProto, args: Sequence[Value]) -> list[Value]:
        """Import `body`'s nodes into the graph being built, its inputs reading `args`; its outputs."""
        self._check_arity(body, args)
        values = ChainMap(dict(zip((vi.name for vi in body.input), args)), self.values)
        with self._scope(self.graph, values):
            self._add_initializers(body)
            self._convert_all(body.node)
            return [self._output(body, vi.name) for vi in body.output]

    def region(self, name: str, body: onnx.GraphProto, input_types: Sequence[TensorType]) -> Graph:
        """`body` imported as a region named `name` (its node is made next), inputs of `input_types`."""
        self._check_arity(body, input_types)
        region = Graph(name, enclosing=self.graph)
        values: ChainMap[str, Value] = ChainMap({}, self.values)
        for vi, type in zip(body.input, input_types):
            values[vi.name] = region.add_input(region.unique_name(vi.name), type)
        with self._scope(region, values):
            self._add_initializers(body)
            self._convert_all(body.node)
            outputs: list[Value] = []
            for vi in body.output:
                value = self._output(body, vi.name)
                if value.graph is not region or value in outputs:  # a region returns its own values
                    (value,) = Builder(region).op(
                        "Identity", [value], name=vi.name, result_names=[region.unique_name(vi.name)]
                    )
                outputs.append(value)
        region.set_outputs(outputs)
        return region

    def checkpoint(self) -> tuple[object, int]:
        """Where the graph being built stands, for `rollback`."""
        return self.graph.nodes.last, len(self.graph.constants)

    def rollback(self, checkpoint: tuple[object, int]) -> None:
        """Remove the nodes and the (unused) constants made since `checkpoint`."""
        anchor, constants = checkpoint
        for node in reversed(self.graph.nodes.after(anchor)):  # type: ignore[arg-type]
            self.graph.remove_node(node)
        for value in list(self.graph.constants.values())[constants:]:
            if not value.uses():
                self.graph.remove_constant(value)

    @contextlib.contextmanager
    def _scope(self, graph: Graph, values: MutableMapping[str, Value]) -> Iterator[None]:
        saved = self.graph, self.values
        self.graph, self.values = graph, values
        try:
            yield
        finally:
            self.graph, self.values = saved

    def _add_initializers(self, body: onnx.GraphProto) -> None:
        for init in body.initializer:
            self.values[init.name] = self.graph.add_constant(init.name, _tensor_array(init))

    def _output(self, body: onnx.GraphProto, name: str) -> Value:
        if name not in self.values:
            raise ConversionError(f"subgraph '{body.name}' output '{name}' is not computed by any node")
        return self.values[name]

    @staticmethod
    def _check_arity(body: onnx.GraphProto, args: Sequence[object]) -> None:
        if len(body.input) != len(args):
            raise ConversionError(
                f"subgraph '{body.name}' takes {len(body.input)} inputs where its node gives {len(args)}"
            )

    def _set_outputs(self, onnx_graph: onnx.GraphProto) -> None:
        outputs = []
        for vi in onnx_graph.output:
            if vi.name not in self.values:
                raise ConversionError(f"graph output '{vi.name}' is not computed by any node")
            value = self.values[vi.name]
            if value.name != vi.name or value in outputs or value.is_graph_input:
                (value,) = Builder(self.graph).op(
                    "Identity", [value], name=vi.name, result_names=[self.graph.unique_name(vi.name)]
                )
            outputs.append(value)
        self.graph.set_outputs(outputs)


QUANT_VIEWS = frozenset(
    {"Identity", "Reshape", "Flatten", "Squeeze", "Unsqueeze", "Transpose", "MaxPool", "Slice", "Expand"}
)
"""ONNX ops whose first result holds (a selection of) their first input's integers unchanged."""


def _keep_view_quant(ctx: ConversionContext, outputs: list[Value | None]) -> None:
    """A view or selection of a per-tensor quantized value (a QOperator model's Reshape of a
    QLinearConv's u8 output) is quantized alike: ONNX carries the parameters on the next op, the IR
    in the type, so the first result takes its input's parameters."""
    source = ctx.input(0)
    result = outputs[0] if outputs else None
    if ctx.op_type not in QUANT_VIEWS or source is None or result is None or result.producer is None:
        return
    quant = source.type.quant
    if quant is None or quant.axis is not None or result.type.quant is not None:
        return
    if result.type.dtype is source.type.dtype:
        result.type = dataclasses.replace(result.type, quant=quant)


def _tensor_array(tensor: onnx.TensorProto) -> np.ndarray:
    from onnx import numpy_helper

    try:
        return np.asarray(numpy_helper.to_array(tensor), order="C")  # keeps 0-d scalars 0-d
    except Exception as exc:  # external data missing, bad raw bytes
        raise HaiError(f"initializer '{tensor.name}' cannot be read: {exc}") from None
