"""Sliding-window arithmetic shared by the conv and pooling families.

Rule: a window is fully explicit in the IR: kernel, strides, dilations and pads
(ONNX order `[begin_0, begin_1, ..., end_0, end_1, ...]`), plus `ceil_mode` for
pooling. Everything that derives sizes from those (output sizes, auto_pad
resolution, the extra end padding ceil_mode needs, ConvTranspose sizes) and the
strided slicing the reference implementations share lives here, once.
Imports numpy and `ir` only.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Iterator, Mapping, Sequence
from typing import Any, NamedTuple

import numpy as np

from ir.errors import IRError

AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


def span(kernel: int, dilation: int) -> int:
    """How many input positions one dilated kernel covers."""
    return (kernel - 1) * dilation + 1


def output_size(
    size: int, kernel: int, stride: int, dilation: int, pad_begin: int, pad_end: int, ceil_mode: bool = False
) -> int:
    """Output length of one spatial dim; ceil_mode never starts a window past the input (ONNX, ORT)."""
    room = size + pad_begin + pad_end - span(kernel, dilation)
    if room < 0:
        return 0
    if not ceil_mode:
        return room // stride + 1
    out = -(-room // stride) + 1
    if (out - 1) * stride >= size + pad_begin:
        out -= 1
    return out


class WindowDim(NamedTuple):
    """One spatial dim of a window: input size, kernel, stride, dilation, pads before and after."""

    size: int
    kernel: int
    stride: int
    dilation: int
    begin: int
    end: int


@dataclasses.dataclass(frozen=True)
class Window:
    """A kernel sliding over the spatial dims (all dims after N and C)."""

    kernel: tuple[int, ...]
    strides: tuple[int, ...]
    pads: tuple[int, ...]
    dilations: tuple[int, ...]
    ceil_mode: bool = False

    @classmethod
    def from_attrs(cls, attrs: Mapping[str, Any], kernel: Sequence[int] | None = None) -> Window:
        """The window an op's attributes describe (the kernel from a weight when not an attribute)."""
        kernel = tuple(kernel if kernel is not None else attrs["kernel_shape"])
        window = cls(
            kernel,
            tuple(attrs["strides"]),
            tuple(attrs["pads"]),
            tuple(attrs["dilations"]),
            bool(attrs.get("ceil_mode", 0)),
        )
        window.check()
        return window

    @property
    def rank(self) -> int:
        return len(self.kernel)

    @property
    def pads_begin(self) -> tuple[int, ...]:
        return self.pads[: self.rank]

    @property
    def pads_end(self) -> tuple[int, ...]:
        return self.pads[self.rank :]

    def check(self) -> None:
        n = self.rank
        for name, values, length, low in (
            ("kernel_shape", self.kernel, n, 1),
            ("strides", self.strides, n, 1),
            ("dilations", self.dilations, n, 1),
            ("pads", self.pads, 2 * n, 0),
        ):
            if len(values) != length:
                raise IRError(f"{name} {list(values)} must have {length} entries for {n} spatial dims")
            if any(v < low for v in values):
                raise IRError(f"{name} {list(values)} must all be >= {low}")

    def dims(self, spatial: Sequence[int]) -> list[WindowDim]:
        """The window's facts per spatial dim, paired with the input size there."""
        if len(spatial) != self.rank:
            raise IRError(
                f"a {self.rank}-D window cannot slide over {len(spatial)} spatial dims {list(spatial)}"
            )
        facts = zip(
            spatial, self.kernel, self.strides, self.dilations, self.pads_begin, self.pads_end, strict=True
        )
        return [WindowDim(*f) for f in facts]

    def output_shape(self, spatial: Sequence[int]) -> tuple[int, ...]:
        """Output spatial shape for input spatial shape `spatial`; an IRError when the window does not fit."""
        out = tuple(
            output_size(d.size, d.kernel, d.stride, d.dilation, d.begin, d.end, self.ceil_mode)
            for d in self.dims(spatial)
        )
        if any(o <= 0 for o in out):
            raise IRError(
                f"kernel {list(self.kernel)} (dilations {list(self.dilations)}, pads {list(self.pads)}) "
                f"does not fit spatial shape {list(spatial)}"
            )
        return out

    def transposed_output_shape(
        self, spatial: Sequence[int], output_padding: Sequence[int]
    ) -> tuple[int, ...]:
        """Output spatial shape of a transposed convolution with this window."""
        out = tuple(
            transposed_output_size(d.size, d.kernel, d.stride, d.dilation, d.begin, d.end, extra)
            for d, extra in zip(self.dims(spatial), output_padding, strict=True)
        )
        if any(o <= 0 for o in out):
            raise IRError(f"pads {list(self.pads)} leave no output of spatial shape {list(spatial)}")
        return out

    def padded_extent(self, spatial: Sequence[int]) -> list[tuple[int, int]]:
        """(begin, end) padding that makes every window lie inside the array, ceil_mode included."""
        out = self.output_shape(spatial)
        extent = []
        for d, o in zip(self.dims(spatial), out, strict=True):
            needed = (o - 1) * d.stride + span(d.kernel, d.dilation)
            extent.append((d.begin, max(d.end, needed - d.size - d.begin)))
        return extent

    def pad(self, x: np.ndarray, value: Any) -> np.ndarray:
        """`x` (N, C, *spatial) padded with `value` so every window lies inside it."""
        extent = self.padded_extent(x.shape[2:])
        if not any(b or e for b, e in extent):
            return x
        return np.pad(x, [(0, 0), (0, 0), *extent], mode="constant", constant_values=value)

    def slices(self, padded: np.ndarray, out: Sequence[int]) -> Iterator[tuple[int, np.ndarray]]:
        """For each kernel position (row-major), its flat index and the strided view of `padded` it reads."""
        for flat, position in enumerate(np.ndindex(*self.kernel)):
            index: tuple[Any, ...] = tuple(
                slice(p * d, p * d + (o - 1) * s + 1, s)
                for p, d, o, s in zip(position, self.dilations, out, self.strides, strict=True)
            )
            yield flat, padded[(Ellipsis, *index)]

    def valid_counts(self, spatial: Sequence[int], include_pad: bool) -> np.ndarray:
        """How many kernel positions of each output window read input (or explicit pads, `include_pad`).

        The count is a product of per-dim counts, so it is built from small 1-D tables.
        """
        counts = np.ones((), dtype=np.int64)
        for d, o in zip(self.dims(spatial), self.output_shape(spatial), strict=True):
            low, high = (0, d.size + d.begin + d.end) if include_pad else (d.begin, d.begin + d.size)
            starts = np.arange(o)[:, None] * d.stride + np.arange(d.kernel)[None, :] * d.dilation
            counts = np.multiply.outer(counts, ((starts >= low) & (starts < high)).sum(axis=1))
        return counts


