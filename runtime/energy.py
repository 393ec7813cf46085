"""Energy over a block of inferences: `EnergyMeter.measure(block)` -> joules per source and per inference.

Rule: a figure is read from the hardware or not given. Each source (runtime/energy_sources.py) is
one thing measured (a CPU package through RAPL, runtime/rapl.py; a GPU through NVML,
runtime/nvml_energy.py), read as an energy counter or as power sampled and integrated where a device
has no counter. A source that cannot be read is `Unavailable` with the reason (missing, permission,
no driver), never a guess. While a block runs, a background thread polls every source each
`interval` seconds (power samples; counters are read often enough that a wrap cannot hide). The
figures are the whole source's energy while the block ran (idle power and other processes on it
included), divided by the block's inferences; the total is given only when no source that exists
(a CPU package, a GPU NVML could not read) was unreadable.
Imports the standard library (and pynvml, when installed, through runtime/nvml_energy.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from runtime.energy_sources import EnergySource, Unavailable
from runtime.nvml_energy import gpu_sources
from runtime.rapl import cpu_sources

POLL_SECONDS = 0.05


@dataclass(frozen=True)
class Energy:
    """What one block used: per source its joules and how they were read, and the sources unavailable."""

    inferences: int
    seconds: float
    joules: dict[str, float]
    methods: dict[str, str]
    unavailable: tuple[Unavailable, ...] = ()

    def per_inference(self) -> dict[str, float]:
        return {name: j / self.inferences for name, j in self.joules.items()}

    @property
    def total_per_inference(self) -> float | None:
        """Every source's joules per inference summed; None when a source that exists could not be read
        (the total would be incomplete) or there is no source."""
        if any(u.exists for u in self.unavailable) or not self.joules:
            return None
        return sum(self.per_inference().values())


class EnergyMeter:
    """The energy of blocks of runs over `sources` (module doc); `unavailable` are reported as such."""

    def __init__(
        self,
        sources: Sequence[EnergySource],
        unavailable: Sequence[Unavailable] = (),
        interval: float = POLL_SECONDS,
    ) -> None:
        self.sources, self.unavailable, self.interval = list(sources), list(unavailable), interval

    @classmethod
    def discover(cls, root: str = "/") -> EnergyMeter:
        """Every CPU package (RAPL under `root`) and NVIDIA GPU (NVML) of this machine."""
        sources, unavailable = cpu_sources(root)
        gpus, missing = gpu_sources()
        return cls(sources + gpus, unavailable + missing)

    def measure(self, block: Callable[[], int]) -> Energy:
        """Run `block` once, the sources polled meanwhile; it returns how many inferences it ran."""
        done = threading.Event()

        def poll_all() -> None:
            for source in self.sources:
                source.poll()

        def poller() -> None:
            while not done.wait(self.interval):
                poll_all()

        for source in self.sources:
            source.start()
        thread = threading.Thread(target=poller, name="hai-energy", daemon=True)
        began = time.perf_counter()
        thread.start()
        try:
            inferences = block()
        finally:
            seconds = time.perf_counter() - began
            done.set()
            thread.join()
        poll_all()  # the last reading, after the poller's
        return Energy(
            inferences=max(int(inferences), 1),
            seconds=seconds,
            joules={s.name: s.joules() for s in self.sources},
            methods={s.name: s.method for s in self.sources},
            unavailable=tuple(self.unavailable),
        )
