"""Choosing the activation ranges of a model: observers, refinement, and the whole model as the judge.

Rule: each candidate is a set of ranges for every activation — one per observer
asked for (`auto`: minmax and percentile), each also refined layer by layer
(range_refinement.py) when refinement is on. With one candidate it is taken as
is. With several, each is scored by the output SQNR against fp32 of the model
with every layer INT8 on the selection samples (incremental evaluation), and
the best wins; ties keep the earlier candidate. Measured why: percentile beats
minmax on the orientation model (21.2 vs 17.1 dB) and loses on PP-OCR rec
(9.5 vs 12.8 dB); layer-wise refinement helps the first and hurts the second.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import numpy as np

from hai_compiler.quantize.incremental import IncrementalEvaluator, closeness
from hai_compiler.quantize.quantize_pass import QuantizeRunner
from hai_compiler.quantize.range_refinement import Range, refine_ranges
from hai_compiler.quantize.statistics import CalibrationStats
from ir import Graph
from ir.clone import clone_graph
from ir.quantization import record_range

AUTO_OBSERVERS = ("minmax", "percentile")


@dataclasses.dataclass
class RangeChoice:
    """One candidate: its label, the calibration it came from, its ranges and its all-INT8 SQNR (dB)."""

    label: str
    stats: CalibrationStats
    ranges: dict[str, Range]
    sqnr_db: float | None = None


def with_ranges(graph: Graph, ranges: Mapping[str, Range]) -> Graph:
    """A copy of `graph` with `ranges` recorded in its metadata."""
    copy = clone_graph(graph)
    for name, (lo, hi) in ranges.items():
        record_range(copy.metadata, name, lo, hi)
    return copy


def int8_sqnr(
    graph: Graph, ranges: Mapping[str, Range], evaluator: IncrementalEvaluator, runner: QuantizeRunner
) -> float:
    """Output SQNR against fp32 of `graph` with every layer INT8 over `ranges`."""
    quantized = runner.run(with_ranges(graph, ranges), "int8")
    return closeness(evaluator, quantized)[0]


def select_ranges(
    graph: Graph,
    calibrations: Mapping[str, CalibrationStats],
    evaluator: IncrementalEvaluator,
    refine: bool,
    runner: QuantizeRunner,
) -> RangeChoice:
    """The best candidate (module doc) among the calibrations, refined too when `refine`, judged on
    the samples of `evaluator` (its recorded fp32 values also serve the refinement)."""
    choices = []
    for observer, stats in calibrations.items():
        choices.append(RangeChoice(observer, stats, dict(stats.ranges)))
        if refine and evaluator.cached:
            refined = refine_ranges(graph, stats.ranges, evaluator.cached)
            choices.append(RangeChoice(f"{observer}+refined", stats, refined))
    if len(choices) == 1 or not evaluator.cached:
        return choices[0]
    for choice in choices:
        choice.sqnr_db = int8_sqnr(graph, choice.ranges, evaluator, runner)
    return max(choices, key=lambda c: c.sqnr_db if c.sqnr_db is not None else -np.inf)
