"""What quantization did, for people: per-layer precision, sensitivity and bytes; size before and after;
closeness to fp32 (SQNR, top-1 agreement) and accuracy when labels are given.

Rule: "before" is the ONNX model's fp32 weight bytes (initializers and Constant
nodes: metrics.onnx_weight_bytes) or, for a `.hir`, its constants' bytes;
"after" is the compiled artifact's `weights.bin` when there is one, else the
quantized graph's constant bytes with INT4 counted two values a byte (how the
kernels store them). Closeness is measured with the reference interpreter on
the given evaluation feeds, the outputs of all samples together.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from hai_compiler.quantize.metrics import (
    accuracy,
    compression_percent,
    onnx_weight_bytes,
    sqnr_db,
    top1_agreement,
)
from hai_compiler.quantize.mixed import LayerChoice
from ir import DType, Graph, HaiError, run_graph


@dataclasses.dataclass
class QualityReport:
    """Closeness of the quantized model's first output to fp32 over `samples` evaluation samples."""

    samples: int
    sqnr_db: float
    agreement: float
    accuracy: float | None = None
    fp32_accuracy: float | None = None
    source: str = "evaluation samples"


@dataclasses.dataclass
class SizeReport:
    before: int
    after: int

    @property
    def compression(self) -> float:
        return compression_percent(self.after, self.before)


def graph_weight_bytes(graph: Graph) -> int:
    """Bytes of the graph's constants as stored: INT4 two values a byte, everything else its nbytes."""
    total = 0
    for value in graph.constants.values():
        t = value.type
        total += math.ceil(t.size / 2) if t.dtype is DType.I4 else t.nbytes
    return total


def model_weight_bytes(model: str | Path | Graph) -> int:
    """The fp32 weight bytes of the original model (module doc)."""
    if isinstance(model, Graph):
        return graph_weight_bytes(model)
    if Path(model).suffix == ".onnx":
        import onnx

        return onnx_weight_bytes(onnx.load(str(model)))
    from ir.parser import read_hir

    return graph_weight_bytes(read_hir(model))


def quality(
    reference: Graph,
    quantized: Graph,
    feeds: Sequence[Mapping[str, np.ndarray]],
    labels: np.ndarray | None = None,
    source: str = "evaluation samples",
) -> QualityReport:
    """SQNR and top-1 agreement of `quantized` against `reference` (both interpreted) on `feeds`."""
    name = reference.outputs[0].name
    ref = np.stack([run_graph(reference, feed)[name] for feed in feeds])
    out = np.stack([run_graph(quantized, feed)[quantized.outputs[0].name] for feed in feeds])
    report = QualityReport(len(feeds), sqnr_db(out, ref), top1_agreement(out, ref), source=source)
    if labels is not None:
        check_labels(labels, len(feeds))
        flat = labels.reshape(len(feeds), *labels.shape[1:])
        report.accuracy = accuracy(out.reshape(len(feeds), -1), flat)
        report.fp32_accuracy = accuracy(ref.reshape(len(feeds), -1), flat)
    return report


def check_labels(labels: np.ndarray, samples: int) -> None:
    """Labels are class indices, one per evaluation sample; a `HaiError` says what is wrong."""
    if labels.dtype.kind not in "iu":
        raise HaiError(f"labels are {labels.dtype}: give integer class indices, one per evaluation sample")
    if labels.ndim != 1 or len(labels) != samples:
        raise HaiError(
            f"labels have shape {list(labels.shape)}: give one class index per evaluation sample ({samples})"
        )


def layer_table(choices: Sequence[LayerChoice] | None, precisions: Mapping[str, str]) -> Table:
    """One row per layer: name, op, chosen precision, sensitivity at it (dB), bytes at it and at fp32."""
    table = Table(title="per-layer precision", title_justify="left")
    for column in ("layer", "op", "precision", "sensitivity dB", "bytes", "fp32 bytes"):
        table.add_column(column, justify="left" if column in ("layer", "op", "precision") else "right")
    if choices is None:
        for name, precision in precisions.items():
            table.add_row(name, "", precision, "", "", "")
        return table
    for layer in choices:
        sensitivity = layer.sensitivity.get(layer.precision)
        shown = "" if sensitivity is None else f"{sensitivity:.1f}"
        table.add_row(layer.name, layer.op, layer.precision, shown, f"{layer.bytes[layer.precision]:,}",
                      f"{layer.bytes['fp32']:,}")  # fmt: skip
    return table


def render_summary(console: Console, size: SizeReport, quality_report: QualityReport | None) -> None:
    console.print(
        f"model size: {size.before:,} -> {size.after:,} bytes ({size.compression:.1f}% smaller than fp32)"
    )
    if quality_report is None:
        return
    q = quality_report
    line = (
        f"against fp32 on {q.samples} {q.source}: SQNR {q.sqnr_db:.2f} dB, top-1 agreement {q.agreement:.4f}"
    )
    if q.accuracy is not None:
        line += f", accuracy {q.accuracy:.4f} (fp32 {q.fp32_accuracy:.4f})"
    console.print(line)
