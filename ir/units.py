"""Byte sizes as users write them (`512MB`, `256 MiB`, `1.5GB`, `1048576`) and as messages print them.

Rule (DESIGN.md, "Promises we measure"): a size is a non-negative decimal
number, optionally followed (with or without a space) by a unit; the unit is
case-insensitive. Decimal and binary prefixes mean the same power of two, as
RSS is reported: `KB` = `KiB` = 2^10, `MB` = `MiB` = 2^20, `GB` = `GiB` = 2^30,
`TB` = `TiB` = 2^40 bytes; `B` or no unit means bytes. A fraction is allowed
only with a unit of at least a KiB, and the product is rounded down to whole
bytes (`0.1MB` = 104857 bytes): a budget never grows by rounding. Bare `K`, `M`,
`G` are not units, and `Mb` reads as MB (never bits). A size above `MAX_SIZE` (2^64 bytes, more
than any machine addresses) is an error, not a number to compute with. Messages quote the text cut to
`QUOTED` characters. This module imports nothing of ours but the error family.
"""

from __future__ import annotations

import re
from fractions import Fraction

from ir.errors import HaiError

UNITS = {"": 1, "b": 1, "kb": 2**10, "kib": 2**10, "mb": 2**20, "mib": 2**20,
         "gb": 2**30, "gib": 2**30, "tb": 2**40, "tib": 2**40}  # fmt: skip
"""Every accepted unit, lower-cased, and the bytes it stands for."""
SHOWN_UNITS = (("TiB", 2**40), ("GiB", 2**30), ("MiB", 2**20), ("KiB", 2**10))
_SIZE = re.compile(r"\s*(?P<number>\d+(?:\.\d*)?|\.\d+)\s*(?P<unit>[A-Za-z]*)\s*", re.ASCII)
MAX_SIZE = 2**64
QUOTED = 40
EXAMPLES = "512MB, 256 MiB, 1.5GiB or plain bytes (MB and MiB both mean 2^20 bytes)"


class ByteSize(int):
    """A byte count that an option holds (a pass's `budget`, `page-size`): the pipeline parser reads
    it in this module's grammar, and `repr` (what pipeline text shows) spells it in it (`4MiB`, else
    plain bytes), so it reads back; `str` is the plain byte count, as for any int."""

    def __str__(self) -> str:
        return int.__repr__(self)

    def __repr__(self) -> str:
        for name, size in SHOWN_UNITS:
            if self >= size and self % size == 0:
                return f"{self // size}{name}"
        return str(int(self))


class ByteSizeError(HaiError):
    """A size that is not a non-negative number with an optional unit of DESIGN.md's list."""


def parse_size(text: str | int, what: str = "size") -> int:
    """The byte count `text` stands for (module doc: the rule); `what` names the option in errors.

    A plain `int` (not a bool) is taken as bytes. Raises `ByteSizeError` quoting the malformed text.
    """
    if isinstance(text, int) and not isinstance(text, bool):
        if text < 0:
            raise ByteSizeError(f"{what}: a size cannot be negative, got {text}")
        return text
    if not isinstance(text, str):
        raise ByteSizeError(f"{what}: expected a size such as {EXAMPLES}, got {type(text).__name__} {text!r}")
    match = _SIZE.fullmatch(text)
    if match is None:
        raise ByteSizeError(f"{what}: malformed size {quoted(text)}: write {EXAMPLES}")
    unit = match["unit"].lower()
    if unit not in UNITS:
        raise ByteSizeError(
            f"{what}: unknown unit {quoted(match['unit'])} in {quoted(text)}: "
            f"use B, KB/KiB, MB/MiB, GB/GiB or TB/TiB ({EXAMPLES})"
        )
    whole, _, fraction = match["number"].partition(".")
    whole = whole.lstrip("0") or "0"
    if len(whole) > len(str(MAX_SIZE)):  # before any arithmetic: Python refuses 4300+ digit numbers
        raise _too_large(what, text)
    # A whole byte count of a unit of 2^k bytes has at most k decimals: 40 decimals floor alike.
    number = Fraction(f"{whole}.{fraction[:40]}")
    if number.denominator != 1 and UNITS[unit] == 1:
        raise ByteSizeError(f"{what}: {quoted(text)} is a fraction of a byte: give whole bytes or a unit")
    size = int(number * UNITS[unit])  # int() of a non-negative Fraction rounds down
    if size > MAX_SIZE:
        raise _too_large(what, text)
    return size


def _too_large(what: str, text: str) -> ByteSizeError:
    return ByteSizeError(f"{what}: {quoted(text)} is larger than any memory (at most 2^64 bytes)")


def quoted(text: str) -> str:
    """`text` quoted for a message, cut to `QUOTED` characters with its full length named."""
    if len(text) <= QUOTED:
        return repr(text)
    return repr(text[:QUOTED]) + f"… ({len(text)} characters)"


def format_size(nbytes: int) -> str:
    """`nbytes` for messages: `512 MiB`, `1.5 GiB`, `1.23 MiB` (two decimals at most), `100 B`.

    Exact when the count is a multiple of the shown unit's hundredth; `parse_size` reads it back.
    """
    for unit, scale in SHOWN_UNITS:
        if nbytes >= scale:
            return f"{nbytes / scale:.2f}".rstrip("0").rstrip(".") + f" {unit}"
    return f"{nbytes} B"
