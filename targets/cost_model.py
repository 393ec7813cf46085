"""The measured cost rule: a template's predicted seconds on a target, from constants measured on that
CPU class; templates are chosen by it, never by model name, and never by timing at compile time.

Rule: a template states its work as `TiledWork`: `tiles` register tiles of `mi` rows x `vectors`
vectors of `lanes` floats, each reducing over `depth` steps; per step a tile issues mi * vectors
FMAs, `vectors` vector loads and `mi` broadcasts. A step takes
max(mi * vectors / fma_ports, (vectors + broadcast * mi) / load_ports, fma_latency) cycles plus
`step_overhead` (what a step costs beyond its FMAs and loads, measured: the loop's own instructions
and the issue slots around them; it is why a 4 x 3 tile runs ~10% below an 8 x 3 or 14 x 2 one that
all reach the FMA bound on paper), and a
tile `tile_overhead` more per accumulator (zeroing, the epilogue, the store), at the clock the
per-thread FMA peak `gflops` implies. Memory: each tile streams its broadcast operand (depth * mi
floats) and, when the vector operand's panel (depth * nb floats, shared by consecutive tiles)
outgrows half of L1, the panel too, at `l2_gbps` per thread. A thread's time is the larger of the
two, each over the template's measured efficiency (`efficiency` for the FMA steps, `streaming` for
the bytes: strided planes stream slower than contiguous channels); tiles spread over `threads` in
whole tiles; each kernel call adds `launch_us`.

The constants are a `CostTable` (targets/cost_tables/*.json), measured by bench/cost_table.py on the
CPU named in it; a target takes the first table whose vector width and features it has, else
`nominal_table` (ISA facts only, efficiencies 1). Passes may not import this module (issue 15's
per-node device costs reuse `predict_seconds` from targets/).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import cache
from importlib import resources
from typing import Any, TypeVar

from targets.description import TargetDescription

T = TypeVar("T")
NOMINAL_GHZ = 2.5
"""Clock of `nominal_table` (a target without a measured table)."""
TIE = 0.002
"""Predictions this close (relative) tie. Tiles that all reach the FMA peak predict the same compute
time while their L2 traffic, hidden behind it in the model, still costs: bench/kernels.py timed
ResNet's 3x3 convs 1.07-1.16x slower with the 4x64 and 7x32 tiles the first-listed tie gave than
with 14x32, the tile that streams the fewest bytes. So a tie goes to the fewest bytes streamed, and
among equal bytes to the fewest tiles: a tile costs a little beyond its accumulators (loop and address
set-up), which the model does not count (MobileNetV2's stem: 14x32 0.84x the time of 7x32; its
pointwise convs: 8x48 0.89-0.97x of 4x48; 1 thread)."""


@dataclass(frozen=True)
class TiledWork:
    """A register-tiled GEMM as one template computes it (padded tiles included)."""

    template: str  # "conv.rows", "conv.spatial", ...: the key of the table's efficiencies
    tiles: int
    depth: int
    mi: int
    vectors: int
    lanes: int
    flops: int  # the useful flops (GFLOP/s reports)

    @property
    def panel_bytes(self) -> int:
        return 4 * self.depth * self.vectors * self.lanes

    @property
    def row_bytes(self) -> int:
        return 4 * self.depth * self.mi


@dataclass(frozen=True)
class CostTable:
    """Measured constants of one CPU class (per thread); `requires`: the vector width and HAI features
    a target must have for the table to apply; `cpu`, `measured`: where and when it came from."""

    cpu: str
    vector_bytes: int
    requires: frozenset[str]
    gflops: float
    l2_gbps: float
    l1_bytes: int
    broadcast: float = 1.0
    fma_ports: int = 2
    load_ports: int = 2
    fma_latency: float = 4.0
    tile_overhead: float = 1.0
    step_overhead: float = 0.0
    launch_us: float = 2.0
    threads: int = 1  # threads a pick assumes (the cores of the CPU measured)
    efficiency: dict[str, float] = field(default_factory=dict)
    streaming: dict[str, float] = field(default_factory=dict)
    measured: str = ""

    @property
    def channels_last_dense(self) -> bool:
        """Whether a dense conv's channels-last tiles beat its NCHW vector-row tile (measured
        efficiencies of the templates, keys "conv.NHWC.*" and "conv.NCHW.spatial")."""
        nhwc = [e for k, e in self.efficiency.items() if k.startswith("conv.NHWC.")]
        spatial = self.efficiency.get("conv.NCHW.spatial")
        return bool(nhwc) and spatial is not None and max(nhwc) > spatial

    def applies_to(self, target: TargetDescription) -> bool:
        return target.vector_bytes == self.vector_bytes and self.requires <= target.features

    @staticmethod
    def from_json(data: dict[str, Any]) -> CostTable:
        return CostTable(**{**data, "requires": frozenset(data["requires"])})

    def to_json(self) -> dict[str, Any]:
        return {**self.__dict__, "requires": sorted(self.requires)}


def nominal_table(target: TargetDescription) -> CostTable:
    """The fallback where no table was measured: the ISA's FMA peak at NOMINAL_GHZ, 32 KiB L1."""
    lanes = target.vector_lanes_f32
    return CostTable(
        cpu="nominal",
        vector_bytes=target.vector_bytes,
        requires=frozenset(),
        gflops=NOMINAL_GHZ * 2 * 2 * lanes,
        l2_gbps=NOMINAL_GHZ * 32,
        l1_bytes=32 << 10,
    )


