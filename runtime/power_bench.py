"""Joules per inference of one or more artifacts, side by side: what `hai bench --power` reports.

Rule: the energy sources are found once (runtime/energy.py `EnergyMeter.discover`: CPU packages through
RAPL, NVIDIA GPUs through NVML), so every artifact's figures come from the same sources. Every artifact
is loaded and run once (warm-up), then measured in `rounds` rounds that alternate the artifacts (A, B,
A, B, ...: a busy host or a warming device hits them alike). A block runs at least `runs` inferences
and lasts at least `min_seconds` (the counters advance in steps of about a millisecond, RAPL, or more,
NVML); per source the figure is the median joules per inference over the rounds, with how it was
read. A source that cannot be read is listed as unavailable with its reason, and the total (the sum
of the sources) is then not given; a device that is not here (no NVIDIA driver) is listed apart.
Needs no compiler: `python -m runtime.power_bench A.hai [B.hai ...] [--runs N] [--json FILE]`, or a
`hai pack` bundle's `python run_model.py --power RUNS`. Imports numpy, the standard library and
`runtime`.
"""

from __future__ import annotations

import argparse
import functools
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from runtime.bench_output import report
from runtime.energy import Energy, EnergyMeter
from runtime.model import Model, load
from runtime.transfer_bench import random_inputs

ROUNDS = 3
MIN_SECONDS = 1.0


def run_block(model: Model, feeds: Mapping[str, np.ndarray], runs: int, min_seconds: float) -> int:
    """Run `model` at least `runs` times and `min_seconds` long; how many times it ran."""
    began, count = time.perf_counter(), 0
    while count < runs or time.perf_counter() - began < min_seconds:
        model.run(feeds)
        count += 1
    return count


def runs_on(model: Model) -> list[str]:
    """The devices the artifact's kernels run on, as `NAME: device name`."""
    return [f"{name}: {model.devices[name].info.name}" for name in sorted(model.manifest.kernel_libraries)]


def artifact_row(artifact: Path, model: Model, blocks: Sequence[Energy]) -> dict[str, Any]:
    """One artifact's figures over its blocks (module doc)."""
    last = blocks[-1]
    per_source = {
        name: {
            "joules_per_inference": float(np.median([b.per_inference()[name] for b in blocks])),
            "method": last.methods[name],
        }
        for name in last.joules
    }
    inferences = sum(b.inferences for b in blocks)
    seconds = sum(b.seconds for b in blocks)
    totals = [b.total_per_inference for b in blocks]
    known = [t for t in totals if t is not None]
    return {
        "artifact": str(artifact),
        "runs_on": runs_on(model),
        "inferences": inferences,
        "ms_per_inference": 1e3 * seconds / inferences,
        "sources": per_source,
        "total_joules_per_inference": float(np.median(known)) if len(known) == len(totals) else None,
    }


def measure(
    artifacts: Sequence[str | Path],
    runs: int = 20,
    rounds: int = ROUNDS,
    min_seconds: float = MIN_SECONDS,
    inputs: Sequence[Mapping[str, np.ndarray]] | None = None,
    meter: EnergyMeter | None = None,
) -> dict[str, Any]:
    """Joules per inference of each artifact (module doc), as JSON-ready data; `inputs` one per artifact
    (default: random inputs of each artifact's shapes)."""
    meter = meter if meter is not None else EnergyMeter.discover()
    paths = [Path(a) for a in artifacts]
    models = [load(path) for path in paths]
    try:
        feeds = list(inputs) if inputs is not None else [random_inputs(m.inputs) for m in models]
        for model, feed in zip(models, feeds, strict=True):
            model.run(feed)  # warm-up: first-run costs stay out of the figures
        blocks: list[list[Energy]] = [[] for _ in models]
        for _ in range(max(int(rounds), 1)):
            for done, model, feed in zip(blocks, models, feeds, strict=True):
                block = functools.partial(run_block, model, feed, max(int(runs), 1), min_seconds)
                done.append(meter.measure(block))
        rows = [artifact_row(p, m, b) for p, m, b in zip(paths, models, blocks, strict=True)]
    finally:
        for model in models:
            model.close()
    return {
        "runs": max(int(runs), 1),
        "rounds": max(int(rounds), 1),
        "min_seconds": min_seconds,
        "sources": sorted(s.name for s in meter.sources),
        "unavailable": {u.name: u.reason for u in meter.unavailable if u.exists},
        "absent": {u.name: u.reason for u in meter.unavailable if not u.exists},
        "artifacts": rows,
    }


def report_lines(result: Mapping[str, Any]) -> list[str]:
    """The figures as text: a row per artifact, a column per source, then how each source was read and
    the sources unavailable, with why."""
    sources = result["sources"]
    header = ["artifact", "runs on", "ms/inference", *(f"J/inference {name}" for name in sources), "J total"]
    table = [header]
    for row in result["artifacts"]:
        figures = [f"{row['sources'][name]['joules_per_inference']:.4g}" for name in sources]
        total = row["total_joules_per_inference"]
        table.append([row["artifact"], ", ".join(row["runs_on"]), f"{row['ms_per_inference']:.3f}", *figures,
                      "unavailable" if total is None else f"{total:.4g}"])  # fmt: skip
    widths = [max(len(line[k]) for line in table) for k in range(len(header))]
    lines = [
        f"energy per inference (median of {result['rounds']} rounds alternating the artifacts, each at least "
        f"{result['runs']} runs and {result['min_seconds']:g} s)"
    ]
    lines += [
        "  " + "  ".join(cell.ljust(width) for cell, width in zip(line, widths)).rstrip() for line in table
    ]
    methods = {name: m["method"] for row in result["artifacts"] for name, m in row["sources"].items()}
    lines += [f"  source {name}: {method}" for name, method in methods.items()]
    lines += [f"  unavailable {name}: {reason}" for name, reason in result["unavailable"].items()]
    lines += [f"  not here {name}: {reason}" for name, reason in result["absent"].items()]
    if result["unavailable"]:
        lines.append("  J total: not given while a source is unavailable (never estimated)")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.power_bench", description=__doc__)
    parser.add_argument("artifacts", type=Path, nargs="+")
    parser.add_argument("--runs", type=int, default=20, help="inferences per block, at least")
    parser.add_argument("--seconds", type=float, default=MIN_SECONDS, help="seconds per block, at least")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--json", dest="json_path", default=None, metavar="FILE", help="also write JSON")
    args = parser.parse_args(argv)
    return report(
        lambda: measure(args.artifacts, args.runs, args.rounds, args.seconds), report_lines, args.json_path
    )


if __name__ == "__main__":
    sys.exit(main())
