"""Planned against measured memory: each model's planned peak (targets/plan/memory_budget.py)
beside the peak RSS the OS reports for a fresh process that loads it and runs one inference.

Part 1, the five real models (batch 1, their sample inputs), compiled with
`--memory-budget 512MB`: they fit, so weights stay resident. Per model: arena,
weights, kernels, inputs/outputs and the runtime baseline (targets/target.py
RUNTIME_BASELINE_BYTES), their sum (the planned peak, recorded in the plan)
against the budget, and the measured peak RSS (hai_compiler/compiler/bench.py
`hai_isolated`: VmHWM of a process importing only the runtime) with
measured / planned (<= 1: the plan bounds the process).

Part 2, generated deep MLPs (hai_compiler/large_models.py `large_mlp`, 200 MB
and every `--large SIZE`): onnxruntime's peak RSS and p50 latency in a fresh
process of its own, then HAI compiled once per budget (`--budget`, default
256MB, 512MB and none: unbounded, weights resident; the unbounded run is
always measured, as the reference), each run in a fresh process: planned
peak, measured peak RSS and their ratio, whether the weights are paged
(frames x page size), p50 latency and its ratio to onnxruntime's, the
pager's reads and stall per inference (steady state: after the first), and
the relative error (max |a - b| / max |b|) of the output against the
unbounded HAI run (paging promises <= 1e-5; it is bit-identical by design)
and against onnxruntime. A budget under the model's smallest workable is a
row naming that smallest budget (from the `MemoryBudgetError`). Latencies
are medians (p50) of `--runs` timed runs.

    .venv/bin/python bench/memory.py [--threads 2] [--runs 10] [--model NAME ...] [--large 1.2GB]
                                     [--budget 256MB ...] [--skip-real] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import re
import shutil
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hai_compiler import real_models  # noqa: E402
from hai_compiler.compiler import CompileOptions, bench, compile_model  # noqa: E402
from hai_compiler.large_models import DEFAULT_WIDTH, large_mlp  # noqa: E402
from ir.units import format_size, parse_size  # noqa: E402
from targets.plan.memory_budget import MemoryBudgetError  # noqa: E402
from targets.target import RUNTIME_BASELINE_BYTES  # noqa: E402

BUDGET = "512MB"
PAGED_BUDGETS = ("256MB", "512MB", "none")
UNBOUNDED = "none"


def mib(nbytes: float | None) -> str:
    return "-" if nbytes is None else f"{nbytes / 2**20:.1f}"


def real_row(name: str, threads: int, runs: int, workdir: Path) -> dict[str, Any]:
    """One real model compiled under the 512 MB budget: the plan's terms and the measured peak RSS."""
    spec = real_models.MODELS[name]
    options = CompileOptions(
        input_shapes=spec.input_shapes, input_values=spec.input_values or None, memory_budget=BUDGET
    )
    result = compile_model(real_models.fetch(name), workdir / f"{name}.hai", options)
    memory = result.memory_account
    assert memory is not None
    measured = bench.hai_isolated(result.path, spec.sample_inputs(), threads, runs)
    return {
        "model": name,
        "terms": memory.terms,
        "planned_peak_bytes": memory.planned_peak,
        "budget_bytes": parse_size(BUDGET),
        "measured_peak_rss_bytes": measured.peak_rss_bytes,
        "measured_over_planned": measured.peak_rss_bytes / memory.planned_peak,
        "p50_ms": measured.latency.p50_ms if measured.latency else None,
    }


def large_rows(size: str, threads: int, runs: int, budgets: list[str], workdir: Path) -> list[dict[str, Any]]:
    """onnxruntime, then HAI at each budget (the unbounded one always), on the deep MLP of `size`."""
    model = large_mlp(size)
    inputs = {"x": np.random.default_rng(0).standard_normal((1, DEFAULT_WIDTH)).astype(np.float32)}
    label = f"large_mlp {size}"
    ort = bench.onnxruntime_isolated(model, inputs, threads, runs)
    print(f"{label}: onnxruntime measured", file=sys.stderr)
    rows = [{**measured_row(label, "onnxruntime", ort), "outputs": ort.outputs}]
    order = [UNBOUNDED, *(b for b in budgets if not unbounded(b))]  # the reference first
    hai = {budget: budget_row(label, model, budget, inputs, threads, runs, workdir) for budget in order}
    reference = hai[UNBOUNDED].get("outputs")
    for budget in [*budgets, *([] if any(map(unbounded, budgets)) else [UNBOUNDED])]:
        row = hai[UNBOUNDED if unbounded(budget) else budget]
        if "outputs" in row:
            row["over_onnxruntime_p50"] = row["p50_ms"] / rows[0]["p50_ms"]
            row["error_vs_unbounded"] = bench.relative_error(row["outputs"], reference) if reference else None
            row["error_vs_onnxruntime"] = bench.relative_error(row["outputs"], ort.outputs)
        rows.append(row)
    return [{k: v for k, v in row.items() if k != "outputs"} for row in rows]


def unbounded(budget: str) -> bool:
    return budget.lower() == UNBOUNDED


