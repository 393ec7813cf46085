"""Pipeline strings → configured passes: `fold-constants{max-size=1024},eliminate-dead-code`.

Rule: the grammar (passes/pipeline.lark) only splits the text into passes and
`key=value` options; this module then finds each pass in the registry, maps
option spellings (`max-size`) to dataclass fields (`max_size`) and converts
every value to its field's annotated type. `default` stands for the canonical
pipeline `DEFAULT_PIPELINE`. Numbers are ASCII decimals: an int fits 64 bits, a
float is finite (no `nan`, `inf`, `1_0` or other scripts' digits, which Python's
`int`/`float` would take); a `ByteSize` is a size in ir/units.py's grammar;
lists nest at most `MAX_NESTING` deep. Every problem is a `PipelineError` that
shows the text with a caret under the offending column. Imports only `ir` and
this package.
"""

from __future__ import annotations

import dataclasses
import math
import re
import types
import typing
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any, Literal

import lark

from ir import HaiError
from ir.units import EXAMPLES, ByteSize, ByteSizeError, parse_size
from passes.manager import Pass
from passes.registry import available_passes, find_pass

DEFAULT_PIPELINE = (
    "infer-shapes",  # start from exact types, whatever produced the graph
    "fold-constants",  # evaluate what is already known
    "fold-qdq",  # an imported QDQ model's layers onto the integer ops, before anything reshapes them
    "flatten-control-flow",  # Ifs on what became known take their branch; small static loops unroll
    "eliminate-identity",  # drop no-op nodes so producers meet their BatchNormalization
    "sink-views",  # pointwise work behind a Squeeze/Reshape moves up to its producer
    "fold-batchnorm",  # fold scale/shift into Conv/Gemm/MatMul weights
    "fold-channel-affine",  # and the per-channel Mul/Add/Sub/Div that exporters leave after them
    "eliminate-common-subexpressions",  # merge duplicate nodes and identical weights
    "fuse-attention",  # MatMul -> scale -> mask -> Softmax -> MatMul as one Attention (targets listing it)
    "eliminate-dead-code",  # last: removes what the passes above left unused
)
"""The canonical pipeline, spelled `default` in pipeline strings; each step's reason is beside it."""


MAX_NESTING = 8
"""The deepest list nesting an option value may have (options take lists of scalars)."""
INT_RANGE = (-(2**63), 2**63 - 1)
QUOTED = 40
"""Values are quoted in messages up to this many characters."""


class PipelineError(HaiError):
    """A pipeline string that does not parse or names an unknown pass, option or bad value."""


@dataclasses.dataclass(frozen=True)
class RawValue:
    """An option value as written: a bare word, a quoted string, or a list of values."""

    kind: str  # "word" | "string" | "list"
    value: Any


@dataclasses.dataclass(frozen=True)
class PassSpec:
    """One pass as written in a pipeline string, with the columns of its name and options."""

    name: str
    column: int
    options: tuple[tuple[str, RawValue, int], ...] = ()  # (spelling, value, column)


@cache
def _parser() -> lark.Lark:
    grammar = (Path(__file__).with_name("pipeline.lark")).read_text()
    return lark.Lark(grammar, parser="lalr", propagate_positions=True)


def caret(text: str, column: int) -> str:
    """The pipeline text and a caret under 1-based `column`, indented for an error message; a long
    text is cut to the `2 * QUOTED` characters around the column, with `…` where it was cut."""
    start = max(0, min(column - 1 - QUOTED, len(text) - 2 * QUOTED))
    shown = text[start : start + 2 * QUOTED]
    before = "…" if start else ""
    after = "…" if start + 2 * QUOTED < len(text) else ""
    return f"  {before}{shown}{after}\n  {' ' * (len(before) + column - 1 - start)}^"


def _error(text: str, column: int, message: str) -> PipelineError:
    return PipelineError(f"pipeline error at column {column}: {message}\n{caret(text, column)}")


def parse_specs(text: str) -> list[PassSpec]:
    """Split a pipeline string into pass specs (syntax only; no registry lookup)."""
    if not text.strip():
        return []
    _check_nesting(text)
    try:
        tree = _parser().parse(text)
    except lark.UnexpectedInput as exc:
        token_type = getattr(getattr(exc, "token", None), "type", "")
        at_end = isinstance(exc, lark.UnexpectedEOF) or token_type == "$END"
        column = len(text) + 1 if at_end else max(exc.column, 1)
        raise _error(text, column, _syntax_message(exc)) from None
    return _SpecBuilder().transform(tree)


