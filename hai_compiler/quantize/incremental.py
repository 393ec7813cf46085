"""Evaluating many rewritten copies of one graph on the same samples, recomputing only what changed.

Rule: the fp32 graph runs once per sample and every value it computes is kept
by name. A rewritten copy (same value names for what it did not touch, e.g. one
layer quantized) is then interpreted node by node, and a node is recomputed
only when it is new (a result name the fp32 run did not produce) or reads a
recomputed value or a constant the fp32 graph did not have; everything else is
taken from the fp32 run. The results are
exactly those of interpreting the copy from scratch, at the cost of the nodes
downstream of the rewrite. With `incremental=False` only the feeds and the fp32
outputs are kept (memory for many samples) and every node is recomputed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ir import Graph, Interpreter, Node


class RecordingInterpreter(Interpreter):
    """The reference interpreter, keeping every node result it computes by name."""

    def __init__(self, graph: Graph) -> None:
        super().__init__(graph)
        self.values: dict[str, np.ndarray] = {}

    def run_node(self, node: Node, args: list[np.ndarray | None]) -> list[np.ndarray]:
        results = super().run_node(node, args)
        self.values.update((value.name, array) for value, array in zip(node.results, results))
        return results


class IncrementalEvaluator:
    """The fp32 values of `graph` on `samples`; `outputs(copy)` interprets a rewritten copy cheaply."""

    def __init__(
        self, graph: Graph, samples: Sequence[Mapping[str, np.ndarray]], incremental: bool = True
    ) -> None:
        self.output_names = [v.name for v in graph.outputs]
        self.constants = {name: value.const for name, value in graph.constants.items()}
        self.samples = list(samples)
        self.cached: list[dict[str, np.ndarray]] = []
        self.reference: list[list[np.ndarray]] = []
        for feed in self.samples:
            recorder = RecordingInterpreter(graph)
            outputs = recorder.run(feed)
            kept = recorder.values if incremental else {}
            self.cached.append({**kept, **{k: np.asarray(v) for k, v in feed.items()}})
            self.reference.append([outputs[name] for name in self.output_names])

    def outputs(self, graph: Graph) -> list[list[np.ndarray]]:
        """Each sample's outputs (in the fp32 graph's output order) of the rewritten copy `graph`."""
        return [self._run(graph, cache) for cache in self.cached]

    def _run(self, graph: Graph, cache: Mapping[str, np.ndarray]) -> list[np.ndarray]:
        interpreter = Interpreter(graph)
        env: dict[str, np.ndarray] = {}
        dirty = {name for name, v in graph.constants.items() if self.constants.get(name, None) is not v.const}
        for node in graph.nodes:
            names = [r.name for r in node.results]
            operands = [o.name if o is not None else None for o in node.operands]
            if all(n in cache for n in names) and not any(o in dirty for o in operands if o is not None):
                continue  # unchanged: its results are the fp32 run's
            args = [self._read(graph, name, env, cache) if name is not None else None for name in operands]
            for name, array in zip(names, interpreter.evaluate(node, args)):
                env[name] = array
                dirty.add(name)
        return [self._read(graph, name, env, cache) for name in self.output_names]  # a constant output too

    @staticmethod
    def _read(
        graph: Graph, name: str, env: Mapping[str, np.ndarray], cache: Mapping[str, np.ndarray]
    ) -> np.ndarray:
        if name in env:
            return env[name]
        value = graph.value(name)
        return value.constant_array() if value.is_constant else cache[name]


def stacked(outputs: list[list[np.ndarray]]) -> list[np.ndarray]:
    """Per output, the samples' arrays stacked on a new leading axis."""
    return [np.stack([sample[i] for sample in outputs]) for i in range(len(outputs[0]))]


def flat(outputs: list[np.ndarray]) -> np.ndarray:
    """All outputs of all samples as one vector (what whole-model SQNR is computed over)."""
    return np.concatenate([o.ravel() for o in outputs])


def closeness(evaluator: IncrementalEvaluator, graph: Graph, per_output: bool = False) -> tuple[float, float]:
    """(output SQNR dB over every output, top-1 disagreement of the first) of `graph` against fp32;
    `per_output`: the SQNR of the worst output instead (every output must hold on its own)."""
    return compare(evaluator.outputs(graph), evaluator.reference, per_output)


def compare(
    outputs: list[list[np.ndarray]], reference: list[list[np.ndarray]], per_output: bool = False
) -> tuple[float, float]:
    """(SQNR dB over every output, or of the worst output when `per_output`, top-1 disagreement of the
    first) of per-sample `outputs` against the per-sample `reference` outputs: the one definition the
    budget and the report use."""
    from hai_compiler.quantize.metrics import sqnr_db, top1_agreement

    got, want = stacked(outputs), stacked(reference)
    if per_output:
        sqnr = min(sqnr_db(g.ravel(), w.ravel()) for g, w in zip(got, want, strict=True))
    else:
        sqnr = sqnr_db(flat(got), flat(want))
    return sqnr, 1.0 - top1_agreement(got[0], want[0])