def budget_row(
    label: str,
    model: Path,
    budget: str,
    inputs: dict[str, np.ndarray],
    threads: int,
    runs: int,
    workdir: Path,
) -> dict[str, Any]:
    """HAI compiled under `budget` and measured in a fresh process (its artifact removed after)."""
    engine = "HAI unbounded" if unbounded(budget) else f"HAI --memory-budget {budget}"
    artifact = workdir / f"mlp-{budget}.hai"
    try:
        result = compile_model(model, artifact, CompileOptions(memory_budget=budget))
    except MemoryBudgetError as error:
        smallest = SMALLEST.search(str(error))
        note = f"too small: the smallest workable is {smallest.group(1) if smallest else '?'}"
        return {"model": label, "engine": engine, "status": "too small", "note": note, "error": str(error)}
    print(f"{label}: {engine} compiled in {result.seconds:.0f} s", file=sys.stderr)
    try:
        measured = bench.hai_isolated(result.path, inputs, threads, runs)
    finally:
        shutil.rmtree(artifact, ignore_errors=True)
    memory = result.memory_account
    assert memory is not None
    planned = bench.PlannedMemory(memory.planned_peak, result.memory_budget)
    paging = result.plan.plan.paging
    if paging is not None:
        planned = dataclasses.replace(planned, frames=paging.frames, page_size=paging.page_size)
    counters = measured.page_counters or {}
    return {
        **measured_row(label, engine, measured),
        "planned": planned,
        "planned_peak_bytes": memory.planned_peak,
        "terms": memory.terms,
        "measured_over_planned": measured.peak_rss_bytes / memory.planned_peak,
        "peak_rss_end_bytes": measured.facts.get("peak_rss_end_kib", 0) * 1024,
        "page_counters_per_inference": measured.page_counters,
        "bytes_read_per_inference": counters.get("bytes_read"),
        "stall_seconds_per_inference": counters.get("stall_seconds"),
        "compile_seconds": result.seconds,
        "outputs": measured.outputs,
    }


SMALLEST = re.compile(r"the smallest budget that can work is ([^,]+)")


def measured_row(label: str, engine: str, measured: bench.Isolated) -> dict[str, Any]:
    return {
        "model": label,
        "engine": engine,
        "status": "measured",
        "measured_peak_rss_bytes": measured.peak_rss_bytes,
        "p50_ms": measured.latency.p50_ms if measured.latency else None,
    }


def render_real(rows: list[dict[str, Any]], console: Any) -> None:
    from rich.table import Table

    table = Table(title=f"five real models under --memory-budget {BUDGET}: planned vs measured (MiB)")
    terms = list(rows[0]["terms"]) if rows and "terms" in rows[0] else []
    for column in ("model", *terms, "planned", "budget", "measured RSS", "measured/planned"):
        table.add_column(column, justify="left" if column == "model" else "right")
    for r in rows:
        if "error" in r:
            table.add_row(r["model"], *["-"] * (len(terms) + 3), r["error"][:60])
            continue
        table.add_row(
            r["model"], *(mib(v) for v in r["terms"].values()), mib(r["planned_peak_bytes"]),
            mib(r["budget_bytes"]), mib(r["measured_peak_rss_bytes"]), f"{r['measured_over_planned']:.2f}",
        )  # fmt: skip
    console.print(table)


def render_large(rows: list[dict[str, Any]], console: Any) -> None:
    from rich.table import Table

    table = Table(title="deep MLPs: onnxruntime vs HAI per budget (fresh process each; p50 over the runs)")
    columns = ("model", "engine", "planned MiB", "peak RSS MiB", "RSS/plan", "weights", "p50 ms", "x ORT",
               "read MiB/inf", "stall ms/inf", "err vs unbounded", "err vs ORT")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column in ("model", "engine", "weights") else "right")
    for r in rows:
        if r["status"] != "measured":
            table.add_row(r["model"], r["engine"], *["-"] * 3, r["note"], *["-"] * 6)
            continue
        table.add_row(
            r["model"], r["engine"], mib(r.get("planned_peak_bytes")), mib(r["measured_peak_rss_bytes"]),
            number(r.get("measured_over_planned"), ".3f"), weights_text(r.get("planned")),
            number(r["p50_ms"], ".2f"), number(r.get("over_onnxruntime_p50"), ".2f"),
            mib(r.get("bytes_read_per_inference")), number(r.get("stall_seconds_per_inference"), ".1f", 1e3),
            number(r.get("error_vs_unbounded"), ".1e"), number(r.get("error_vs_onnxruntime"), ".1e"),
        )  # fmt: skip
    console.print(table)


def weights_text(planned: bench.PlannedMemory | None) -> str:
    if planned is None:
        return "-"
    return f"paged {planned.frames} x {format_size(planned.page_size)}" if planned.paged else "resident"


def number(value: float | None, spec: str, scale: float = 1.0) -> str:
    return "-" if value is None else format(value * scale, spec)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--model", action="append", choices=sorted(real_models.MODELS), help="repeatable")
    parser.add_argument("--large", action="append", default=[], help="another MLP size, e.g. 1.2GB")
    parser.add_argument(
        "--budget", action="append", help=f"budgets for the MLPs, none: unbounded (default {PAGED_BUDGETS})"
    )
    parser.add_argument("--skip-real", action="store_true", help="only the generated MLPs")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args()
    from rich.console import Console

    console = Console(highlight=False, width=220)
    real: list[dict[str, Any]] = []
    large: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="hai-memory-") as tmp:
        for name in [] if args.skip_real else args.model or list(real_models.MODELS):
            try:
                real.append(real_row(name, args.threads, args.runs, Path(tmp)))
            except Exception as exc:  # a report: a model that fails is a row, not the end of the run
                real.append({"model": name, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"})
            print(f"{name}: done", file=sys.stderr)
        for size in ["200MB", *args.large]:
            large += large_rows(size, args.threads, args.runs, args.budget or list(PAGED_BUDGETS), Path(tmp))
            print(f"large_mlp {size}: done", file=sys.stderr)
    if real:
        render_real(real, console)
    render_large(large, console)
    console.print(f"runtime baseline (targets/target.py): {format_size(RUNTIME_BASELINE_BYTES)}")
    if args.json:
        bench.write_json(
            {"threads": args.threads, "runs": args.runs, "real": real, "large": large}, args.json
        )


if __name__ == "__main__":
    main()
