"""Every `.hir` error is a HirParseError at `file:line:col`, followed by the source line (a window of a
long one) and a caret."""

from __future__ import annotations

import re

import pytest

from ir.errors import HaiError
from ir.parser import HirParseError, parse_hir

GOOD = """\
graph @g(%x: f32[2,3]) -> (%y) {
  %c = constant f32[3] dense<[1.0, 2.0, 3.0]>
  %y = Add(%x, %c) : f32[2,3] loc("add")
  return %y
}
"""

# (description, old text, new text, line, col, message fragment)
CASES = [
    ("unknown op", "Add(", "Addd(", 3, 8, "unknown op 'Addd' (did you mean Add?)"),
    ("too few operands", "Add(%x, %c)", "Add(%x)", 3, 8, "Add takes (A, B), got 1 operands"),
    ("too many operands", "Add(%x, %c)", "Add(%x, %c, %c)", 3, 8, "got 3 operands"),
    ("unknown attribute", ") : f32[2,3]", ") {alpha = 1} : f32[2,3]", 3, 21, "Add has no attribute 'alpha'"),
    (
        "type disagrees with inference",
        ": f32[2,3] loc",
        ": f32[2,4] loc",
        3,
        8,
        "result 0 is declared f32[2,4] but the op gives f32[2,3]",
    ),
    ("dtype disagrees with inference", ": f32[2,3] loc", ": f16[2,3] loc", 3, 8, "declared f16[2,3]"),
    ("result count disagrees", "%y = Add", "%y, %z = Add", 3, 12, "2 results are named but 1 types"),
    ("undefined operand", "Add(%x, %c)", "Add(%x, %z)", 3, 16, "%z is not defined before this use"),
    ("undefined output", "return %y", "return %q", 4, 10, "%q is not defined"),
    (
        "duplicate constant",
        "%c = constant",
        "%x = constant",
        2,
        3,
        "%x is defined twice (first at line 1:10)",
    ),
    ("duplicate result", "%y = Add", "%c = Add", 3, 3, "%c is defined twice"),
    ("duplicate input", "(%x: f32[2,3])", "(%x: f32[2,3], %x: f32[1])", 1, 24, "%x is defined twice"),
    (
        "signature and return disagree",
        "return %y",
        "return %x",
        1,
        28,
        "lists outputs ['y'] but it returns ['x']",
    ),
    ("unknown dtype", "%x: f32", "%x: f33", 1, 14, "unknown dtype 'f33'"),
    ("unknown type fact", "%x: f32[2,3])", '%x: f32[2,3]{devic = "x"})', 1, 23, "unknown type fact 'devic'"),
    ("dense count", "dense<[1.0, 2.0, 3.0]>", "dense<[1.0, 2.0]>", 2, 24, "dense data has 2 values"),
    ("dense kind", "dense<[1.0, 2.0, 3.0]>", "dense<[1.0, true, 3.0]>", 2, 36, "values are numbers"),
    ("short hash", "dense<[1.0, 2.0, 3.0]>", "sha256:abc", 2, 24, "sha256:<64 lowercase hex digits>"),
    ("unterminated string", 'loc("add")', 'loc("add)', 3, 35, "unexpected character"),
    ("missing closing brace", "}\n", "", 4, 10, "expected one of"),
    ("stray token", "%y = Add", "%y = = Add", 3, 8, "expected an op name, got '='"),
    ("missing colon", ") : f32[2,3]", ") f32[2,3]", 3, 20, "expected"),
]


@pytest.mark.parametrize("case", CASES, ids=[c[0] for c in CASES])
def test_error_points_at_line_and_column(case):
    _, old, new, line, col, fragment = case
    assert old in GOOD
    text = GOOD.replace(old, new, 1)
    with pytest.raises(HirParseError) as info:
        parse_hir(text, filename="model.hir")
    message = str(info.value)
    head, source, caret = message.split("\n")
    assert head.startswith(f"model.hir:{line}:{col}: "), message
    assert fragment in head, message
    assert source == "  " + text.splitlines()[line - 1]
    assert caret == "  " + " " * (col - 1) + "^"


