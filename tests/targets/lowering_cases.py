"""Test helpers for the per-family lowering tests: one-node cases of any dtype, built together, run.

A module lowers all its cases, builds them with ONE `build_kernels` call (one
library, through the kernel cache), then runs each kernel through tvm_ffi on
64-byte aligned buffers and compares every result with the IR op's numpy
reference (`get_schema(op).compute`), by relative error (DESIGN.md's).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from target_helpers import relative_error

from ir.builder import Builder
from ir.dtypes import DType
from ir.graph import Graph, Node, Value
from ir.ops.registry import get_schema
from ir.types import TensorType
from runtime.kernel_library import aligned_empty, kernel_function, kernel_tensor, load_kernel_module
from targets.build import build_kernels
from targets.lowering.dispatch import lower_node
from targets.lowering.kernel import LoweredKernel

TOLERANCE = {"float32": 1e-5, "float64": 1e-12, "float16": 2e-3, "bfloat16": 1e-2}


@dataclass
class Case:
    """One node in its own graph, with random feeds; constants live in the graph."""

    name: str
    seed: int = 0
    graph: Graph = field(init=False)
    feeds: dict[str, np.ndarray] = field(default_factory=dict)
    node: Node | None = None

    def __post_init__(self) -> None:
        self.graph = Graph(self.name)
        self.rng = np.random.default_rng(self.seed)

    def random(self, shape: Sequence[int], dtype: str, scale: float = 1.0) -> np.ndarray:
        np_dtype = next(d.numpy for d in DType if d.numpy.name == dtype)
        if np.issubdtype(np_dtype, np.integer):
            info = np.iinfo(np_dtype)
            low, high = max(info.min, -20), min(info.max, 20)
            return self.rng.integers(low, high + 1, size=shape).astype(np_dtype)
        return (self.rng.standard_normal(shape) * scale).astype(np_dtype)

    def input(self, name: str, shape: Sequence[int], dtype: str = "float32", array: Any = None) -> Value:
        data = self.random(shape, dtype) if array is None else np.asarray(array)
        self.feeds[name] = data
        return self.graph.add_input(name, TensorType(DType.from_numpy(data.dtype), tuple(data.shape)))

    def const(
        self, name: str, shape: Sequence[int], dtype: str = "float32", scale: float = 0.3, array: Any = None
    ) -> Value:
        data = self.random(shape, dtype, scale) if array is None else np.asarray(array)
        return self.graph.add_constant(name, data)

    def op(self, op: str, operands: Sequence[Value | None], **attrs: Any) -> Case:
        results = Builder(self.graph).op(op, operands, attrs, name=self.name)
        self.node = results[0].producer
        return self

    def reference(self) -> list[np.ndarray]:
        assert self.node is not None
        args = [
            None if v is None else (v.constant_array() if v.is_constant else self.feeds[v.name])
            for v in self.node.operands
        ]
        return get_schema(self.node.op).compute(args, self.node.attrs)


def lower_all(cases: Sequence[Case], target: Any) -> dict[str, LoweredKernel]:
    kernels = {}
    for case in cases:
        assert case.node is not None
        kernels[case.name] = lower_node(case.node, target)
    return kernels


class Built:
    """Every case's kernel in one library, ready to run."""

    def __init__(self, cases: Sequence[Case], target: Any) -> None:
        self.cases = {c.name: c for c in cases}
        self.kernels = lower_all(cases, target)
        self.library = build_kernels(list(self.kernels.values()), target)
        self.module = load_kernel_module(self.library)

    def run(self, name: str) -> dict[str, np.ndarray]:
        """The kernel's outputs, by IR value name, reshaped to the IR shapes."""
        case, kernel = self.cases[name], self.kernels[name]
        fn = kernel_function(self.module, str(self.library), kernel.name)
        constants = {k: v.constant_array() for k, v in case.graph.constants.items()}
        packed = kernel.pack_weights({a.value: constants[a.value] for a in kernel.weights})
        arrays = []
        for a in kernel.args:
            buf = aligned_empty(a.shape, a.dtype)
            if a.role == "input":
                buf[...] = case.feeds[a.value].reshape(a.shape)
            elif a.role == "weight":
                buf[...] = packed[a.key].reshape(a.shape)
            else:
                buf[...] = 0
            arrays.append(buf)
        fn(*[kernel_tensor(x, i, kernel.name) for i, x in enumerate(arrays)])
        return {a.value: x for a, x in zip(kernel.args, arrays, strict=True) if a.role == "output"}

    def check(self, name: str, tolerance: float | None = None) -> None:
        """Every result of the case's node against the reference."""
        case = self.cases[name]
        assert case.node is not None
        got = self.run(name)
        for value, want in zip(case.node.results, case.reference(), strict=True):
            if value.name not in got:
                raise AssertionError(f"{name}: kernel has no output for {value.name}")
            result = got[value.name].reshape(want.shape)
            assert result.dtype == want.dtype, (name, value.name, result.dtype, want.dtype)
            if np.issubdtype(want.dtype, np.integer) or want.dtype == np.bool_:
                np.testing.assert_array_equal(result, want, err_msg=f"{name}: {value.name}")
                continue
            limit = tolerance if tolerance is not None else TOLERANCE[want.dtype.name]
            error = relative_error(result.astype(np.float64), want.astype(np.float64))
            assert error <= limit, f"{name}: {value.name} relative error {error:.2e} > {limit:.0e}"


def families_ops(*families: str) -> list[str]:
    from ir.ops.registry import all_schemas

    return sorted(s.name for s in all_schemas() if s.family in families)


def covered(cases: Sequence[Case]) -> set[str]:
    return {c.node.op for c in cases if c.node is not None}


def by_name(cases: Sequence[Case]) -> Mapping[str, Case]:
    return {c.name: c for c in cases}
