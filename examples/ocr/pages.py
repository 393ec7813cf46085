"""Synthetic pages for the OCR pipeline's tests and benchmark: lines of text drawn in black on a
white RGB page with Pillow's built-in scalable font, some upside down.

Rule: a page is an (H, W, 3) uint8 array; `page_of(lines)` draws line k at a fixed left margin and
at k times the line pitch, so what a page says is known to whoever made it.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

WORDS = ("compile", "ahead", "edge", "tensor", "kernel", "arena", "layout", "vector", "model", "device")


def page_of(lines: Sequence[str], size: tuple[int, int] = (800, 600), font_size: int = 28,
            flipped: Sequence[int] = ()) -> np.ndarray:  # fmt: skip
    """A white page of `size` (height, width) with `lines` drawn top to bottom; the lines whose
    index is in `flipped` are drawn rotated by 180 degrees in place."""
    from PIL import Image, ImageDraw, ImageFont

    height, width = size
    page = Image.new("RGB", (width, height), "white")
    font = ImageFont.load_default(size=font_size)
    pitch = 2 * font_size
    for k, text in enumerate(lines):
        left, top, right, bottom = font.getbbox(text)
        line = Image.new("RGB", (int(right) + 8, int(bottom) + 8), "white")
        ImageDraw.Draw(line).text((4, 4), text, fill="black", font=font)
        page.paste(line.rotate(180) if k in flipped else line, (24, 24 + k * pitch))
    return np.asarray(page, np.uint8)


def random_lines(rng: np.random.Generator, count: int) -> list[str]:
    """`count` lines of two to four words (and a number)."""
    return [
        " ".join([*rng.choice(WORDS, int(rng.integers(2, 5))), str(int(rng.integers(10, 999)))])
        for _ in range(count)
    ]
