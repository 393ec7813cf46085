"""The public model zoo side by side: HAI (fp32) against onnxruntime and OpenVINO (its f32 hint and its
default precision) on every model of hai_compiler/zoo, batch 1.

For each model: compile it for this host in a child process (compile time, kernels from the cache; a
model HAI cannot compile is a row with its error, and the other engines are still measured), then
each engine in a fresh process of its own on the same seeded inputs and threads (hai_compiler/compiler/
bench.py `isolated`): peak RSS after load + one inference, p50 latency of `--runs` further runs, and
the first inference's outputs; with `--repeat N`, N fresh processes per engine and the lowest p50
(on a shared machine other processes only ever add time). HAI's outputs are compared with
onnxruntime's (max abs error, and the relative error max|a-e|/max|e|, fp32 goal 1e-4), as are
OpenVINO's. Prints a table and the geo-means of HAI's latency over each peer's (< 1: HAI faster).

With `--precision bf16,auto` HAI is also compiled at those precisions (`hai compile --precision`, its
calibration on generated inputs) where the host has native bf16 (avx512_bf16 or AMX-BF16; elsewhere
the cells say why they are skipped) and measured the same way: each one's latency over OpenVINO's
default precision, its relative error against HAI's fp32 beside OpenVINO default's against OpenVINO
f32 (issue 13's goal: the geo-mean over OpenVINO default <= 1, every model's error no worse than
OpenVINO's own; `precision_verdicts`), and their geo-means.

`--cold-cache` compiles each model with an empty kernel cache of its own (the compile-time goal).

    .venv/bin/python bench/zoo.py [--models resnet18,vit_tiny] [--threads 2] [--runs 30] [--repeat 1]
        [--precision bf16,auto] [--json out.json] [--markdown out.md]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from hai_compiler import zoo  # noqa: E402
from hai_compiler.compiler import bench  # noqa: E402

TOLERANCE = 1e-4  # DESIGN.md: fp32 relative error against onnxruntime
ENGINES = ("hai", "ort", "ov_f32", "ov")  # ov: OpenVINO's default precision hint
PEERS = ("ort", "ov_f32", "ov")
PRECISIONS = ("bf16", "auto")
"""HAI's reduced precisions `--precision` may add, each against OpenVINO's default precision."""

COMPILE_CHILD = """
import json, sys
from hai_compiler.compiler import CompileOptions, compile_model
shapes = {k: tuple(v) for k, v in json.loads(sys.argv[3]).items()}
values = json.loads(sys.argv[4]) or None
precision = sys.argv[5]
try:
    model = sys.argv[1]
    if precision:
        from hai_compiler.quantize.quantizer import DynamicQuantizer
        quantizer = DynamicQuantizer("x86", precision, progress=False)
        model = quantizer.fit(model, input_shapes=shapes).graph
    result = compile_model(model, sys.argv[2], CompileOptions(input_shapes=shapes, input_values=values))
except Exception as exc:  # the row's error: the whole message on one line
    print(json.dumps({"compile_error": f"{type(exc).__name__}: {' '.join(str(exc).split())}"}))
else:
    print(json.dumps({"kernels": len({k.name for k in result.plan.kernels}), "cached": result.cache_hits}))