def _check_nesting(text: str) -> None:
    """Refuse lists nested deeper than MAX_NESTING before the (recursive) parser sees them."""
    depth, quoted, escaped = 0, False, False
    for column, char in enumerate(text, 1):
        if escaped:
            escaped = False
        elif quoted:
            quoted, escaped = char != '"', char == "\\"
        elif char == '"':
            quoted = True
        elif char in "[]":
            depth += 1 if char == "[" else -1
            if depth > MAX_NESTING:
                raise _error(text, column, f"lists nest more than {MAX_NESTING} deep")


class _SpecBuilder(lark.Transformer):
    """Parse tree → `PassSpec`s, keeping the column of every pass name and option name."""

    def start(self, children: list) -> list[PassSpec]:
        return [spec for spec in children if spec is not None]

    def pass_spec(self, children: list) -> PassSpec:
        name: lark.Token = children[0]
        options = children[1] if len(children) > 1 else ()
        return PassSpec(str(name), int(name.column or 1), tuple(options))

    def options(self, children: list) -> list[tuple[str, RawValue, int]]:
        return children

    def option(self, children: list) -> tuple[str, RawValue, int]:
        key, value = children
        return (str(key), value, int(key.column or 1))

    def word(self, children: list) -> RawValue:
        return RawValue("word", str(children[0]))

    def string(self, children: list) -> RawValue:
        return RawValue("string", re.sub(r"\\(.)", r"\1", str(children[0])[1:-1]))

    def list(self, children: list) -> RawValue:
        return RawValue("list", tuple(child for child in children if child is not None))


def _syntax_message(exc: lark.UnexpectedInput) -> str:
    if isinstance(exc, lark.UnexpectedEOF):
        return "the pipeline ends too early (an unclosed '{' or '['?)"
    if isinstance(exc, lark.UnexpectedCharacters):
        return f"unexpected character {exc.char!r}"
    if isinstance(exc, lark.UnexpectedToken):
        token = exc.token
        if token.type == "$END":
            return "the pipeline ends too early (an unclosed '{' or '['?)"
        expected = sorted(_TOKEN_WORDS.get(t, t.lower()) for t in exc.expected)
        return f"unexpected {str(token)!r}; expected {' or '.join(expected)}"
    return str(exc)


_TOKEN_WORDS = {
    "COMMA": "','",
    "LBRACE": "'{'",
    "RBRACE": "'}'",
    "LSQB": "'['",
    "RSQB": "']'",
    "EQUAL": "'='",
    "PASS_NAME": "a pass name",
    "OPTION_NAME": "an option name",
    "WORD": "a value",
    "ESCAPED_STRING": "a quoted string",
    "$END": "the end",
}


def parse_pipeline(text: str, registry: Mapping[str, type[Pass]] | None = None) -> list[Pass]:
    """Parse a pipeline string into configured pass instances, expanding `default`."""
    registry = available_passes() if registry is None else registry
    passes: list[Pass] = []
    for spec in parse_specs(text):
        if spec.name == "default" and "default" not in registry:
            if spec.options:
                raise _error(text, spec.options[0][2], "the 'default' pipeline takes no options")
            passes.extend(registry[name]() for name in DEFAULT_PIPELINE)
            continue
        cls = find_pass(spec.name, registry)
        if cls is None:
            known = ", ".join(sorted(registry)) + ", default"
            raise _error(text, spec.column, f"unknown pass '{spec.name}' (known passes: {known})")
        passes.append(_instantiate(cls, spec, text))
    return passes


