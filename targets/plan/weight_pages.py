"""Cutting weight tensors into fixed-size pages: which bytes of which tensor lie where in which page.

Rule: tensors are placed in the order given (the order of first use, so the
small weights of one step share pages), each piece at an `alignment`-aligned
offset of its page (page frames are aligned, so every piece's address is too).

- A tensor of at most `page_size` bytes is never split. It goes at the next
  aligned offset of the first page (in page order) with room for it, else at
  offset 0 of a new page (first-fit packing: the small weights of many steps,
  such as biases beside page-sized matrices, share pages instead of each
  taking one).
- A larger tensor is split along its outermost axis into pieces of as many
  whole rows (`row_bytes` each: one slice along that axis) as a page holds;
  each piece starts a new page, so a kernel can consume the tensor one page
  at a time (a MatMul's weight rows: partial products summed; an embedding
  table: the rows it gathers). Its last page has room for what follows.
- A tensor larger than a page that cannot be split (`row_bytes` None), or
  whose single row exceeds a page, is a `PageSizeError` naming the tensor and
  the smallest page size that would hold it.

Page `p` of the layout is meant to lie at byte `p * page_size` of the paged
weights file, so a page is one read. Imports only `ir`.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence

from ir.errors import HaiError
from ir.units import format_size

DEFAULT_ALIGNMENT = 64


class PageSizeError(HaiError):
    """A page size that cannot hold some tensor (or row of one), or one that is not aligned."""


@dataclasses.dataclass(frozen=True)
class WeightTensor:
    """A weight to page: its byte count and the bytes of one slice along its outermost axis
    (`row_bytes`; None: it must stay whole)."""

    name: str
    nbytes: int
    row_bytes: int | None = None


@dataclasses.dataclass(frozen=True)
class PagePiece:
    """Bytes [tensor_offset, tensor_offset + nbytes) of `tensor`, at `page_offset` in `page`."""

    tensor: str
    page: int
    page_offset: int
    tensor_offset: int
    nbytes: int


@dataclasses.dataclass(frozen=True)
class PageLayout:
    """Every piece of every tensor, and the bytes used in each page (module doc: the rule)."""

    page_size: int
    pieces: tuple[PagePiece, ...]
    page_bytes: tuple[int, ...]

    @property
    def pages(self) -> int:
        return len(self.page_bytes)

    def pieces_of(self, tensor: str) -> tuple[PagePiece, ...]:
        return tuple(piece for piece in self.pieces if piece.tensor == tensor)

    def pages_of(self, tensor: str) -> tuple[int, ...]:
        return tuple(sorted({piece.page for piece in self.pieces_of(tensor)}))

    def file_offset(self, page: int) -> int:
        """Where page `page` starts in the paged weights file."""
        return page * self.page_size


def cut_into_pages(
    tensors: Sequence[WeightTensor], page_size: int, alignment: int = DEFAULT_ALIGNMENT
) -> PageLayout:
    """Place `tensors`, in order, into pages of `page_size` bytes (module doc: the rule)."""
    if alignment < 1 or alignment & (alignment - 1):
        raise PageSizeError(f"alignment must be a power of two, got {alignment}")
    if page_size <= 0 or page_size % alignment:
        raise PageSizeError(f"page size {page_size} must be a positive multiple of {alignment} bytes")
    pieces: list[PagePiece] = []
    used: list[int] = []  # bytes used in each page
    for tensor in tensors:
        if tensor.nbytes <= page_size:
            page = next((p for p, n in enumerate(used) if _align(n, alignment) + tensor.nbytes <= page_size),
                        len(used))  # fmt: skip
            if page == len(used):
                used.append(0)
            start = _align(used[page], alignment)
            pieces.append(PagePiece(tensor.name, page, start, 0, tensor.nbytes))
            used[page] = start + tensor.nbytes
            continue
        for offset, nbytes in _row_pieces(tensor, page_size, alignment):
            used.append(nbytes)
            pieces.append(PagePiece(tensor.name, len(used) - 1, 0, offset, nbytes))
    return PageLayout(page_size, tuple(pieces), tuple(used))


def step_pages(layout: PageLayout, steps: Sequence[Iterable[str]]) -> list[frozenset[int]]:
    """The pages each step needs: those of every weight it reads (the input of `schedule_pages`)."""
    pages: dict[str, set[int]] = {}
    for piece in layout.pieces:
        pages.setdefault(piece.tensor, set()).add(piece.page)
    return [frozenset(p for name in step for p in pages.get(name, ())) for step in steps]


def _row_pieces(tensor: WeightTensor, page_size: int, alignment: int) -> list[tuple[int, int]]:
    """(tensor offset, byte count) of each page-sized run of whole rows of a tensor larger than a page."""
    rows = tensor.row_bytes
    if rows is None or rows > page_size:
        need = _align(rows if rows is not None else tensor.nbytes, alignment)
        what = "cannot be split" if rows is None else f"has rows of {format_size(rows)}"
        raise PageSizeError(
            f"weight {tensor.name!r} ({format_size(tensor.nbytes)}) {what} and does not fit a page of "
            f"{format_size(page_size)}: use pages of at least {format_size(need)}"
            + (f" ({need} bytes)" if need >= 1024 else "")
        )
    if rows <= 0 or tensor.nbytes % rows:
        raise PageSizeError(
            f"weight {tensor.name!r}: row size {rows} does not divide its {tensor.nbytes} bytes"
        )
    step = page_size // rows * rows
    return [(offset, min(step, tensor.nbytes - offset)) for offset in range(0, tensor.nbytes, step)]


def _align(offset: int, alignment: int) -> int:
    return -(-offset // alignment) * alignment