"""


def compile_isolated(
    onnx_path: Path,
    output: Path,
    shapes: Mapping[str, Sequence[int]],
    values: Mapping[str, Any],
    timeout: float,
    precision: str = "",
    cold_cache: bool = False,
) -> dict:
    """Compile in a child process (a compiler crash or hang costs one row, not the run); `values`:
    the inputs fixed when compiling; `precision`: quantized first to it (bf16, auto), "" for fp32;
    `cold_cache`: with a kernel cache of its own, empty (the model file is fetched already)."""
    with tempfile.TemporaryDirectory(prefix="hai-cold-cache-") as empty:
        env = dict(os.environ, HAI_CACHE_DIR=empty) if cold_cache else None
        return _compile_child(onnx_path, output, shapes, values, timeout, precision, env)


def _compile_child(
    onnx_path: Path,
    output: Path,
    shapes: Mapping[str, Sequence[int]],
    values: Mapping[str, Any],
    timeout: float,
    precision: str,
    env: dict[str, str] | None,
) -> dict:
    start = time.perf_counter()
    fixed = json.dumps({k: np.asarray(v).tolist() for k, v in values.items()})
    command = [sys.executable, "-c", COMPILE_CHILD, str(onnx_path), str(output), json.dumps(shapes), fixed,
               precision]  # fmt: skip
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, cwd=ROOT, env=env)
    except subprocess.TimeoutExpired:
        return {"compile_error": f"compile took over {timeout:.0f} s"}
    seconds = time.perf_counter() - start
    if done.returncode != 0:  # a crash: the end of its stderr
        lines = [line.strip() for line in done.stderr.splitlines() if line.strip()]
        return {"compile_s": seconds, "compile_error": lines[-1] if lines else f"exit code {done.returncode}"}
    return {"compile_s": seconds, **json.loads(done.stdout.strip().splitlines()[-1])}


def in_graph_order(onnx_path: Path, feeds: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """`feeds` in the order of the model's inputs: the measuring children bind inputs by position."""
    import onnx

    names = [i.name for i in onnx.load(str(onnx_path), load_external_data=False).graph.input]
    return {name: feeds[name] for name in names if name in feeds}


def errors_against(outputs: Sequence[np.ndarray], reference: Sequence[np.ndarray]) -> tuple[float, float]:
    """(max abs error, relative error) of `outputs` against `reference`; a shape mismatch is an error."""
    if len(outputs) != len(reference):
        raise ValueError(f"{len(outputs)} outputs, onnxruntime gives {len(reference)}")
    for k, (a, e) in enumerate(zip(outputs, reference)):
        if np.shape(a) != np.shape(e):
            raise ValueError(f"output {k} has shape {np.shape(a)}, onnxruntime's {np.shape(e)}")
    absolute = max(
        (
            float(np.max(np.abs(np.asarray(a, np.float64) - e), initial=0.0))
            for a, e in zip(outputs, reference)
        ),
        default=0.0,
    )
    return absolute, bench.relative_error(outputs, reference)


def measure(
    name: str,
    threads: int,
    runs: int,
    workdir: Path,
    compile_timeout: float,
    repeat: int = 1,
    precisions: Sequence[str] = (),
    cold_cache: bool = False,
) -> dict[str, Any]:
    entry = zoo.get(name)
    spec = entry.model
    onnx_path = spec.fetch()
    inputs = spec.sample_inputs()
    peer_inputs = in_graph_order(onnx_path, spec.onnx_inputs(inputs))  # with the inputs HAI fixes
    artifact = workdir / f"{name}.hai"
    row: dict[str, Any] = {"model": name, "pattern": entry.pattern, "trained": entry.trained}
    row.update(compile_isolated(onnx_path, artifact, spec.input_shapes, spec.input_values, compile_timeout,
                                cold_cache=cold_cache))  # fmt: skip
    measured: dict[str, bench.Isolated] = {}
    runners: dict[str, Callable[[], bench.Isolated]] = {
        "hai": lambda: bench.hai_isolated(artifact, inputs, threads, runs),
        "ort": lambda: bench.onnxruntime_isolated(onnx_path, peer_inputs, threads, runs),
        "ov_f32": lambda: bench.openvino_isolated(onnx_path, peer_inputs, threads, runs, "f32"),
        "ov": lambda: bench.openvino_isolated(onnx_path, peer_inputs, threads, runs, "default"),
    }
    skip = precision_skip()
    for precision in precisions:
        engine = f"hai_{precision}"
        if skip:
            row[f"{engine}_error"] = skip
            continue
        reduced = workdir / f"{name}.{precision}.hai"
        built = compile_isolated(onnx_path, reduced, spec.input_shapes, spec.input_values, compile_timeout,
                                 precision, cold_cache)  # fmt: skip
        row[f"{engine}_compile_s"] = built.get("compile_s")
        if "compile_error" in built:
            row[f"{engine}_error"] = built["compile_error"]
            continue
        runners[engine] = partial(bench.hai_isolated, reduced, inputs, threads, runs)
    for engine, run in runners.items():
        if engine == "hai" and "compile_error" in row:
            continue
        try:
            measured[engine] = result = fastest(run, repeat)
        except Exception as exc:  # a report: an engine that fails is a cell, not the end of the row
            row[f"{engine}_error"] = bench.error_line(exc)
            continue
        assert result.latency is not None
        row[f"{engine}_ms"] = result.latency.p50_ms
        row[f"{engine}_rss_mib"] = result.peak_rss_bytes / 2**20
    if "ort" in measured:
        for engine in ("hai", "ov_f32", "ov"):
            if engine in measured:
                try:
                    row[f"{engine}_abs_err"], row[f"{engine}_rel_err"] = errors_against(
                        measured[engine].outputs, measured["ort"].outputs
                    )
                except ValueError as exc:
                    row[f"{engine}_error"] = str(exc)
    reduced_errors(row, measured, precisions)
    for peer in PEERS:
        if "hai_ms" in row and f"{peer}_ms" in row:
            row[f"hai/{peer}"] = row["hai_ms"] / row[f"{peer}_ms"]
    row.update(precision_verdicts(row, precisions))
    row["status"] = status(row)
    return row


