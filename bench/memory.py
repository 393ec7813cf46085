"""Planned against measured memory: each model's planned peak (hai_compiler/compiler/memory_budget.py)
beside the peak RSS the OS reports for a fresh process that loads it and runs one inference.

Part 1, the five real models (batch 1, their sample inputs), compiled with
`--memory-budget 512MB`: they fit, so weights stay resident. Per model: arena,
weights, kernels, inputs/outputs and the runtime baseline (targets/target.py
RUNTIME_BASELINE_BYTES), their sum (the planned peak, recorded in the plan)
against the budget, and the measured peak RSS (hai_compiler/compiler/bench.py
`hai_isolated`: VmHWM of a process importing only the runtime) with
measured / planned (<= 1: the plan bounds the process).

Part 2, generated deep MLPs (hai_compiler/large_models.py `large_mlp`, 200 MB
and every `--large SIZE`): onnxruntime's peak RSS and p50 latency beside HAI's
fully resident run, then one compile per budget (`--budget`, default 128MB,
256MB, 512MB), checked against the resident plan's account as `hai compile
--memory-budget` checks it (the plan does not depend on the budget): one it
fits is that same run; one that needs paging is marked "not implemented yet"
with the smallest budget paging would need.

    .venv/bin/python bench/memory.py [--threads 2] [--runs 10] [--model NAME ...] [--large 1.2GB]
                                     [--budget 256MB ...] [--skip-real] [--json out.json]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hai_compiler import real_models  # noqa: E402
from hai_compiler.compiler import CompileOptions, bench, compile_model  # noqa: E402
from hai_compiler.compiler.memory_budget import (  # noqa: E402
    MemoryBudgetError,
    PagingNotImplementedError,
    check_budget,
)
from hai_compiler.large_models import DEFAULT_WIDTH, large_mlp  # noqa: E402
from ir.units import format_size, parse_size  # noqa: E402
from targets.target import RUNTIME_BASELINE_BYTES  # noqa: E402

BUDGET = "512MB"
PAGED_BUDGETS = ("128MB", "256MB", "512MB")


def mib(nbytes: int | None) -> str:
    return "-" if nbytes is None else f"{nbytes / 2**20:.1f}"


def real_row(name: str, threads: int, runs: int, workdir: Path) -> dict[str, Any]:
    """One real model compiled under the 512 MB budget: the plan's terms and the measured peak RSS."""
    spec = real_models.MODELS[name]
    options = CompileOptions(input_shapes=spec.input_shapes, memory_budget=BUDGET)
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
    """onnxruntime, HAI resident, and HAI at each budget, on the deep MLP of `size`."""
    model = large_mlp(size)
    inputs = {"x": np.random.default_rng(0).standard_normal((1, DEFAULT_WIDTH)).astype(np.float32)}
    label = f"large_mlp {size}"
    ort = bench.onnxruntime_isolated(model, inputs, threads, runs)
    rows = [engine_row(label, "onnxruntime", None, ort.peak_rss_bytes, ort.latency)]
    resident = compile_model(model, workdir / "mlp.hai", CompileOptions())
    memory = resident.memory_account
    assert memory is not None
    hai = bench.hai_isolated(resident.path, inputs, threads, runs)
    rows.append(
        engine_row(label, "HAI resident (no budget)", memory.planned_peak, hai.peak_rss_bytes, hai.latency)
    )
    for budget in budgets:  # the plan does not depend on the budget: check it as `compile` would
        what = f"HAI --memory-budget {budget}"
        try:
            check_budget(memory, parse_size(budget, "--budget"), model.stem)
        except PagingNotImplementedError:
            note = f"paging: not implemented yet (paging needs {format_size(memory.paged_peak)})"
            rows.append({"model": label, "engine": what, "status": "not implemented yet", "note": note,
                         "smallest_paged_budget_bytes": memory.paged_peak})  # fmt: skip
            continue
        except MemoryBudgetError:
            note = f"too small: the smallest budget that can work is {format_size(memory.smallest_budget)}"
            rows.append({"model": label, "engine": what, "status": "infeasible", "note": note})
            continue
        rows.append({**rows[1], "engine": what, "note": "fits: weights resident (the run above)"})
    return rows


def engine_row(label: str, engine: str, planned: int | None, peak: int, latency: Any) -> dict[str, Any]:
    return {
        "model": label,
        "engine": engine,
        "status": "measured",
        "planned_peak_bytes": planned,
        "measured_peak_rss_bytes": peak,
        "p50_ms": latency.p50_ms if latency else None,
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

    table = Table(title="deep MLPs: onnxruntime vs HAI (peak RSS of a fresh process, p50 latency)")
    for column in ("model", "engine", "planned MiB", "peak RSS MiB", "p50 ms", "note"):
        table.add_column(column, justify="left" if column in ("model", "engine", "note") else "right")
    for r in rows:
        if r.get("status") in ("not implemented yet", "infeasible"):
            table.add_row(r["model"], r["engine"], "-", "-", "-", r["note"])
            continue
        p50 = f"{r['p50_ms']:.2f}" if r.get("p50_ms") is not None else "-"
        table.add_row(
            r["model"], r["engine"], mib(r.get("planned_peak_bytes")), mib(r.get("measured_peak_rss_bytes")),
            p50, r.get("note", ""),
        )  # fmt: skip
    console.print(table)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=10)
    parser.add_argument("--model", action="append", choices=sorted(real_models.MODELS), help="repeatable")
    parser.add_argument("--large", action="append", default=[], help="another MLP size, e.g. 1.2GB")
    parser.add_argument("--budget", action="append", help=f"budgets for the MLPs (default {PAGED_BUDGETS})")
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
