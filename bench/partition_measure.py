"""Auto partitioning against CPU-only and OpenCL-only, measured side by side: the goal "never slower
than the better single device, within 5%" (issue 15), for latency and for throughput.

Rule: a work folder holds, per model, `inputs.npz` and one artifact per engine (`x86.hai`,
`opencl.hai`, `auto.hai`: the latency objective, `auto-throughput.hai`), with `engines.json`
saying what each engine's compile chose (bench/partition.py writes them). Every engine of a model is
loaded at once (after one warm-up run each) and measured in alternated rounds, the engines' order
rotating each round, so that a busy host slows them alike. Each round, each engine in turn: the p50
of `runs` runs of the sample input, then a stream of `stream` inputs through `run_many`
(runtime/stream_bench.py's `pipelined`): inputs per second. Each engine keeps its best round. A fast
model gets more runs and inputs per round, as many as CPU-only runs in about 0.25 s. Every engine's outputs
must match CPU-only's. A ratio is auto / best single device: latency p50 (<= 1.05 meets the goal),
throughput (>= 0.95 meets it). `same_artifact` says which auto engine is CPU-only's artifact, and
`noise` the spread of the figures between those equal artifacts.
Imports numpy, the standard library and `runtime` only, so it runs where no compiler is:
`python bench/partition_measure.py WORK [--json FILE]`.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import runtime  # noqa: E402
from runtime.pipeline import pipeline_plan  # noqa: E402
from runtime.stream_bench import pipelined  # noqa: E402

SINGLE = ("x86", "opencl")
AUTO = {"latency": "auto", "throughput": "auto-throughput"}
GOAL = 0.05
"""Auto may be this much slower than the better single device."""
STREAM_SECONDS = 0.25
STREAM_MOST = 4096
"""A round times at least `runs` runs and `stream` inputs, more for a fast model: about this long on
the CPU."""
MATCH = 1e-3
"""The largest relative difference of an engine's outputs from CPU-only's."""


def measure_model(folder: Path, rounds: int = 3, runs: int = 10, stream: int = 16) -> dict[str, Any]:
    """One model's engines measured side by side (module doc), with the ratios and verdicts."""
    engines = json.loads((folder / "engines.json").read_text())
    with np.load(folder / "inputs.npz") as data:
        feed = {name: data[name] for name in data.files}
    models = {name: runtime.load(folder / f"{name}.hai") for name in engines}
    try:
        for model in models.values():
            model.run(feed)
        reference = models["x86"].run(feed)
        enough = min(STREAM_MOST, int(STREAM_SECONDS / timed_run(models["x86"], feed)))
        runs, stream = max(runs, enough), max(stream, enough)
        latency: dict[str, float] = {}
        throughput: dict[str, float] = {}
        for index in range(rounds):
            names = list(models)
            names = names[index % len(names) :] + names[: index % len(names)]
            for name in names:
                block = float(np.median([timed_run(models[name], feed) for _ in range(runs)]))
                latency[name] = min(latency.get(name, np.inf), block)
                seconds, _ = pipelined(models[name], [feed] * stream, pipeline_plan(models[name]).in_flight)
                throughput[name] = max(throughput.get(name, 0.0), stream / seconds)
        differences = {name: difference(model.run(feed), reference) for name, model in models.items()}
    finally:
        for model in models.values():
            model.close()
    row = verdicts(folder.name, engines, latency, throughput, differences)
    x86 = (folder / "x86.hai" / "manifest.json").read_bytes()
    row["same_artifact"] = {
        name: (folder / f"{name}.hai" / "manifest.json").read_bytes() == x86 for name in AUTO.values()
    }
    row["noise"] = noise(row)
    return {**row, "rounds": rounds, "runs": runs, "stream": stream}


def timed_run(model: runtime.Model, feed: Mapping[str, np.ndarray]) -> float:
    start = time.perf_counter()
    model.run(feed)
    return time.perf_counter() - start


def difference(got: Mapping[str, np.ndarray], want: Mapping[str, np.ndarray]) -> float:
    worst = 0.0
    for name, value in want.items():
        scale = float(np.max(np.abs(value))) or 1.0
        worst = max(worst, float(np.max(np.abs(got[name].astype(np.float64) - value))) / scale)
    return worst


