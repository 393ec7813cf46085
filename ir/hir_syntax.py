"""What the `.hir` grammar yields before it becomes IR: located names and plain declarations.

Rule: the parser's first stage turns lark's parse into these records (every name
and op keeps its line and column); the second stage (`ir.hir_build`) turns them
into a `Graph` through the builder. A problem found in either stage is a
`SyntaxProblem` at a position, which `HirParseError.at` renders as
`file:line:col: message`, the source line and a caret. A source line longer than
`SHOWN_COLUMNS` (a 5000-character dense literal) is shown as a window of that many
characters around the column, `…` marking each side cut off, the caret under the
column. Imports `ir` only.
"""

from __future__ import annotations

import dataclasses
from typing import Any

from ir.errors import HaiError
from ir.types import TensorType

SHOWN_COLUMNS = 116
"""The most characters of a source line an error shows (with `…` on each side cut off: at most 118)."""
ELLIPSIS = "…"
SHOWN_TOKEN = 40  # the most characters of an unexpected token a message quotes


def source_window(source: str, index: int) -> tuple[str, int]:
    """`source` cut to `SHOWN_COLUMNS` characters around `index` (marked `…` where cut) and `index`'s
    position in what is shown."""
    if len(source) <= SHOWN_COLUMNS:
        return source, index
    start = max(0, min(index - SHOWN_COLUMNS // 2, len(source) - SHOWN_COLUMNS))
    end = start + SHOWN_COLUMNS
    left = ELLIPSIS if start > 0 else ""
    right = ELLIPSIS if end < len(source) else ""
    return left + source[start:end] + right, index - start + len(left)


class HirParseError(HaiError):
    """A `.hir` text that cannot be read; the message points at the line and column."""

    @classmethod
    def at(cls, text: str, filename: str, line: int, col: int, message: str) -> HirParseError:
        lines = text.split("\n")  # lark counts lines by \n only
        source = lines[line - 1].rstrip("\r") if 0 < line <= len(lines) else ""
        shown, index = source_window(source, max(col - 1, 0))
        prefix = "".join(c if c == "\t" else " " for c in shown[:index])
        return cls(f"{filename}:{line}:{col}: {message}\n  {shown}\n  {prefix}^")


class SyntaxProblem(Exception):
    """Internal: a problem at a position, turned into a HirParseError by the parser."""

    def __init__(self, line: int, col: int, message: str) -> None:
        super().__init__(message)
        self.line, self.col, self.message = line, col, message


class BareName(str):
    """An unquoted identifier used as a value (a dtype attribute such as `to = f16`)."""


class AnnotationsDecl(dict):
    """A node's `#{key = value, ...}`: annotation names to their int or string values."""


class RegionsDecl(list):
    """A control-flow node's regions: their `GraphDecl`s, in order."""


@dataclasses.dataclass(frozen=True, slots=True)
class Located:
    """A name, op or literal with where it was written."""

    text: Any
    line: int
    col: int

    def problem(self, message: str) -> SyntaxProblem:
        return SyntaxProblem(self.line, self.col, message)


@dataclasses.dataclass(slots=True)
class ConstantDecl:
    name: Located
    type: TensorType
    sha256: str | None
    values: list[Located] | None
    data_at: Located


@dataclasses.dataclass(slots=True)
class NodeDecl:
    results: list[Located]
    op: Located
    operands: list[Located | None]
    attrs: list[tuple[Located, Any]]
    types: list[TensorType]
    loc: str
    annotations: dict[str, str | int] = dataclasses.field(default_factory=dict)
    regions: list[GraphDecl] = dataclasses.field(default_factory=list)


@dataclasses.dataclass(slots=True)
class MetadataDecl:
    key: str
    value: str


@dataclasses.dataclass(slots=True)
class GraphDecl:
    name: str
    params: list[tuple[Located, TensorType]]
    outputs: list[Located]
    statements: list[ConstantDecl | NodeDecl | MetadataDecl]
    returns: list[Located]
    return_at: Located
    weights_file: str | None = None
    weights_sha256: str | None = None
