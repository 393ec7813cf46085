"""The reference interpreter: runs any graph, at any pipeline stage, with numpy.

One dispatch point (`run_node`) calls the op's registered reference
implementation; a subclass overrides that single hook to observe or change
every value (calibration observers, profilers, debuggers), the torch.fx way.
Values are dropped after their last use, so memory follows the live set.
A control-flow node runs its regions through `execute` on the same
interpreter (so the hook sees their nodes too), each region seeing the values
around it; a value a region captures lives until its owner has run.
"""

from __future__ import annotations

from collections import ChainMap
from collections.abc import Mapping, MutableMapping

import numpy as np

from ir.errors import HaiError, IRError
from ir.graph import Graph, Node, Value
from ir.ops.control import run_control
from ir.ops.registry import get_schema


class InputError(HaiError):
    """Inputs that do not match the graph's inputs (name, shape or dtype)."""


class Interpreter:
    """Executes a graph node by node with the numpy reference semantics."""

    def __init__(self, graph: Graph) -> None:
        self.graph = graph

    def run(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Run the graph; returns outputs by name, in the graph's output order."""
        env: dict[Value, np.ndarray] = dict(self._bind_inputs(inputs))
        outputs = self.execute(self.graph, env)
        return {v.name: array for v, array in zip(self.graph.outputs, outputs)}

    def execute(self, graph: Graph, env: MutableMapping[Value, np.ndarray]) -> list[np.ndarray]:
        """Run `graph`'s nodes with `env` holding its inputs and the values around it; its outputs."""
        reads = {node: _reads(node) for node in graph.nodes}
        remaining: dict[Value, int] = {}
        for values in reads.values():
            for v in values:
                remaining[v] = remaining.get(v, 0) + 1
        keep = set(graph.outputs)
        for node, values in reads.items():
            args = [self._read(env, v) if v is not None else None for v in node.operands]
            if node.regions:
                results = self.evaluate_regions(node, args, env)
            else:
                results = self.evaluate(node, args)
            for value, array in zip(node.results, results):
                env[value] = array
            for v in values:
                remaining[v] -= 1
                if remaining[v] == 0 and v not in keep and v.graph is graph and v in env:
                    del env[v]
        return [self._read(env, v) for v in graph.outputs]

    def evaluate_regions(
        self, node: Node, args: list[np.ndarray | None], env: MutableMapping[Value, np.ndarray]
    ) -> list[np.ndarray]:
        """A control-flow node's results, its regions run by `execute` over `env`."""

        def run_region(region: Graph, inputs: list[np.ndarray]) -> list[np.ndarray]:
            inner: ChainMap[Value, np.ndarray] = ChainMap(dict(zip(region.inputs, inputs)), env)
            return self.execute(region, inner)

        try:
            results = run_control(node.op, args, node.attrs, node.regions, run_region)
        except IRError as exc:
            raise type(exc)(f"{node.label()}: {exc}") from None
        self._check_results(node, results)
        return results

    def evaluate(self, node: Node, args: list[np.ndarray | None]) -> list[np.ndarray]:
        """`run_node`, with a reference's IRError naming the node, and its results checked."""
        try:
            results = self.run_node(node, args)
        except IRError as exc:
            raise type(exc)(f"{node.label()}: {exc}") from None
        self._check_results(node, results)
        return results

    def run_node(self, node: Node, args: list[np.ndarray | None]) -> list[np.ndarray]:
        """Compute one node's results from its operand arrays (the hook to override)."""
        types = [o.type if o is not None else None for o in node.operands]
        return get_schema(node.op).evaluate(args, node.attrs, types)

    def _read(self, env: Mapping[Value, np.ndarray], value: Value) -> np.ndarray:
        if value.is_constant:
            return value.constant_array()
        return env[value]

    def _bind_inputs(self, inputs: Mapping[str, np.ndarray]) -> dict[Value, np.ndarray]:
        expected = {v.name: v for v in self.graph.inputs}
        unknown = sorted(set(inputs) - set(expected))
        missing = sorted(set(expected) - set(inputs))
        if unknown or missing:
            raise InputError(
                f"graph '{self.graph.name}' takes inputs {sorted(expected)}; "
                + (f"missing {missing}" if missing else "")
                + ("; " if missing and unknown else "")
                + (f"unknown {unknown}" if unknown else "")
            )
        bound = {}
        for name, value in expected.items():
            array = np.asarray(inputs[name])
            want = value.type
            if tuple(array.shape) != want.shape:
                raise InputError(f"input '{name}' has shape {list(array.shape)}, expected {list(want.shape)}")
            if array.dtype != want.dtype.numpy:
                raise InputError(
                    f"input '{name}' has dtype {array.dtype}, expected {want.dtype.numpy} ({want.dtype})"
                )
            bound[value] = array
        return bound

    @staticmethod
    def _check_results(node: Node, results: list[np.ndarray]) -> None:
        if len(results) != len(node.results):
            raise IRError(
                f"{node.label()}: reference gave {len(results)} results, expected {len(node.results)}"
            )
        for value, array in zip(node.results, results):
            if tuple(array.shape) != value.type.shape or array.dtype != value.type.dtype.numpy:
                raise IRError(
                    f"{node.label()}: reference result %{value.name} is "
                    f"{array.dtype}{list(array.shape)}, its type says {value.type}"
                )


def _reads(node: Node) -> list[Value]:
    """The values a node reads: its operands, and the values its regions capture."""
    return [v for v in node.operands if v is not None] + node.captures()


def run_graph(graph: Graph, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Convenience: interpret `graph` once."""
    return Interpreter(graph).run(inputs)
