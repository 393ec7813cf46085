"""Regressions found through the compiled conformance suite, one test per root cause, each kernel built
through the kernel cache and checked against the IR op's numpy reference (or the workload contract).

- a kernel name must tell apart workloads whose operands are the same IR value (`Mul(x, x)`) from those
  reading distinct values (`Mul(x, y)`): their argument lists differ;
- 0-d and empty results have no loop to schedule; the max / min of an empty bool set is False / True;
- i4 elementwise kernels (uint8 storage, one element per byte) and bf16 operands of the generic
  templates (uint16 storage, like every other template);
- f16 / bf16 Softmax rounds every step to the operand's dtype, exactly as the reference, on every CPU
  (every f16 value through exp and log); f64 -> f16 rounds once, never through a nearest f32.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from kernel_batch import Case, assert_matches, run_cases

from ir.builder import Builder
from ir.dtypes import DType
from ir.graph import Graph
from ir.types import TensorType
from targets.lowering.dispatch import lower_node
from targets.registry import resolve_target

RNG = np.random.default_rng(11)
BF16 = np.dtype(ml_dtypes.bfloat16)
I4 = np.dtype(ml_dtypes.int4)


def floats(shape, dtype=np.float32, low=-3.0, high=3.0) -> np.ndarray:
    return RNG.uniform(low, high, shape).astype(dtype)


# ---- operand identity is part of the workload -------------------------------------------------


def lowered_muls(target):  # type: ignore[no-untyped-def]
    """Kernels of Mul(x, x), Mul(x, y), and Add(x, y) followed by Mul(_, x) or by Mul(_, y)."""
    graph = Graph("identity")
    t = TensorType(DType.F32, (4, 8))
    x, y = graph.add_input("x", t), graph.add_input("y", t)
    b = Builder(graph)
    square = b.op("Mul", [x, x], {}, name="square")[0]
    product = b.op("Mul", [x, y], {}, name="product")[0]
    total = b.op("Add", [x, y], {}, name="total")[0]
    by_x = b.op("Mul", [total, x], {}, name="by_x")[0]
    by_y = b.op("Mul", [total, y], {}, name="by_y")[0]
    head = total.producer
    return (
        lower_node(square.producer, target),
        lower_node(product.producer, target),
        lower_node(head, target, [by_x.producer]),
        lower_node(head, target, [by_y.producer]),
    )


def test_kernel_name_tells_shared_operands_apart() -> None:
    square, product, chain_x, chain_y = lowered_muls(resolve_target("x86"))
    assert [a.value for a in square.inputs] == ["x"]
    assert [a.value for a in product.inputs] == ["x", "y"]
    assert square.name != product.name
    assert [a.value for a in chain_x.inputs] == [a.value for a in chain_y.inputs] == ["x", "y"]
    assert chain_x.name != chain_y.name  # same arguments, but the epilogue reads a different one


# ---- kernels run against the reference ---------------------------------------------------------

EMPTY_BOOL = np.zeros((2, 0, 4), bool)
F16_VALUES = np.arange(1 << 16, dtype=np.uint32).astype(np.uint16).view(np.float16)
EVERY_F16 = np.stack([F16_VALUES[np.isfinite(F16_VALUES)], np.zeros(63488, np.float16)], axis=1)
"""Rows (v, 0) for every finite f16 v: Softmax takes exp of each non-positive f16, log of sums in [1, 2]."""
NEAR_F16_TIES = np.array(
    [1 + 2.0**-11 + 2.0**-40, -1 - 2.0**-11 - 2.0**-40, 2.0**-25 + 2.0**-60, 65519.999999]
)
"""f64 values a nearest f32 rounds onto an f16 tie: rounding twice (f64 -> f32 -> f16) goes the wrong way."""
CASES = [
    Case("scalar_result", "Add", [np.array(1.5, np.float32), np.array(2.25, np.float32)]),
    Case("empty_result", "Abs", [floats((2, 0, 3))]),
    Case("reduce_sum_empty_set", "ReduceSum", [floats((2, 0, 4))], {"axes": [1], "keepdims": 1}),
    Case("reduce_max_empty_bool", "ReduceMax", [EMPTY_BOOL], {"axes": [1], "keepdims": 1}),
    Case("reduce_min_empty_bool", "ReduceMin", [EMPTY_BOOL], {"axes": [1], "keepdims": 1}),
    Case("reduce_max_bool", "ReduceMax", [RNG.random((3, 5, 4)) > 0.7], {"axes": [1], "keepdims": 0}),
    Case("cast_f32_to_i4", "Cast", [floats((5, 5), low=-20, high=20)], {"to": DType.I4}),
    Case("cast_i4_to_f16", "Cast", [np.arange(-8, 8).reshape(4, 4).astype(I4)], {"to": DType.F16}),
    Case("neg_i4", "Neg", [np.arange(-8, 8).reshape(4, 4).astype(I4)]),
    Case("add_i4_wraps", "Add", [np.arange(-8, 8).astype(I4), np.full(16, 5).astype(I4)]),
    Case("matmul_bf16", "MatMul", [floats((3, 8), BF16), floats((8, 5), BF16)], tolerance=1e-2),
    Case("layernorm_bf16", "LayerNormalization", [floats((3, 8), BF16), floats((8,), BF16)], {"axis": 1},
         constants=(1,), tolerance=1e-2),
    Case("softmax_f16_exact", "Softmax", [floats((6, 24), np.float16)], {"axis": 1}, tolerance=0.0),
    Case("log_softmax_f16_exact", "LogSoftmax", [floats((6, 24), np.float16)], {"axis": 1}, tolerance=0.0),
    Case("softmax_bf16_exact", "Softmax", [floats((6, 24), BF16)], {"axis": 1}, tolerance=0.0),
    Case("softmax_f16_every_value", "Softmax", [EVERY_F16], {"axis": 1}, tolerance=0.0),
    Case("log_softmax_f16_every_value", "LogSoftmax", [EVERY_F16], {"axis": 1}, tolerance=0.0),
    Case("cast_f64_to_f16_near_ties", "Cast", [NEAR_F16_TIES], {"to": DType.F16}, tolerance=0.0),
]  # fmt: skip


@pytest.fixture(scope="module")
def results():  # type: ignore[no-untyped-def]
    return run_cases(CASES, resolve_target("x86"))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_kernel_matches_reference(results, case: Case) -> None:  # type: ignore[no-untyped-def]
    got, want = results[case.id]
    for g, w in zip(got, want, strict=True):
        if w.dtype == I4:
            np.testing.assert_array_equal(g.view(np.uint8), w.view(np.uint8))
        elif case.tolerance == 0.0:
            np.testing.assert_array_equal(g.view(np.uint16), w.view(np.uint16))
        else:
            assert_matches(g, w, case.tolerance)
