"""The `hai bench` command (on cli_app.py's `app`): an artifact timed, beside onnxruntime, and its
memory, transfers, energy or stream throughput measured.

Rule: as in model_commands.py, the command parses options and prints; `hai_compiler.compiler.bench`
and the runtime's benches (runtime/transfer_bench.py, power_bench.py, stream_bench.py) measure. A
`HaiError` becomes one `error: ...` line and exit code 1. Tables go to stdout (to stderr when
`--json -` takes stdout).
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from hai_compiler.cli_app import app, example, reported_errors
from hai_compiler.cli_options import (
    DEFAULT_RUNS,
    DEFAULT_THREADS,
    RunsOpt,
    SeedOpt,
    ThreadsOpt,
    TrustedKeyOpt,
)


@app.command("bench", epilog=example("hai bench model.hai --onnx model.onnx --profile --json -"))
def bench_command(
    artifacts: Annotated[
        list[Path],
        typer.Argument(
            metavar="ARTIFACT...",
            help="A compiled NAME.hai directory (several, side by side, with --power).",
            show_default=False,
        ),
    ],
    onnx: Annotated[
        Path | None, typer.Option("--onnx", metavar="MODEL.onnx", help="Also run onnxruntime on this model.")
    ] = None,
    threads: ThreadsOpt = DEFAULT_THREADS,
    runs: RunsOpt = DEFAULT_RUNS,
    profile: Annotated[
        bool, typer.Option("--profile", help="Time every step next to its source nodes.")
    ] = False,
    json_path: Annotated[
        str | None,
        typer.Option(
            "--json",
            metavar="FILE",
            help="Also write the numbers as JSON (- : to stdout, the tables to stderr).",
        ),
    ] = None,
    seed: SeedOpt = 0,
    trusted_key: TrustedKeyOpt = None,
    memory: Annotated[
        bool,
        typer.Option(
            "--memory",
            help="Run each inference in a fresh process (--runs processes) and report the peak RSS the OS "
            "measured beside the planned peak and budget (and the pager's counters when paged).",
        ),
    ] = False,
    transfers: Annotated[
        bool,
        typer.Option(
            "--transfers",
            help="Report host<->device transfer time per inference (OpenCL event timestamps) with zero-copy "
            "on and off, run alternately --runs times each, and the reduction in %.",
        ),
    ] = False,
    power: Annotated[
        bool,
        typer.Option(
            "--power",
            help="Report joules per inference of each artifact, side by side: CPU packages through RAPL, "
            "NVIDIA GPUs through NVML, each figure with its source; a source that cannot be read is "
            "reported unavailable with the reason. Blocks of at least --runs inferences and "
            "--power-seconds, 3 rounds alternating the artifacts.",
        ),
    ] = False,
    power_seconds: Annotated[
        float, typer.Option("--power-seconds", min=0.0, help="With --power: the least seconds per block.")
    ] = 1.0,
    throughput: Annotated[
        bool,
        typer.Option(
            "--throughput",
            help="Report inputs/s and p50/p99 latency over a stream of --stream inputs, serial runs against "
            "the pipelined run_many (stages of the plan on their own threads), alternately.",
        ),
    ] = False,
    stream: Annotated[
        int, typer.Option("--stream", min=1, metavar="N", help="Inputs in the --throughput stream.")
    ] = 100,
    in_flight: Annotated[
        int | None,
        typer.Option(
            "--in-flight",
            min=1,
            metavar="K",
            help="Inputs run_many keeps in flight (default: one per stage).",
        ),
    ] = None,
) -> None:
    """Time an artifact (p50/p99 latency, peak RSS), beside onnxruntime with --onnx; with --power, the
    energy per inference of one or more artifacts.

    With --trusted-key the artifacts' signatures are checked once, before anything runs."""
    import runtime
    from hai_compiler.compiler import bench

    console = Console(highlight=False, stderr=json_path == "-")
    if trusted_key:
        from runtime.artifact_files import read_manifest

        with reported_errors():
            for artifact in artifacts:
                read_manifest(artifact, trusted_keys=trusted_key)
    if power:
        with reported_errors():
            bench_power(artifacts, runs, power_seconds, seed, json_path, console)
        return
    if len(artifacts) > 1:
        raise typer.BadParameter("several artifacts are compared with --power only", param_hint="ARTIFACT")
    artifact = artifacts[0]
    if transfers:
        with reported_errors():
            bench_transfers(artifact, runs, seed, json_path, console)
        return
    if throughput:
        with reported_errors():
            bench_throughput(artifact, threads, stream, in_flight, seed, json_path, console)
        return
    if memory:
        with reported_errors():
            results = bench.memory_bench(artifact, onnx, threads, runs, seed)
            render_bench_memory(results, console)
            if json_path is not None:
                bench.write_json(results, json_path)
        return
    with reported_errors():
        model = runtime.load(artifact, threads=threads)
        inputs = bench.sample_inputs(model.inputs, seed)
        results: dict[str, Any] = {"artifact": str(artifact), "threads": threads, "runs": runs}
        hai = bench.hai_isolated(artifact, inputs, threads, runs)  # each engine in a process of its own
        results["hai"] = {
            "latency": hai.latency,
            "peak_rss_bytes": hai.peak_rss_bytes,
            "python_overhead_us": bench.python_overhead_us(model, inputs, runs),
            "transfers": bench.transfers_per_inference(model, inputs),
        }
        if onnx is not None:
            ort = bench.onnxruntime_isolated(onnx, inputs, threads, runs)
            results["onnxruntime"] = {"latency": ort.latency, "peak_rss_bytes": ort.peak_rss_bytes}
        if profile:
            results["steps"] = bench.profile_steps(model, inputs, max(3, runs // 10))
        render_bench(results, console)
        if json_path is not None:
            bench.write_json(results, json_path)


def bench_transfers(artifact: Path, runs: int, seed: int, json_path: str | None, console: Console) -> None:
    """`hai bench --transfers`: runtime/transfer_bench.py on `runs` alternating runs per side."""
    from hai_compiler.compiler import bench
    from runtime.artifact_files import read_manifest
    from runtime.transfer_bench import measure, report_lines

    inputs = bench.sample_inputs(read_manifest(artifact, verify=False).inputs, seed)
    results = measure(artifact, runs, inputs)
    for line in report_lines(results):
        console.print(line, markup=False, soft_wrap=True)
    if json_path is not None:
        bench.write_json(results, json_path)


def bench_power(
    artifacts: list[Path], runs: int, seconds: float, seed: int, json_path: str | None, console: Console
) -> None:
    """`hai bench --power`: runtime/power_bench.py over `artifacts`, on seeded random inputs."""
    from hai_compiler.compiler import bench
    from runtime.artifact_files import read_manifest
    from runtime.power_bench import measure, report_lines

    inputs = [bench.sample_inputs(read_manifest(a, verify=False).inputs, seed) for a in artifacts]
    results = measure(artifacts, runs, min_seconds=seconds, inputs=inputs)
    for line in report_lines(results):
        console.print(line, markup=False, soft_wrap=True)
    if json_path is not None:
        bench.write_json(results, json_path)


def bench_throughput(
    artifact: Path,
    threads: int,
    stream: int,
    in_flight: int | None,
    seed: int,
    json_path: str | None,
    console: Console,
) -> None:
    """`hai bench --throughput`: runtime/stream_bench.py, serial runs against run_many on one stream."""
    from hai_compiler.compiler import bench
    from runtime.artifact_files import read_manifest
    from runtime.stream_bench import DISTINCT_INPUTS, measure, report_lines

    bindings = read_manifest(artifact, verify=False).inputs
    inputs = [bench.sample_inputs(bindings, seed + i) for i in range(DISTINCT_INPUTS)]
    results = measure(artifact, stream, in_flight, threads=threads, inputs=inputs)
    for line in report_lines(results):
        console.print(line, markup=False, soft_wrap=True)
    if json_path is not None:
        bench.write_json(results, json_path)


def render_bench(results: dict[str, Any], console: Console) -> None:
    from rich.table import Table

    from hai_compiler.compiler.report import percent

    table = Table(title=f"{results['artifact']} ({results['threads']} threads, {results['runs']} runs)")
    for column in ("", "p50 ms", "p99 ms", "peak RSS MiB"):
        table.add_column(column, justify="right" if column else "left")
    for who in ("hai", "onnxruntime"):
        if who in results:
            lat, rss = results[who]["latency"], results[who]["peak_rss_bytes"]
            table.add_row(who, f"{lat.p50_ms:.3f}", f"{lat.p99_ms:.3f}", f"{rss / 2**20:.1f}")
    if "onnxruntime" in results:
        hai, ort = results["hai"], results["onnxruntime"]
        table.add_row(
            "hai / onnxruntime",
            f"{hai['latency'].p50_ms / ort['latency'].p50_ms:.2f}x",
            f"{hai['latency'].p99_ms / ort['latency'].p99_ms:.2f}x",
            f"{hai['peak_rss_bytes'] / ort['peak_rss_bytes']:.2f}x",
        )
    console.print(table)
    console.print(f"Python overhead per inference: {results['hai']['python_overhead_us']:.1f} µs")
    moved = results["hai"].get("transfers", {})
    if moved.get("transfers"):
        console.print(
            f"transfers between devices per inference: {moved['transfers']}, {moved['transfer_bytes']} bytes"
        )
    if "steps" in results:
        steps = Table(title="time per step", show_edge=False)
        for column in ("#", "µs", "%"):
            steps.add_column(column, justify="right")
        steps.add_column("kernel", no_wrap=True)
        steps.add_column("nodes", overflow="fold")
        total = sum(s.median_us for s in results["steps"]) or 1.0
        for s in results["steps"]:
            share = percent(s.median_us, total)
            steps.add_row(str(s.index), f"{s.median_us:.1f}", share, s.kernel, "\n".join(s.nodes))
        console.print(steps)


def render_bench_memory(results: dict[str, Any], console: Console) -> None:
    from rich.table import Table

    planned = results["planned"]
    fresh = f"{results['processes']} fresh processes ({results['threads']} threads)"
    table = Table(title=f"{results['artifact']}: peak RSS of {fresh}")
    for column in ("", "peak RSS MiB (median)", "max", "planned", "max / planned", "budget", "p50 ms"):
        table.add_column(column, justify="right" if column else "left")
    budget = mib_text(planned.budget_bytes) if planned.budget_bytes is not None else "unbounded"
    for who in ("hai", "onnxruntime"):
        if who in results:
            runs = results[who]
            plan = planned.planned_peak_bytes if who == "hai" else None
            ratio = f"{runs.max_peak_bytes / plan:.3f}" if plan else "-"
            table.add_row(
                who, mib_text(runs.median_peak_bytes), mib_text(runs.max_peak_bytes),
                mib_text(plan), ratio, budget if who == "hai" else "-", f"{runs.latency.p50_ms:.3f}",
            )  # fmt: skip
    console.print(table)
    if not planned.paged:
        console.print("weights resident (not paged)")
        return
    pool = f"paged: {planned.frames} frames x {mib_text(planned.page_size)} MiB"
    count = dict.fromkeys(
        ("loads", "bytes_read", "read_seconds", "stall_seconds", "hits", "misses", "reused"), 0.0
    )
    count.update(results["hai"].page_counters or {})
    console.print(
        f"{pool}; per inference (median): {count['loads']:.0f} page loads, "
        f"{mib_text(int(count['bytes_read']))} MiB read in {1e3 * count['read_seconds']:.1f} ms, "
        f"stalled {1e3 * count['stall_seconds']:.1f} ms, {count['hits']:.0f} hits, "
        f"{count['misses']:.0f} misses, {count['reused']:.0f} reused"
    )


def mib_text(nbytes: int | None) -> str:
    return "-" if nbytes is None else f"{nbytes / 2**20:.1f}"
