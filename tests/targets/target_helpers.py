"""Test helpers: one-op graphs, and running a lowered kernel through build_kernels + tvm_ffi.

A kernel is checked the way a driver will use it: lowered, built into a shared
library through the kernel cache, loaded with runtime.kernel_library (tvm_ffi
and libtvm_runtime only), fed 64-byte aligned buffers with its weights packed,
and compared with the IR op's numpy reference (`get_schema(op).compute`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ir.builder import Builder
from ir.dtypes import DType
from ir.graph import Graph, Node, Value
from ir.ops.registry import get_schema
from ir.types import TensorType
from runtime.kernel_library import aligned_empty, kernel_function, kernel_tensor, load_kernel_module
from targets.build import build_kernels
from targets.lowering.kernel import LoweredKernel


def relative_error(got: np.ndarray, want: np.ndarray) -> float:
    """‖got − want‖₂ / ‖want‖₂ (DESIGN.md's definition)."""
    want64 = want.astype(np.float64)
    return float(np.linalg.norm(got.astype(np.float64) - want64) / max(np.linalg.norm(want64), 1e-30))


class OneOp:
    """A graph built op by op; inputs get random data, constants are given arrays."""

    def __init__(self, seed: int = 0) -> None:
        self.graph = Graph("t")
        self.builder = Builder(self.graph)
        self.rng = np.random.default_rng(seed)
        self.feeds: dict[str, np.ndarray] = {}

    def input(self, name: str, shape: Sequence[int]) -> Value:
        self.feeds[name] = self.rng.standard_normal(shape).astype(np.float32)
        return self.graph.add_input(name, TensorType(DType.F32, tuple(shape)))

    def const(self, name: str, shape: Sequence[int], scale: float = 0.2) -> Value:
        array = (self.rng.standard_normal(shape) * scale).astype(np.float32)
        return self.graph.add_constant(name, array)

    def op(self, op: str, operands: Sequence[Value | None], name: str, **attrs: Any) -> Node:
        (result,) = self.builder.op(op, operands, attrs, name=name)
        assert result.producer is not None
        return result.producer

    def reference(self, nodes: Sequence[Node]) -> np.ndarray:
        """Run `nodes` in order with the op registry's numpy references."""
        values: dict[str, np.ndarray] = dict(self.feeds)
        for node in nodes:
            args = [
                None if v is None else (v.constant_array() if v.is_constant else values[v.name])
                for v in node.operands
            ]
            (out,) = get_schema(node.op).compute(args, node.attrs)
            values[node.results[0].name] = out
        return values[nodes[-1].results[0].name]

    def constants(self) -> dict[str, np.ndarray]:
        return {name: v.constant_array() for name, v in self.graph.constants.items()}


def run_kernel(
    kernel: LoweredKernel, feeds: Mapping[str, np.ndarray], constants: Mapping[str, np.ndarray], target: Any
) -> np.ndarray:
    """Build `kernel`, pack its weights, call it on aligned copies of the feeds; its output."""
    library = build_kernels([kernel], target)
    module = load_kernel_module(library)
    fn = kernel_function(module, str(library), kernel.name)
    packed = kernel.pack_weights({a.value: constants[a.value] for a in kernel.weights})
    arrays = []
    for a in kernel.args:
        buf = aligned_empty(a.shape, a.dtype)
        if a.role == "input":
            buf[...] = feeds[a.value].reshape(a.shape)
        elif a.role == "weight":
            buf[...] = packed[a.value].reshape(a.shape)
        arrays.append(buf)
    fn(*[kernel_tensor(x, i, kernel.name) for i, x in enumerate(arrays)])
    return arrays[-1]
