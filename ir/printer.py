"""The `.hir` printer: every fact of a graph as text that `ir.parser` reads back identically.

Rule: the printer is dumb and complete. It makes no choice a reader has to
guess: `print_graph(parse_hir(print_graph(g))) == print_graph(g)` for every
graph, and the parser rebuilds every fact. The format (grammar in `ir/hir.lark`):

    // HAI IR text (.hir), format version 1
    weights "model.weights.npz" sha256:<64 hex>          (only when a weights file exists)
    graph @main(%x: f32[1,3,8,8], %"onnx::Mul_2": i64[]) -> (%y) {
      metadata "producer_name" = "pytorch"
      %w = constant f32[16,3,3,3] sha256:<64 hex>        (data elided: content hash)
      %b = constant f32[2] dense<[0.5, -1.0]>            (at most 16 elements: exact values)
      %y = Conv(%x, %w, _) {group = 1, pads = [1, 1, 1, 1]} : f32[1,16,8,8] loc("conv1")
      %r = Relu(%y) : f32[1,16,8,8] loc("relu1") #{fused_into = "conv1", fusion_group = 0}
      %a, %c = Split(%y) {axis = 1, split = [8, 8]} : f32[1,8,8,8], f32[1,8,8,8]
      return %y
    }

- Header: a comment naming the format version, then the optional weights
  file (path relative to the `.hir`, and the sha256 of the file's bytes).
- Names: `%name` / `@name` when the name matches `[A-Za-z0-9_][A-Za-z0-9_.$-]*`,
  otherwise quoted with JSON escapes (`%"/conv1/Conv_output_0"`).
- Types: `dtype[d0,d1,...]` (`f32[]` is a scalar), then the facts that are set,
  in this order: `{quant = (scale = [0.1], zero_point = [0], axis = 0,
  group_size = 32), device = "cpu", layout = "NHWC", offset = 1024, page = 3}`; `axis` and
  `group_size` are printed only when set.
- Constants come first; `sha256:` is the hash of the data's bytes in C order.
  Dense values are flat in C order: floats in the shortest form that reads back
  bit-exactly (`nan`, `inf`, `-inf`, `-0.0` included), integers as decimals,
  bools as `true`/`false`.
- Nodes in graph order: results, op, operands (`_` for an absent optional
  one; trailing absent ones are left out), attributes sorted by name, result types, and the node's name in
  `loc("...")` when it has one, then its annotations when it has any:
  `#{fusion_group = 3, fused_into = "conv1"}` (discardable facts that are not op
  attributes, `Node.annotations`: keys sorted, values ints or quoted strings).
  Attribute values: ints `1`; floats with Python's
  `repr` (always a `.`, an exponent, `nan` or `inf`, so they read back as floats);
  strings quoted; lists `[...]`; dtypes as bare names (`to = f16`).
- A control-flow node's regions (ir/ops/control.py) follow its line in braces, each
  printed as a graph named after its role, indented one more step:

      %y = If(%c) : f32[2] loc("if") {
        graph @then_branch() -> (%t) {
          %t = Relu(%x) : f32[2]
          return %t
        }
        graph @else_branch() -> (%e) { ... }
      }

  A region may read values defined before its node in the graphs around it.
- `metadata "key" = "value"` lines hold the graph's metadata; `// ...` comments
  are ignored.

Imports `ir` only.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import numpy as np

from ir.dtypes import DType
from ir.graph import Graph, Node, Value
from ir.types import TensorType
from ir.weights_file import weights_path_for, write_weights

FORMAT_VERSION = 1
HEADER = f"// HAI IR text (.hir), format version {FORMAT_VERSION}"
INLINE_LIMIT = 16
"""Constants of at most this many elements are printed with their values."""

_SIMPLE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.$\-]*\Z")


def print_graph(graph: Graph, *, weights_file: str | None = None, weights_sha256: str | None = None) -> str:
    """The `.hir` text of `graph`; `weights_file` names its weights file (hashed when no sha is given)."""
    lines = [HEADER]
    if weights_file is not None:
        sha = weights_sha256 or hashlib.sha256(Path(weights_file).read_bytes()).hexdigest()
        lines.append(f"weights {quote(weights_file)} sha256:{sha}")
    lines.extend(graph_lines(graph, ""))
    return "\n".join(lines) + "\n"


def graph_lines(graph: Graph, indent: str) -> list[str]:
    """A graph (the model's or a region) as lines, each starting with `indent`."""
    inner = indent + "  "
    params = ", ".join(f"{value_ref(v)}: {format_type(v.type)}" for v in graph.inputs)
    outputs = ", ".join(value_ref(v) for v in graph.outputs)
    lines = [f"{indent}graph {name_ref('@', graph.name)}({params}) -> ({outputs}) {{"]
    lines.extend(f"{inner}metadata {quote(k)} = {quote(v)}" for k, v in graph.metadata.items())
    lines.extend(f"{inner}{format_constant(v)}" for v in graph.constants.values())
    for node in graph.nodes:
        if not node.regions:
            lines.append(f"{inner}{format_node(node)}")
            continue
        lines.append(f"{inner}{format_node(node)} {{")
        for region in node.regions:
            lines.extend(graph_lines(region, inner + "  "))
        lines.append(f"{inner}}}")
    lines.append(f"{inner}return {outputs}".rstrip())
    lines.append(f"{indent}}}")
    return lines


def write_hir(graph: Graph, path: str | Path, *, save_weights: bool = False) -> Path:
    """Write `graph` to `path` (OUT.hir); with `save_weights` also OUT.weights.npz beside it."""
    path = Path(path)
    weights_name = sha = None
    if save_weights:
        weights = weights_path_for(path)
        sha = write_weights(weights, elided_constants(graph))
        weights_name = weights.name
    path.write_text(print_graph(graph, weights_file=weights_name, weights_sha256=sha), encoding="utf-8")
    return path


def is_inline(value: Value) -> bool:
    """Whether a constant is printed with its values (loaded data, at most INLINE_LIMIT elements)."""
    return isinstance(value.const, np.ndarray) and value.type.size <= INLINE_LIMIT


def elided_constants(graph: Graph) -> list[Value]:
    """The constants printed as a hash, its regions' too: the ones a weights file must hold."""
    graphs = [graph, *(region for _, node in graph.walk() for region in node.regions)]
    return [v for g in graphs for v in g.constants.values() if not is_inline(v)]


# -- pieces -------------------------------------------------------------------
def quote(text: str) -> str:
    return json.dumps(text, ensure_ascii=False)


def name_ref(sigil: str, name: str) -> str:
    return sigil + (name if _SIMPLE_NAME.match(name) else quote(name))


def value_ref(value: Value | None) -> str:
    return "_" if value is None else name_ref("%", value.name)


def format_type(t: TensorType) -> str:
    facts = []
    if t.quant is not None:
        q = t.quant
        fields = [f"scale = {format_list(q.scale)}", f"zero_point = {format_list(q.zero_point)}"]
        if q.axis is not None:
            fields.append(f"axis = {q.axis}")
        if q.group_size is not None:
            fields.append(f"group_size = {q.group_size}")
        facts.append(f"quant = ({', '.join(fields)})")
    if t.device is not None:
        facts.append(f"device = {quote(t.device)}")
    if t.layout is not None:
        facts.append(f"layout = {quote(t.layout)}")
    if t.offset is not None:
        facts.append(f"offset = {t.offset}")
    if t.page is not None:
        facts.append(f"page = {t.page}")
    suffix = "{" + ", ".join(facts) + "}" if facts else ""
    return f"{t.dtype}[{','.join(map(str, t.shape))}]{suffix}"


def format_constant(value: Value) -> str:
    if is_inline(value):
        assert isinstance(value.const, np.ndarray)
        data = f"dense<[{', '.join(format_elements(value.const, value.type.dtype))}]>"
    else:
        data = f"sha256:{value.sha256}"
    return f"{value_ref(value)} = constant {format_type(value.type)} {data}"


def format_node(node: Node) -> str:
    results = ", ".join(value_ref(r) for r in node.results)
    present = list(node.operands)
    while present and present[-1] is None:  # the builder drops trailing absent operands too
        present.pop()
    operands = ", ".join(value_ref(o) for o in present)
    attrs = ""
    if node.attrs:
        attrs = " {" + ", ".join(f"{k} = {format_attr(node.attrs[k])}" for k in sorted(node.attrs)) + "}"
    types = ", ".join(format_type(r.type) for r in node.results)
    loc = f" loc({quote(node.name)})" if node.name else ""
    return f"{results} = {node.op}({operands}){attrs} : {types}{loc}{format_annotations(node)}"


def format_annotations(node: Node) -> str:
    """A node's annotations as ` #{key = value, ...}` sorted by key; empty when it has none."""
    if not node.annotations:
        return ""
    items = (f"{k} = {format_attr(node.annotations[k])}" for k in sorted(node.annotations))
    return " #{" + ", ".join(items) + "}"


def format_attr(value: Any) -> str:
    """An attribute value in the syntax of its Python type (int, float, str, DType, sequence)."""
    if isinstance(value, DType):
        return value.value
    if isinstance(value, (bool, np.bool_)):
        return str(int(value))
    if isinstance(value, (int, np.integer)):
        return str(int(value))
    if isinstance(value, (float, np.floating)):
        return format_float(float(value))
    if isinstance(value, str):
        return quote(value)
    if isinstance(value, (tuple, list)):
        return format_list(value)
    raise TypeError(f"attribute value {value!r} has no .hir syntax")


def format_list(values: Iterable[Any]) -> str:
    return "[" + ", ".join(format_attr(v) for v in values) + "]"


def format_float(x: float) -> str:
    """`repr`, which reads back exactly and always looks like a float."""
    return repr(x)


def format_elements(array: np.ndarray, dtype: DType) -> list[str]:
    """A constant's elements in C order, each reading back bit-exactly as `dtype`."""
    flat = np.ascontiguousarray(array).reshape(-1)
    if dtype is DType.BOOL:
        return ["true" if v else "false" for v in flat.tolist()]
    if not dtype.is_float:
        return [str(int(v)) for v in flat.tolist()]
    return [shortest_float(x, dtype.numpy) for x in flat]


def shortest_float(x: Any, np_dtype: np.dtype) -> str:
    """The shortest decimal that converts back to exactly `x` in `np_dtype` (always float-looking)."""
    if np_dtype.type in (np.float16, np.float32, np.float64):
        return str(x)  # numpy prints the shortest unique repr (Dragon4), e.g. 0.1, 1e+20, -0.0, nan
    as_float = float(x)
    if math.isnan(as_float) or math.isinf(as_float):
        return repr(as_float)
    for digits in range(1, 18):
        text = f"{as_float:.{digits}g}"
        if float(np.array(float(text)).astype(np_dtype)) == as_float:
            break
    else:
        text = repr(as_float)
    if as_float == 0 and math.copysign(1, as_float) < 0:
        text = "-0.0"
    return text if any(c in text for c in ".e") else text + ".0"
