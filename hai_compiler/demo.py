"""The main job on the embedded default model (`hai demo`).

Compiles the committed digits CNN (`hai_compiler/models/digits_cnn.onnx`,
trained by `examples/digits/train_digits.py`) for this host at batch 1, runs the
artifact with the minimal runtime over the held-out digits, and prints accuracy,
p50 latency and peak RSS next to onnxruntime's (same threads, same inputs).
"""

from __future__ import annotations

import dataclasses
import tempfile
import time
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

MODELS_DIR = Path(__file__).resolve().parent / "models"
EMBEDDED_MODEL = MODELS_DIR / "digits_cnn.onnx"
HELDOUT_DIGITS = MODELS_DIR / "digits_test.npz"
INPUT = "image"


def load_heldout_digits() -> tuple[np.ndarray, np.ndarray]:
    """The held-out split: images float32 [N,1,8,8] in [0,1] and int64 labels."""
    with np.load(HELDOUT_DIGITS) as data:
        return data["x"], data["y"]


@dataclasses.dataclass(frozen=True)
class Measured:
    """One engine's numbers on the held-out digits (batch 1)."""

    accuracy: float
    p50_ms: float
    peak_rss_bytes: int


@dataclasses.dataclass(frozen=True)
class DemoResult:
    """HAI's numbers, onnxruntime's (None when it is not installed), and what the compiler did."""

    hai: Measured
    onnxruntime: Measured | None
    onnx_nodes: int
    kernels: int
    compile_seconds: float


def run_demo(console: Console, threads: int = 2, runs: int = 100, output: Path | None = None) -> DemoResult:
    """Compile, run and measure the embedded model, printing as it goes."""
    x, y = load_heldout_digits()
    title = f"[bold]HAI demo[/bold]: {EMBEDDED_MODEL.name}, {len(y)} held-out digits, {threads} threads"
    console.print(title)
    with tempfile.TemporaryDirectory() as tmp:
        artifact = output or Path(tmp) / "digits.hai"
        compiled = _compile(artifact, console)
        hai = _measure_hai(compiled.path, x, y, threads, runs)
        reference = _measure_onnxruntime(x, y, threads, runs)
    result = DemoResult(hai, reference, compiled.nodes, len(compiled.kernels), compiled.seconds)
    _print_table(console, result)
    return result


@dataclasses.dataclass(frozen=True)
class _Compiled:
    path: Path
    nodes: int
    kernels: tuple[str, ...]
    seconds: float


def _compile(artifact: Path, console: Console) -> _Compiled:
    from hai_compiler.compiler import CompileOptions, compile_model
    from hai_compiler.onnx_import import load_model
    from hai_compiler.summary import render_summary

    shapes = {INPUT: (1, 1, 8, 8)}
    onnx_nodes = len(load_model(EMBEDDED_MODEL).graph.node)
    start = time.perf_counter()
    result = compile_model(EMBEDDED_MODEL, artifact, CompileOptions.from_keywords("x86", shapes, {}))
    seconds = time.perf_counter() - start
    kernels = tuple(step.kernel for step in result.plan.plan.steps)
    console.print(
        f"compiled for x86 ({result.target.cpu}): {onnx_nodes} ONNX nodes → {len(kernels)} kernels "
        f"in {seconds:.1f} s → {result.path.name}"
    )
    render_summary(result.graph, console)
    return _Compiled(result.path, onnx_nodes, kernels, seconds)


def _accuracy(predict, x: np.ndarray, y: np.ndarray) -> float:  # type: ignore[no-untyped-def]
    logits = np.concatenate([predict(x[i : i + 1]) for i in range(len(x))])
    return float((logits.argmax(axis=1) == y).mean())


def _measure_hai(artifact: Path, x: np.ndarray, y: np.ndarray, threads: int, runs: int) -> Measured:
    import runtime
    from hai_compiler.compiler.bench import hai_isolated

    model = runtime.load(artifact, threads=threads)
    accuracy = _accuracy(lambda batch: model.run({INPUT: batch})["logits"], x, y)
    measured = hai_isolated(artifact, {INPUT: x[:1]}, threads, runs)
    assert measured.latency is not None
    return Measured(accuracy, measured.latency.p50_ms, measured.peak_rss_bytes)


def _measure_onnxruntime(x: np.ndarray, y: np.ndarray, threads: int, runs: int) -> Measured | None:
    try:
        from hai_compiler.compiler.bench import onnxruntime_isolated, onnxruntime_session

        session = onnxruntime_session(EMBEDDED_MODEL, threads)
    except ImportError:
        return None
    accuracy = _accuracy(lambda batch: session.run(None, {INPUT: batch})[0], x, y)
    measured = onnxruntime_isolated(EMBEDDED_MODEL, {INPUT: x[:1]}, threads, runs)
    assert measured.latency is not None
    return Measured(accuracy, measured.latency.p50_ms, measured.peak_rss_bytes)


def _print_table(console: Console, result: DemoResult) -> None:
    table = Table(title="held-out digits, batch 1")
    for column in ("engine", "accuracy", "p50 latency", "peak RSS"):
        table.add_column(column, justify="right" if column != "engine" else "left")
    rows = [("HAI (compiled)", result.hai), ("onnxruntime", result.onnxruntime)]
    for name, measured in rows:
        if measured is not None:
            rss = f"{measured.peak_rss_bytes / 2**20:.1f} MiB"
            table.add_row(name, f"{measured.accuracy:.4f}", f"{measured.p50_ms * 1e3:.1f} µs", rss)
    console.print(table)
    if result.onnxruntime is not None:
        speed = result.onnxruntime.p50_ms / result.hai.p50_ms
        memory = result.hai.peak_rss_bytes / result.onnxruntime.peak_rss_bytes
        console.print(f"HAI is {speed:.2f}× onnxruntime's speed at {memory:.2f}× its peak memory")
