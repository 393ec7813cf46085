"""Cutting weights into pages: every byte of every tensor placed exactly once, aligned, inside its page.

The independent check rebuilds each tensor from a simulated paged file (random
bytes copied piece by piece) and compares it with the original bytes.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from targets.plan.weight_pages import PageSizeError, WeightTensor, cut_into_pages, step_pages

ALIGN = 64


@st.composite
def weight_sets(draw: st.DrawFn) -> tuple[list[WeightTensor], int]:
    page_size = ALIGN * draw(st.integers(1, 8))
    tensors = []
    for index in range(draw(st.integers(0, 8))):
        row = draw(st.integers(1, page_size))
        rows = draw(st.integers(0, 4 * page_size // row + 1))
        whole = row * rows <= page_size and draw(st.booleans())  # only a tensor that fits may stay whole
        tensors.append(WeightTensor(f"w{index}", row * rows, None if whole else row))
    return tensors, page_size


@settings(max_examples=300, deadline=None)
@given(weight_sets())
def test_pages_hold_every_byte_once(case: tuple[list[WeightTensor], int]) -> None:
    tensors, page_size = case
    layout = cut_into_pages(tensors, page_size, ALIGN)
    rng = np.random.default_rng(0)
    originals = {t.name: rng.integers(0, 256, t.nbytes, dtype=np.uint8) for t in tensors}
    paged = np.zeros(layout.pages * page_size, np.uint8)
    taken = np.zeros_like(paged, bool)
    for piece in layout.pieces:
        assert piece.page_offset % ALIGN == 0
        assert piece.page_offset + piece.nbytes <= min(page_size, layout.page_bytes[piece.page])
        start = layout.file_offset(piece.page) + piece.page_offset
        assert not taken[start : start + piece.nbytes].any(), f"{piece} overlaps another piece"
        taken[start : start + piece.nbytes] = True
        paged[start : start + piece.nbytes] = originals[piece.tensor][piece.tensor_offset :][: piece.nbytes]
    for tensor in tensors:
        pieces = sorted(layout.pieces_of(tensor.name), key=lambda p: p.tensor_offset)
        rebuilt = np.concatenate([np.zeros(0, np.uint8)] + [
            paged[layout.file_offset(p.page) + p.page_offset :][: p.nbytes] for p in pieces
        ])  # fmt: skip
        np.testing.assert_array_equal(rebuilt, originals[tensor.name])
        if tensor.nbytes <= page_size:
            assert len(pieces) == 1  # small tensors are never split
        else:
            assert all(p.page_offset == 0 and p.nbytes % tensor.row_bytes == 0 for p in pieces)  # whole rows


def test_small_tensors_share_pages_first_fit_and_large_ones_split_by_rows() -> None:
    layout = cut_into_pages(
        [WeightTensor("a", 100), WeightTensor("W", 960, 96), WeightTensor("b", 10), WeightTensor("c", 200)],
        page_size=256,
    )
    # W: 2 rows (192 B) a page, pages 1-5; b fits page 0 at the aligned 128; c (200 B) fits no page
    assert [(p.tensor, p.page, p.page_offset) for p in layout.pieces] == [
        ("a", 0, 0), *[("W", page, 0) for page in range(1, 6)], ("b", 0, 128), ("c", 6, 0)
    ]  # fmt: skip
    assert layout.pages_of("W") == (1, 2, 3, 4, 5) and layout.page_bytes[:2] == (138, 192)
    assert step_pages(layout, [["a", "b"], ["c"], []]) == [{0}, {6}, set()]


@pytest.mark.parametrize(
    ("tensor", "message"),
    [
        (WeightTensor("embed", 1000), "weight 'embed' .* cannot be split .* pages of at least 1 KiB"),
        (WeightTensor("W", 900, 300), "weight 'W' .* rows of 300 B .* pages of at least 320 B"),
        (WeightTensor("W", 1000, 240), "row size 240 does not divide its 1000 bytes"),
    ],
)
def test_tensors_that_cannot_be_paged_name_the_page_size_that_works(
    tensor: WeightTensor, message: str
) -> None:
    with pytest.raises(PageSizeError, match=message):
        cut_into_pages([tensor], page_size=256)


def test_page_size_must_be_aligned() -> None:
    with pytest.raises(PageSizeError, match="multiple of 64"):
        cut_into_pages([], page_size=100)