def test_parse_error_is_a_hai_error():
    assert issubclass(HirParseError, HaiError)


def test_attribute_kind_errors_point_at_the_value():
    text = 'graph @g(%x: f32[3]) -> (%y) {\n  %y = LeakyRelu(%x) {alpha = "big"} : f32[3]\n  return %y\n}\n'
    with pytest.raises(
        HirParseError, match=r"<string>:2:31: attribute 'alpha' of LeakyRelu must be a number"
    ):
        parse_hir(text)


def test_dtype_attribute_errors_point_at_the_value():
    text = "graph @g(%x: f32[3]) -> (%y) {\n  %y = Cast(%x) {to = f33} : f32[3]\n  return %y\n}\n"
    with pytest.raises(HirParseError, match=r"<string>:2:23: unknown dtype 'f33'"):
        parse_hir(text)


def test_out_of_range_integer_constant():
    text = "graph @g() -> (%c) {\n  %c = constant u8[2] dense<[1, 256]>\n  return %c\n}\n"
    with pytest.raises(HirParseError, match=re.escape("<string>:2:33: 256 does not fit u8 (0..255)")):
        parse_hir(text)


@pytest.mark.parametrize(
    ("where", "column"),
    [
        ("f32[3]) -> (%y) {\n  %y = Flatten(%x) {axis = N}", 27),
        ("f32[N]) -> (%y) {\n  %y = Flatten(%x) {axis = 0}", 14),
    ],
)
def test_integers_past_64_bits(where: str, column: int) -> None:
    """Python's int() refuses 4300+ digits: the parser names the literal first, cut short."""
    text = f"graph @g(%x: {where.replace('N', '9' * 5000)} : f32[1,3]\n  return %y\n}}\n"
    with pytest.raises(
        HirParseError, match=r":\d+:\d+: integer 9{40}… \(5000 digits\) is out of the 64-bit range"
    ):
        parse_hir(text)


def test_error_in_empty_text():
    with pytest.raises(
        HirParseError, match="empty.hir:1:1: expected one of .graph., .weights., got the end of the text"
    ):
        parse_hir("", filename="empty.hir")


def test_caret_keeps_tabs_aligned():
    text = "graph @g(%x: f32[3]) -> (%y) {\n\t%y = Relux(%x) : f32[3]\n\treturn %y\n}\n"
    with pytest.raises(HirParseError) as info:
        parse_hir(text)
    assert str(info.value).splitlines()[2] == "  \t     ^"


@pytest.mark.parametrize("bad_at", [3, 1000, 1999], ids=["start", "middle", "end"])
def test_long_line_shows_a_window_around_the_column(bad_at: int) -> None:
    """A 10,000-character dense line: at most ~120 characters of it, `…` where cut, the caret under the
    offending value (a `true` among numbers)."""
    values = ["1.0"] * 2000
    values[bad_at] = "true"
    text = GOOD.replace("f32[3] dense<[1.0, 2.0, 3.0]>", f"f32[2000] dense<[{', '.join(values)}]>")
    text = text.replace("%c = constant", "%k = constant").replace(", %c)", ", %x)")
    source = text.splitlines()[1]
    with pytest.raises(HirParseError) as info:
        parse_hir(text, filename="long.hir")
    head, shown, caret = str(info.value).split("\n")
    col = int(re.match(r"long\.hir:2:(\d+): ", head).group(1))  # type: ignore[union-attr]
    assert source[col - 1 :].startswith("true"), head
    assert len(shown) <= 122 and len(caret) <= 122 and len(head) <= 200
    assert caret.strip() == "^" and shown[len(caret) - 1 :].startswith("true")
    assert shown.startswith("  …") == (bad_at != 3) and shown.endswith("…") == (bad_at != 1999)


def test_long_unexpected_token_is_quoted_cut_short() -> None:
    text = GOOD.replace('loc("add")', '"' + "A" * 3000 + '"')
    with pytest.raises(HirParseError) as info:
        parse_hir(text)
    head, shown, _ = str(info.value).split("\n")
    assert head.endswith(", got '\"" + "A" * 39 + "…'") and len(shown) <= 122
