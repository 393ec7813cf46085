"""How one thing's energy is read: a hardware energy counter, or power sampled and integrated.

Rule: an `EnergySource` is started, polled (at the start, at intervals while a block runs, at its end)
and asked for its joules since the start. `CounterSource` reads a cumulative hardware counter and sums
its increments between reads, undoing its wrap-around (so reads closer together than one wrap period
never lose energy); `PowerSource` samples power and integrates it over time (trapezoids). A source
that cannot be read is an `Unavailable` with its reason. runtime/rapl.py and
runtime/nvml_energy.py make them; runtime/energy.py's meter polls them. Imports the standard library only.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass


class EnergySource(ABC):
    """One measured thing: `start()` begins, `poll()` reads it now, `joules()` is the energy since start."""

    def __init__(self, name: str, method: str) -> None:
        self.name, self.method = name, method

    @abstractmethod
    def start(self) -> None: ...

    @abstractmethod
    def poll(self) -> None: ...

    @abstractmethod
    def joules(self) -> float: ...


class CounterSource(EnergySource):
    """A cumulative hardware counter `read()` (in units of `joules_per_unit`), wrapping to 0 after
    `wrap - 1` (None: it never wraps): the energy is the sum of the increments between reads."""

    def __init__(
        self,
        name: str,
        method: str,
        read: Callable[[], int],
        joules_per_unit: float,
        wrap: int | None = None,
    ) -> None:
        super().__init__(name, method)
        self.read, self.joules_per_unit, self.wrap = read, joules_per_unit, wrap
        self._last = self._units = 0

    def start(self) -> None:
        self._last, self._units = self.read(), 0

    def poll(self) -> None:
        now = self.read()
        step = now - self._last
        self._units += step % self.wrap if self.wrap else step
        self._last = now

    def joules(self) -> float:
        return self._units * self.joules_per_unit


class PowerSource(EnergySource):
    """Power `watts()` sampled at each poll and integrated over time (trapezoids)."""

    def __init__(self, name: str, method: str, watts: Callable[[], float]) -> None:
        super().__init__(name, method)
        self.watts = watts
        self._last = (0.0, 0.0)
        self._joules = 0.0

    def start(self) -> None:
        self._last, self._joules = (time.perf_counter(), self.watts()), 0.0

    def poll(self) -> None:
        now, power = time.perf_counter(), self.watts()
        then, before = self._last
        self._joules += (now - then) * (power + before) / 2
        self._last = (now, power)

    def joules(self) -> float:
        return self._joules


@dataclass(frozen=True)
class Unavailable:
    """A source that cannot be read here, and why; `exists` False when the thing itself is not here (no
    NVIDIA driver, no GPU): then no energy is missing from a total."""

    name: str
    reason: str
    exists: bool = True


def split_found(found: Sequence[EnergySource | Unavailable]) -> tuple[list[EnergySource], list[Unavailable]]:
    """The sources found, and those unavailable, in order."""
    sources = [f for f in found if isinstance(f, EnergySource)]
    return sources, [f for f in found if isinstance(f, Unavailable)]
