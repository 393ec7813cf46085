"""What quantization did, for people: per-layer precision, sensitivity and bytes; size before and after;
closeness to fp32 (SQNR, top-1 agreement) and accuracy when labels are given.

Rule: "before" is the ONNX model's fp32 weight bytes (initializers and Constant
nodes: metrics.onnx_weight_bytes) or, for a `.hir`, its constants' bytes;
"after" is the compiled artifact's `weights.bin` when there is one, else the
quantized graph's constant bytes with INT4 counted two values a byte (how the
kernels store them). Closeness is measured with the reference interpreter, the
outputs of all samples together, as the budget is (incremental.compare: SQNR
over every output, agreement of the first), and every figure names the data it
was measured on: the calibration samples the quantizer verified its budget on
(`QuantizedModel.verified`), and evaluation samples when given. A budget that
holds on the calibration samples but not on the evaluation samples is a
`QuantizationWarning` naming both figures.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
from rich.console import Console
from rich.table import Table

from hai_compiler.quantize.caveats import warn
from hai_compiler.quantize.incremental import compare
from hai_compiler.quantize.metrics import accuracy, compression_percent, graph_weight_bytes, onnx_weight_bytes
from hai_compiler.quantize.mixed import Budget, LayerChoice
from ir import Graph, HaiError, run_graph


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
    ref = [[run_graph(reference, feed)[v.name] for v in reference.outputs] for feed in feeds]
    out = [[run_graph(quantized, feed)[v.name] for v in quantized.outputs] for feed in feeds]
    sqnr, disagreement = compare(out, ref)
    report = QualityReport(len(feeds), sqnr, 1.0 - disagreement, source=source)
    if labels is not None:
        check_labels(labels, len(feeds))
        flat = labels.reshape(len(feeds), *labels.shape[1:])
        report.accuracy = accuracy(np.stack([o[0] for o in out]).reshape(len(feeds), -1), flat)
        report.fp32_accuracy = accuracy(np.stack([r[0] for r in ref]).reshape(len(feeds), -1), flat)
    return report


def check_labels(labels: np.ndarray, samples: int) -> None:
    """Labels are class indices, one per evaluation sample; a `HaiError` says what is wrong."""
    if labels.dtype.kind not in "iu":
        raise HaiError(f"labels are {labels.dtype}: give integer class indices, one per evaluation sample")
    if labels.ndim != 1 or len(labels) != samples:
        raise HaiError(
            f"labels have shape {list(labels.shape)}: give one class index per evaluation sample ({samples})"
        )


def layer_table(choices: Sequence[LayerChoice]) -> Table:
    """One row per layer: name, op, chosen precision, sensitivity at it (dB; empty where not measured, as
    for a uniform precision), bytes at it and at fp32."""
    table = Table(title="per-layer precision", title_justify="left")
    table.add_column("layer", overflow="fold")
    for column in ("op", "precision", "sensitivity dB", "bytes", "fp32 bytes"):
        table.add_column(column, justify="left" if column in ("op", "precision") else "right")
    for layer in choices:
        sensitivity, stored = layer.sensitivity.get(layer.precision), layer.bytes.get(layer.precision)
        shown = "" if sensitivity is None else f"{sensitivity:.1f}"
        table.add_row(layer.name, layer.op, layer.precision, shown, "" if stored is None else f"{stored:,}",
                      f"{layer.bytes['fp32']:,}")  # fmt: skip
    return table


def render_summary(
    console: Console,
    size: SizeReport,
    verified: QualityReport | None,
    evaluated: QualityReport | None = None,
    budget: Budget | None = None,
    weight_bytes: int | None = None,
) -> None:
    """The size line, then closeness on the calibration samples (with whether `budget` holds there,
    `weight_bytes` being what a size budget counts) and on the evaluation samples (module doc)."""
    console.print(
        f"model size: {size.before:,} -> {size.after:,} bytes ({size.compression:.1f}% smaller than fp32)"
    )
    if verified is not None:
        line = closeness_line(verified)
        if budget is not None:
            sized = budget.target_size is not None
            line += f"; {budget} holds" + (f" ({weight_bytes:,} bytes of weights)" if sized else " there")
        console.print(line)
    if evaluated is not None:
        console.print(closeness_line(evaluated))
        if (
            budget is not None
            and verified is not None
            and not budget.holds(evaluated.sqnr_db, 1.0 - evaluated.agreement, 0)
        ):
            warn(
                f"{budget} holds on the {verified.samples} {verified.source} it was verified on, not on the "
                f"{evaluated.samples} {evaluated.source} (SQNR {evaluated.sqnr_db:.2f} dB, top-1 agreement "
                f"{evaluated.agreement:.4f}): calibrate on more samples like the evaluation data"
            )


def closeness_line(q: QualityReport) -> str:
    line = (
        f"against fp32 on {q.samples} {q.source}: SQNR {q.sqnr_db:.2f} dB, top-1 agreement {q.agreement:.4f}"
    )
    if q.accuracy is not None:
        line += f", accuracy {q.accuracy:.4f} (fp32 {q.fp32_accuracy:.4f})"
    return line
