"""The `hai quantize` command, and the quantization options `hai compile --precision` shares with it.

Rule: as in model_commands.py, commands parse options and print; hai_compiler/quantize/
does the work. `QuantizeOptions` gathers the options both commands take, so
they are declared once. A `HaiError` becomes one `error: ...` line, exit code 1.
"""

from __future__ import annotations

import dataclasses
import functools
import inspect
import typing
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Annotated, Any

import typer
from rich.console import Console

from hai_compiler.cli_app import app, example, reported_errors
from hai_compiler.cli_options import (
    CpuFeaturesOpt,
    CpuOpt,
    HardwareProfileOpt,
    InputShapeOpt,
    ModelArg,
    TargetOpt,
    choices,
    input_shapes,
    size_option,
)
from hai_compiler.input_spec import load_array
from hai_compiler.progress import reporting, stage
from hai_compiler.quantize.observers import OBSERVERS
from hai_compiler.quantize.quantizer import PROFILES
from hai_compiler.quantize.range_selection import AUTO_OBSERVERS

Precision = choices("Precision", PROFILES)
Observer = choices("Observer", ["auto", *sorted(OBSERVERS)])


@dataclasses.dataclass
class QuantizeOptions:
    """The quantization options of `hai quantize` and `hai compile --precision`, declared once: each
    field's annotation is its typer option, and `quantization_options` adds them to a command."""

    precision: Annotated[
        Precision | None,
        typer.Option(
            "--precision",
            help="Every layer at fp16, bf16 (weights and activations bf16, f32 sums; needs a cpu with "
            "avx512_bf16 or amx_bf16), int8 or int4; auto: bf16 per layer where the cpu has it, every "
            "output within --tolerance of fp32; or mixed: each layer's precision chosen under "
            "--min-sqnr, --max-disagreement or --target-size (`hai quantize` defaults to mixed; "
            "`hai compile` quantizes only when this is given).",
            show_default=False,
        ),
    ] = None
    calibration_data: Annotated[
        Path | None,
        typer.Option(
            "--calibration-data",
            metavar="D.npz",
            help="An .npz named after the model inputs (samples stacked or batch-concatenated), "
            "or a directory of them.",
        ),
    ] = None
    observer: Annotated[
        Observer,
        typer.Option(
            "--observer",
            help=f"Activation ranges: auto (the best of {' and '.join(AUTO_OBSERVERS)}), or one observer.",
        ),
    ] = Observer("auto")
    min_sqnr: Annotated[
        float | None,
        typer.Option("--min-sqnr", metavar="DB", help="Mixed: keep output SQNR vs fp32 above DB."),
    ] = None
    max_disagreement: Annotated[
        float | None,
        typer.Option(
            "--max-disagreement", metavar="FRACTION", help="Mixed: top-1 disagreement with fp32 at most."
        ),
    ] = None
    target_size: Annotated[
        str | None, size_option("--target-size", "Mixed: fit the layer weights in SIZE.")
    ] = None
    tolerance: Annotated[
        float,
        typer.Option(
            "--tolerance",
            metavar="REL",
            help="Auto: every output's relative error against fp32 at most REL (on --calibration-data, "
            "else on generated inputs).",
        ),
    ] = 1e-2
    layer_precision: Annotated[
        list[str] | None,
        typer.Option(
            "--layer-precision", metavar="NAME=PRECISION", help="Force one layer's precision; repeat."
        ),
    ] = None
    stats: Annotated[
        Path | None,
        typer.Option("--stats", metavar="FILE", help="Reuse calibration statistics saved with --save-stats."),
    ] = None
    save_stats: Annotated[
        Path | None,
        typer.Option("--save-stats", metavar="FILE", help="Save the calibration statistics for --stats."),
    ] = None
    eval_data: Annotated[
        Path | None,
        typer.Option(
            "--eval-data",
            metavar="D.npz",
            help="Held-out samples to compare with fp32 on (the report always gives the calibration ones).",
        ),
    ] = None
    labels: Annotated[
        Path | None,
        typer.Option("--labels", metavar="L.npy", help="Class labels of --eval-data: prints accuracy."),
    ] = None

    def quantizer(self, target: Any, instruments: Sequence[Any] = ()) -> Any:
        """The DynamicQuantizer of these options for `target` (a target name, a profile file or a
        TargetDescription); `instruments`: for its `quantize` pass."""
        from hai_compiler.quantize.quantizer import DynamicQuantizer, QuantizerError
        from ir.units import parse_size

        overrides = {}
        for item in self.layer_precision or []:
            name, sep, precision = item.rpartition("=")
            if not sep or not name:
                raise QuantizerError(f"--layer-precision {item!r}: write NAME=PRECISION, e.g. conv1=int8")
            overrides[name] = precision
        target_size = parse_size(self.target_size, "--target-size") if self.target_size is not None else None
        return DynamicQuantizer(
            target, str(self.precision or "mixed"), observer=str(self.observer),
            min_sqnr=self.min_sqnr, max_disagreement=self.max_disagreement, target_size=target_size,
            tolerance=self.tolerance, layer_precision=overrides, instruments=instruments,
        )  # fmt: skip

    def quality(self, model: Path, shapes: dict[str, tuple[int, ...]], quantized: Any) -> Any:
        """The QualityReport against fp32 on --eval-data (all of it, --labels giving accuracy), None
        without it (the fit's own report covers the calibration samples)."""
        from hai_compiler.quantize.calibrate import prepare_graph
        from hai_compiler.quantize.report import quality
        from hai_compiler.quantize.sample_checks import evaluation_feeds

        if self.eval_data is None:
            return None
        reference = prepare_graph(model, shapes or None)
        feeds = evaluation_feeds(self.eval_data, reference)
        labels = load_array(self.labels, "--labels") if self.labels is not None else None
        return quality(reference, quantized.graph, feeds, labels)

    def fit(
        self, model: Path, shapes: dict[str, tuple[int, ...]], target: Any, dump_ir: Path | None = None
    ) -> Any:
        """The QuantizedModel of `model` under these options (its statistics saved with --save-stats);
        `dump_ir`: the `quantize` pass's IR goes there."""
        from hai_compiler.driver import InstrumentOptions, make_instruments

        with stage("describing the target"):
            quantizer = self.quantizer(target, make_instruments(InstrumentOptions(dump_dir=dump_ir)))
        quantized = quantizer.fit(model, self.calibration_data, input_shapes=shapes or None, stats=self.stats)
        if self.save_stats is not None and quantized.stats is not None:
            quantized.stats.save(self.save_stats)
        return quantized


