"""Byte sizes: DESIGN.md's units (MB and MiB both 2^20 bytes), errors quoting the text, formatting back."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from ir.errors import HaiError
from ir.units import ByteSizeError, format_size, parse_size


@pytest.mark.parametrize(
    ("text", "nbytes"),
    [
        ("512MB", 512 * 2**20),
        ("512MiB", 512 * 2**20),
        ("256 MiB", 256 * 2**20),
        ("0.5GiB", 2**29),
        ("1.5GB", 3 * 2**29),
        ("1.5 gb", 3 * 2**29),
        ("4kb", 4096),
        ("2TiB", 2 * 2**40),
        ("1048576", 2**20),
        ("100B", 100),
        (" 7 ", 7),
        ("0", 0),
        ("0.1MB", 104857),  # 104857.6 rounded down
        (".5KiB", 512),
        (4096, 4096),
    ],
)
def test_accepted_sizes(text: str | int, nbytes: int) -> None:
    assert parse_size(text) == nbytes


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "malformed size ''"),
        ("MB", "malformed size 'MB'"),
        ("-5MB", "malformed size '-5MB'"),
        ("5 M B", "malformed size '5 M B'"),
        ("1e6", "malformed size '1e6'"),
        ("12M", "unknown unit 'M'"),
        ("3 furlongs", "unknown unit 'furlongs'"),
        ("1.5", "fraction of a byte"),
        ("1.5B", "fraction of a byte"),
        (-1, "cannot be negative"),
        (1.5, "got float 1.5"),
        (True, "got bool True"),
    ],
)
def test_malformed_sizes_name_the_text_and_the_option(text: object, message: str) -> None:
    with pytest.raises(ByteSizeError, match="--memory-budget: ") as caught:
        parse_size(text, what="--memory-budget")  # type: ignore[arg-type]
    assert message in str(caught.value)
    assert isinstance(caught.value, HaiError)


@pytest.mark.parametrize(
    ("nbytes", "text"),
    [(0, "0 B"), (1023, "1023 B"), (1024, "1 KiB"), (512 * 2**20, "512 MiB"), (3 * 2**29, "1.5 GiB"),
     (1234567, "1.18 MiB")],
)  # fmt: skip
def test_format_size(nbytes: int, text: str) -> None:
    assert format_size(nbytes) == text


@given(st.integers(0, 2**45))
def test_format_then_parse_is_within_half_a_percent(nbytes: int) -> None:
    back = parse_size(format_size(nbytes))
    # two decimals: half a hundredth of the unit (0.5% at 1.00x), plus parse's rounding down to a byte
    assert abs(back - nbytes) <= nbytes * 0.005 + 1
    shown = next((scale for scale in (2**40, 2**30, 2**20, 2**10) if nbytes >= scale), 1)
    if nbytes < 1024 or nbytes % shown == 0:  # a whole number of the shown unit (2040 MiB shows 1.99 GiB)
        assert back == nbytes
