"""HAI against onnxruntime on the five real models: latency, peak memory, compile time, arena, overhead.

For each model of hai_compiler/real_models.py (batch 1, its sample inputs):
compile it for this host (compile time, with how many kernels came from the
kernel cache), then with the same threads and inputs, each engine in a fresh
process of its own (two runtimes in one process slow each other down): the
peak RSS after loading the model and running one inference (HAI's process
imports only the runtime), then the p50 latency of further runs, and the
HAI/onnxruntime ratio (< 1: HAI faster); the arena against the naive sum of
tensor sizes, and the per-inference Python overhead (`model.run` minus its
compiled part, `Model.bind`). Prints a table and the geometric means.

    .venv/bin/python bench/models.py [--threads 2] [--runs 50] [--model ppocr_cls ...] [--json out.json]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hai_compiler import real_models  # noqa: E402
from hai_compiler.compiler import (  # noqa: E402
    CompileOptions,
    bench,  # noqa: E402
    compile_model,
)


def measure(name: str, threads: int, runs: int, workdir: Path) -> dict[str, Any]:
    import runtime

    spec = real_models.MODELS[name]
    onnx_path = real_models.fetch(name)
    start = time.perf_counter()
    options = CompileOptions(input_shapes=spec.input_shapes, input_values=spec.input_values or None)
    result = compile_model(onnx_path, workdir / f"{name}.hai", options)
    compile_s = time.perf_counter() - start
    inputs = spec.sample_inputs()
    hai = bench.hai_isolated(result.path, inputs, threads, runs)
    ort = bench.onnxruntime_isolated(onnx_path, spec.onnx_inputs(inputs), threads, runs)
    assert hai.latency is not None and ort.latency is not None
    overhead = bench.python_overhead_us(runtime.load(result.path, threads=threads), inputs, runs)
    return {
        "model": name,
        "hai_ms": hai.latency.p50_ms,
        "ort_ms": ort.latency.p50_ms,
        "ratio": hai.latency.p50_ms / ort.latency.p50_ms,
        "hai_rss_mib": hai.peak_rss_bytes / 2**20,
        "ort_rss_mib": ort.peak_rss_bytes / 2**20,
        "compile_s": compile_s,
        "kernels": len({k.name for k in result.plan.kernels}),
        "cached_kernels": result.cache_hits,
        "arena_mib": result.plan.plan.arena_size / 2**20,
        "naive_mib": result.memory["naive_bytes"] / 2**20,
        "overhead_us": overhead,
        "steps": len(result.plan.plan.steps),
    }


def render(rows: list[dict[str, Any]], threads: int) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"HAI vs onnxruntime, {threads} threads, batch 1 (p50)")
    columns = ("model", "HAI ms", "ORT ms", "HAI/ORT", "HAI RSS MiB", "ORT RSS MiB", "RSS ratio",
               "compile s (cached)", "arena / naive MiB", "py overhead µs", "steps")  # fmt: skip
    for column in columns:
        table.add_column(column, justify="left" if column == "model" else "right")
    for r in rows:
        if "error" in r:
            table.add_row(r["model"], *(["-"] * (len(columns) - 2)), r["error"][:60])
            continue
        table.add_row(
            r["model"], f"{r['hai_ms']:.2f}", f"{r['ort_ms']:.2f}", f"{r['ratio']:.2f}",
            f"{r['hai_rss_mib']:.1f}", f"{r['ort_rss_mib']:.1f}",
            f"{r['hai_rss_mib'] / r['ort_rss_mib']:.2f}",
            f"{r['compile_s']:.1f} ({r['cached_kernels']}/{r['kernels']})",
            f"{r['arena_mib']:.2f} / {r['naive_mib']:.2f}", f"{r['overhead_us']:.0f}", str(r["steps"]),
        )  # fmt: skip
    console = Console(highlight=False, width=200)
    console.print(table)
    done = [r for r in rows if "error" not in r]
    console.print(
        f"geo-mean latency ratio {bench.geomean([r['ratio'] for r in done]):.2f}, "
        f"geo-mean RSS ratio {bench.geomean([r['hai_rss_mib'] / r['ort_rss_mib'] for r in done]):.2f} "
        f"over {len(done)} of {len(rows)} models"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--model", action="append", choices=sorted(real_models.MODELS), help="repeatable")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="hai-bench-") as tmp:
        names = args.model or list(real_models.MODELS)
        rows = bench.measure_each(names, lambda name: measure(name, args.threads, args.runs, Path(tmp)))
    render(rows, args.threads)
    if args.json:
        bench.write_json({"threads": args.threads, "runs": args.runs, "rows": rows}, args.json)


if __name__ == "__main__":
    main()