@cache
def measured_tables() -> tuple[CostTable, ...]:
    """The committed tables (targets/cost_tables/*.json), in file-name order."""
    folder = resources.files("targets") / "cost_tables"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".json")), key=lambda f: f.name)
    return tuple(CostTable.from_json(json.loads(f.read_text())) for f in files)


def cost_table(target: TargetDescription) -> CostTable:
    """The first measured table that applies to `target`, else its nominal table."""
    return next((t for t in measured_tables() if t.applies_to(target)), None) or nominal_table(target)


def step_cycles(table: CostTable, mi: int, vectors: int) -> float:
    """Cycles of one reduction step of an mi x vectors tile (the module rule)."""
    loads = (vectors + table.broadcast * mi) / table.load_ports
    return max(mi * vectors / table.fma_ports, loads, table.fma_latency) + table.step_overhead


def step_efficiency(table: CostTable, mi: int, vectors: int) -> float:
    """The fraction of FMA peak one reduction step of an mi x vectors tile reaches."""
    return mi * vectors / table.fma_ports / step_cycles(table, mi, vectors)


def streamed_bytes(table: CostTable, work: TiledWork) -> int:
    """The bytes `work`'s tiles stream from L2 (the module rule: rows always, panels beyond half of L1)."""
    return work.tiles * (work.row_bytes + (work.panel_bytes if work.panel_bytes > table.l1_bytes // 2 else 0))


def thread_seconds(table: CostTable, work: TiledWork) -> float:
    """One thread's seconds for all of `work`'s tiles (the module rule)."""
    hz = table.gflops * 1e9 / (2 * table.fma_ports * work.lanes)
    accumulators = work.mi * work.vectors
    cycles = work.depth * step_cycles(table, work.mi, work.vectors) + table.tile_overhead * accumulators
    compute = work.tiles * cycles / hz
    memory = streamed_bytes(table, work) / (table.l2_gbps * 1e9)
    return max(
        compute / table.efficiency.get(work.template, 1.0), memory / table.streaming.get(work.template, 1.0)
    )


def predict_seconds(target: TargetDescription, work: TiledWork, threads: int | None = None) -> float:
    """Predicted seconds of one call of `work` on `target` with `threads` (default: the table's)."""
    table = cost_table(target)
    threads = threads or table.threads
    balance = math.ceil(work.tiles / threads) / work.tiles
    return thread_seconds(table, work) * balance + table.launch_us * 1e-6


def cheapest(target: TargetDescription, options: Sequence[tuple[T, TiledWork]]) -> T:
    """The option of least predicted seconds; among those within TIE of it, the one streaming the
    fewest bytes, then the one of fewest tiles, then the least predicted, then the earliest
    (deterministic)."""
    if not options:
        raise ValueError("cheapest() needs at least one option")
    table = cost_table(target)
    costs = [predict_seconds(target, work) for _, work in options]
    ties = [k for k, cost in enumerate(costs) if cost <= min(costs) * (1 + TIE)]
    return options[
        min(ties, key=lambda k: (streamed_bytes(table, options[k][1]), options[k][1].tiles, costs[k]))
    ][0]
