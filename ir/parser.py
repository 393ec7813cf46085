"""The `.hir` parser: text → `Graph`, with `file:line:col` errors that show the line and a caret.

Rule: lark's LALR parser (grammar `ir/hir.lark`) turns the text into located
declarations (`ir.hir_syntax`) as it parses; `ir.hir_build` then builds the graph
through `ir.builder.Builder`, so a parsed node is checked exactly like a node a
pass makes. Every problem — a syntax error, an unknown op or attribute, an
undefined or twice-defined value, a type that disagrees with inference — is a
`HirParseError`; integers fit 64 bits. The format itself is described in `ir/printer.py`.
Imports lark, numpy and `ir` only.
"""

from __future__ import annotations

import functools
import json
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import lark
import numpy as np

from ir.dtypes import DType
from ir.graph import Graph
from ir.hir_build import build_graph
from ir.hir_syntax import (
    ELLIPSIS,
    SHOWN_TOKEN,
    AnnotationsDecl,
    BareName,
    ConstantDecl,
    GraphDecl,
    HirParseError,
    Located,
    MetadataDecl,
    NodeDecl,
    RegionsDecl,
    SyntaxProblem,
)
from ir.printer import FORMAT_VERSION
from ir.types import QuantParams, TensorType
from ir.weights_file import confined_weights_path, read_weights

__all__ = ["HirParseError", "parse_hir", "read_hir"]

_VERSION_LINE = re.compile(r"\s*//\s*HAI IR text \(\.hir\), format version (\d+)")


def parse_hir(
    text: str, *, filename: str = "<string>", weights: Mapping[str, np.ndarray] | None = None
) -> Graph:
    """Parse `.hir` text; `weights` gives constant data by constant name or by content sha256.

    Constants whose data is neither printed inline nor given stay `ElidedConstant(sha256)`.
    """
    decl = parse_declarations(text, filename)
    return _build(decl, text, filename, weights or {})


def read_hir(path: str | Path) -> Graph:
    """Read a `.hir` file and the weights file its header names (relative to the `.hir`, inside its
    directory)."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise HirParseError(f"cannot read {path}: {exc}") from None
    decl = parse_declarations(text, str(path))
    weights: dict[str, np.ndarray] = {}
    if decl.weights_file is not None:
        assert decl.weights_sha256 is not None
        weights_path = confined_weights_path(path, decl.weights_file)
        weights = read_weights(weights_path, decl.weights_sha256, str(path))
    return _build(decl, text, str(path), weights)


def parse_declarations(text: str, filename: str = "<string>") -> GraphDecl:
    """The first stage: the text's declarations, located, without building IR."""
    _check_version(text, filename)
    try:
        decl = _lark().parse(text)
        assert isinstance(decl, GraphDecl)  # the embedded transformer builds it
        return decl
    except SyntaxProblem as problem:
        raise HirParseError.at(text, filename, problem.line, problem.col, problem.message) from None
    except lark.exceptions.UnexpectedToken as exc:
        value = str(exc.token.value)
        value = value if len(value) <= SHOWN_TOKEN else value[:SHOWN_TOKEN] + ELLIPSIS
        got = "the end of the text" if exc.token.type == "$END" else repr(value)
        raise HirParseError.at(
            text, filename, exc.line, exc.column, f"expected {_describe(exc.expected)}, got {got}"
        ) from None
    except lark.exceptions.UnexpectedCharacters as exc:
        pos = exc.pos_in_stream or 0
        char = text[pos] if pos < len(text) else ""
        raise HirParseError.at(
            text,
            filename,
            exc.line,
            exc.column,
            f"unexpected character {char!r}; expected {_describe(exc.allowed)}",
        ) from None
    except lark.exceptions.UnexpectedEOF as exc:
        lines = text.split("\n")
        raise HirParseError.at(
            text, filename, len(lines), len(lines[-1]) + 1, f"expected {_describe(exc.expected)}, got the end"
        ) from None


