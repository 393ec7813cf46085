"""Test helpers for the data-movement templates: one-node cases of any dtype, built together, run exactly.

A `Case` is one IR node with concrete operand arrays (runtime inputs or
constants). `build_cases` lowers every case and builds all kernels with ONE
`build_kernels` call (the kernel cache makes reruns free); `run_case` calls a
case's kernel through tvm_ffi on 64-byte aligned storage views (bf16 as
uint16, i4 as uint8) and returns its results in the IR dtypes, to compare
exactly with the op's numpy reference.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ir.builder import Builder
from ir.dtypes import DType
from ir.graph import Graph, Node
from ir.ops.registry import get_schema
from ir.types import TensorType
from runtime.kernel_library import aligned_empty, kernel_function, kernel_tensor, load_kernel_module
from targets.build import build_kernels
from targets.lowering.dispatch import lower_node
from targets.lowering.kernel import LoweredKernel
from targets.lowering.movement import as_storage, storage_dtype


@dataclass
class Case:
    """One node: `operands` are arrays (None: absent); indices in `constants` become graph constants."""

    id: str
    op: str
    operands: Sequence[np.ndarray | None]
    attrs: dict[str, Any] = field(default_factory=dict)
    constants: tuple[int, ...] = ()
    node: Node | None = None
    kernel: LoweredKernel | None = None
    error: Exception | None = None

    def make_node(self) -> Node:
        graph = Graph(self.id)
        values = []
        for i, array in enumerate(self.operands):
            if array is None:
                values.append(None)
            elif i in self.constants:
                values.append(graph.add_constant(f"c{i}", array))
            else:
                dtype = DType.from_numpy(array.dtype)
                values.append(graph.add_input(f"x{i}", TensorType(dtype, tuple(array.shape))))
        results = Builder(graph).op(self.op, values, self.attrs, name=self.id)
        node = results[0].producer
        assert node is not None
        return node

    def reference(self) -> list[np.ndarray]:
        assert self.node is not None
        return get_schema(self.op).compute(list(self.operands), self.node.attrs)


def build_cases(cases: Sequence[Case], target: Any) -> Any:
    """Lower every case and build their kernels in one library; the loaded module."""
    for case in cases:
        case.node = case.make_node()
        try:
            case.kernel = lower_node(case.node, target)
        except Exception as exc:  # reported by the case's own test
            case.error = exc
    library = build_kernels([c.kernel for c in cases if c.kernel is not None], target)
    return load_kernel_module(library), str(library)


def run_case(case: Case, module: Any, library: str) -> list[np.ndarray]:
    """The case's kernel run on its operands; its results in the IR dtypes and shapes."""
    if case.error is not None:
        raise case.error
    kernel, node = case.kernel, case.node
    assert kernel is not None and node is not None
    by_name = {v.name: a for v, a in zip(node.operands, case.operands, strict=True) if v is not None}
    buffers = []
    for arg in kernel.args:
        buf = aligned_empty(arg.shape, arg.dtype)
        if arg.role != "output":
            array = by_name[arg.value]
            buf[...] = as_storage(array, DType.from_numpy(array.dtype)).reshape(arg.shape)
        buffers.append(buf)
    fn = kernel_function(module, library, kernel.name)
    fn(*[kernel_tensor(b, i, kernel.name) for i, b in enumerate(buffers)])
    outputs = [b for a, b in zip(kernel.args, buffers, strict=True) if a.role == "output"]
    results = []
    for result, buf in zip(node.results, outputs, strict=True):
        assert buf.dtype == np.dtype(storage_dtype(result.type.dtype))
        results.append(buf.view(result.type.dtype.numpy).reshape(result.type.shape))
    return results


def assert_exact(got: Sequence[np.ndarray], want: Sequence[np.ndarray]) -> None:
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_array_equal(g, w)


def sample(shape: Sequence[int], dtype: Any, seed: int = 0) -> np.ndarray:
    """Distinct-ish values of `dtype` (small integers for i4/bool, fractions for floats)."""
    rng = np.random.default_rng(seed)
    dtype = np.dtype(dtype)
    if dtype == np.bool_:
        return rng.integers(0, 2, shape).astype(bool)
    if dtype.name == "int4":
        return rng.integers(-8, 8, shape).astype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        return rng.integers(max(info.min, -100), min(info.max, 100), shape, endpoint=True).astype(dtype)
    return (rng.standard_normal(shape) * 4).astype(dtype)
