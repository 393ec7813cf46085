"""HAI fp32 against HAI bf16 (`--precision bf16` or `auto`) and onnxruntime fp32, side by side.

For each model of hai_compiler/real_models.py (batch 1, its sample inputs): compile
it at fp32 and quantized to the given precision for this host, then with the same
threads and inputs, each engine in a fresh process of its own (as bench/models.py),
the p50 latency of each (the best p50 of `--rounds` rounds that alternate the
three engines: a shared machine's load comes and goes), the bf16/fp32 ratio (< 1: bf16 faster), and the
quantized artifact's relative error against onnxruntime's fp32 outputs
(‖y − y_ort‖ / ‖y_ort‖, the first output). Prints a table and the geometric means.

    .venv/bin/python bench/bf16.py [--precision bf16|auto] [--threads 2] [--runs 50] [--rounds 3] [--model M]
"""

from __future__ import annotations

import argparse
import math
import sys
import tempfile
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hai_compiler import real_models  # noqa: E402
from hai_compiler.compiler import CompileOptions, bench, compile_model  # noqa: E402

DEFAULT_MODELS = ("ppocr_cls", "orientation", "ppocr_rec")


def measure(name: str, precision: str, threads: int, runs: int, rounds: int, workdir: Path) -> dict[str, Any]:
    import numpy as np
    import onnxruntime as ort

    import runtime
    from hai_compiler.accuracy import relative_error
    from hai_compiler.quantize.quantizer import DynamicQuantizer
    from targets.registry import resolve_target

    spec = real_models.MODELS[name]
    onnx_path = real_models.fetch(name)
    options = CompileOptions(input_shapes=spec.input_shapes)
    fp32 = compile_model(onnx_path, workdir / f"{name}.hai", options)
    quantizer = DynamicQuantizer(resolve_target("x86"), precision, progress=False)
    quantized = quantizer.fit(onnx_path, input_shapes=spec.input_shapes)
    low = compile_model(quantized.graph, workdir / f"{name}.{precision}.hai", CompileOptions())
    inputs = spec.sample_inputs()
    session = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    want = session.run(None, inputs)[0]
    got = next(iter(runtime.load(low.path, threads=threads).run(inputs).values()))
    engines = {
        "fp32": lambda: bench.hai_isolated(fp32.path, inputs, threads, runs),
        precision: lambda: bench.hai_isolated(low.path, inputs, threads, runs),
        "ort": lambda: bench.onnxruntime_isolated(onnx_path, inputs, threads, runs),
    }
    ms: dict[str, float] = {}
    for _ in range(rounds):
        for key, run in engines.items():
            latency = run().latency
            assert latency is not None
            ms[key] = min(ms.get(key, float("inf")), latency.p50_ms)
    chosen = list(quantized.precisions.values())
    return {
        "model": name,
        "fp32_ms": ms["fp32"],
        "low_ms": ms[precision],
        "ort_ms": ms["ort"],
        "ratio": ms[precision] / ms["fp32"],
        "error": relative_error(np.asarray(got).reshape(want.shape), want),
        "bf16_layers": f"{chosen.count('bf16')}/{len(chosen)}",
    }


def geomean(values: list[float]) -> float:
    return math.exp(sum(math.log(v) for v in values) / len(values)) if values else float("nan")


def render(rows: list[dict[str, Any]], precision: str, threads: int) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"HAI {precision} vs fp32 and onnxruntime, {threads} threads, batch 1 (p50)")
    columns = (
        "model",
        "fp32 ms",
        f"{precision} ms",
        "ORT ms",
        f"{precision}/fp32",
        "rel. error",
        "bf16 layers",
    )
    for column in columns:
        table.add_column(column, justify="left" if column == "model" else "right")
    for r in rows:
        if "error" not in r or isinstance(r["error"], str):
            table.add_row(r["model"], *(["-"] * (len(columns) - 2)), str(r.get("error", ""))[:60])
            continue
        table.add_row(r["model"], f"{r['fp32_ms']:.2f}", f"{r['low_ms']:.2f}", f"{r['ort_ms']:.2f}",
                      f"{r['ratio']:.2f}", f"{r['error']:.1e}", r["bf16_layers"])  # fmt: skip
    console = Console(highlight=False, width=160)
    console.print(table)
    done = [r for r in rows if not isinstance(r.get("error"), str)]
    console.print(
        f"geo-mean {precision}/fp32 {geomean([r['ratio'] for r in done]):.2f} over {len(done)} models"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--precision", choices=("bf16", "auto"), default="bf16")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=50)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--model", action="append", choices=sorted(real_models.MODELS), help="repeatable")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args()
    rows = []
    with tempfile.TemporaryDirectory(prefix="hai-bf16-") as tmp:
        for name in args.model or DEFAULT_MODELS:
            try:
                rows.append(measure(name, args.precision, args.threads, args.runs, args.rounds, Path(tmp)))
            except Exception as exc:  # a report: a model that fails is a row, not the end of the run
                rows.append({"model": name, "error": f"{type(exc).__name__}: {str(exc).splitlines()[0]}"})
            print(f"{name}: done", file=sys.stderr)
    render(rows, args.precision, args.threads)
    if args.json:
        bench.write_json({"precision": args.precision, "threads": args.threads, "rows": rows}, args.json)


if __name__ == "__main__":
    main()