def _build(decl: GraphDecl, text: str, filename: str, weights: Mapping[str, np.ndarray]) -> Graph:
    try:
        return build_graph(decl, weights)
    except SyntaxProblem as problem:
        raise HirParseError.at(text, filename, problem.line, problem.col, problem.message) from None


def _check_version(text: str, filename: str) -> None:
    for number, line in enumerate(text[:2000].split("\n")[:5], start=1):
        match = _VERSION_LINE.match(line)
        if match and (len(match.group(1)) > 9 or int(match.group(1)) > FORMAT_VERSION):
            raise HirParseError.at(
                text,
                filename,
                number,
                match.start(1) + 1,
                f".hir format version {match.group(1)} is newer than this compiler reads "
                f"({FORMAT_VERSION}); use a newer HAI",
            )


# -- the lark stage ----------------------------------------------------------
_TERMINAL_WORDS = {
    "VALUE_NAME": "a value name (%x)",
    "GRAPH_NAME": "a graph name (@main)",
    "OP_NAME": "an op name",
    "NAME": "a name",
    "STRING": "a quoted string",
    "SHA256": "sha256:<64 hex digits>",
    "INT": "an integer",
    "FLOAT": "a float",
    "$END": "the end of the text",
    "TYPE_HEAD": "a tensor type (f32[1,3])",
    "INT_LIST": "a list",
    "LOC": 'loc("name")',
}


def _describe(terminals: Any) -> str:
    words = set()
    for name in terminals:
        if name in _TERMINAL_WORDS:
            words.add(_TERMINAL_WORDS[name])
            continue
        try:
            pattern = _lark().get_terminal(name).pattern
        except KeyError:
            words.add(name)
            continue
        words.add(repr(pattern.value) if pattern.type == "str" else name)
    ordered = sorted(words)
    return ordered[0] if len(ordered) == 1 else "one of " + ", ".join(ordered)


@functools.cache
def _lark() -> lark.Lark:
    return lark.Lark.open(
        str(Path(__file__).with_name("hir.lark")),
        parser="lalr",
        transformer=_ToDeclarations(),
        maybe_placeholders=False,
    )


def _located(token: lark.Token, value: Any) -> Located:
    return Located(value, token.line or 0, token.column or 0)


def _decode_string(token: lark.Token) -> str:
    try:
        return json.loads(token.value)
    except json.JSONDecodeError as exc:
        raise SyntaxProblem(token.line or 0, token.column or 0, f"bad string escape: {exc.msg}") from None


def _name(token: lark.Token) -> Located:
    """A %name or @name occurrence, with its quoting removed."""
    body = token.value[1:]
    if body.startswith('"'):
        body = _decode_string(lark.Token(token.type, body, line=token.line, column=token.column))
    return _located(token, body)


def _as_int(value: Located, what: str) -> int:
    if not isinstance(value.text, int) or isinstance(value.text, bool):
        raise value.problem(f"{what} must be an integer")
    return value.text


def _unwrap(value: Located) -> Any:
    """The plain Python value of a literal (lists become tuples, records dicts)."""
    if isinstance(value.text, list):
        return tuple(_unwrap(v) for v in value.text)
    if isinstance(value.text, dict):
        return {k: _unwrap(v) for k, v in value.text.items()}
    return value.text


def _make_quant(record: Located) -> QuantParams:
    fields = record.text if isinstance(record.text, dict) else None
    if fields is None:
        raise record.problem("quant must be a record (scale = [...], zero_point = [...], ...)")
    unknown = sorted(set(fields) - {"scale", "zero_point", "axis", "group_size"})
    if unknown or "scale" not in fields or "zero_point" not in fields:
        raise record.problem(f"quant takes scale, zero_point, axis, group_size (got {sorted(fields)})")
    scale, zero = fields["scale"], fields["zero_point"]
    if not isinstance(scale.text, list) or not isinstance(zero.text, list):
        raise record.problem("quant scale and zero_point must be lists")
    try:
        return QuantParams(
            tuple(float(_unwrap(v)) for v in scale.text),
            tuple(_as_int(v, "a zero point") for v in zero.text),
            _as_int(fields["axis"], "quant axis") if "axis" in fields else None,
            _as_int(fields["group_size"], "quant group_size") if "group_size" in fields else None,
        )
    except (TypeError, ValueError) as exc:
        raise record.problem(f"bad quantization parameters: {exc}") from None


