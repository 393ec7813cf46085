"""Mixed precision: measure each layer's sensitivity, then choose the cheapest precision per layer that
keeps the model within a label-free budget, and verify that it does.

Rules:
- *Sensitivity* of a layer at a precision is the SQNR (dB) of the model's
  outputs against fp32 when that layer alone is quantized, on the sensitivity
  samples (a capped subset of the calibration data), evaluated incrementally
  (hai_compiler/quantize/incremental.py). It only orders the choices.
- *Cost* is the bytes of the quantized graph's constants, as the report counts
  them (metrics.graph_weight_bytes): each layer's bytes at a precision are
  measured on the graph with that layer alone quantized; layers add up, and
  the rest (biases, other constants) is a fixed part.
- *Noise model*: layers add independent noise, so the predicted output SQNR is
  -10·log10(Σ 10^(-sensitivity/10)) over the layers' chosen precisions.
- *Greedy path*: every layer starts at its cheapest allowed precision (the first
  and last layers never below `keep_ends`, INT8 by default; INT4 only where it
  fits, passes/quantize.py `effective_precision`; overrides by name fixed).
  Upgrades (int4 → int8 → fp16) are then taken one at a time, largest predicted
  noise reduction per extra byte first, up to every layer at its top rung.
- *Auto* (`--precision auto`): the ladder is bf16 -> fp32 (AUTO_LADDER) and the
  budget `max_relative_error` (`--tolerance`): every output's relative error
  against fp32, ‖y − y₃₂‖ / ‖y₃₂‖, at most that, i.e. the worst output's SQNR
  (`per_output`) at least -20·log10(tolerance) dB; the same greedy path and
  bisection choose which layers fall back to fp32, then `relax` takes back to
  bf16, one at a time, least sensitive first, each fp32 layer the measured
  budget does not need (the path upgrades by noise per weight byte, so it may
  have raised a layer the tolerance did not need).
- *Choice*: `min_sqnr` and `max_disagreement` (top-1 disagreement with fp32
  along the first output's last axis) are *measured*, on the verification
  samples (all the calibration samples the quantizer uses): the choice is the
  shortest prefix of the greedy path whose measured closeness meets the
  budget, found by bisection (the first probe where the noise model predicts
  the budget holds). `target_size` is met exactly: the best upgrades that still
  fit, until none does. The chosen precisions always meet the budget on the
  samples they were measured on (`reached`); a budget not even the most precise
  choice (or, for a size, the smallest) meets is a `QuantizationBudgetError`
  that names the budget and what that choice reaches.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np

from hai_compiler.quantize.incremental import IncrementalEvaluator, closeness
from hai_compiler.quantize.metrics import graph_weight_bytes
from hai_compiler.quantize.quantize_pass import QuantizeRunner
from ir import Graph, HaiError, Node
from ir.clone import clone_graph
from ir.fusion import anchor_label
from passes.quantize import (
    PRECISION_KEY,
    PRECISIONS,
    effective_precision,
    layer_weight,
    layers,
)

LADDER = ("int4", "int8", "fp16")
"""Precisions mixed precision chooses among, cheapest first (`ladder_for` adapts it to a target)."""
AUTO_LADDER = ("bf16", "fp32")
"""What `--precision auto` chooses among where the target's kernels have native bf16 (quantizer.py)."""


def ladder_for(target: object) -> tuple[str, ...]:
    """LADDER for a TargetDescription: its top rung is FP32 where the target has no f16 support."""
    supported = getattr(target, "supported_precisions", ("f16",))
    return LADDER if "f16" in supported else ("int4", "int8", "fp32")


DEFAULT_MIN_SQNR = 30.0
"""The budget when none is given."""


class QuantizationBudgetError(HaiError):
    """No choice of precisions meets the accuracy budget or the size target."""


@dataclasses.dataclass(frozen=True)
class Budget:
    """What mixed precision must keep: exactly one of the four, or none (then `min_sqnr` 30 dB);
    `max_relative_error` is `--precision auto`'s (every output's relative error, module doc)."""

    min_sqnr: float | None = None
    max_disagreement: float | None = None
    target_size: int | None = None
    max_relative_error: float | None = None

    def __post_init__(self) -> None:
        budgets = (self.min_sqnr, self.max_disagreement, self.target_size, self.max_relative_error)
        if sum(v is not None for v in budgets) > 1:
            raise QuantizationBudgetError("give one budget: --min-sqnr, --max-disagreement or --target-size")
        if self.max_relative_error is not None and not 0 < self.max_relative_error < 1:
            raise QuantizationBudgetError(f"--tolerance must be in (0, 1), got {self.max_relative_error}")
        if self.max_disagreement is not None and not 0 <= self.max_disagreement < 1:
            raise QuantizationBudgetError(
                f"--max-disagreement must be in [0, 1), got {self.max_disagreement}"
            )
        if self.target_size is not None and self.target_size <= 0:
            raise QuantizationBudgetError(
                f"--target-size must be a positive byte count, got {self.target_size}"
            )

    def __str__(self) -> str:
        if self.max_relative_error is not None:
            return f"--tolerance {self.max_relative_error:g} (relative error of each output)"
        if self.max_disagreement is not None:
            return f"--max-disagreement {self.max_disagreement:g}"
        if self.target_size is not None:
            return f"--target-size {self.target_size:,} bytes"
        return f"--min-sqnr {self.sqnr:g} dB"

    @property
    def sqnr(self) -> float:
        """The SQNR floor in dB (the default one when no budget is given, none beside another budget)."""
        if self.min_sqnr is not None:
            return self.min_sqnr
        if self.max_relative_error is not None:
            return -20.0 * math.log10(self.max_relative_error)
        return DEFAULT_MIN_SQNR if self.max_disagreement is None and self.target_size is None else -math.inf

    def holds(self, sqnr: float, disagreement: float, size: int) -> bool:
        """Whether a model of this closeness to fp32 and this many weight bytes keeps the budget."""
        if self.target_size is not None:
            return size <= self.target_size
        if self.max_disagreement is not None:
            return disagreement <= self.max_disagreement
        return sqnr >= self.sqnr


