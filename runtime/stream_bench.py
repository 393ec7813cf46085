"""Throughput over a stream of inputs, `run` against the pipelined `run_many`: `hai bench --throughput`.

Rule: the artifact is loaded once; a stream of `stream` inputs (a few random ones, cycled) goes
through `run` one by one and through `run_many`, alternately (serial, pipelined, serial, ...) for
`rounds` rounds after one warm-up of each, so that a busy host slows both alike; the pipelined
outputs must equal the serial ones. Each side reports its best round: inputs per second over the
whole stream, and the p50/p99/mean latency of one input in that round (serial: one `run`;
pipelined: from when `run_many` takes the input from the stream to when it yields its outputs,
so time spent waiting for a free arena counts). It needs no compiler, so a `hai pack` bundle
runs it on the device: `python -m runtime.stream_bench model.hai --stream N [--in-flight K]
[--json FILE]`. Imports numpy, the standard library and `runtime`.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from runtime.bench_output import report
from runtime.errors import HaiRuntimeError, InvalidArgumentError
from runtime.model import Model, load
from runtime.pipeline import pipeline_plan
from runtime.transfer_bench import random_inputs

DISTINCT_INPUTS = 4
"""How many different random inputs the stream cycles through."""
Feeds = Sequence[Mapping[str, np.ndarray]]


def measure(
    artifact: str | Path,
    stream: int = 100,
    in_flight: int | None = None,
    rounds: int = 3,
    threads: int | None = None,
    device: str | None = None,
    inputs: Feeds | None = None,
) -> dict[str, Any]:
    """Both sides' throughput and latency over a stream of `stream` inputs (module doc), JSON-ready."""
    if type(stream) is not int or stream < 1 or type(rounds) is not int or rounds < 1:
        raise InvalidArgumentError(f"the stream needs >= 1 inputs and >= 1 rounds, got {stream} and {rounds}")
    model = load(artifact, threads=threads, device=device)
    try:
        plan = pipeline_plan(model, in_flight)
        distinct = (
            list(inputs) if inputs else [random_inputs(model.inputs, s) for s in range(DISTINCT_INPUTS)]
        )
        feeds = [distinct[i % len(distinct)] for i in range(stream)]
        check_equal(model, distinct, plan.in_flight, Path(artifact))
        best: dict[str, tuple[float, list[float]]] = {}
        for _ in range(rounds):
            for side, timed in (("run", serial), ("run_many", pipelined)):
                seconds, latencies = timed(model, feeds, plan.in_flight)
                if side not in best or seconds < best[side][0]:
                    best[side] = (seconds, latencies)
    finally:
        model.close()
    result: dict[str, Any] = {
        "artifact": str(artifact),
        "devices": {name: d.info.name for name, d in model.devices.items()},
        "stream": stream,
        "rounds": rounds,
        "in_flight": plan.in_flight,
        "stages": [stage.device for stage in plan.stages],
        "planned_peak_bytes": plan.planned_peak_bytes,
    }
    for side, (seconds, latencies) in best.items():
        ms = np.asarray(latencies) * 1e3
        result[side] = {
            "throughput_per_s": stream / seconds,
            "seconds": seconds,
            "p50_ms": float(np.percentile(ms, 50)),
            "p99_ms": float(np.percentile(ms, 99)),
            "mean_ms": float(ms.mean()),
        }
    result["speedup"] = result["run_many"]["throughput_per_s"] / result["run"]["throughput_per_s"]
    return result


def check_equal(model: Model, feeds: Feeds, in_flight: int, artifact: Path) -> None:
    """The warm-up of both sides: `run_many`'s outputs must equal serial runs'."""
    for index, (many, feed) in enumerate(zip(model.run_many(feeds, in_flight), feeds, strict=True)):
        for name, value in model.run(feed).items():
            if not np.array_equal(value, many[name], equal_nan=True):
                raise HaiRuntimeError(f"{artifact}: output {name!r} of input {index} differs in run_many")


def serial(model: Model, feeds: Feeds, in_flight: int) -> tuple[float, list[float]]:
    """Seconds for the stream through `run`, and each run's seconds."""
    latencies = []
    began = time.perf_counter()
    for feed in feeds:
        start = time.perf_counter()
        model.run(feed)
        latencies.append(time.perf_counter() - start)
    return time.perf_counter() - began, latencies


def pipelined(model: Model, feeds: Feeds, in_flight: int) -> tuple[float, list[float]]:
    """Seconds for the stream through `run_many`, and each input's seconds from taken to yielded."""
    taken: list[float] = []

    def timed() -> Iterator[Mapping[str, np.ndarray]]:
        for feed in feeds:
            taken.append(time.perf_counter())
            yield feed

    latencies = []
    began = time.perf_counter()
    for index, _ in zip(itertools.count(), model.run_many(timed(), in_flight)):
        latencies.append(time.perf_counter() - taken[index])
    return time.perf_counter() - began, latencies


def report_lines(result: Mapping[str, Any]) -> list[str]:
    """The figures as text: the stream, then one line per side and the speed-up."""
    stages = " -> ".join(result["stages"])
    lines = [f"{result['artifact']}: a stream of {result['stream']} inputs, best of {result['rounds']} "
             f"alternating rounds; run_many: {len(result['stages'])} stage(s) ({stages}), "
             f"{result['in_flight']} input(s) in flight"]  # fmt: skip
    for side in ("run", "run_many"):
        figures = result[side]
        lines.append(
            f"  {side:8}: {figures['throughput_per_s']:10.1f} inputs/s, latency p50 "
            f"{figures['p50_ms']:.3f} ms, p99 {figures['p99_ms']:.3f} ms"
        )
    lines.append(f"  run_many / run throughput: {result['speedup']:.2f}x")
    return lines


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m runtime.stream_bench", description=__doc__)
    parser.add_argument("artifact", type=Path)
    parser.add_argument("--stream", type=int, default=100, help="inputs in the stream")
    parser.add_argument("--in-flight", type=int, default=None, help="default: one per stage")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--device", default=None, help="e.g. opencl:1 (default: the driver's device 0)")
    parser.add_argument("--json", dest="json_path", default=None, metavar="FILE", help="also write JSON")
    args = parser.parse_args(argv)
    return report(
        lambda: measure(args.artifact, args.stream, args.in_flight, args.rounds, args.threads, args.device),
        report_lines,
        args.json_path,
    )


if __name__ == "__main__":
    sys.exit(main())
