"""Error-minimising observers: search the clipping range over the tensor's histogram.

Rule: both observers judge a candidate range as the quantizer would use it —
round to nearest, saturate — at `bits` bits. `mse` minimises the squared error,
modelling each bin's counts as spread evenly over the bin and integrating the
error exactly (rounding error inside the grid, distance to the edge outside it).
Two-sided it searches lo <= 0 <= hi (affine with a zero point, 2^bits levels) by
coordinate descent; symmetric it searches one threshold t of |x| (levels
-(2^(bits-1)-1) .. 2^(bits-1)-1). Each 1-D search tries `candidates` values spaced
geometrically from the data's extreme down to 2^-SPAN_OCTAVES of it, then
`candidates` values between the best one's neighbours. `entropy` is TensorRT's
KL-divergence calibration on the |x| histogram with 2^(bits-1) levels. The full
data range is always a candidate, so the chosen range is never worse than
min/max under the same error model.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import partial
from typing import Any

import numpy as np

from hai_compiler.quantize.histogram import DEFAULT_BINS, Histogram
from hai_compiler.quantize.observers import HistogramObserver, ObserverError, clamp_to_data, observer

SPAN_OCTAVES = 12
"""Clipping candidates reach down to 2^-12 of the data's extreme (heavy tails clip that hard at 4 bits)."""
DESCENT_ROUNDS = 2
"""Rounds of coordinate descent over (lo, hi) for two-sided MSE."""
KL_STRIDE_DIVISOR = 512
"""Entropy tries about this many thresholds (every bins/512-th bin edge); TensorRT tries every edge."""


class BinMass:
    """The non-empty bins of a histogram as intervals [start, end) with a uniform density."""

    def __init__(self, histogram: Histogram) -> None:
        bins = np.flatnonzero(histogram.counts)
        self.start = histogram.lo + bins * histogram.width
        self.end = self.start + histogram.width
        self.density = histogram.counts[bins] / histogram.width

    def squared_error(self, bottom: np.ndarray, top: np.ndarray, step: np.ndarray) -> np.ndarray:
        """Integrated squared error of rounding to the grid step*Z saturated to [bottom, top], per candidate.

        Arguments are column vectors (one row per candidate) whose grid points bottom and top lie on step*Z.
        """
        inner = rounding_integral(np.clip(self.end, bottom, top), step)
        inner -= rounding_integral(np.clip(self.start, bottom, top), step)
        over_end, over_start = np.maximum(self.end - top, 0.0), np.maximum(self.start - top, 0.0)
        under_start, under_end = np.maximum(bottom - self.start, 0.0), np.maximum(bottom - self.end, 0.0)
        outer = cube(over_end) - cube(over_start) + cube(under_start) - cube(under_end)
        return (inner + outer / 3.0) @ self.density


def cube(x: np.ndarray) -> np.ndarray:
    return x * x * x  # several times faster than x**3


def rounding_integral(u: np.ndarray, step: np.ndarray) -> np.ndarray:
    """The integral from 0 to u of (x - step*round(x/step))^2: whole periods plus the last part."""
    periods = np.round(u / step)
    rest = u - periods * step
    return periods * (cube(step) / 12.0) + cube(rest) / 3.0


def affine_errors(mass: BinMass, lows: np.ndarray, highs: np.ndarray, bits: int) -> np.ndarray:
    """Squared error of affine quantization over [low, high] (low <= 0 <= high), per candidate pair."""
    levels = 2**bits - 1
    step = (np.maximum(highs - lows, 1e-30) / levels)[:, None]
    zero_point = np.round(-lows[:, None] / step)
    return mass.squared_error(-zero_point * step, (levels - zero_point) * step, step)


def symmetric_errors(mass: BinMass, thresholds: np.ndarray, *, bits: int) -> np.ndarray:
    """Squared error of symmetric quantization at each threshold, for a histogram of |x|."""
    levels = 2 ** (bits - 1) - 1
    step = (np.maximum(thresholds, 1e-30) / levels)[:, None]
    return mass.squared_error(np.zeros_like(step), levels * step, step)


def best_clip(errors_of: Callable[[np.ndarray], np.ndarray], extreme: float, count: int) -> float:
    """The clip in (0, extreme] with the least error: a geometric sweep, then a linear refinement."""
    if extreme == 0.0:
        return 0.0
    coarse = extreme * 2.0 ** (-SPAN_OCTAVES * np.arange(count) / max(count - 1, 1))
    best = int(np.argmin(errors_of(coarse)))
    fine = np.linspace(coarse[min(best + 1, count - 1)], coarse[max(best - 1, 0)], count)
    candidates = np.append(fine, coarse[best])
    return float(candidates[np.argmin(errors_of(candidates))])


