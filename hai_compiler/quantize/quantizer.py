"""The quantization API: `DynamicQuantizer(target, precision_profile).fit(model, calibration_data)`.

Rule: `fit` loads the model and runs the `default` passes (`prepare_graph`),
calibrates activations when some layer may be INT8 (every profile but `fp16`
and `int4`, which are weight-only, and `bf16`, which rounds activations without
a range), records the ranges in the graph metadata,
picking among observers and refined ranges by the whole model's INT8 error
(range_selection.py), then quantizes, and with calibration data corrects each
quantized layer's bias (bias_correction.py) when that brings the whole model
closer to fp32 on the samples: one precision for every layer (`fp16`, `bf16`, `int8`, `int4`; a layer
that cannot take it keeps the next better one, see passes/quantize.py; at `bf16` a layer writing a
graph output keeps fp32, BF16_OUTPUT_LAYERS), or
`mixed`, where hai_compiler/quantize/mixed.py picks each layer's precision
under the budget, or `auto`: bf16 layer by layer where the target has native
bf16, every output within `tolerance` relative error of fp32 on the calibration
samples, or on AUTO_SAMPLES generated inputs when none are given (the report
says which); the same search, with the ladder bf16 -> fp32 (mixed.py).
Per-layer overrides (`layer_precision={name: precision}`) win everywhere. The
result is a `QuantizedModel` whose `graph` `compile` accepts and whose `save`
writes a `.hir` with its weights file.

Calibration data is loaded once (at most `max_samples`, seeded) and its values
checked first (sample_checks.py: non-finite values are an error, degenerate
data a warning). Its first `sensitivity_samples` (seeded) serve range
selection, sensitivities and bias correction; all of it is what a budget is
verified on and what `QuantizedModel.verified` reports: mixed precision's
choice meets the budget there, and bias correction is kept only where it
brings the model closer to fp32 there and the budget still holds.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from hai_compiler.progress import stage
from hai_compiler.quantize.bias_correction import correct_biases
from hai_compiler.quantize.calibrate import calibrate, prepare_graph
from hai_compiler.quantize.calibration_data import CalibrationData, CalibrationSource, load_calibration_data
from hai_compiler.quantize.caveats import warn
from hai_compiler.quantize.incremental import IncrementalEvaluator, closeness
from hai_compiler.quantize.metrics import graph_weight_bytes, stored_bytes
from hai_compiler.quantize.mixed import (
    AUTO_LADDER,
    Budget,
    LayerChoice,
    MixedPrecision,
    QuantizationBudgetError,
    configured,
    ladder_for,
    layer_name,
)
from hai_compiler.quantize.quantize_pass import QuantizeRunner
from hai_compiler.quantize.range_selection import AUTO_OBSERVERS, RangeChoice, select_ranges
from hai_compiler.quantize.report import QualityReport
from hai_compiler.quantize.sample_checks import check_values
from hai_compiler.quantize.statistics import CalibrationStats
from ir import Graph, HaiError
from ir.clone import clone_graph
from ir.printer import write_hir
from ir.quantization import record_range
from passes.quantize import PRECISION_KEY, effective_precision, layer_weight, layers, stored_weight

PROFILES = ("fp16", "bf16", "int8", "int4", "mixed", "auto")
SENSITIVITY_SAMPLES = 8
"""Calibration samples that range selection, sensitivity and bias correction evaluate on."""
WEIGHT_ONLY = ("fp16", "bf16", "int4", "auto")
"""Profiles that calibrate no activation range (bf16 rounds activations without one)."""
AUTO_SAMPLES = 4
"""Generated inputs `auto` checks its tolerance on when no calibration data is given."""
BF16_OUTPUT_LAYERS = "fp32"
"""At `bf16`, a layer whose result is a graph output (a classifier head) stays fp32 unless
`layer_precision` names it: its rounding reaches the output unattenuated. Measured with bench/zoo.py's
error (max relative, against HAI fp32): resnet18 2.9e-3 -> 1.9e-3, resnet50 3.3e-3 -> 2.6e-3,
mobilenet_v2 4.2e-3 -> 2.4e-3 (OpenVINO's bf16 default against its f32: 2.9e-3, 3.4e-3, 3.7e-3)."""

DEFAULT_TOLERANCE = 1e-2
"""`auto`: the relative error against fp32 each output keeps within."""
DEFAULT_OBSERVER = "auto"  # range_selection.py: the observers of AUTO_OBSERVERS, judged on the whole model


class QuantizerError(HaiError):
    """A quantizer option or input that cannot work (unknown profile, missing calibration data)."""


@dataclasses.dataclass
class QuantizedModel:
    """A quantized graph, each layer's precision, the mixed-precision choices and the calibration stats."""

    graph: Graph
    precisions: dict[str, str]
    layers: list[LayerChoice] = dataclasses.field(default_factory=list)  # sensitivities: mixed only
    stats: CalibrationStats | None = None
    ranges: RangeChoice | None = None  # which activation ranges were chosen, and why
    verified: QualityReport | None = None  # closeness to fp32 on the calibration samples (module doc)
    budget: Budget | None = None  # what mixed precision kept: it holds on `verified`'s samples

    def save(self, path: str | Path) -> Path:
        """Write the graph as `.hir` with its weights file beside it; returns the `.hir` path."""
        return write_hir(self.graph, path, save_weights=True)


@dataclasses.dataclass
class DynamicQuantizer:
    """Per-layer precision for a target device; `fit` quantizes a model (module doc: the rules).

    `target` is a target name (`x86`, as `--target` of the CLI) or a `hai doctor` profile path (or a
    TargetDescription); the budget is one of `min_sqnr` (dB), `max_disagreement` (top-1 fraction),
    `target_size` (bytes). `target_device=` is the old spelling of `target=`: it still works, with a
    DeprecationWarning.
    """

    target: Any = "x86"  # a target name, a `hai doctor` profile path, or a TargetDescription
    precision_profile: str = "mixed"
    observer: str = DEFAULT_OBSERVER
    observer_options: Mapping[str, Any] | None = None
    min_sqnr: float | None = None
    max_disagreement: float | None = None
    target_size: int | None = None
    tolerance: float = DEFAULT_TOLERANCE  # `auto` only: each output's relative error against fp32
    layer_precision: Mapping[str, str] | None = None
    max_samples: int | None = 256
    sensitivity_samples: int = SENSITIVITY_SAMPLES
    refine: bool = True  # also try layer-wise clipping-range search (range_refinement.py)
    bias_correction: bool = True  # cancel the mean shift of rounded weights (bias_correction.py)
    group_size: int = 32
    instruments: Sequence[Any] = ()  # what the `quantize` pass's final run gets (quantize_pass.py)
    verify_each: bool = False
    seed: int = 0
    progress: bool = True
    target_device: dataclasses.InitVar[Any] = None  # deprecated: `target`

    def __post_init__(self, target_device: Any) -> None:
        if target_device is not None:
            self.target = renamed_target(self.target, target_device)
        if self.precision_profile not in PROFILES:
            raise QuantizerError(
                f"unknown precision {self.precision_profile!r}: choose one of {', '.join(PROFILES)}"
            )
        self.budget = Budget(self.min_sqnr, self.max_disagreement, self.target_size)
        self.target_description = resolve_device(self.target) if isinstance(self.target, str) else self.target
        described = self.target_description
        from targets.registry import get_target

        for profile, precision in (("fp16", "f16"), ("bf16", "bf16")):
            if self.precision_profile == profile and precision not in described.supported_precisions:
                needs = get_target(described.name).precision_needs.get(precision, "a target that has it")
                raise QuantizerError(
                    f"target {described.name} (cpu {described.cpu}) has no {precision} support "
                    f"({precision} needs {needs}); choose another --precision"
                )
        facts = get_target(described.name).facts(described)
        self.runner = QuantizeRunner(facts, self.group_size, self.instruments, self.verify_each)

    def fit(
        self,
        model: str | Path | Graph,
        calibration_data: CalibrationSource | None = None,
        *,
        input_shapes: Mapping[str, Sequence[int]] | None = None,
        stats: CalibrationStats | str | Path | None = None,
    ) -> QuantizedModel:
        """Quantize `model` (.onnx/.hir path or Graph), calibrating on `calibration_data` or with `stats`."""
        with stage("preparing the model"):
            graph = prepare_graph(model, input_shapes)
            overrides = dict(self.layer_precision or {})
            data = self._data(graph, calibration_data)
            samples = list(data.subsample(self.sensitivity_samples, self.seed)) if data is not None else []
            evaluator = IncrementalEvaluator(graph, samples)  # the fp32 run every later step compares with
            verifier = evaluator
            if data is not None and len(data) > len(samples):
                verifier = IncrementalEvaluator(graph, list(data), incremental=False)
        if self.precision_profile == "auto":
            return self._auto(graph, overrides, samples, evaluator, verifier)
        choice = None
        if self.precision_profile not in WEIGHT_ONLY or "int8" in overrides.values():
            choice = self._ranges(graph, data, stats, evaluator)
            for name, (lo, hi) in choice.ranges.items():
                record_range(graph.metadata, name, lo, hi)
        chooser, budget = None, None
        if self.precision_profile == "mixed":
            if not samples:
                raise QuantizerError("mixed precision measures sensitivities on calibration data: pass some")
            chooser, budget = MixedPrecision(
                graph, samples, overrides=overrides, runner=self.runner, evaluator=evaluator,
                verifier=verifier, ladder=ladder_for(self.target_description),
            ), self.budget  # fmt: skip
            with stage("choosing each layer's precision"):
                precisions = chooser.choose(budget)
                quantized = configured(graph, precisions, self.runner, final=True)
        else:
            with stage(f"quantizing to {self.precision_profile}"):
                quantized, precisions = self._uniform(clone_graph(graph), overrides)
        verified = None
        if samples:
            known = chooser.reached if chooser is not None else None  # its choice, measured on `verifier`
            with stage("correcting biases and measuring against fp32"):
                quantized, verified = self._verified(graph, quantized, evaluator, verifier, budget, known)
        chosen = chooser.layers if chooser is not None else uniform_layers(graph, quantized, precisions)
        stats_used = choice.stats if choice else None
        return QuantizedModel(quantized, precisions, chosen, stats_used, choice, verified, budget)

    def _auto(
        self, graph: Graph, overrides: dict[str, str], samples: list[Any],
        evaluator: IncrementalEvaluator, verifier: IncrementalEvaluator,
    ) -> QuantizedModel:  # fmt: skip
        """bf16 or fp32 per layer, every output within `tolerance` of fp32 (module doc)."""
        source = "calibration samples"
        if not samples:
            samples, source = generated_samples(graph, AUTO_SAMPLES, self.seed), "generated inputs"
            evaluator = verifier = IncrementalEvaluator(graph, samples)
        target = self.target_description
        ladder = AUTO_LADDER if native_bf16(target) else ("fp32",)
        if "bf16" not in ladder:
            warn(f"target {target.name} (cpu {target.cpu}) has no native bf16: auto keeps every layer fp32")
        budget = Budget(max_relative_error=self.tolerance)
        chooser = MixedPrecision(
            graph, samples, overrides=overrides, runner=self.runner, evaluator=evaluator, verifier=verifier,
            ladder=ladder, per_output=True,
        )  # fmt: skip
        with stage("choosing bf16 or fp32 for each layer"):
            chooser.choose(budget)
            precisions = chooser.relax(budget)
            quantized = configured(graph, precisions, self.runner, final=True)
        assert chooser.reached is not None
        sqnr, disagreement = chooser.reached
        verified = QualityReport(len(verifier.samples), sqnr, 1.0 - disagreement, source=source)
        return QuantizedModel(quantized, precisions, chooser.layers, verified=verified, budget=budget)

    def _verified(
        self, graph: Graph, quantized: Graph, evaluator: IncrementalEvaluator, verifier: IncrementalEvaluator,
        budget: Budget | None, known: tuple[float, float] | None = None,
    ) -> tuple[Graph, QualityReport]:  # fmt: skip
        """`quantized`, bias-corrected where that brings it closer to fp32 on the verification samples
        and keeps the budget (it helps the digits CNN, +2.9 dB INT8, and hurts PP-OCR rec, -5 dB), and
        its closeness there (`known`: that of `quantized`, when measured already)."""
        best = (quantized, *(known or closeness(verifier, quantized)))
        corrected = clone_graph(quantized)
        if self.bias_correction and correct_biases(graph, corrected, evaluator.cached):
            candidate = (corrected, *closeness(verifier, corrected))
            keeps = budget is None or budget.holds(*candidate[1:], graph_weight_bytes(corrected))
            if candidate[1] > best[1] and keeps:
                best = candidate
        chosen, sqnr, disagreement = best
        if budget is not None and not budget.holds(sqnr, disagreement, graph_weight_bytes(chosen)):
            raise QuantizationBudgetError(
                f"{budget} does not hold on the chosen precisions: SQNR {sqnr:.2f} dB, top-1 disagreement "
                f"{disagreement:.4f}, {graph_weight_bytes(chosen):,} weight bytes; please report this"
            )
        report = QualityReport(len(verifier.samples), sqnr, 1.0 - disagreement, source="calibration samples")
        return chosen, report

    def _data(self, graph: Graph, source: CalibrationSource | None) -> CalibrationData | None:
        """The calibration set (at most `max_samples`, seeded), its values checked (sample_checks.py)."""
        if source is None:
            return None
        data = load_calibration_data(source, graph, max_samples=self.max_samples, seed=self.seed)
        check_values(data, "calibration", min_samples=self.sensitivity_samples)
        return data

    def _ranges(
        self,
        graph: Graph,
        data: CalibrationData | None,
        stats: CalibrationStats | str | Path | None,
        evaluator: IncrementalEvaluator,
    ) -> RangeChoice:
        """The activation ranges: from saved `stats`, or calibrated (range_selection.py picks)."""
        if stats is not None:
            loaded = stats if isinstance(stats, CalibrationStats) else CalibrationStats.load(stats)
            loaded.check_graph(graph)
            calibrations = {loaded.observer: loaded}
        elif data is None:
            raise QuantizerError(
                f"precision {self.precision_profile} quantizes activations: give calibration data "
                "(an .npz named after the model inputs, a directory of them, or feed dicts) or saved stats"
            )
        else:
            observers = AUTO_OBSERVERS if self.observer == "auto" else (self.observer,)
            calibrations = {
                name: calibrate(
                    graph,
                    data,
                    name,
                    options=self.observer_options if name == self.observer else None,
                    max_samples=self.max_samples,
                    seed=self.seed,
                    progress=self.progress,
                )  # fmt: skip
                for name in observers
            }
        with stage("choosing activation ranges"):
            return select_ranges(graph, calibrations, evaluator, self.refine, self.runner)

    def _uniform(self, graph: Graph, overrides: dict[str, str]) -> tuple[Graph, dict[str, str]]:
        """`graph` with every layer at the profile's precision (overrides win), and the precisions."""
        for node in layers(graph):
            if layer_name(node) in overrides:
                node.annotations[PRECISION_KEY] = overrides.pop(layer_name(node))
            elif self.precision_profile == "bf16" and any(r.is_graph_output for r in node.results):
                node.annotations[PRECISION_KEY] = BF16_OUTPUT_LAYERS
        if overrides:
            raise QuantizerError(f"--layer-precision names no layer: {sorted(overrides)}")
        f16 = self.target_description.supports("f16")
        chosen = {
            layer_name(n): effective_precision(
                graph, n, str(n.annotations.get(PRECISION_KEY, self.precision_profile)), f16
            )
            for n in layers(graph)
        }
        return self.runner.run(graph, self.precision_profile, final=True), chosen


def native_bf16(target: Any) -> bool:
    """Whether the target's bf16 kernels run on bf16 instructions (x86 vdpbf16ps or AMX tiles), not on
    the emulated float32 step (its schedule table, targets/schedules.py)."""
    from targets.schedules import schedules_of

    table = schedules_of(target)
    return bool(table.bf16_dot(target)) or table.bf16_tiles(target) is not None


def generated_samples(graph: Graph, count: int, seed: int) -> list[dict[str, Any]]:
    """`count` seeded random feeds for the graph's inputs (hai_compiler/input_spec.py `random_input`)."""
    import numpy as np

    from hai_compiler.input_spec import random_input

    rng = np.random.default_rng(seed)
    return [{v.name: random_input(v.type, rng) for v in graph.inputs} for _ in range(count)]


def uniform_layers(graph: Graph, quantized: Graph, precisions: Mapping[str, str]) -> list[LayerChoice]:
    """Each layer of the float `graph` at its uniform precision: its op and its weight's bytes as stored in
    `quantized` and at fp32 (no sensitivity: a uniform precision measures none)."""
    chosen = []
    for node in layers(graph):
        name, weight = layer_name(node), layer_weight(node)
        assert weight is not None
        precision = precisions[name]
        sizes = {"fp32": weight.type.nbytes}
        stored = stored_weight(quantized, weight.name)
        if stored is not None:
            sizes[precision] = stored_bytes(stored.type)
        chosen.append(LayerChoice(name, node.op, (precision,), precision, {}, sizes))
    return chosen


def renamed_target(target: Any, target_device: Any) -> Any:
    """The target given by the old keyword `target_device` (a DeprecationWarning says to write `target`)."""
    warnings.warn(
        "DynamicQuantizer(target_device=...) is now DynamicQuantizer(target=...), as `--target` of the CLI",
        DeprecationWarning,
        stacklevel=4,
    )
    if target != "x86" and target != target_device:
        raise QuantizerError(
            f"give the target once: target={target!r} or the old target_device={target_device!r}"
        )
    return target_device


def resolve_device(device: str) -> Any:
    """The TargetDescription of a target name or of a `hai doctor` profile file."""
    from hai_compiler.doctor import profile_compile_target, read_profile
    from targets.registry import resolve_target

    if Path(device).suffix == ".json":
        recommended = profile_compile_target(read_profile(device))
        return resolve_target(str(recommended.get("target", "x86")), profile=dict(recommended))
    return resolve_target(device)
