"""A bounded histogram of a tensor's values across calibration samples.

Rule: the bin count is fixed. When new values fall outside the covered range the
range grows by merging whole bins (the new bin width is an integer multiple of
the old one and the new edges lie on the old grid), so re-binning is exact and
memory stays `bins` counters however many samples are seen. The range always
includes 0 (quantized ranges do too, and |x| histograms then start at 0). The
exact minimum and maximum ever seen are kept beside the counts. Imports numpy only.
"""

from __future__ import annotations

import math

import numpy as np

DEFAULT_BINS = 2048


def finite_values(values: np.ndarray) -> tuple[np.ndarray, float, float] | None:
    """The finite values of `values` flattened, with their min and max; None when there are none."""
    flat = np.asarray(values).reshape(-1)
    if flat.size == 0:
        return None
    low, high = float(flat.min()), float(flat.max())
    if not (math.isfinite(low) and math.isfinite(high)):
        flat = flat[np.isfinite(flat)]
        if flat.size == 0:
            return None
        low, high = float(flat.min()), float(flat.max())
    return flat, low, high


class Histogram:
    """Counts in `bins` equal bins over [lo, lo + bins * width], plus the exact min and max seen."""

    __slots__ = ("bins", "lo", "width", "counts", "min", "max")

    def __init__(self, bins: int = DEFAULT_BINS) -> None:
        if bins < 2:
            raise ValueError(f"a histogram needs at least 2 bins, got {bins}")
        self.bins = bins
        self.lo = 0.0
        self.width = 0.0  # 0 until the first values arrive
        self.counts = np.zeros(bins, np.int64)
        self.min = math.inf
        self.max = -math.inf

    @property
    def hi(self) -> float:
        return self.lo + self.bins * self.width

    @property
    def total(self) -> int:
        return int(self.counts.sum())

    @property
    def empty(self) -> bool:
        return self.width == 0.0

    def edges(self) -> np.ndarray:
        return self.lo + self.width * np.arange(self.bins + 1, dtype=np.float64)

    def add(self, values: np.ndarray) -> None:
        """Count finite `values` (any shape); the range grows to hold them."""
        found = finite_values(values)
        if found is None:
            return
        flat, low, high = found
        if self.empty:
            self._start(low, high)
        else:
            self._grow(low, high)
        self.min, self.max = min(self.min, low), max(self.max, high)
        index = ((flat - self.lo) * (1.0 / self.width)).astype(np.int64)
        np.clip(index, 0, self.bins - 1, out=index)
        self.counts += np.bincount(index, minlength=self.bins)

    def _start(self, low: float, high: float) -> None:
        self.lo = min(low, 0.0)
        span = max(high, 0.0) - self.lo
        self.width = span / self.bins if span > 0 else 1e-7

    def _grow(self, low: float, high: float) -> None:
        if low >= self.lo and high <= self.hi:
            return
        below = max(0, math.ceil((self.lo - low) / self.width))  # old bins added under lo
        new_lo = self.lo - below * self.width
        factor = max(1, math.ceil((max(high, self.hi) - new_lo) / (self.bins * self.width)))
        while new_lo + self.bins * factor * self.width < max(high, self.hi):  # float rounding
            factor += 1
        target = (np.arange(self.bins) + below) // factor
        self.counts = np.bincount(target, weights=self.counts, minlength=self.bins).astype(np.int64)
        self.lo, self.width = new_lo, self.width * factor

    def quantile(self, q: float, *, upper: bool = True) -> float:
        """A bin edge bounding the `q`-quantile from above (or from below), clamped to the data.

        The element nearest the rank q*(n-1) (0-based, np.percentile's ranking) is found by its bin;
        the answer is that bin's upper (or lower) edge, so within one bin width of the element.
        """
        if self.empty:
            raise ValueError("quantile of an empty histogram")
        cumulative = np.cumsum(self.counts)
        rank = q * (int(cumulative[-1]) - 1)
        element = round(rank)
        index = min(int(np.searchsorted(cumulative, element + 1, side="left")), self.bins - 1)
        value = self.lo + (index + int(upper)) * self.width
        return float(min(max(value, self.min), self.max))

    def state(self) -> dict[str, np.ndarray]:
        """The histogram as arrays (for saving); `from_state` rebuilds it."""
        return {
            "counts": self.counts,
            "geometry": np.array([self.lo, self.width, self.min, self.max], np.float64),
        }

    @classmethod
    def from_state(cls, state: dict[str, np.ndarray]) -> Histogram:
        counts = np.asarray(state["counts"], np.int64)
        histogram = cls(bins=counts.size)
        histogram.counts = counts.copy()
        histogram.lo, histogram.width, histogram.min, histogram.max = (float(x) for x in state["geometry"])
        return histogram
