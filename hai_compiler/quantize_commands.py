"""The `hai quantize` command, and the quantization options `hai compile --precision` shares with it.

Rule: as in cli.py, commands parse options and print; hai_compiler/quantize/
does the work. `QuantizeOptions` gathers the options both commands take, so
they are declared once. A `HaiError` becomes one `error: ...` line, exit code 1.
"""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from hai_compiler.cli import InputShapeOpt, ModelArg, _shapes, app, reported_errors
from hai_compiler.input_spec import load_array

PrecisionOpt = Annotated[
    str | None,
    typer.Option("--precision", metavar="fp16|int8|int4|mixed", help="Quantize the model before compiling."),
]
CalibrationOpt = Annotated[
    Path | None,
    typer.Option(
        "--calibration-data",
        metavar="D",
        help="An .npz named after the model inputs (samples stacked or batch-concatenated), or a directory.",
    ),
]
ObserverOpt = Annotated[
    str,
    typer.Option(
        "--observer", help="Activation ranges: auto (the best of minmax and percentile), or one observer."
    ),
]
MinSqnrOpt = Annotated[
    float | None, typer.Option("--min-sqnr", metavar="DB", help="Mixed: keep output SQNR vs fp32 above DB.")
]
MaxDisagreementOpt = Annotated[
    float | None,
    typer.Option(
        "--max-disagreement", metavar="FRACTION", help="Mixed: top-1 disagreement with fp32 at most."
    ),
]
TargetSizeOpt = Annotated[
    int | None, typer.Option("--target-size", metavar="BYTES", help="Mixed: fit the layer weights in BYTES.")
]
LayerPrecisionOpt = Annotated[
    list[str] | None,
    typer.Option("--layer-precision", metavar="NAME=PRECISION", help="Force one layer's precision; repeat."),
]
StatsOpt = Annotated[
    Path | None,
    typer.Option("--stats", metavar="FILE", help="Reuse calibration statistics saved with --save-stats."),
]


@dataclasses.dataclass
class QuantizeOptions:
    """The quantization options of `hai quantize` and `hai compile --precision`."""

    precision: str
    calibration_data: Path | None = None
    observer: str = "auto"
    min_sqnr: float | None = None
    max_disagreement: float | None = None
    target_size: int | None = None
    layer_precision: list[str] | None = None
    stats: Path | None = None

    def quantizer(self, target_device: str) -> Any:
        from hai_compiler.quantize.quantizer import DynamicQuantizer, QuantizerError

        overrides = {}
        for item in self.layer_precision or []:
            name, sep, precision = item.rpartition("=")
            if not sep or not name:
                raise QuantizerError(f"--layer-precision {item!r}: write NAME=PRECISION, e.g. conv1=int8")
            overrides[name] = precision
        return DynamicQuantizer(
            target_device, self.precision, observer=self.observer, min_sqnr=self.min_sqnr,
            max_disagreement=self.max_disagreement, target_size=self.target_size, layer_precision=overrides,
            progress=sys.stderr.isatty(),
        )  # fmt: skip

    def quality(
        self, model: Path, shapes: dict[str, tuple[int, ...]], quantized: Any, data: Path | None = None,
        labels: Path | None = None,
    ) -> Any:  # fmt: skip
        """The QualityReport against fp32 on `data` (all of it, `labels` giving accuracy), else on the
        first calibration samples mixed precision measures on; None without either."""
        from hai_compiler.quantize.calibrate import prepare_graph
        from hai_compiler.quantize.calibration_data import load_calibration_data
        from hai_compiler.quantize.quantizer import SENSITIVITY_SAMPLES
        from hai_compiler.quantize.report import quality

        source = data if data is not None else self.calibration_data
        if source is None:
            return None
        reference = prepare_graph(model, shapes or None)
        cap = None if data is not None else SENSITIVITY_SAMPLES
        feeds = list(load_calibration_data(source, reference, max_samples=cap, seed=None))
        source_name = (
            "evaluation samples" if data is not None else "calibration samples (--eval-data for more)"
        )
        truth = load_array(labels, "--labels") if labels is not None else None
        return quality(reference, quantized.graph, feeds, truth, source_name)

    def fit(self, model: Path, shapes: dict[str, tuple[int, ...]], target_device: str) -> Any:
        """The QuantizedModel of `model` under these options."""
        return self.quantizer(target_device).fit(
            model, self.calibration_data, input_shapes=shapes or None, stats=self.stats
        )


def print_quantization(
    console: Console, model: Path, quantized: Any, after_bytes: int | None, quality_report: Any = None
) -> None:
    """The per-layer table, the size before/after and, when measured, the closeness to fp32."""
    from hai_compiler.quantize.report import (
        SizeReport,
        graph_weight_bytes,
        layer_table,
        model_weight_bytes,
        render_summary,
    )

    console.print(layer_table(quantized.layers, quantized.precisions))
    size = SizeReport(model_weight_bytes(model), after_bytes or graph_weight_bytes(quantized.graph))
    render_summary(console, size, quality_report)


@app.command("quantize")
def quantize_command(
    model: ModelArg,
    output: Annotated[Path, typer.Option("-o", "--output", metavar="Q.hir", help="The quantized .hir.")],
    precision: Annotated[
        str,
        typer.Option(
            "--precision", metavar="fp16|int8|int4|mixed", help="Precision of every layer, or mixed."
        ),
    ] = "mixed",
    calibration_data: CalibrationOpt = None,
    observer: ObserverOpt = "auto",
    min_sqnr: MinSqnrOpt = None,
    max_disagreement: MaxDisagreementOpt = None,
    target_size: TargetSizeOpt = None,
    layer_precision: LayerPrecisionOpt = None,
    stats: StatsOpt = None,
    save_stats: Annotated[
        Path | None, typer.Option("--save-stats", metavar="FILE", help="Save the calibration statistics.")
    ] = None,
    target_device: Annotated[
        str, typer.Option("--target-device", help="A target name or a `hai doctor --scan` profile.")
    ] = "x86",
    input_shape: InputShapeOpt = None,
    eval_data: Annotated[
        Path | None, typer.Option("--eval-data", metavar="D.npz", help="Samples to compare with fp32 on.")
    ] = None,
    labels: Annotated[
        Path | None,
        typer.Option("--labels", metavar="L.npy", help="Class labels of --eval-data: prints accuracy."),
    ] = None,
) -> None:
    """Quantize a model per layer (FP16 / INT8 / INT4, or mixed under a budget) into a .hir + weights file."""
    options = QuantizeOptions(
        precision, calibration_data, observer, min_sqnr, max_disagreement, target_size, layer_precision, stats
    )
    console = Console(highlight=False)
    with reported_errors():
        shapes = _shapes(input_shape)
        quantized = options.fit(model, shapes, target_device)
        written = quantized.save(output)
        if save_stats is not None and quantized.stats is not None:
            quantized.stats.save(save_stats)
        measured = options.quality(model, shapes, quantized, eval_data, labels)
        print_quantization(console, model, quantized, None, measured)
        console.print(f"wrote {written}")
