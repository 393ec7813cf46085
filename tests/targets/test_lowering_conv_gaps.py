"""x86 conv and matmul kernels beyond the fast fp32 paths, against the IR references.

Every op of the registry's conv and matmul families must be lowered and have a
case here: the NCHW depthwise fast path (odd widths, strides, dilations),
grouped (not depthwise) Conv, 1-D and 3-D Conv, f16 Conv,
ConvTranspose 1-D/2-D with groups, dilations and output_padding; MatMul with
batch broadcasting, 1-D operands and integer/f16/f64 dtypes; Gemm with a
run-time B, transA/transB, alpha/beta and broadcast C. One build_kernels call.
"""

from __future__ import annotations

import pytest
from lowering_cases import Built, Case, families_ops

from targets.lowering.dispatch import supported_ops
from targets.registry import resolve_target


def conv(name: str, op: str, x, w, bias: bool = True, dtype: str = "float32", **attrs) -> Case:
    case = Case(name, seed=len(name))
    operands = [case.input("x", x, dtype), case.const("w", w, dtype)]
    if bias:
        out_channels = w[0] if op == "Conv" else w[1] * attrs.get("group", 1)
        operands.append(case.const("b", (out_channels,), dtype))
    return case.op(op, operands, **attrs)


def product(name: str, a, b, dtype: str = "float32", b_const: bool = False, op: str = "MatMul", c=None,
            **attrs) -> Case:
    case = Case(name, seed=len(name))
    operands = [case.input("a", a, dtype), (case.const if b_const else case.input)("b", b, dtype)]
    if c is not None:
        operands.append(case.const("c", c, dtype))
    return case.op(op, operands, **attrs)


SAME = {"strides": [1, 1], "pads": [1, 1, 1, 1], "dilations": [1, 1]}

CASES = [
    conv("grouped_strided_dilated", "Conv", (1, 8, 9, 9), (12, 4, 3, 3), strides=[2, 1], pads=[1, 0, 1, 2],
         dilations=[1, 2], group=2),
    conv("conv1d", "Conv", (2, 4, 17), (6, 4, 5), strides=[2], pads=[2, 1], dilations=[1]),
    conv("conv3d", "Conv", (1, 3, 5, 6, 7), (4, 3, 3, 3, 3), strides=[1, 2, 1], pads=[1] * 6,
         dilations=[1, 1, 1]),
    conv("depthwise_multiplier2", "Conv", (1, 4, 8, 8), (8, 1, 3, 3), group=4, **SAME),
    conv("depthwise_fast_dilated_odd_width", "Conv", (1, 8, 7, 9), (8, 1, 3, 3), strides=[1, 1],
         pads=[2, 2, 2, 2], dilations=[2, 2], group=8),
    conv("depthwise_fast_stride3_unpadded", "Conv", (1, 8, 12, 14), (8, 1, 3, 3), strides=[3, 3],
         pads=[0, 0, 0, 0], dilations=[1, 1], group=8),
    conv("conv_f16", "Conv", (1, 4, 8, 8), (8, 4, 3, 3), dtype="float16", **SAME),
    conv("convT2d_output_padding", "ConvTranspose", (1, 4, 5, 6), (4, 3, 3, 3), strides=[2, 2],
         pads=[1, 0, 1, 1], dilations=[1, 1], group=1, output_padding=[1, 0]),
    conv("convT2d_grouped_dilated", "ConvTranspose", (1, 4, 5, 6), (4, 3, 3, 2), strides=[2, 3],
         pads=[0, 1, 1, 0], dilations=[2, 1], group=2, output_padding=[1, 2]),
    conv("convT1d_no_bias", "ConvTranspose", (2, 3, 7), (3, 2, 4), bias=False, strides=[3], pads=[1, 2],
         dilations=[1], group=1, output_padding=[0]),
    product("matmul_batch_broadcast", (2, 1, 4, 8), (3, 8, 5)),
    product("matmul_1d_a", (8,), (2, 8, 5)),
    product("matmul_1d_b", (2, 3, 8), (8,)),
    product("matmul_1d_1d", (8,), (8,)),
    product("matmul_i8", (3, 16), (16, 5), "int8"),
    product("matmul_u8", (3, 16), (16, 5), "uint8"),
    product("matmul_i32_batched", (2, 3, 16), (16, 5), "int32"),
    product("matmul_i64_weight", (3, 16), (16, 5), "int64", b_const=True),
    product("matmul_f16_weight", (3, 16), (16, 8), "float16", b_const=True),
    product("matmul_f64", (3, 16), (16, 8), "float64"),
    product("gemm_runtime_b_trans", (6, 4), (5, 6), op="Gemm", c=(1, 5), transA=1, transB=1, alpha=0.5,
            beta=-2.0),
    product("gemm_i32_column_c", (4, 6), (6, 5), "int32", op="Gemm", c=(4, 1), alpha=2.0, beta=3.0),
    product("gemm_trans_a_weight", (6, 4), (6, 5), b_const=True, op="Gemm", c=(5,), transA=1),
]


@pytest.fixture(scope="module")
def built() -> Built:
    return Built(CASES, resolve_target("x86"))


@pytest.mark.parametrize("op", families_ops("conv", "matmul"))
def test_every_conv_and_matmul_op_is_lowered_and_tested(op: str) -> None:
    assert op in supported_ops()
    assert op in {c.node.op for c in CASES}, f"no x86 lowering test case for {op}"


@pytest.mark.parametrize("name", [c.name for c in CASES])
def test_kernel_matches_reference(built: Built, name: str) -> None:
    built.check(name)
