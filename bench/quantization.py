"""Quantization bench: fp32, onnxruntime static INT8 and HAI's precisions on three labelled cases.

For each case of hai_compiler/quantize/datasets.py — (a) the digits CNN on its
held-out digits, (b) the text-orientation model on rotated scikit-image text
crops (labels in the model's own order), (c) PP-OCRv4 recognition on rendered
text lines — one table, one row per way of running the model: fp32 through
onnxruntime, onnxruntime's static INT8 made the standard way
(hai_compiler/quantize/onnxruntime_int8.py, calibrated on the case's calibration
set), then HAI's rows from `hai_rows` (INT8, INT4, mixed). Columns: weight bytes
(ONNX initializers + Constant nodes; HAI: its weights), compression against
fp32, accuracy against the labels (rec: exact line text after greedy CTC
decoding), top-1 agreement with fp32 (rec: per timestep), SQNR of the outputs
against fp32 over the whole evaluation set, p50 latency at batch 1 (each engine timed in a
fresh process of its own: two runtimes in one process slow each other down).

    .venv/bin/python bench/quantization.py [--case digits|orientation|rec ...] [--threads 2] [--runs 50]
        [--eval-samples N] [--calibration-samples N] [--seed 0] [--json out.json]
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hai_compiler.compiler import bench  # noqa: E402
from hai_compiler.quantize import metrics  # noqa: E402
from hai_compiler.quantize.datasets import CASES, QuantDataset, load_case  # noqa: E402
from hai_compiler.quantize.onnxruntime_int8 import onnxruntime_static_int8  # noqa: E402

Feed = dict[str, np.ndarray]
TITLES = {
    "digits": "digits CNN, held-out digits",
    "orientation": "text orientation (PP-LCNet), rotated scikit-image text crops",
    "rec": "PP-OCRv4 recognition, rendered text lines",
}


@dataclasses.dataclass(frozen=True)
class Candidate:
    """One way to run a case's model: a row label, its weight bytes, batch-1 prediction and latency."""

    engine: str
    weight_bytes: int
    predict: Callable[[Feed], np.ndarray]  # the model's first output for one batch-1 feed
    latency: Callable[[Feed, int], bench.Latency]  # (sample feed, timed runs)


def onnxruntime_candidate(engine: str, model: Path, threads: int) -> Candidate:
    session = bench.onnxruntime_session(model, threads)
    return Candidate(
        engine, metrics.onnx_weight_bytes(model),
        lambda feed: session.run(None, feed)[0],
        lambda feed, runs: isolated_latency(bench.onnxruntime_isolated(model, feed, threads, runs)),
    )  # fmt: skip


def isolated_latency(measured: bench.Isolated) -> bench.Latency:
    """The latency a fresh process measured (each engine alone: module doc)."""
    assert measured.latency is not None
    return measured.latency


def baseline_rows(data: QuantDataset, threads: int) -> list[Candidate]:
    """fp32 first (the reference of every score), then onnxruntime's static INT8."""
    shapes = {data.input_name: tuple(data.calibration.shape[1:])}
    int8 = onnxruntime_static_int8(data.model, data.calibration_feeds(), shapes)
    return [
        onnxruntime_candidate("fp32 (onnxruntime)", data.model, threads),
        onnxruntime_candidate("ORT static INT8", int8, threads),
    ]


MIXED_SIZE_FRACTION = 0.215
"""Mixed precision's budget here: all weights in at most this fraction of the model's fp32 bytes (≥ 78% off),
as --target-size counts them; mixed precision spends it on SQNR."""
WORKDIR = tempfile.TemporaryDirectory(prefix="hai-quant-bench-")


def hai_rows(data: QuantDataset, threads: int) -> list[Candidate]:
    """HAI INT8, INT4 and mixed of the case's model, calibrated once on `data.calibration_feeds()`,
    each compiled for this host and run by the runtime."""
    from hai_compiler import DynamicQuantizer

    shapes = {data.input_name: tuple(data.calibration.shape[1:])}
    feeds = list(data.calibration_feeds())
    int8 = DynamicQuantizer(precision_profile="int8", progress=False).fit(
        data.model, feeds, input_shapes=shapes
    )
    int4 = DynamicQuantizer(precision_profile="int4", progress=False).fit(
        data.model, feeds, input_shapes=shapes
    )  # weight-only: the data serves bias correction
    size_budget = int(metrics.onnx_weight_bytes(data.model) * MIXED_SIZE_FRACTION)
    assert int8.stats is not None
    mixed = DynamicQuantizer(
        precision_profile="mixed", target_size=size_budget, observer=int8.stats.observer, progress=False
    ).fit(data.model, feeds, input_shapes=shapes, stats=int8.stats)
    return [hai_candidate(f"HAI {name}", q.graph, data, threads) for name, q in
            (("INT8", int8), ("INT4", int4), ("mixed", mixed))]  # fmt: skip


