"""Mixed precision: measure each layer's sensitivity, then choose the cheapest precision per layer that
keeps the model within a label-free budget.

Rules:
- *Sensitivity* of a layer at a precision is the SQNR (dB) of the model's
  outputs against fp32 when that layer alone is quantized, on the sensitivity
  samples (a capped subset of the calibration data), evaluated incrementally
  (hai_compiler/quantize/incremental.py).
- *Cost* is the bytes a layer's weights take at a precision: elements times
  4 / 2 / 1 / 0.5 bytes for fp32 / fp16 / int8 / int4, plus 4 bytes a scale.
- *Noise model*: layers add independent noise, so the predicted output SQNR is
  -10·log10(Σ 10^(-sensitivity/10)) over the layers' chosen precisions.
- *Choice*: every layer starts at its cheapest allowed precision (the first
  and last layers never below `keep_ends`, INT8 by default; INT4 only where it
  fits, passes/quantize.py `effective_precision`; overrides by name fixed).
  Upgrades (int4 → int8 → fp16) are then taken greedily, largest predicted
  noise reduction per extra byte first, until the budget holds:
  `min_sqnr` (predicted, then verified on the samples: a miss raises the
  predicted target by the shortfall and repeats), `max_disagreement` (top-1
  disagreement with fp32 along the last output axis, verified the same way), or
  `target_size` (the best upgrade that still fits, until none does). A budget no
  choice meets is a `QuantizationBudgetError` that says what the best choice
  reaches.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence

import numpy as np

from hai_compiler.quantize.incremental import IncrementalEvaluator, closeness
from ir import Graph, HaiError, Node
from ir.clone import clone_graph
from passes.fusion import anchor_label
from passes.manager import PassContext
from passes.quantize import (
    PRECISION_KEY,
    PRECISIONS,
    Quantize,
    effective_precision,
    layer_weight,
    layers,
    reduction_axis,
)

LADDER = ("int4", "int8", "fp16")
"""Precisions mixed precision chooses among, cheapest first (`ladder_for` adapts it to a target)."""


def ladder_for(target: object) -> tuple[str, ...]:
    """LADDER for a TargetDescription: its top rung is FP32 where the target has no f16 support."""
    supported = getattr(target, "supported_precisions", ("f16",))
    return LADDER if "f16" in supported else ("int4", "int8", "fp32")


BYTES_PER_ELEMENT = {"fp32": 4.0, "fp16": 2.0, "int8": 1.0, "int4": 0.5}
SCALE_BYTES = 4
VERIFY_ROUNDS = 6


class QuantizationBudgetError(HaiError):
    """No choice of precisions meets the accuracy budget or the size target."""


@dataclasses.dataclass(frozen=True)
class Budget:
    """What mixed precision must keep: exactly one of the three, or none (then `min_sqnr` 30 dB)."""

    min_sqnr: float | None = None
    max_disagreement: float | None = None
    target_size: int | None = None

    def __post_init__(self) -> None:
        given = [v for v in (self.min_sqnr, self.max_disagreement, self.target_size) if v is not None]
        if len(given) > 1:
            raise QuantizationBudgetError("give one budget: --min-sqnr, --max-disagreement or --target-size")
        if self.max_disagreement is not None and not 0 <= self.max_disagreement < 1:
            raise QuantizationBudgetError(
                f"--max-disagreement must be in [0, 1), got {self.max_disagreement}"
            )
        if self.target_size is not None and self.target_size <= 0:
            raise QuantizationBudgetError(
                f"--target-size must be a positive byte count, got {self.target_size}"
            )


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


def weight_bytes(node: Node, precision: str, group_size: int) -> int:
    """Bytes the layer's weight takes at `precision`, scales included."""
    weight = layer_weight(node)
    assert weight is not None
    elements = weight.type.size
    stored = math.ceil(elements * BYTES_PER_ELEMENT[precision])
    axis = reduction_axis(node)
    if precision == "int8":  # one scale per output channel: Conv axis 0, a 2-D weight's other axis
        return stored + SCALE_BYTES * weight.type.shape[0 if node.op == "Conv" else 1 - axis]
    if precision == "int4":
        axis_length = weight.type.shape[axis]
        groups = elements // axis_length * math.ceil(axis_length / min(group_size, axis_length))
        return stored + SCALE_BYTES * groups
    return stored


def configured(graph: Graph, precisions: Mapping[str, str], group_size: int) -> Graph:
    """A copy of the calibrated `graph` with each named layer at its precision (others fp32)."""
    copy = clone_graph(graph)
    for node in layers(copy):
        node.annotations[PRECISION_KEY] = precisions.get(layer_name(node), "fp32")
    return Quantize(precision="fp32", group_size=group_size).run(copy, PassContext())