def verdicts(
    model: str,
    engines: Mapping[str, Any],
    latency: Mapping[str, float],
    throughput: Mapping[str, float],
    differences: Mapping[str, float],
) -> dict[str, Any]:
    best_latency = min(latency[name] for name in SINGLE if name in latency)
    best_throughput = max(throughput[name] for name in SINGLE if name in throughput)
    row: dict[str, Any] = {"model": model, "engines": dict(engines), "differences": dict(differences)}
    row["p50_ms"] = {name: seconds * 1e3 for name, seconds in latency.items()}
    row["throughput_per_s"] = dict(throughput)
    row["latency_ratio"] = latency[AUTO["latency"]] / best_latency
    row["throughput_ratio"] = throughput[AUTO["throughput"]] / best_throughput
    row["latency_ok"] = row["latency_ratio"] <= 1 + GOAL
    row["throughput_ok"] = row["throughput_ratio"] >= 1 - GOAL
    row["outputs_match"] = all(d <= MATCH for d in differences.values())
    return row


def noise(row: Mapping[str, Any]) -> dict[str, float] | None:
    """The spread (largest / smallest) of latency and throughput between engines that are one
    artifact, CPU-only's: what this host's noise alone makes of equal work; None without two."""
    same = ["x86", *(name for name, equal in row["same_artifact"].items() if equal)]
    if len(same) < 2:
        return None
    spread = {}
    for key, figures in (("latency", row["p50_ms"]), ("throughput", row["throughput_per_s"])):
        values = [figures[name] for name in same]
        spread[key] = max(values) / min(values)
    return spread


def table(rows: Sequence[Mapping[str, Any]]) -> str:
    """The rows as a markdown table."""
    head = (
        "| model | p50 ms x86 | OpenCL | auto | auto / best | goal | inputs/s x86 | OpenCL | auto | "
        "auto / best | goal | auto's devices (latency / throughput) | spread of x86's artifact |"
    )
    lines = [head, "|" + " --- |" * (head.count("|") - 1)]
    for row in rows:
        ms, per_s, engines = row["p50_ms"], row["throughput_per_s"], row["engines"]
        lines.append(
            f"| {row['model']} | {ms['x86']:.3f} | {ms['opencl']:.3f} | {ms['auto']:.3f} | "
            f"{row['latency_ratio']:.3f} | {'met' if row['latency_ok'] else 'MISSED'} | "
            f"{per_s['x86']:.1f} | {per_s['opencl']:.1f} | {per_s['auto-throughput']:.1f} | "
            f"{row['throughput_ratio']:.3f} | {'met' if row['throughput_ok'] else 'MISSED'} | "
            f"{devices(engines, row, 'auto')} / {devices(engines, row, 'auto-throughput')} | "
            f"{spread(row.get('noise'))} |"
        )
    return "\n".join(lines)


def devices(engines: Mapping[str, Any], row: Mapping[str, Any], name: str) -> str:
    """What an auto engine's partition chose: both devices, or the one it kept (and whether its
    artifact is CPU-only's, byte for byte)."""
    used = engines[name].get("devices", [])
    chosen = "both" if len(used) > 1 else f"{used[0]} only" if used else "?"
    return chosen + (" (x86's artifact)" if row.get("same_artifact", {}).get(name) else "")


def spread(found: Mapping[str, float] | None) -> str:
    return "-" if not found else f"{found['latency']:.2f} / {found['throughput']:.2f}"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("work", type=Path, help="the folder bench/partition.py compiled into")
    parser.add_argument("--models", nargs="*", default=None, help="default: every model folder in WORK")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--runs", type=int, default=10, help="timed runs per latency round")
    parser.add_argument("--stream", type=int, default=16, help="inputs per throughput round")
    parser.add_argument("--json", dest="json_path", type=Path, default=None)
    args = parser.parse_args(argv)
    rows = measure_all(args.work, args.models, args.rounds, args.runs, args.stream)
    print(table(rows))
    if args.json_path is not None:
        args.json_path.write_text(json.dumps(rows, indent=2) + "\n")
    return 0 if all(r["outputs_match"] for r in rows) else 1


def measure_all(
    work: Path, models: Sequence[str] | None, rounds: int, runs: int, stream: int
) -> list[dict[str, Any]]:
    names = models or sorted(p.name for p in work.iterdir() if (p / "engines.json").is_file())
    rows = []
    for name in names:
        rows.append(measure_model(work / name, rounds, runs, stream))
        print(table(rows[-1:]).splitlines()[-1], file=sys.stderr)
    return rows


if __name__ == "__main__":
    sys.exit(main())