def precision_skip() -> str:
    """Why this host's HAI reduced-precision columns are skipped ("" when they run)."""
    from hai_compiler.quantize.quantizer import native_bf16
    from targets.registry import resolve_target

    if native_bf16(resolve_target("x86")):
        return ""
    return "skipped: this host has no native bf16 (avx512_bf16 or AMX-BF16), bf16 would be emulated"


def reduced_errors(row: dict[str, Any], measured: Mapping[str, Any], precisions: Sequence[str]) -> None:
    """Each reduced precision's relative error against HAI's fp32 outputs, and OpenVINO default's
    against OpenVINO f32's (`{engine}_fp32_err`)."""
    pairs = [(f"hai_{p}", "hai") for p in precisions] + ([("ov", "ov_f32")] if precisions else [])
    for engine, reference in pairs:
        if engine in measured and reference in measured:
            try:
                row[f"{engine}_fp32_err"] = errors_against(
                    measured[engine].outputs, measured[reference].outputs
                )[1]
            except ValueError as exc:
                row[f"{engine}_error"] = str(exc)


def precision_verdicts(row: Mapping[str, Any], precisions: Sequence[str]) -> dict[str, Any]:
    """For each reduced precision p measured: `hai_p/ov`, its latency over OpenVINO default's, and
    `p_err_ok`, whether its error against HAI's fp32 is no worse than OpenVINO default's against
    OpenVINO f32 (issue 13's bf16 goal, per model)."""
    verdicts: dict[str, Any] = {}
    for p in precisions:
        engine = f"hai_{p}"
        if f"{engine}_ms" in row and "ov_ms" in row:
            verdicts[f"{engine}/ov"] = row[f"{engine}_ms"] / row["ov_ms"]
        if f"{engine}_fp32_err" in row and "ov_fp32_err" in row:
            verdicts[f"{p}_err_ok"] = bool(row[f"{engine}_fp32_err"] <= row["ov_fp32_err"])
    return verdicts


def fastest(run: Callable[[], bench.Isolated], repeat: int) -> bench.Isolated:
    """The measurement with the lowest p50 of `repeat` fresh processes."""
    results = [run() for _ in range(repeat)]
    return min(results, key=lambda r: r.latency.p50_ms if r.latency is not None else float("inf"))


