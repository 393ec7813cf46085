"""What a built OpenCL kernel's launches tell the cost model: how many device kernels it enqueues and
how much of the device its work occupies.

Rule: an OpenCL kernel's record in its kernel library (targets/opencl/build.py) names the schedule
rule that bound it and each device kernel's global and local sizes, in the order they run; the
library carries the device profile, whose `compute_units` the occupancy is taken over.
- `count`: each device kernel is a launch of its own; the cost model adds the measured launch
  overhead once per launch.
- `occupancy`: the share of the device the kernel's work keeps busy, read from its narrowest launch
  (the fewest work-items: the GEMM rules' accumulating kernel, whose work-items each sum many
  products, against the padding and epilogue kernels around it, one work-item per element). Its
  work-groups run one per compute unit per wave, so the occupancy is work-groups / (compute units x
  waves): 100 work-groups on 132 units keep 76% of the device busy, 133 take a second wave and keep
  50%. The profile's FLOP/s stand for every compute unit working; the kernel computes at
  FLOP/s x occupancy.
Imports the standard library only.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from typing import Any


@dataclasses.dataclass(frozen=True)
class KernelLaunches:
    """One built kernel on its device: its schedule rule, each device kernel's (global, local) sizes in
    the order they run, and the device's compute units."""

    schedule: str
    sizes: tuple[tuple[tuple[int, ...], tuple[int, ...]], ...]
    compute_units: int

    @property
    def count(self) -> int:
        return len(self.sizes)

    def occupancy(self) -> float:
        """Work-groups of the narrowest launch over compute units x waves (the module rule); 1 without
        launches."""
        if not self.sizes:
            return 1.0
        items, local = min((math.prod(size), math.prod(group)) for size, group in self.sizes)
        groups = max(items // max(local, 1), 1)
        waves = math.ceil(groups / self.compute_units)
        return groups / (self.compute_units * waves)

    @staticmethod
    def from_library(library: Mapping[str, Any], kernels: Sequence[str]) -> KernelLaunches | None:
        """The launches of `kernels` (the steps of one kernel, in order) from a parsed OpenCL kernel
        library; None where the library lacks one of them or names no compute units."""
        records = [library.get("kernels", {}).get(name) for name in kernels]
        units = dict(library.get("profile") or {}).get("compute_units")
        if not records or None in records or not units:
            return None
        sizes = tuple((tuple(k["global"]), tuple(k["local"])) for r in records for k in r["launches"])
        return KernelLaunches(str(records[0].get("schedule", "")), sizes, int(units))