@dataclasses.dataclass
class LayerChoice:
    """One layer: name, op, allowed and chosen precision, sensitivity (dB) and bytes by precision."""

    name: str
    op: str
    allowed: tuple[str, ...]
    precision: str
    sensitivity: dict[str, float]
    bytes: dict[str, int]


def layer_name(node: Node) -> str:
    return anchor_label(node)


def configured(
    graph: Graph, precisions: Mapping[str, str], runner: QuantizeRunner, final: bool = False
) -> Graph:
    """A copy of the calibrated `graph` with each named layer at its precision (others fp32); `final`:
    the result the user gets (quantize_pass.py)."""
    copy = clone_graph(graph)
    for node in layers(copy):
        node.annotations[PRECISION_KEY] = precisions.get(layer_name(node), "fp32")
    return runner.run(copy, "fp32", final=final)


class MixedPrecision:
    """Sensitivities of every layer of a calibrated graph, and choices of precision under a budget.

    Sensitivities are measured on `samples` (or `evaluator`), budgets verified on `verifier` (by
    default the same samples)."""

    def __init__(
        self,
        graph: Graph,
        samples: Sequence[Mapping[str, np.ndarray]],
        *,
        overrides: Mapping[str, str] | None = None,
        keep_ends: str = "int8",
        runner: QuantizeRunner | None = None,
        evaluator: IncrementalEvaluator | None = None,
        verifier: IncrementalEvaluator | None = None,
        ladder: tuple[str, ...] = LADDER,
        per_output: bool = False,
    ) -> None:
        self.graph = graph
        self.per_output = per_output  # SQNR of the worst output, not of all outputs together
        self.runner = runner or QuantizeRunner()
        self.ladder = ladder
        self.evaluator = evaluator or IncrementalEvaluator(graph, samples)
        self.verifier = verifier or self.evaluator
        self.reached: tuple[float, float] | None = None  # (SQNR dB, disagreement) of the last choice
        nodes = layers(graph)
        self._check_overrides(nodes, dict(overrides or {}))
        ends = {layer_name(nodes[0]), layer_name(nodes[-1])} if nodes else set()
        self._fp32_bytes = graph_weight_bytes(configured(graph, {}, self.runner))
        self.layers = [
            self._layer(node, overrides or {}, keep_ends if layer_name(node) in ends else None)
            for node in nodes
        ]
        self.fixed_bytes = self._fp32_bytes - sum(layer.bytes["fp32"] for layer in self.layers)

    # -- measuring -----------------------------------------------------------------------------------

    def _layer(self, node: Node, overrides: Mapping[str, str], floor: str | None) -> LayerChoice:
        name = layer_name(node)
        if name in overrides:
            allowed: tuple[str, ...] = (overrides[name],)
        else:
            ladder = self.ladder[self.ladder.index(floor) :] if floor in self.ladder else self.ladder
            allowed = tuple(p for p in ladder if effective_precision(self.graph, node, p) == p)
        weight = layer_weight(node)
        assert weight is not None
        sizes, sensitivity = {"fp32": weight.type.nbytes}, {}
        for precision in allowed:
            if precision != "fp32":
                alone = configured(self.graph, {name: precision}, self.runner)
                sensitivity[precision] = closeness(self.evaluator, alone, self.per_output)[0]
                sizes[precision] = weight.type.nbytes + graph_weight_bytes(alone) - self._fp32_bytes
        return LayerChoice(name, node.op, allowed, allowed[0], sensitivity, sizes)

    def score(self, precisions: Mapping[str, str]) -> tuple[float, float]:
        """(output SQNR dB, top-1 disagreement) against fp32 of the model with `precisions`, on the
        verification samples."""
        return closeness(self.verifier, configured(self.graph, precisions, self.runner), self.per_output)

    def _check_overrides(self, nodes: Sequence[Node], overrides: Mapping[str, str]) -> None:
        names = {layer_name(n) for n in nodes}
        unknown = sorted(set(overrides) - names)
        if unknown:
            shown = ", ".join(sorted(names)[:8])
            raise QuantizationBudgetError(
                f"--layer-precision names no layer: {unknown}; layers are e.g. {shown}"
            )
        bad = {k: v for k, v in overrides.items() if v not in PRECISIONS}
        if bad:
            raise QuantizationBudgetError(f"--layer-precision {bad}: precisions are {', '.join(PRECISIONS)}")

    # -- choosing ------------------------------------------------------------------------------------

    def precisions(self) -> dict[str, str]:
        return {layer.name: layer.precision for layer in self.layers}

    def size(self) -> int:
        """Bytes of the quantized graph's constants with the current precisions (module doc: cost)."""
        return self.fixed_bytes + sum(layer.bytes[layer.precision] for layer in self.layers)

    def predicted_sqnr(self) -> float:
        noise = sum(10 ** (-layer.sensitivity.get(layer.precision, math.inf) / 10) for layer in self.layers)
        return math.inf if noise == 0 else -10 * math.log10(noise)

    def _next_upgrade(self, room: float = math.inf, least_gain: float = -math.inf) -> LayerChoice | None:
        """The upgrade of most predicted noise reduction per extra byte among those within `room` bytes
        (more than `least_gain`; on the greedy path even one predicted to add noise, to reach the top)."""
        best, best_gain = None, least_gain
        for layer in self.layers:
            index = layer.allowed.index(layer.precision)
            if index + 1 >= len(layer.allowed):
                continue
            higher = layer.allowed[index + 1]
            reduction = 10 ** (-layer.sensitivity[layer.precision] / 10) - 10 ** (
                -layer.sensitivity.get(higher, math.inf) / 10
            )
            extra = layer.bytes[higher] - layer.bytes[layer.precision]
            gain = reduction / max(extra, 1)
            if extra <= room and gain > best_gain:
                best, best_gain = layer, gain
        return best

    def _upgrade(self, layer: LayerChoice) -> None:
        layer.precision = layer.allowed[layer.allowed.index(layer.precision) + 1]

    def _reset(self) -> None:
        for layer in self.layers:
            layer.precision = layer.allowed[0]

    def _set(self, precisions: Mapping[str, str]) -> None:
        for layer in self.layers:
            layer.precision = precisions[layer.name]

    def greedy_path(self) -> list[dict[str, str]]:
        """The choices from the cheapest, one greedy upgrade at a time, to the most precise."""
        self._reset()
        path = [self.precisions()]
        while (layer := self._next_upgrade()) is not None:
            self._upgrade(layer)
            path.append(self.precisions())
        return path

    def choose(self, budget: Budget) -> dict[str, str]:
        """Set and return each layer's precision for `budget` (module doc: the rules)."""
        if budget.target_size is not None:
            chosen = self._choose_for_size(budget.target_size)
            self.reached = self.score(chosen)
            return chosen
        path = self.greedy_path()
        measured: dict[int, tuple[float, float]] = {}
        probe = next((k for k, p in enumerate(path) if self._predicted(p) >= budget.sqnr), len(path) // 2)
        low, high = 0, len(path)  # the shortest prefix meeting the budget is in [low, high); high: none yet
        while low < high:
            k = probe if low <= probe < high else (low + high) // 2
            measured[k] = self.score(path[k])
            if budget.holds(*measured[k], 0):
                high = k
            else:
                low = k + 1
        if high == len(path):
            raise QuantizationBudgetError(self._unreachable(budget, *measured[len(path) - 1]))
        self._set(path[high])
        self.reached = measured[high]
        return self.precisions()

    def relax(self, budget: Budget) -> dict[str, str]:
        """After `choose`: each layer above its cheapest rung back down to it, least sensitive first,
        where the budget still holds, measured (module doc: auto)."""
        order = sorted(self.layers, key=lambda layer: -layer.sensitivity.get(layer.allowed[0], math.inf))
        for layer in order:
            if layer.precision == layer.allowed[0]:
                continue
            chosen, layer.precision = layer.precision, layer.allowed[0]
            measured = self.score(self.precisions())
            if budget.holds(*measured, 0):
                self.reached = measured
            else:
                layer.precision = chosen
        return self.precisions()

    def _predicted(self, precisions: Mapping[str, str]) -> float:
        self._set(precisions)
        return self.predicted_sqnr()

    def _choose_for_size(self, target_size: int) -> dict[str, str]:
        self._reset()
        if self.size() > target_size:
            raise QuantizationBudgetError(
                f"--target-size {target_size:,} bytes is unreachable: the smallest choice takes "
                f"{self.size():,} bytes of weights; allow more or let the first/last layers go below int8"
            )
        while (layer := self._next_upgrade(target_size - self.size(), least_gain=0.0)) is not None:
            self._upgrade(layer)
        return self.precisions()

    def _unreachable(self, budget: Budget, sqnr: float, disagreement: float) -> str:
        samples = len(self.verifier.samples)
        return (
            f"{budget} is unreachable with the allowed precisions: the most precise choice gives "
            f"{sqnr:.2f} dB SQNR and {disagreement:.4f} top-1 disagreement against fp32 on the {samples} "
            f"calibration samples it is verified on; relax the budget or keep sensitive layers at fp32 "
            f"(--layer-precision NAME=fp32)"
        )