INT64 = (-(2**63), 2**63 - 1)


def _integer(text: str, token: lark.Token) -> int:
    """An integer literal, which must fit 64 bits (checked before `int()`, which refuses 4300+ digits)."""
    if len(text.lstrip("+-0")) > 19 or not INT64[0] <= int(text) <= INT64[1]:
        shown = text if len(text) <= 40 else f"{text[:40]}… ({len(text)} digits)"
        raise SyntaxProblem(token.line or 0, token.column or 0, f"integer {shown} is out of the 64-bit range")
    return int(text)


def _make_type(head: lark.Token, facts: list[tuple[Located, Located]]) -> TensorType:
    """A type from its `dtype[d0,d1]` token and its facts."""
    dtype_text, _, dims = head.value.partition("[")
    try:
        dtype = DType.parse(dtype_text)
    except ValueError as exc:
        raise SyntaxProblem(head.line or 0, head.column or 0, str(exc)) from None
    shape = tuple(_integer(d, head) for d in dims[:-1].replace(",", " ").split())
    extra: dict[str, Any] = {}
    for key, value in facts:
        if key.text in extra:
            raise key.problem(f"type fact '{key.text}' is given twice")
        if key.text == "quant":
            extra["quant"] = _make_quant(value)
        elif key.text in ("device", "layout"):
            if not isinstance(value.text, str) or isinstance(value.text, BareName):
                raise value.problem(f"{key.text} must be a quoted string")
            extra[key.text] = value.text
        elif key.text in ("offset", "page"):
            extra[key.text] = _as_int(value, key.text)
        else:
            raise key.problem(f"unknown type fact '{key.text}' (known: quant, device, layout, offset, page)")
    try:
        return TensorType(dtype, shape, **extra)
    except ValueError as exc:
        raise SyntaxProblem(head.line or 0, head.column or 0, str(exc)) from None


def _record_position(items: list) -> tuple[int, int]:
    for item in items:
        if isinstance(item, Located):
            return item.line, item.col
        if isinstance(item, tuple) and item and isinstance(item[0], Located):
            return item[0].line, item[0].col
    return 0, 0


