"""Helpers of the memory-plan tests: run a planned graph inside one simulated arena.

`run_in_arena` is the independent check of a plan: every node reads its
operands from, and writes its results into, the bytes the plan gave them in a
single byte array (initially garbage); views write nothing, they reinterpret
their operand's bytes. If the plan let a tensor be overwritten while it was
still needed, the outputs differ from the plain interpreter's.
"""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

from ir import Graph, Value
from ir.aliasing import is_view
from ir.ops.registry import get_schema
from passes.memory_check import memory_report


def run_in_arena(graph: Graph, inputs: Mapping[str, np.ndarray], seed: int = 0) -> dict[str, np.ndarray]:
    """The graph's outputs computed with every planned tensor living at its offset in one arena."""
    size = memory_report(graph)["arena_bytes"]
    arena = np.random.default_rng(seed).integers(0, 256, size, dtype=np.uint8)
    outside: dict[Value, np.ndarray] = {}

    def where(value: Value) -> np.ndarray:
        offset = value.type.offset
        assert offset is not None
        raw = arena[offset : offset + value.type.nbytes]
        return raw.view(value.type.dtype.numpy).reshape(value.type.shape)

    def read(value: Value) -> np.ndarray:
        if value.is_constant:
            return value.constant_array()
        return outside[value] if value.type.offset is None else where(value)

    for value in graph.inputs:
        array = np.asarray(inputs[value.name])
        if value.type.offset is None:
            outside[value] = array
        else:
            where(value)[...] = array
    for node in graph.nodes:
        args = [read(v) if v is not None else None for v in node.operands]
        if is_view(node):
            result, source = node.results[0], node.operands[0]
            assert source is not None
            if result.type.offset is None:
                outside[result] = read(source).reshape(result.type.shape)
            else:
                assert result.type.offset == source.type.offset, f"view %{result.name} moved its bytes"
            continue
        computed = get_schema(node.op).compute(args, node.attrs)
        for value, array in zip(node.results, computed, strict=True):
            where(value)[...] = array
    return {v.name: read(v).copy() for v in graph.outputs}