class MixedPrecision:
    """Sensitivities of every layer of a calibrated graph, and choices of precision under a budget."""

    def __init__(
        self,
        graph: Graph,
        samples: Sequence[Mapping[str, np.ndarray]],
        *,
        overrides: Mapping[str, str] | None = None,
        keep_ends: str = "int8",
        group_size: int = 32,
        evaluator: IncrementalEvaluator | None = None,
        ladder: tuple[str, ...] = LADDER,
    ) -> None:
        self.graph = graph
        self.group_size = group_size
        self.ladder = ladder
        self.evaluator = evaluator or IncrementalEvaluator(graph, samples)
        nodes = layers(graph)
        self._check_overrides(nodes, dict(overrides or {}))
        ends = {layer_name(nodes[0]), layer_name(nodes[-1])} if nodes else set()
        self.layers = [
            self._layer(node, overrides or {}, keep_ends if layer_name(node) in ends else None)
            for node in nodes
        ]

    # -- measuring -----------------------------------------------------------------------------------

    def _layer(self, node: Node, overrides: Mapping[str, str], floor: str | None) -> LayerChoice:
        name = layer_name(node)
        if name in overrides:
            allowed: tuple[str, ...] = (overrides[name],)
        else:
            ladder = self.ladder[self.ladder.index(floor) :] if floor in self.ladder else self.ladder
            allowed = tuple(p for p in ladder if effective_precision(self.graph, node, p) == p)
        sensitivity = {p: self.score({name: p})[0] for p in allowed if p != "fp32"}
        sizes = {p: weight_bytes(node, p, self.group_size) for p in (*LADDER, "fp32")}
        return LayerChoice(name, node.op, allowed, allowed[0], sensitivity, sizes)

    def score(self, precisions: Mapping[str, str]) -> tuple[float, float]:
        """(output SQNR dB, top-1 disagreement) of the model with `precisions` against fp32."""
        return closeness(self.evaluator, configured(self.graph, precisions, self.group_size))

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
        return sum(layer.bytes[layer.precision] for layer in self.layers)

    def predicted_sqnr(self) -> float:
        noise = sum(10 ** (-layer.sensitivity.get(layer.precision, math.inf) / 10) for layer in self.layers)
        return math.inf if noise == 0 else -10 * math.log10(noise)

    def _next_upgrade(self, room: float = math.inf) -> LayerChoice | None:
        """The upgrade of most predicted noise reduction per extra byte among those within `room` bytes."""
        best, best_gain = None, 0.0
        for layer in self.layers:
            index = layer.allowed.index(layer.precision)
            if index + 1 >= len(layer.allowed):
                continue
            higher = layer.allowed[index + 1]
            reduction = 10 ** (-layer.sensitivity[layer.precision] / 10) - 10 ** (
                -layer.sensitivity[higher] / 10
            )
            extra = max(layer.bytes[higher] - layer.bytes[layer.precision], 1)
            if extra <= room and reduction / extra > best_gain:
                best, best_gain = layer, reduction / extra
        return best

    def _upgrade(self, layer: LayerChoice) -> None:
        layer.precision = layer.allowed[layer.allowed.index(layer.precision) + 1]

    def _reset(self) -> None:
        for layer in self.layers:
            layer.precision = layer.allowed[0]

    def _upgrade_until(self, predicted_target: float) -> bool:
        """Upgrade greedily until the predicted SQNR reaches the target; False when no upgrade is left."""
        while self.predicted_sqnr() < predicted_target:
            layer = self._next_upgrade()
            if layer is None:
                return False
            self._upgrade(layer)
        return True

    def choose(self, budget: Budget) -> dict[str, str]:
        """Set and return each layer's precision for `budget` (module doc: the rules)."""
        if budget.target_size is not None:
            return self._choose_for_size(budget.target_size)
        target = budget.min_sqnr if budget.max_disagreement is None else 0.0
        if budget.min_sqnr is None and budget.max_disagreement is None:
            target = 30.0
        predicted_target = target
        for _ in range(VERIFY_ROUNDS):
            self._reset()
            exhausted = not self._upgrade_until(predicted_target)
            sqnr, disagreement = self.score(self.precisions())
            shortfall = self._shortfall(budget, target, sqnr, disagreement)
            if shortfall <= 0:
                return self.precisions()
            if exhausted:
                break
            predicted_target = max(predicted_target, self.predicted_sqnr()) + shortfall
        raise QuantizationBudgetError(self._unreachable(budget, sqnr, disagreement))

    @staticmethod
    def _shortfall(budget: Budget, target: float, sqnr: float, disagreement: float) -> float:
        """dB still missing (≤ 0: the budget holds)."""
        if budget.max_disagreement is not None:
            return 0.0 if disagreement <= budget.max_disagreement else 1.5
        return target - sqnr + (0.25 if sqnr < target else 0.0)

    def _choose_for_size(self, target_size: int) -> dict[str, str]:
        self._reset()
        if self.size() > target_size:
            raise QuantizationBudgetError(
                f"--target-size {target_size} bytes is unreachable: the smallest choice takes {self.size()} "
                f"bytes of layer weights; allow more or let the first/last layers go below int8"
            )
        while (layer := self._next_upgrade(room=target_size - self.size())) is not None:
            self._upgrade(layer)
        return self.precisions()

    def _unreachable(self, budget: Budget, sqnr: float, disagreement: float) -> str:
        asked = (
            f"--max-disagreement {budget.max_disagreement}"
            if budget.max_disagreement is not None
            else f"--min-sqnr {budget.min_sqnr if budget.min_sqnr is not None else 30.0} dB"
        )
        return (
            f"{asked} is unreachable with the allowed precisions: the most precise choice gives "
            f"{sqnr:.1f} dB SQNR and {disagreement:.3f} top-1 disagreement on the sensitivity samples; "
            f"relax the budget or override sensitive layers to fp32 (--layer-precision NAME=fp32)"
        )