def lower_clip_errors(mass: BinMass, high: float, bits: int, clips: np.ndarray) -> np.ndarray:
    return affine_errors(mass, -clips, np.full_like(clips, high), bits)


def upper_clip_errors(mass: BinMass, low: float, bits: int, clips: np.ndarray) -> np.ndarray:
    return affine_errors(mass, np.full_like(clips, low), clips, bits)


def best_affine_range(histogram: Histogram, bits: int, count: int) -> tuple[float, float]:
    mass = BinMass(histogram)
    low, high = min(histogram.min, 0.0), max(histogram.max, 0.0)
    lowest, highest = low, high
    for _ in range(DESCENT_ROUNDS):
        low = -best_clip(partial(lower_clip_errors, mass, high, bits), -lowest, count)
        high = best_clip(partial(upper_clip_errors, mass, low, bits), highest, count)
    return low, high


def best_threshold(histogram: Histogram, bits: int, count: int) -> float:
    return best_clip(partial(symmetric_errors, BinMass(histogram), bits=bits), histogram.max, count)


def check_bits(name: str, bits: int) -> None:
    if not 2 <= bits <= 16:
        raise ObserverError(f"observer '{name}': bits={bits} must be between 2 and 16")


@observer("mse")
class MSEObserver(HistogramObserver):
    """The clipping range with the least squared quantization error at `bits` bits."""

    def __init__(
        self, bits: int = 8, symmetric: bool = False, bins: int = DEFAULT_BINS, candidates: int = 64
    ) -> None:
        check_bits("mse", bits)
        if candidates < 1:
            raise ObserverError(f"observer 'mse': candidates={candidates} must be at least 1")
        super().__init__(symmetric=symmetric, bins=bins)
        self.bits = bits
        self.candidates = candidates

    def clipped_range(self) -> tuple[float, float]:
        if self.symmetric:
            return clamp_to_data(
                best_threshold(self.histogram, self.bits, self.candidates), self.min, self.max
            )
        return best_affine_range(self.histogram, self.bits, self.candidates)

    def options(self) -> dict[str, Any]:
        return {"bits": self.bits, "candidates": self.candidates, **self.base_options()}


def kl_divergence(reference: np.ndarray, candidate: np.ndarray) -> float:
    """KL(reference || candidate) of two count vectors; infinite when the candidate holds nothing."""
    if candidate.sum() <= 0:
        return np.inf
    p = reference / reference.sum()
    q = candidate / candidate.sum()
    kept = p > 0
    return float(np.sum(p[kept] * np.log(p[kept] / np.maximum(q[kept], 1e-12))))


def merged(counts: np.ndarray, levels: int) -> np.ndarray:
    """`counts` quantized to `levels` groups, each group's total spread over its non-empty bins."""
    group = (np.arange(counts.size) * levels) // counts.size
    nonzero = counts > 0
    totals = np.bincount(group, weights=counts, minlength=levels)
    filled = np.bincount(group, weights=nonzero, minlength=levels)
    return np.where(nonzero, totals[group] / np.maximum(filled[group], 1), 0.0)


def entropy_threshold(histogram: Histogram, levels: int) -> float:
    """The |x| threshold (a bin edge) whose `levels`-level quantization loses the least information (KL)."""
    counts = histogram.counts.astype(np.float64)
    stride = max(1, histogram.bins // KL_STRIDE_DIVISOR)
    best, best_edge = np.inf, histogram.bins
    for edge in range(min(levels, histogram.bins), histogram.bins + 1, stride):
        reference = counts[:edge].copy()
        reference[-1] += counts[edge:].sum()
        divergence = kl_divergence(reference, merged(counts[:edge], levels))
        if divergence < best:
            best, best_edge = divergence, edge
    return histogram.lo + best_edge * histogram.width


@observer("entropy")
class EntropyObserver(HistogramObserver):
    """TensorRT-style: the |x| threshold minimising KL(fp32 histogram || quantized), 2^(bits-1) levels."""

    def __init__(self, bits: int = 8, bins: int = DEFAULT_BINS) -> None:
        check_bits("entropy", bits)
        super().__init__(symmetric=True, bins=bins)
        self.bits = bits

    def clipped_range(self) -> tuple[float, float]:
        threshold = entropy_threshold(self.histogram, 2 ** (self.bits - 1))
        return clamp_to_data(threshold, self.min, self.max)

    def options(self) -> dict[str, Any]:
        return {"bits": self.bits, "bins": self.bins}