def resolve_auto_pad(
    auto_pad: str,
    spatial: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
) -> tuple[int, ...] | None:
    """Explicit pads for SAME_UPPER / SAME_LOWER / VALID; None for NOTSET (the explicit pads apply).

    SAME makes `output = ceil(input / stride)`; the odd pad goes to the end for
    SAME_UPPER and to the beginning for SAME_LOWER.
    """
    if auto_pad not in AUTO_PADS:
        raise IRError(f"auto_pad '{auto_pad}' is not one of {', '.join(AUTO_PADS)}")
    if auto_pad == "NOTSET":
        return None
    if auto_pad == "VALID":
        return (0,) * (2 * len(spatial))
    begins, ends = [], []
    for size, k, s, d in zip(spatial, kernel, strides, dilations, strict=True):
        total = max(0, (math.ceil(size / s) - 1) * s + span(k, d) - size)
        small, large = total // 2, total - total // 2
        begins.append(small if auto_pad == "SAME_UPPER" else large)
        ends.append(large if auto_pad == "SAME_UPPER" else small)
    return tuple(begins + ends)


def transposed_output_size(
    size: int, kernel: int, stride: int, dilation: int, pad_begin: int, pad_end: int, output_padding: int
) -> int:
    """Output length of one spatial dim of a transposed convolution."""
    return stride * (size - 1) + output_padding + span(kernel, dilation) - pad_begin - pad_end


def transposed_pads_for_shape(
    auto_pad: str,
    spatial: Sequence[int],
    kernel: Sequence[int],
    strides: Sequence[int],
    dilations: Sequence[int],
    output_padding: Sequence[int],
    output_shape: Sequence[int],
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """Explicit (pads, output_padding) of a transposed conv that yield `output_shape` (ONNX spec rule).

    total = stride*(in-1) + output_padding + span - out; SAME_UPPER puts the odd
    pad at the end, every other mode at the beginning. A negative total (output
    larger than the transposed conv covers) becomes extra output_padding.
    """
    begins, ends, extra = [], [], []
    for size, k, s, d, op, out in zip(
        spatial, kernel, strides, dilations, output_padding, output_shape, strict=True
    ):
        total = s * (size - 1) + op + span(k, d) - out
        small, large = max(total, 0) // 2, max(total, 0) - max(total, 0) // 2
        begins.append(small if auto_pad == "SAME_UPPER" else large)
        ends.append(large if auto_pad == "SAME_UPPER" else small)
        extra.append(op + max(-total, 0))
    return tuple(begins + ends), tuple(extra)