def quantization_options(command: Callable[..., None]) -> Callable[..., None]:
    """`command` with QuantizeOptions' fields as options after its own; it gets them as one
    `quantize: QuantizeOptions` argument."""
    signature = inspect.signature(command, eval_str=True)
    own = [p for p in signature.parameters.values() if p.name != "quantize"]
    hints = typing.get_type_hints(QuantizeOptions, include_extras=True)
    fields = dataclasses.fields(QuantizeOptions)
    added = [
        inspect.Parameter(f.name, inspect.Parameter.KEYWORD_ONLY, annotation=hints[f.name], default=f.default)
        for f in fields
    ]

    @functools.wraps(command)
    def with_options(**values: Any) -> None:
        quantize = QuantizeOptions(**{f.name: values.pop(f.name) for f in fields})
        command(**values, quantize=quantize)

    parameters = own + added
    with_options.__signature__ = signature.replace(parameters=parameters)  # type: ignore[attr-defined]
    with_options.__annotations__ = {p.name: p.annotation for p in parameters}
    return with_options


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

    console.print(layer_table(quantized.layers))
    weights = graph_weight_bytes(quantized.graph)
    size = SizeReport(model_weight_bytes(model), after_bytes or weights)
    render_summary(console, size, quantized.verified, quality_report, quantized.budget, weights)


@app.command(
    "quantize",
    epilog=example("hai quantize model.onnx --calibration-data cal.npz --min-sqnr 35 -o q.hir"),
)
@quantization_options
def quantize_command(
    model: ModelArg,
    output: Annotated[Path, typer.Option("-o", "--output", metavar="Q.hir", help="The quantized .hir.")],
    target: TargetOpt = "x86",  # type: ignore[assignment]
    cpu: CpuOpt = None,
    hardware_profile: HardwareProfileOpt = None,
    cpu_features: CpuFeaturesOpt = None,
    input_shape: InputShapeOpt = None,
    *,
    quantize: QuantizeOptions,
) -> None:
    """Quantize a model per layer (FP16 / INT8 / INT4, or mixed under a budget) into a .hir + weights file.

    The precisions offered are the target's: --target, --cpu, --hardware-profile and --cpu-features
    describe it as `hai compile` does."""
    from hai_compiler.compiler.options import CompileOptions, profile_target_of, resolve_compile_target

    console = Console(highlight=False)
    with reported_errors():
        shapes = input_shapes(input_shape)
        options = CompileOptions(str(target), cpu, hardware_profile, cpu_features=cpu_features)
        with reporting():
            described = resolve_compile_target(options, profile_target_of(options))
            quantized = quantize.fit(model, shapes, described)
            written = quantized.save(output)
            with stage("measuring against fp32"):
                quality = quantize.quality(model, shapes, quantized)
        print_quantization(console, model, quantized, None, quality)
        console.print(f"wrote {written}")
