"""The main job on the embedded default model (`hai demo`).

Imports the committed digits CNN (`hai_compiler/models/digits_cnn.onnx`,
trained by `examples/digits/train_digits.py`), runs the `default` pipeline,
prints the IR summary, and measures accuracy on the held-out digits through
the reference interpreter — next to onnxruntime's when it is installed.
"""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import numpy as np
from rich.console import Console

MODELS_DIR = Path(__file__).resolve().parent / "models"
EMBEDDED_MODEL = MODELS_DIR / "digits_cnn.onnx"
HELDOUT_DIGITS = MODELS_DIR / "digits_test.npz"


def load_heldout_digits() -> tuple[np.ndarray, np.ndarray]:
    """The held-out split: images float32 [N,1,8,8] in [0,1] and int64 labels."""
    with np.load(HELDOUT_DIGITS) as data:
        return data["x"], data["y"]


@dataclasses.dataclass(frozen=True)
class DemoResult:
    """Held-out accuracy through HAI, and onnxruntime's when it is installed."""

    accuracy: float
    onnxruntime_accuracy: float | None
    nodes_imported: int
    nodes_optimised: int


def run_demo(console: Console, pipeline: str = "default") -> DemoResult:
    """Import, optimise and evaluate the embedded model, printing as it goes."""
    from hai_compiler.driver import run_pipeline
    from hai_compiler.onnx_import import import_onnx
    from hai_compiler.summary import render_summary
    from ir import Interpreter

    x, y = load_heldout_digits()
    console.print(f"[bold]HAI demo[/bold]: {EMBEDDED_MODEL.name} on {len(y)} held-out digits")
    start = time.perf_counter()
    graph = import_onnx(EMBEDDED_MODEL, input_shapes={"image": x.shape})
    imported_nodes = len(graph.nodes)
    graph = run_pipeline(graph, pipeline)
    console.print(
        f"imported {imported_nodes} nodes, '{pipeline}' pipeline left {len(graph.nodes)} "
        f"({time.perf_counter() - start:.2f} s)"
    )
    render_summary(graph, console)
    start = time.perf_counter()
    (logits,) = Interpreter(graph).run({"image": x}).values()
    accuracy = float((logits.argmax(axis=1) == y).mean())
    console.print(
        f"accuracy (HAI reference interpreter): [bold]{accuracy:.4f}[/bold] "
        f"({time.perf_counter() - start:.2f} s for {len(y)} images)"
    )
    reference = _onnxruntime_accuracy(x, y)
    if reference is not None:
        console.print(f"accuracy (onnxruntime):                {reference:.4f}")
    return DemoResult(accuracy, reference, imported_nodes, len(graph.nodes))


def _onnxruntime_accuracy(x: np.ndarray, y: np.ndarray) -> float | None:
    try:
        import onnxruntime
    except ImportError:
        return None
    session = onnxruntime.InferenceSession(str(EMBEDDED_MODEL), providers=["CPUExecutionProvider"])
    (logits,) = session.run(None, {"image": x})
    return float((logits.argmax(axis=1) == y).mean())
