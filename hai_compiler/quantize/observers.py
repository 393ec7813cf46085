"""Observers: what calibration remembers of one tensor, and the clipping range it derives from that.

Rule: an observer is a small class registered by name with `@observer("name")`;
`update(array)` sees every sample's value of its tensor (non-finite elements are
ignored) and `range()` returns the float clipping range `(lo, hi)`, lo <= hi.
Observers that clip one-sided on |x| (`percentile` on |x|, `mse{symmetric}`,
`entropy`) find a threshold t and return `(max(min, -t), min(max, t))`: never
wider than the data, and a symmetric quantizer takes `max(|lo|, |hi|) == t`.
State is a dict of numpy arrays (`state()` / `from_state`) so statistics can be
saved and observers resumed. Options are keyword arguments of the constructor;
`make_observer` checks them and raises `ObserverError` naming the observer.
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, TypeVar

import numpy as np

from hai_compiler.quantize.histogram import DEFAULT_BINS, Histogram, finite_values
from ir import HaiError


class ObserverError(HaiError):
    """An unknown observer name or an option an observer does not take."""


class Observer:
    """Base of every observer: sees a tensor's values, gives its clipping range."""

    name: ClassVar[str] = ""

    def update(self, array: np.ndarray) -> None:
        raise NotImplementedError

    def range(self) -> tuple[float, float]:
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        """The constructor options this observer was made with (saved beside its state)."""
        raise NotImplementedError

    def state(self) -> dict[str, np.ndarray]:
        raise NotImplementedError

    @classmethod
    def from_state(cls, state: Mapping[str, np.ndarray], **options: Any) -> Observer:
        raise NotImplementedError


OBSERVERS: dict[str, type[Observer]] = {}
"""Every registered observer class by name."""

ObserverClass = TypeVar("ObserverClass", bound=type[Observer])


def observer(name: str) -> Callable[[ObserverClass], ObserverClass]:
    """Class decorator: register an `Observer` subclass under `name`."""

    def register(cls: ObserverClass) -> ObserverClass:
        if name in OBSERVERS:
            raise ValueError(f"observer '{name}' is registered twice")
        cls.name = name
        OBSERVERS[name] = cls
        return cls

    return register


def observer_class(name: str) -> type[Observer]:
    try:
        return OBSERVERS[name]
    except KeyError:
        raise ObserverError(f"unknown observer '{name}' (known: {', '.join(sorted(OBSERVERS))})") from None


def check_options(name: str, options: Mapping[str, Any]) -> None:
    """Raise `ObserverError` when `options` names a keyword observer `name` does not take."""
    cls = observer_class(name)
    accepted = [p for p in inspect.signature(cls.__init__).parameters if p != "self"]
    unknown = sorted(set(options) - set(accepted))
    if unknown:
        raise ObserverError(
            f"observer '{name}' has no option(s) {unknown} (it takes: {', '.join(accepted) or 'none'})"
        )


def make_observer(name: str, **options: Any) -> Observer:
    """A fresh observer `name` with `options` (e.g. `make_observer("percentile", percentile=99.9)`)."""
    check_options(name, options)
    return observer_class(name)(**options)


def restore_observer(name: str, state: Mapping[str, np.ndarray], options: Mapping[str, Any]) -> Observer:
    """The observer `name` as it was when `state()` was taken."""
    check_options(name, options)
    return observer_class(name).from_state(state, **options)


def as_float(array: np.ndarray) -> np.ndarray:
    """The array as float32 or float64 (f16/bf16 widen to f32), for counting."""
    array = np.asarray(array)
    return array if array.dtype in (np.float32, np.float64) else array.astype(np.float32)


def clamp_to_data(threshold: float, low: float, high: float) -> tuple[float, float]:
    """A one-sided threshold t as a range never wider than the data: (max(low, -t), min(high, t))."""
    return max(low, -threshold), min(high, threshold)


EMPTY_RANGE = (0.0, 0.0)
"""The range of a tensor that never held a finite value."""


@observer("minmax")
class MinMaxObserver(Observer):
    """The exact smallest and largest finite value seen."""

    def __init__(self) -> None:
        self.min = math.inf
        self.max = -math.inf

    def update(self, array: np.ndarray) -> None:
        found = finite_values(as_float(array))
        if found is None:
            return
        _, low, high = found
        self.min, self.max = min(self.min, low), max(self.max, high)

    def range(self) -> tuple[float, float]:
        return (self.min, self.max) if self.min <= self.max else EMPTY_RANGE

    def options(self) -> dict[str, Any]:
        return {}

    def state(self) -> dict[str, np.ndarray]:
        return {"minmax": np.array([self.min, self.max], np.float64)}

    @classmethod
    def from_state(cls, state: Mapping[str, np.ndarray], **options: Any) -> MinMaxObserver:
        made = cls(**options)
        made.min, made.max = (float(x) for x in state["minmax"])
        return made


class HistogramObserver(Observer):
    """Base of observers that keep a bounded histogram of x (two-sided) or of |x| (`symmetric`)."""

    def __init__(self, *, symmetric: bool, bins: int) -> None:
        self.symmetric = symmetric
        self.bins = bins
        self.histogram = Histogram(bins)
        self.min = math.inf  # of x itself, also when the histogram counts |x|
        self.max = -math.inf

    def update(self, array: np.ndarray) -> None:
        data = as_float(array)
        if data.size == 0:
            return
        if self.symmetric:
            finite = data if np.isfinite(data.min()) and np.isfinite(data.max()) else data[np.isfinite(data)]
            if finite.size == 0:
                return
            self.min, self.max = min(self.min, float(finite.min())), max(self.max, float(finite.max()))
            self.histogram.add(np.abs(finite))
        else:
            self.histogram.add(data)
            self.min, self.max = self.histogram.min, self.histogram.max

    def range(self) -> tuple[float, float]:
        if self.histogram.empty:
            return EMPTY_RANGE
        return self.clipped_range()

    def clipped_range(self) -> tuple[float, float]:
        raise NotImplementedError

    def base_options(self) -> dict[str, Any]:
        return {"symmetric": self.symmetric, "bins": self.bins}

    def state(self) -> dict[str, np.ndarray]:
        return {**self.histogram.state(), "data_minmax": np.array([self.min, self.max], np.float64)}

    @classmethod
    def from_state(cls, state: Mapping[str, np.ndarray], **options: Any) -> Observer:
        made = cls(**options)
        assert isinstance(made, HistogramObserver)
        made.histogram = Histogram.from_state(dict(state))
        made.bins = made.histogram.bins
        made.min, made.max = (float(x) for x in state["data_minmax"])
        return made


@observer("percentile")
class PercentileObserver(HistogramObserver):
    """Clip at a percentile of |x| (`symmetric`) or of x on both sides (lo at 100 - p).

    The clip lies on the bin edge just outside the percentile (within one bin width of it).
    """

    def __init__(self, percentile: float = 99.99, symmetric: bool = False, bins: int = DEFAULT_BINS) -> None:
        if not 50.0 < percentile <= 100.0:
            raise ObserverError(f"observer 'percentile': percentile={percentile} must be in (50, 100]")
        super().__init__(symmetric=symmetric, bins=bins)
        self.percentile = percentile

    def clipped_range(self) -> tuple[float, float]:
        q = self.percentile / 100.0
        if self.symmetric:
            return clamp_to_data(self.histogram.quantile(q), self.min, self.max)
        return self.histogram.quantile(1.0 - q, upper=False), self.histogram.quantile(q)

    def options(self) -> dict[str, Any]:
        return {"percentile": self.percentile, **self.base_options()}
