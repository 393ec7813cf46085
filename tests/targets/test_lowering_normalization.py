"""x86 normalization kernels (every op of the registry's normalization family) against the IR references.

One build_kernels call for the module; each kernel runs through tvm_ffi and
every result (LayerNormalization's Mean and InvStdDev too) must match
`get_schema(op).compute` (rel err <= 1e-5 for f32).
"""

from __future__ import annotations

import numpy as np
import pytest
from lowering_cases import Built, Case, families_ops

from targets.lowering.dispatch import supported_ops
from targets.registry import resolve_target


def channel_norm(name: str, op: str, shape, dtype: str = "float32", const: bool = True, **attrs) -> Case:
    case = Case(name, seed=len(name))
    c = shape[1]
    make = case.const if const else case.input
    operands = [case.input("x", shape, dtype), make("scale", (c,), dtype), make("bias", (c,), dtype)]
    if op == "BatchNormalization":
        var = (np.random.default_rng(1).random(c) + 0.5).astype(dtype)
        operands += [make("mean", (c,), dtype), case.const("var", (c,), array=var)]
    return case.op(op, operands, **attrs)


def layer_norm(name: str, shape, axis: int, scale_shape, bias: bool = True, dtype: str = "float32", **attrs):
    case = Case(name, seed=len(name))
    operands = [case.input("x", shape, dtype), case.const("scale", scale_shape, dtype)]
    if bias:
        operands.append(case.const("bias", scale_shape, dtype))
    return case.op("LayerNormalization", operands, axis=axis, **attrs)


def lp_norm(name: str, shape, axis: int, p: int, dtype: str = "float32") -> Case:
    case = Case(name, seed=len(name))
    return case.op("LpNormalization", [case.input("x", shape, dtype)], axis=axis, p=p)


CASES = [
    channel_norm("batch_norm", "BatchNormalization", (2, 8, 5, 5)),
    channel_norm("batch_norm_2d_runtime", "BatchNormalization", (3, 16), const=False, epsilon=1e-3),
    channel_norm("batch_norm_f16", "BatchNormalization", (1, 8, 4, 4), dtype="float16"),
    channel_norm("instance_norm", "InstanceNormalization", (2, 8, 5, 5)),
    channel_norm("instance_norm_1d_f64", "InstanceNormalization", (2, 3, 17), dtype="float64"),
    channel_norm("group_norm", "GroupNormalization", (2, 8, 5, 5), num_groups=4),
    channel_norm("group_norm_one_group", "GroupNormalization", (1, 6, 3, 4), num_groups=1, epsilon=1e-2),
    layer_norm("layer_norm_stats", (2, 6, 16), 2, (16,), return_stats=1),
    layer_norm("layer_norm_axis1_no_bias", (2, 6, 16), 1, (6, 16), bias=False),
    layer_norm("layer_norm_broadcast_scale", (3, 4, 8), 1, (1, 8)),
    layer_norm("layer_norm_f16_stats", (4, 32), 1, (32,), dtype="float16", return_stats=1),
    lp_norm("lp_norm_l2", (2, 6, 16), 2, 2),
    lp_norm("lp_norm_l1_axis0", (5, 3, 4), 0, 1),
]


@pytest.fixture(scope="module")
def built() -> Built:
    return Built(CASES, resolve_target("x86"))


@pytest.mark.parametrize("op", families_ops("normalization"))
def test_every_normalization_op_is_lowered_and_tested(op: str) -> None:
    assert op in supported_ops()
    assert op in {c.node.op for c in CASES}, f"no x86 lowering test case for {op}"


@pytest.mark.parametrize("name", [c.name for c in CASES])
def test_normalization_kernel_matches_reference(built: Built, name: str) -> None:
    built.check(name)