def status(row: Mapping[str, Any]) -> str:
    """ok, mismatch (HAI beyond TOLERANCE of onnxruntime), or the first error of the row."""
    for key in ("error", "compile_error", "hai_error", "ort_error"):
        if key in row:
            return "refused" if key == "compile_error" else "error"
    if "hai_rel_err" in row and row["hai_rel_err"] > TOLERANCE:
        return "mismatch"
    return "ok"


def summary(rows: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """Geo-means of HAI's latency and peak RSS over each peer's, over the models both ran."""
    result: dict[str, Any] = {"models": len(rows), "ok": sum(r.get("status") == "ok" for r in rows)}
    for peer in PEERS:
        ratios = [r[f"hai/{peer}"] for r in rows if f"hai/{peer}" in r]
        result[f"geomean_hai/{peer}"] = bench.geomean(ratios)
        result[f"count_hai/{peer}"] = len(ratios)
    rss = [r["hai_rss_mib"] / r["ort_rss_mib"] for r in rows if "hai_rss_mib" in r and "ort_rss_mib" in r]
    result["geomean_rss_hai/ort"] = bench.geomean(rss)
    for p in PRECISIONS:
        ratios = [r[f"hai_{p}/ov"] for r in rows if f"hai_{p}/ov" in r]
        if ratios:
            result[f"geomean_hai_{p}/ov"] = bench.geomean(ratios)
            result[f"count_hai_{p}/ov"] = len(ratios)
            result[f"{p}_err_ok"] = sum(bool(r.get(f"{p}_err_ok")) for r in rows)
    return result


COLUMNS = ("model", "pattern", "compile s", "HAI ms", "ORT ms", "OV f32 ms", "OV ms", "HAI/ORT", "HAI/OV f32",
           "HAI/OV", "RSS MiB HAI/ORT/OV f32/OV", "rel err", "status")  # fmt: skip


def columns(precisions: Sequence[str] = ()) -> tuple[str, ...]:
    """COLUMNS, with each reduced precision's (ms, over OpenVINO default, error against fp32) and
    OpenVINO default's error against its f32 before the status when `precisions`."""
    extra = [c for p in precisions for c in (f"HAI {p} ms", f"HAI {p}/OV", f"{p} err/fp32")]
    extra += ["OV err/f32"] if precisions else []
    return (*COLUMNS[:-1], *extra, COLUMNS[-1])


def cells(row: Mapping[str, Any], note_width: int | None = 120, precisions: Sequence[str] = ()) -> list[str]:
    def number(key: str, form: str = ".2f") -> str:
        return format(row[key], form) if row.get(key) is not None else "-"

    def error(p: str) -> str:
        mark = " (>OV)" if row.get(f"{p}_err_ok") is False else ""
        return number(f"hai_{p}_fp32_err", ".1e") + mark

    rss = "/".join(number(f"{e}_rss_mib", ".0f") for e in ENGINES)
    notes = [
        row[k]
        for k in ("error", "compile_error", "hai_error", "ort_error", "ov_f32_error", "ov_error",
                  *(f"hai_{p}_error" for p in precisions))
        if k in row
    ]  # fmt: skip
    state = row.get("status", "error") + (f": {notes[0][:note_width]}" if notes else "")
    extra = [c for p in precisions for c in (number(f"hai_{p}_ms"), number(f"hai_{p}/ov"), error(p))]
    extra += [number("ov_fp32_err", ".1e")] if precisions else []
    return [
        row["model"], row.get("pattern", "-"), number("compile_s", ".0f"), number("hai_ms"), number("ort_ms"),
        number("ov_f32_ms"), number("ov_ms"), number("hai/ort"), number("hai/ov_f32"), number("hai/ov"), rss,
        number("hai_rel_err", ".1e"), *extra, state,
    ]  # fmt: skip


def summary_line(totals: Mapping[str, Any]) -> str:
    reduced = "".join(
        f"; geo-mean HAI {p} / OpenVINO default {totals[f'geomean_hai_{p}/ov']:.2f} "
        f"({totals[f'count_hai_{p}/ov']} models, error against fp32 within OpenVINO's on "
        f"{totals[f'{p}_err_ok']})"
        for p in PRECISIONS
        if f"geomean_hai_{p}/ov" in totals
    )
    return (
        f"{totals['ok']} of {totals['models']} models compile and match onnxruntime; geo-mean HAI latency / "
        f"onnxruntime {totals['geomean_hai/ort']:.2f} ({totals['count_hai/ort']} models), / OpenVINO f32 "
        f"{totals['geomean_hai/ov_f32']:.2f}, / OpenVINO default {totals['geomean_hai/ov']:.2f}; "
        f"geo-mean peak RSS HAI / onnxruntime {totals['geomean_rss_hai/ort']:.2f}{reduced}"
    )


def render(rows: Sequence[Mapping[str, Any]], threads: int, precisions: Sequence[str] = ()) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(title=f"Model zoo: HAI vs onnxruntime and OpenVINO, {threads} threads, batch 1 (p50)")
    for column in columns(precisions):
        table.add_column(column, justify="left" if column in ("model", "pattern", "status") else "right")
    for row in rows:
        table.add_row(*cells(row, precisions=precisions))
    console = Console(highlight=False, width=240)
    console.print(table)
    console.print(summary_line(summary(rows)))


def markdown(rows: Sequence[Mapping[str, Any]], precisions: Sequence[str] = ()) -> str:
    heads = columns(precisions)
    lines = ["| " + " | ".join(heads) + " |", "|" + " --- |" * len(heads)]
    lines += [
        "| " + " | ".join(c.replace("|", "/") for c in cells(row, None, precisions)) + " |" for row in rows
    ]
    return "\n".join(lines) + "\n\n" + summary_line(summary(rows)) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", help=f"comma-separated (default: all {len(zoo.ZOO)})")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--runs", type=int, default=30)
    parser.add_argument(
        "--repeat", type=int, default=1, help="fresh processes per engine; the lowest p50 counts"
    )
    parser.add_argument("--compile-timeout", type=float, default=900.0, help="seconds per model")
    parser.add_argument(
        "--precision",
        default="",
        help=f"also compile and measure HAI at these comma-separated precisions ({', '.join(PRECISIONS)})",
    )
    parser.add_argument(
        "--cold-cache", action="store_true", help="compile each model with an empty kernel cache of its own"
    )
    parser.add_argument("--json", type=Path, help="also write the rows and geo-means as JSON")
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown")
    args = parser.parse_args()
    names = args.models.split(",") if args.models else list(zoo.ZOO)
    unknown = [n for n in names if n not in zoo.ZOO]
    if unknown:
        parser.error(f"unknown zoo models {', '.join(unknown)} (known: {', '.join(zoo.ZOO)})")
    precisions = [p for p in args.precision.split(",") if p]
    if any(p not in PRECISIONS for p in precisions):
        parser.error(f"--precision {args.precision!r}: choose among {', '.join(PRECISIONS)}")
    finished: list[dict[str, Any]] = []

    def write(rows: list[dict[str, Any]]) -> None:
        if args.json:
            facts = {"threads": args.threads, "runs": args.runs, "repeat": args.repeat,
                     "cold_cache": args.cold_cache,
                     "precisions": precisions, "rows": rows, "summary": summary(rows)}  # fmt: skip
            bench.write_json(facts, args.json)

    def measure_one(name: str) -> dict[str, Any]:
        finished.append(
            measure(
                name,
                args.threads,
                args.runs,
                Path(tmp),
                args.compile_timeout,
                args.repeat,
                precisions,
                args.cold_cache,
            )  # fmt: skip
        )
        write(finished)  # a long run keeps what it measured so far
        return finished[-1]

    with tempfile.TemporaryDirectory(prefix="hai-zoo-") as tmp:
        rows = bench.measure_each(names, measure_one)
    render(rows, args.threads, precisions)
    write(rows)
    if args.markdown:
        args.markdown.write_text(markdown(rows, precisions), encoding="utf-8")


if __name__ == "__main__":
    main()
