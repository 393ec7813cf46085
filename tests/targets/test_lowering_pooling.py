"""x86 pooling kernels (every op of the registry's pooling family) against the IR references.

All cases build into one library with one build_kernels call (small shapes,
cached); each kernel runs through tvm_ffi and every result (MaxPool's Indices
too) must match `get_schema(op).compute`: rel err <= 1e-5 for f32, exact for integers.
"""

from __future__ import annotations

import pytest
from lowering_cases import Built, Case, families_ops

from targets.lowering.dispatch import supported_ops
from targets.registry import resolve_target

WINDOW = {"strides": [2, 2], "pads": [1, 1, 1, 1], "dilations": [1, 1]}


def pool(name: str, op: str, shape=(1, 4, 9, 9), dtype: str = "float32", **attrs) -> Case:
    case = Case(name, seed=len(name))
    return case.op(op, [case.input("x", shape, dtype)], **attrs)


CASES = [
    pool("max3x3s2", "MaxPool", kernel_shape=[3, 3], **WINDOW),
    pool("max_ceil_indices", "MaxPool", kernel_shape=[3, 3], return_indices=1, ceil_mode=1, **WINDOW),
    pool("max_dilated_colmajor", "MaxPool", shape=(2, 3, 10, 8), kernel_shape=[2, 3], strides=[1, 2],
         pads=[0, 1, 1, 0], dilations=[2, 1], return_indices=1, storage_order=1),
    pool("max1d_i8", "MaxPool", shape=(2, 3, 11), dtype="int8", kernel_shape=[3], strides=[2], pads=[1, 1],
         dilations=[1]),
    pool("max3d_f16", "MaxPool", shape=(1, 2, 5, 6, 7), dtype="float16", kernel_shape=[2, 2, 2],
         strides=[2, 2, 2], pads=[0, 0, 0, 1, 1, 1], dilations=[1, 1, 1]),
    # one output column under several rows: TVM drops the column loop (oww_embedding's last pool)
    pool("max_single_column", "MaxPool", shape=(1, 8, 6, 2), kernel_shape=[2, 2], strides=[2, 2],
         pads=[0, 0, 0, 0], dilations=[1, 1]),
    pool("avg_exclude_pad", "AveragePool", kernel_shape=[3, 3], **WINDOW),
    pool("avg_include_pad_ceil", "AveragePool", kernel_shape=[3, 3], count_include_pad=1, ceil_mode=1,
         **WINDOW),
    pool("avg1d_f64", "AveragePool", shape=(2, 3, 12), dtype="float64", kernel_shape=[4], strides=[3],
         pads=[2, 1], dilations=[1]),
    pool("lp3_dilated", "LpPool", shape=(1, 16, 7, 7), kernel_shape=[2, 2], strides=[1, 1], pads=[0, 0, 1, 1],
         dilations=[2, 2], p=3),
    pool("global_avg", "GlobalAveragePool", shape=(1, 16, 7, 7)),
    pool("global_avg_wide", "GlobalAveragePool", shape=(2, 5, 2, 96)),
    pool("global_avg_tiny_plane", "GlobalAveragePool", shape=(1, 6, 2, 2)),
    pool("global_max_ragged", "GlobalMaxPool", shape=(1, 3, 5, 7)),
    pool("global_max_1d_end", "GlobalMaxPool", shape=(1, 4, 508)),  # magika's: a last step at 444..507
    pool("global_avg_f16", "GlobalAveragePool", shape=(2, 8, 5, 5), dtype="float16"),
    pool("global_max_i32", "GlobalMaxPool", shape=(2, 5, 4, 6), dtype="int32"),
    pool("global_max", "GlobalMaxPool", shape=(1, 8, 3, 4, 5)),
    pool("global_lp", "GlobalLpPool", shape=(1, 8, 6, 6), p=2),
]


@pytest.fixture(scope="module")
def built() -> Built:
    return Built(CASES, resolve_target("x86"))


@pytest.mark.parametrize("op", families_ops("pooling"))
def test_every_pooling_op_is_lowered_and_tested(op: str) -> None:
    assert op in supported_ops()
    assert op in {c.node.op for c in CASES}, f"no x86 lowering test case for {op}"


@pytest.mark.parametrize("name", [c.name for c in CASES])
def test_pooling_kernel_matches_reference(built: Built, name: str) -> None:
    built.check(name)
