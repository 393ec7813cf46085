"""Running calibration: interpret the model on each sample and show every float value to its observer.

Rule: calibration runs the reference interpreter on the graph the quantize pass
will see — the model after the `default` pipeline (`prepare_graph`) — and
observes it through the interpreter's one hook, `run_node`, plus the graph
inputs of each feed; constants (weights) are not observed, the quantize pass
reads them directly. The samples are counted as a progress stage
(hai_compiler/progress.py) unless `progress=False`. Same data, observer and seed give the same statistics.
A non-finite calibration value is an error before anything runs (sample_checks.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from pathlib import Path
from typing import Any

import numpy as np

from hai_compiler.progress import stage
from hai_compiler.quantize.calibration_data import CalibrationData, CalibrationSource, load_calibration_data
from hai_compiler.quantize.observers import Observer, check_options, make_observer
from hai_compiler.quantize.sample_checks import check_values
from hai_compiler.quantize.statistics import CalibrationStats, observed_values
from ir import Graph, Interpreter, Node

CALIBRATION_PIPELINE = "default"
"""The passes that run before quantization, so calibration sees the quantize pass's value names."""


class ObservingInterpreter(Interpreter):
    """The reference interpreter, showing each observed value's array to its observer."""

    def __init__(self, graph: Graph, observers: Mapping[str, Observer]) -> None:
        super().__init__(graph)
        self.observers = observers

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        for name, array in inputs.items():
            if name in self.observers:
                self.observers[name].update(array)
        return super().run(inputs)

    def run_node(self, node: Node, args: list[np.ndarray | None]) -> list[np.ndarray]:
        results = super().run_node(node, args)
        for value, array in zip(node.results, results):
            observer = self.observers.get(value.name)
            if observer is not None:
                observer.update(array)
        return results


def prepare_graph(
    model: str | Path | Graph,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    pipeline: str = CALIBRATION_PIPELINE,
) -> Graph:
    """The graph calibration and quantization work on: the model loaded and run through `pipeline`.

    A `Graph` is taken as loaded and may be changed in place by the pipeline's passes.
    """
    from hai_compiler.driver import load_model_any, run_pipeline

    graph = model if isinstance(model, Graph) else load_model_any(model, input_shapes)
    return run_pipeline(graph, pipeline)


def sample_progress(observer: str, total: int, enabled: bool) -> AbstractContextManager[Any]:
    """The progress stage counting `total` calibration samples (hai_compiler/progress.py), unless disabled."""
    return stage(f"calibrating with {observer}", total) if enabled else nullcontext(lambda item="": None)


def calibrate(
    graph: Graph,
    data: CalibrationSource,
    observer: str = "minmax",
    *,
    options: Mapping[str, Any] | None = None,
    max_samples: int | None = None,
    seed: int | None = 0,
    progress: bool = True,
) -> CalibrationStats:
    """Statistics of every float activation of `graph` over the calibration data.

    `data` is anything `load_calibration_data` takes; `observer` a registered
    observer name with its `options`; `max_samples`/`seed` cap the set.
    """
    options = dict(options or {})
    check_options(observer, options)
    samples: CalibrationData = load_calibration_data(data, graph, max_samples=max_samples, seed=seed)
    check_values(samples, "calibration")
    observers = {value: make_observer(observer, **options) for value in observed_values(graph)}
    interpreter = ObservingInterpreter(graph, {v.name: o for v, o in observers.items()})
    with sample_progress(observer, len(samples), progress) as advance, np.errstate(all="ignore"):
        for feed in samples:
            interpreter.run(feed)
            advance("")
    return CalibrationStats.from_observers(observer, options, len(samples), observers)