def hai_candidate(engine: str, graph: Any, data: QuantDataset, threads: int) -> Candidate:
    import runtime
    from hai_compiler.compiler import CompileOptions, compile_model

    shapes = {data.input_name: tuple(data.calibration.shape[1:])}
    path = Path(WORKDIR.name) / f"{data.case}-{engine.split()[-1].lower()}.hai"
    compiled = compile_model(graph, path, CompileOptions(input_shapes=shapes))
    model = runtime.load(compiled.path, threads=threads)
    first = model.outputs[0].name
    return Candidate(
        engine, (compiled.path / "weights.bin").stat().st_size,
        lambda feed: model.run(feed)[first],
        lambda feed, runs: isolated_latency(bench.hai_isolated(compiled.path, feed, threads, runs)),
    )  # fmt: skip


def measure(
    candidate: Candidate, data: QuantDataset, reference: np.ndarray | None, runs: int
) -> dict[str, Any]:
    """One row: outputs over the evaluation set scored against `reference` (None: this is fp32)."""
    outputs = np.concatenate([candidate.predict(feed) for feed in data.evaluation_feeds()])
    reference = outputs if reference is None else reference
    sqnr = metrics.sqnr_db(outputs, reference)
    return {
        "engine": candidate.engine,
        "weight_bytes": candidate.weight_bytes,
        "accuracy": _accuracy(outputs, data),
        "agreement": metrics.top1_agreement(outputs, reference),
        "sqnr_db": sqnr if math.isfinite(sqnr) else None,
        "p50_ms": candidate.latency(next(data.evaluation_feeds()), runs).p50_ms,
        "outputs": outputs,
    }


def _accuracy(outputs: np.ndarray, data: QuantDataset) -> float | None:
    if data.labels is not None:
        return metrics.accuracy(outputs, data.labels)
    if data.texts is not None:
        return metrics.text_accuracy(outputs, data.texts, data.label_names)
    return None


def run_case(data: QuantDataset, threads: int, runs: int) -> list[dict[str, Any]]:
    """Every row of one case; a way that fails is an error row, not the end of the run."""
    rows: list[dict[str, Any]] = []
    reference = None
    for source in (baseline_rows, hai_rows):
        try:
            candidates = source(data, threads)
        except Exception as exc:
            rows.append({"engine": source.__name__, "error": _describe(exc)})
            continue
        for candidate in candidates:
            try:
                row = measure(candidate, data, reference, runs)
            except Exception as exc:
                rows.append({"engine": candidate.engine, "error": _describe(exc)})
                continue
            reference = row["outputs"] if reference is None else reference
            rows.append(row)
    fp32_bytes = next((r["weight_bytes"] for r in rows if "error" not in r), None)
    for row in rows:
        row.pop("outputs", None)
        if "error" not in row and fp32_bytes:
            row["compression_pct"] = metrics.compression_percent(row["weight_bytes"], fp32_bytes)
    return rows


def _describe(exc: Exception) -> str:
    return f"{type(exc).__name__}: {(str(exc).splitlines() or [''])[0]}"


def render(case: str, data: QuantDataset, rows: list[dict[str, Any]], threads: int) -> None:
    from rich.console import Console
    from rich.table import Table

    agreement = "per-timestep agreement" if case == "rec" else "top-1 agreement"
    accuracy = "text accuracy" if case == "rec" else "accuracy"
    title = (f"{TITLES[case]}: {len(data.evaluation)} evaluation / {len(data.calibration)} calibration "
             f"samples, {threads} threads, batch 1")  # fmt: skip
    table = Table(title=title)
    columns = ("engine", "weight bytes", "compression", accuracy, agreement, "SQNR dB", "p50 ms")
    for column in columns:
        table.add_column(column, justify="left" if column == "engine" else "right")
    for r in rows:
        if "error" in r:
            table.add_row(r["engine"], *(["-"] * (len(columns) - 2)), r["error"][:60])
            continue
        table.add_row(
            r["engine"], f"{r['weight_bytes']:,}", f"{r['compression_pct']:.1f}%",
            _fraction(r["accuracy"]), _fraction(r["agreement"]),
            "ref" if r["sqnr_db"] is None else f"{r['sqnr_db']:.2f}", f"{r['p50_ms']:.3f}",
        )  # fmt: skip
    Console(highlight=False, width=160).print(table)


def _fraction(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--case", action="append", choices=CASES, help="repeatable; default: all three")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=50, help="timed runs for the p50 latency")
    parser.add_argument("--eval-samples", type=int, help="cap on evaluation samples per case")
    parser.add_argument("--calibration-samples", type=int, help="calibration samples per case")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", type=Path, help="also write the rows as JSON")
    args = parser.parse_args()
    results = {}
    for case in args.case or CASES:
        data = load_case(case, args.seed, args.calibration_samples, args.eval_samples)
        rows = run_case(data, args.threads, args.runs)
        render(case, data, rows, args.threads)
        results[case] = {
            "evaluation": len(data.evaluation),
            "calibration": len(data.calibration),
            "rows": rows,
        }
    if args.json:
        bench.write_json({"threads": args.threads, "runs": args.runs, "seed": args.seed, "cases": results},
                         args.json)  # fmt: skip


if __name__ == "__main__":
    main()