def _instantiate(cls: type[Pass], spec: PassSpec, text: str) -> Pass:
    fields = cls.options()
    hints = typing.get_type_hints(cls)
    values: dict[str, Any] = {}
    for spelling, raw, column in spec.options:
        field = fields.get(spelling) or fields.get(spelling.replace("_", "-"))
        if field is None:
            known = ", ".join(sorted(fields)) or "none"
            raise _error(text, column, f"pass '{cls.name}' has no option '{spelling}' (its options: {known})")
        if field.name in values:
            raise _error(text, column, f"option '{spelling}' of pass '{cls.name}' is given twice")
        try:
            values[field.name] = convert_option(raw, hints[field.name])
        except _BadValue as bad:
            shown = bad.got or _show(raw)
            raise _error(
                text, column, f"option '{spelling}' of pass '{cls.name}' expects {bad.expected}, got {shown}"
            ) from None
    try:
        return cls(**values)
    except (ValueError, TypeError, HaiError) as exc:
        raise _error(text, spec.column, f"pass '{cls.name}': {exc}") from None


def _show(raw: RawValue) -> str:
    if raw.kind == "list":
        return "a list"
    if len(raw.value) > QUOTED:
        return repr(raw.value[:QUOTED]) + f"… ({len(raw.value)} characters)"
    return repr(raw.value)


class _BadValue(Exception):
    def __init__(self, expected: str, got: str | None = None) -> None:
        self.expected = expected
        self.got = got


_INT = re.compile(r"[+-]?\d+", re.ASCII)
_FLOAT = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d{1,4})?", re.ASCII)


def convert_option(raw: RawValue, annotation: Any) -> Any:
    """Convert a written value to `annotation` (int, float, bool, str, Literal, Optional, tuple/list)."""
    origin = typing.get_origin(annotation)
    args = typing.get_args(annotation)
    if origin in (typing.Union, types.UnionType):
        if type(None) in args and raw.kind == "word" and raw.value == "none":
            return None
        members = [a for a in args if a is not type(None)]
        got = None
        for member in members:
            try:
                return convert_option(raw, member)
            except _BadValue as bad:
                got = bad.got if len(members) == 1 else None  # one member: its own reason stands
        optional = " or none" if len(members) < len(args) else ""
        raise _BadValue(" or ".join(_describe(m) for m in members) + optional, got)
    if origin in (tuple, list):
        element = args[0] if args else str
        items = raw.value if raw.kind == "list" else (raw,)
        converted = []
        for position, item in enumerate(items, 1):
            try:
                converted.append(convert_option(item, element))
            except _BadValue:
                raise _BadValue(_describe(annotation), f"{_show(item)} as element {position}") from None
        return tuple(converted) if origin is tuple else converted
    if raw.kind == "list":
        raise _BadValue(_describe(annotation))
    return _convert_scalar(raw, annotation)


def _convert_scalar(raw: RawValue, annotation: Any) -> Any:
    text = raw.value
    if typing.get_origin(annotation) is Literal:
        if text in typing.get_args(annotation):
            return text
        raise _BadValue(_describe(annotation))
    if annotation is str:
        return text
    if raw.kind == "string":
        raise _BadValue(_describe(annotation))
    if annotation is bool:
        if text in ("true", "false"):
            return text == "true"
    elif annotation is int:
        if _INT.fullmatch(text):
            # no int() of 4300+ digits (Python refuses it): 20 digits are already out of range
            if len(text.lstrip("+-0")) < 20 and INT_RANGE[0] <= int(text) <= INT_RANGE[1]:
                return int(text)
            raise _BadValue("an integer within 64 bits")
    elif annotation is float:
        if _FLOAT.fullmatch(text) and math.isfinite(float(text)):
            return float(text)
    elif annotation is ByteSize:
        try:
            return ByteSize(parse_size(text, "size"))
        except ByteSizeError as exc:
            raise _BadValue(_describe(annotation), str(exc).removeprefix("size: ")) from None
    else:
        raise TypeError(f"pass option type {annotation!r} is not supported by the pipeline parser")
    raise _BadValue(_describe(annotation))


def _describe(annotation: Any) -> str:
    origin = typing.get_origin(annotation)
    if origin is Literal:
        return "one of " + ", ".join(map(str, typing.get_args(annotation)))
    if origin in (tuple, list):
        args = typing.get_args(annotation)
        return f"a list like [x,y] of which each is {_describe(args[0]) if args else 'a value'}"
    return {
        bool: "a bool (true or false)",
        int: "an integer",
        float: "a finite number",
        str: "a string",
        ByteSize: f"a size ({EXAMPLES})",
    }.get(annotation, str(annotation))