@lark.v_args(inline=True)
class _ToDeclarations(lark.Transformer):
    """Builds `ir.hir_syntax` records while lark parses (an embedded LALR transformer)."""

    def start(self, *children: Any) -> GraphDecl:
        graph = children[-1]
        if len(children) == 2:
            graph.weights_file, graph.weights_sha256 = children[0]
        return graph

    def weights_decl(self, path: lark.Token, sha: lark.Token) -> tuple[str, str]:
        return _decode_string(path), self.elided_data(sha).text

    def graph(self, name: lark.Token, params: list, outputs: list, *rest: Any) -> GraphDecl:
        returns, return_at = rest[-1]
        return GraphDecl(_name(name).text, params, outputs, list(rest[:-1]), returns, return_at)

    def params(self, *params: Any) -> list:
        return list(params)

    def param(self, name: lark.Token, type: TensorType) -> tuple[Located, TensorType]:
        return _name(name), type

    def value_list(self, *names: lark.Token) -> list[Located]:
        return [_name(n) for n in names]

    results = value_list

    def metadata_entry(self, key: lark.Token, value: lark.Token) -> MetadataDecl:
        return MetadataDecl(_decode_string(key), _decode_string(value))

    def constant(self, names: list[Located], type: TensorType, data: Located) -> ConstantDecl:
        if len(names) != 1:
            raise names[1].problem("a constant defines one value")
        if isinstance(data.text, str):
            return ConstantDecl(names[0], type, data.text, None, data)
        return ConstantDecl(names[0], type, None, data.text, data)

    def elided_data(self, token: lark.Token) -> Located:
        digest = token.value[len("sha256:") :]
        if not re.fullmatch(r"[0-9a-f]{64}", digest):
            raise SyntaxProblem(
                token.line or 0, token.column or 0, "expected sha256:<64 lowercase hex digits>"
            )
        return _located(token, digest)

    def dense_data(self, keyword: lark.Token, *numbers: Located) -> Located:
        return _located(keyword, list(numbers))

    def node(self, results: list[Located], op: lark.Token, operands: list, *rest: Any) -> NodeDecl:
        attrs: list = []
        loc = ""
        types: list[TensorType] = []
        annotations = AnnotationsDecl()
        regions = RegionsDecl()
        for item in rest:
            if isinstance(item, AnnotationsDecl):
                annotations = item
            elif isinstance(item, RegionsDecl):
                regions = item
            elif isinstance(item, str):
                loc = item
            elif item and isinstance(item[0], TensorType):
                types = item
            else:
                attrs = item
        return NodeDecl(results, _located(op, op.value), operands, attrs, types, loc, annotations, regions)

    def regions(self, *graphs: GraphDecl) -> RegionsDecl:
        return RegionsDecl(graphs)

    def annotations(self, *items: tuple[Located, Located]) -> AnnotationsDecl:
        found = AnnotationsDecl()
        for key, value in items:
            if key.text in found:
                raise key.problem(f"annotation '{key.text}' is given twice")
            plain_int = isinstance(value.text, int) and not isinstance(value.text, bool)
            plain_str = isinstance(value.text, str) and not isinstance(value.text, BareName)
            if not (plain_int or plain_str):
                raise value.problem(f"annotation '{key.text}' must be an integer or a quoted string")
            found[key.text] = value.text
        return found

    def operands(self, *operands: lark.Token | None) -> list[Located | None]:
        return [None if o is None else _name(o) for o in operands]

    def absent(self) -> None:
        return None

    def attr_dict(self, *attrs: tuple[Located, Located]) -> list:
        return list(attrs)

    def attr(self, key: lark.Token, value: Located) -> tuple[Located, Located]:
        if value.line == 0:
            value = Located(value.text, key.line or 0, key.column or 0)
        return _located(key, key.value), value

    def location(self, text: lark.Token) -> str:
        if text.type == "LOC":  # loc("name") as one token
            text = lark.Token("STRING", text.value[4:-1], line=text.line, column=(text.column or 0) + 4)
        return _decode_string(text)

    def type_list(self, *types: TensorType) -> list[TensorType]:
        return list(types)

    def return_stmt(self, keyword: lark.Token, names: list[Located]) -> tuple[list[Located], Located]:
        return names, _located(keyword, "return")

    def type(self, head: lark.Token, facts: list | None = None) -> TensorType:
        return _make_type(head, facts or [])

    def type_facts(self, *facts: tuple[Located, Located]) -> list:
        return list(facts)

    def int_number(self, token: lark.Token) -> Located:
        return _located(token, _integer(token.value, token))

    def float_number(self, token: lark.Token) -> Located:
        return _located(token, float(token.value))

    def true(self, token: lark.Token) -> Located:
        return _located(token, True)

    def false(self, token: lark.Token) -> Located:
        return _located(token, False)

    def string(self, token: lark.Token) -> Located:
        return _located(token, _decode_string(token))

    def bare_name(self, token: lark.Token) -> Located:
        return _located(token, BareName(token.value))

    def int_list(self, token: lark.Token) -> Located:
        numbers = token.value[1:-1].replace(",", " ").split()
        return _located(token, [_located(token, _integer(n, token)) for n in numbers])

    def list(self, *items: Located) -> Located:
        line, col = _record_position(list(items))
        return Located(list(items), line, col)

    def record(self, *fields: tuple[Located, Located]) -> Located:
        line, col = _record_position(list(fields))
        record: dict[str, Located] = {}
        for key, value in fields:
            if key.text in record:
                raise key.problem(f"field '{key.text}' is given twice")
            record[key.text] = value
        return Located(record, line, col)
