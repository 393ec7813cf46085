"""Test helpers: many one-node kernels built into ONE library, run through tvm_ffi, checked against the IR.

A `Case` is one IR node with its operand arrays (any dtype; listed positions
become constants). `run_cases` lowers every case, builds all kernels with one
`build_kernels` call (one .so, through the kernel cache), runs each on 64-byte
aligned buffers (bf16 buffers viewed as the kernel's uint16) and returns what
each kernel wrote beside the op's numpy reference (`get_schema(op).compute`).
`assert_matches` compares: exact for integers and bool, relative error (with
NaN and infinity positions equal) for floats.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from target_helpers import relative_error

from ir.builder import Builder
from ir.dtypes import DType
from ir.graph import Graph, Node
from ir.ops.registry import get_schema
from ir.types import TensorType
from runtime.kernel_library import aligned_empty, kernel_function, kernel_tensor, load_kernel_module
from targets.build import build_kernels
from targets.lowering.dispatch import lower_node
from targets.lowering.kernel import LoweredKernel

LOW_PRECISION = (np.dtype(np.float16), DType.BF16.numpy)


@dataclass
class Case:
    """One node to lower, run and compare; `tolerance` None picks it from the result dtype."""

    id: str
    op: str
    arrays: Sequence[np.ndarray]
    attrs: dict[str, Any] = field(default_factory=dict)
    constants: tuple[int, ...] = ()
    tolerance: float | None = None
    node: Node | None = None

    def build(self) -> Node:
        graph = Graph(self.id)
        operands = []
        for i, a in enumerate(self.arrays):
            if i in self.constants:
                operands.append(graph.add_constant(f"c{i}", np.ascontiguousarray(a)))
            else:
                operands.append(graph.add_input(f"x{i}", TensorType(DType.from_numpy(a.dtype), a.shape)))
        results = Builder(graph).op(self.op, operands, self.attrs, name=self.op.lower())
        self.node = results[0].producer
        assert self.node is not None
        return self.node

    def reference(self) -> list[np.ndarray]:
        assert self.node is not None
        return get_schema(self.op).compute(list(self.arrays), self.node.attrs)


def run_one(module: Any, library: str, kernel: LoweredKernel, case: Case) -> list[np.ndarray]:
    """Call `kernel` on aligned copies of the case's arrays; its outputs, in the IR's dtypes."""
    assert case.node is not None
    arrays = {v.name: a for v, a in zip(case.node.operands, case.arrays, strict=True) if v is not None}
    kinds = {r.name: r.type.dtype.numpy for r in case.node.results}
    shapes = {r.name: r.type.shape for r in case.node.results}
    buffers, outputs = [], []
    for arg in kernel.args:
        dtype = arrays[arg.value].dtype if arg.value in arrays else kinds[arg.value]
        buf = aligned_empty(arg.shape, dtype)
        if arg.role == "output":
            buf[...] = 0
            outputs.append(buf.reshape(shapes[arg.value]))
        else:
            buf[...] = arrays[arg.value].reshape(arg.shape)
        buffers.append(buf.view(arg.dtype))
    fn = kernel_function(module, library, kernel.name)
    fn(*[kernel_tensor(b, i, kernel.name) for i, b in enumerate(buffers)])
    return outputs


def run_cases(cases: Sequence[Case], target: Any) -> dict[str, tuple[list[np.ndarray], list[np.ndarray]]]:
    """{case id: (kernel outputs, reference outputs)} for all cases, built as one library."""
    kernels = [lower_node(c.build(), target) for c in cases]
    library = build_kernels(kernels, target)
    module = load_kernel_module(library)
    results = {}
    for case, kernel in zip(cases, kernels, strict=True):
        got = run_one(module, str(library), kernel, case)
        results[case.id] = (got, case.reference())
    return results


def assert_matches(got: np.ndarray, want: np.ndarray, tolerance: float | None = None) -> None:
    """Exact for integers and bool; for floats the same NaN/inf positions and a small relative error."""
    assert got.dtype == want.dtype and got.shape == want.shape, (got.dtype, got.shape, want.dtype, want.shape)
    if want.dtype.kind in "biu":
        np.testing.assert_array_equal(got, want)
        return
    if tolerance is None:
        tolerance = 1e-2 if want.dtype in LOW_PRECISION else 1e-5
    g, w = got.astype(np.float64), want.astype(np.float64)
    np.testing.assert_array_equal(np.isnan(g), np.isnan(w))
    finite = np.isfinite(w)
    np.testing.assert_array_equal(g[~finite & ~np.isnan(w)], w[~finite & ~np.isnan(w)])
    if finite.any():
        assert relative_error(g[finite], w[finite]) <= tolerance, relative_error(g[finite], w[finite])
