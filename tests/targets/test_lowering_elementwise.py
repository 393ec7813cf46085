"""Every elementwise and activation op, lowered for x86, built as one library and run through tvm_ffi,
against the IR op's numpy reference: exact for integers and bool, rel. err <= 1e-5 (f32, f64) or
1e-2 (f16, bf16). The op list comes from the registry, so a newly registered op without a case fails.
"""

from __future__ import annotations

import itertools

import ml_dtypes
import numpy as np
import pytest
from kernel_batch import Case, assert_matches, run_cases

from ir.ops.registry import all_schemas
from targets.lowering.dispatch import lower_node, supported_ops
from targets.registry import resolve_target

RNG = np.random.default_rng(7)
BF16 = np.dtype(ml_dtypes.bfloat16)
FAMILIES = ("elementwise", "activation")
EXCEPTIONS: dict[str, str] = {}  # op -> why it has no x86 kernel test (none so far)


def floats(shape=(2, 3, 8), dtype=np.float32, low=-3.0, high=3.0) -> np.ndarray:
    return RNG.uniform(low, high, shape).astype(dtype)


def ints(shape=(2, 3, 8), dtype=np.int32, low=-20, high=20) -> np.ndarray:
    info = np.iinfo(dtype)
    return RNG.integers(max(low, info.min), min(high, info.max) + 1, shape).astype(dtype)


def bools(shape=(2, 3, 8)) -> np.ndarray:
    return RNG.random(shape) > 0.5


def nonzero(a: np.ndarray) -> np.ndarray:
    return np.where(a == 0, 1, a).astype(a.dtype)


SPECIAL = np.array([-np.inf, -2.5, -0.5, -0.0, 0.0, 0.5, 1.5, 2.5, np.inf, np.nan, 3.0, -7.0], np.float32)

DOMAINS = {
    "Log": (0.05, 4.0),
    "Sqrt": (0.0, 4.0),
    "Asin": (-0.99, 0.99),
    "Acos": (-0.99, 0.99),
    "Atanh": (-0.95, 0.95),
    "Acosh": (1.0, 4.0),
    "Tan": (-1.2, 1.2),
    "Reciprocal": (0.2, 3.0),
}
FLOAT_UNARY = [
    "Floor", "Ceil", "Round", "Exp", "Log", "Sqrt", "Erf", "Sin", "Cos", "Tan", "Asin", "Acos", "Atan",
    "Sinh", "Cosh", "Asinh", "Acosh", "Atanh", "Reciprocal", "Tanh", "Sigmoid", "HardSwish", "Softplus",
    "Softsign", "Mish", "Identity",
]  # fmt: skip
ACTIVATION_ATTRS = {
    "LeakyRelu": {"alpha": 0.2},
    "HardSigmoid": {"alpha": 0.3, "beta": 0.4},
    "Gelu": {"approximate": "tanh"},
    "Elu": {"alpha": 0.7},
    "Selu": {"alpha": 1.5, "gamma": 1.1},
    "Celu": {"alpha": 0.8},
    "ThresholdedRelu": {"alpha": 0.5},
    "Swish": {"alpha": 1.3},
}


def domain_args(op: str) -> tuple[tuple[int, ...], type, float, float]:
    low, high = DOMAINS.get(op, (-3.0, 3.0))
    return (2, 3, 8), np.float32, low, high


def unary_cases() -> list[Case]:
    cases = [Case(f"{op}-f32", op, [floats(*domain_args(op))])
             for op in FLOAT_UNARY]  # fmt: skip
    cases += [Case(f"{op}-f32", op, [floats()], attrs) for op, attrs in ACTIVATION_ATTRS.items()]
    cases += [
        Case("Gelu-exact-f32", "Gelu", [floats()]),
        Case("Exp-f16", "Exp", [floats(dtype=np.float16)]),
        Case("Exp-special-f32", "Exp", [SPECIAL]),  # targets/lowering/vector_math.py: inf, 0, NaN
        Case("Exp-range-f32", "Exp", [np.linspace(-87.3, 88.7, 48, dtype=np.float32).reshape(2, 3, 8)]),
        Case("Sigmoid-special-f32", "Sigmoid", [SPECIAL]),
        Case("Sigmoid-bf16", "Sigmoid", [floats(dtype=BF16)]),
        Case("Erf-bf16", "Erf", [floats(dtype=BF16)]),
        Case("Elu-f16", "Elu", [floats(dtype=np.float16)], {"alpha": 0.5}),
        Case("Log-f64", "Log", [floats(dtype=np.float64, low=0.1)]),
        Case("Gelu-f64", "Gelu", [floats(dtype=np.float64)]),
        Case("Round-halves-f32", "Round", [np.arange(-16, 16, dtype=np.float32) / 2]),
    ]
    for op, dtype in itertools.product(["Abs", "Neg", "Sign", "Relu"], [np.float32, np.int32, np.int8]):
        data = floats(dtype=dtype) if dtype == np.float32 else ints(dtype=dtype, low=-128)
        cases.append(Case(f"{op}-{np.dtype(dtype)}", op, [data]))
    cases += [
        Case("Abs-u8", "Abs", [ints(dtype=np.uint8, low=0, high=255)]),
        Case("Sign-u8", "Sign", [ints(dtype=np.uint8, low=0, high=3)]),
        Case("Sign-special-f32", "Sign", [SPECIAL]),
        Case("Relu-nan-f32", "Relu", [SPECIAL]),
        Case("Clip-f32", "Clip", [floats()], {"min": -1.0, "max": 0.5}),
        Case("Clip-min-only-f16", "Clip", [floats(dtype=np.float16)], {"min": -0.25}),
        Case("Clip-i8-saturated", "Clip", [ints(dtype=np.int8, low=-128)], {"min": -300.0, "max": 7.5}),
        Case("Clip-u8", "Clip", [ints(dtype=np.uint8, low=0, high=255)], {"min": 10.0, "max": 200.0}),
        Case("Not-bool", "Not", [bools()]),
        Case("IsNaN-f32", "IsNaN", [SPECIAL]),
        Case("IsInf-f32", "IsInf", [SPECIAL]),
        Case("IsInf-neg-f16", "IsInf", [SPECIAL.astype(np.float16)], {"detect_positive": 0}),
        Case("IsInf-pos-f64", "IsInf", [SPECIAL.astype(np.float64)], {"detect_negative": 0}),
        Case("Identity-i64", "Identity", [ints(dtype=np.int64)]),
        Case("Identity-bool", "Identity", [bools()]),
    ]
    return cases


def binary_cases() -> list[Case]:
    a, b = floats((2, 3, 8)), floats((3, 1))
    cases = [
        Case(f"{op}-f32-broadcast", op, [a, b])
        for op in ("Add", "Sub", "Mul", "Max", "Min", "Greater", "Less", "GreaterOrEqual", "LessOrEqual")
    ]
    cases += [
        Case("Add-i64", "Add", [ints(dtype=np.int64), ints((8,), np.int64)]),
        Case("Sub-u8-wraps", "Sub", [ints(dtype=np.uint8, low=0, high=255), ints((1, 8), np.uint8, 0, 255)]),
        Case("Mul-i16", "Mul", [ints(dtype=np.int16), ints((3, 8), np.int16)]),
        Case("Mul-const-scalar-f32", "Mul", [a, np.array([1.5], np.float32)], constants=(1,)),
        Case("Add-const-weight-f32", "Add", [a, floats((8,))], constants=(1,)),
        Case("Add-f16", "Add", [floats(dtype=np.float16), floats((8,), np.float16)]),
        Case("Mul-bf16", "Mul", [floats(dtype=BF16), floats((8,), BF16)]),
        Case("Sub-f64", "Sub", [floats(dtype=np.float64), floats((3, 1), np.float64)]),
        Case("Div-f32", "Div", [a, nonzero(np.round(b * 4) / 4)]),
        Case("Div-i32-trunc", "Div", [ints(low=-50, high=50), ints((3, 8), np.int32, -6, 6)]),
        Case("Div-i8-min-by-minus-one", "Div", [np.int8([-128, 7, -7, 5]), np.int8([-1, 2, 2, 0])]),
        Case("Div-u8", "Div", [ints(dtype=np.uint8, low=0, high=255), ints((8,), np.uint8, 0, 9)]),
        Case("Mod-i32", "Mod", [ints(low=-50, high=50), ints((3, 8), np.int32, -6, 6)]),
        Case("Mod-fmod-i64", "Mod", [ints(dtype=np.int64, low=-50, high=50), ints((3, 8), np.int64, -6, 6)],
             {"fmod": 1}),
        Case("Mod-f32", "Mod", [floats(low=-9, high=9), nonzero(np.round(floats((3, 8)) * 2) / 2)]),
        Case("Mod-fmod-f32", "Mod", [floats(low=-9, high=9), nonzero(np.round(floats((3, 8)) * 2) / 2)],
             {"fmod": 1}),
        Case("Pow-f32", "Pow", [floats(low=0.1, high=3), floats((3, 1))]),
        Case("Pow-f32-square", "Pow", [floats(), np.array([2.0], np.float32)], constants=(1,)),  # x * x
        Case("Pow-f32-i64", "Pow", [floats(low=-2, high=2), np.array([2, 3, -1], np.int64)[:, None]]),
        Case("Pow-i32", "Pow", [ints(low=-5, high=5), ints((8,), np.int32, 0, 5)]),
        Case("Pow-i32-negative", "Pow", [nonzero(ints(low=-3, high=3)), ints((8,), np.int32, -2, 3)]),
        Case("Equal-i32", "Equal", [ints(low=-2, high=2), ints((8,), np.int32, -2, 2)]),
        Case("Equal-bool", "Equal", [bools(), bools((8,))]),
        Case("Greater-f16", "Greater", [floats(dtype=np.float16), floats((8,), np.float16)]),
        Case("Less-u8", "Less", [ints(dtype=np.uint8, low=0, high=9), ints((8,), np.uint8, 0, 9)]),
        Case("Max-nan-f32", "Max", [SPECIAL, SPECIAL[::-1].copy()]),
        Case("Min-nan-f32", "Min", [SPECIAL, SPECIAL[::-1].copy()]),
        Case("Max-i8", "Max", [ints(dtype=np.int8), ints((8,), np.int8)]),
        Case("PRelu-f32", "PRelu", [floats((2, 4, 3, 3)), floats((4, 1, 1))]),
        Case("PRelu-i32", "PRelu", [ints(), ints((8,))]),
    ]  # fmt: skip
    cases += [Case(f"{op}-bool", op, [bools(), bools((3, 1))]) for op in ("And", "Or", "Xor")]
    return cases


def multi_operand_cases() -> list[Case]:
    shapes = [(2, 3, 8), (3, 1), (8,)]
    cases = [Case(f"{op}-3-f32", op, [floats(s) for s in shapes]) for op in ("Sum", "Mean", "Max", "Min")]
    cases += [
        Case("Sum-1-f32", "Sum", [floats()]),
        Case("Sum-3-i16", "Sum", [ints(s, np.int16) for s in shapes]),
        Case("Max-3-u8", "Max", [ints(s, np.uint8, 0, 255) for s in shapes]),
        Case("Mean-2-f16", "Mean", [floats(s, np.float16) for s in shapes[:2]]),
        Case("Where-f32", "Where", [bools((2, 1, 8)), floats((3, 1)), floats((1,))]),
        Case("Where-i64", "Where", [bools((8,)), ints((2, 3, 8), np.int64), ints((3, 8), np.int64)]),
        Case("Where-bf16", "Where", [bools((3, 8)), floats((2, 3, 8), BF16), floats((8,), BF16)]),
    ]
    return cases


CAST_DTYPES = [
    np.float32,
    np.float16,
    BF16,
    np.float64,
    np.int8,
    np.uint8,
    np.int16,
    np.int32,
    np.int64,
    np.bool_,
]


def cast_source(dtype) -> np.ndarray:
    dtype = np.dtype(dtype)
    if dtype.kind == "b":
        return bools((4, 8))
    if dtype.kind in "iu":
        return ints((4, 8), dtype, -100, 100)
    return (RNG.uniform(-100, 100, (4, 8)).astype(np.float32)).astype(dtype)  # in every integer's range


def cast_cases() -> list[Case]:
    from ir.dtypes import DType

    return [
        Case(
            f"Cast-{np.dtype(s).name}-{np.dtype(t).name}",
            "Cast",
            [cast_source(s)],
            {"to": DType.from_numpy(t)},
        )
        for s, t in itertools.product(CAST_DTYPES, CAST_DTYPES)
    ]


def row_cases() -> list[Case]:
    """Rows long enough to vectorise (targets/lowering/broadcast_rows.py): one-hot Equal of a column
    against a constant row (a tail past the lanes), a per-channel Mul, a row statistic, no broadcast."""
    row = np.arange(-18, 19, dtype=np.int32)[None, None]
    return [
        Case("Equal-onehot-row", "Equal", [ints((1, 64, 1)), row], constants=(1,)),
        Case("Mul-per-channel-row", "Mul", [floats((1, 6, 7, 9)), floats((1, 6, 1, 1))]),
        Case("Sub-row-statistic", "Sub", [floats((2, 5, 40)), floats((2, 5, 1))]),
        Case("Add-same-shape-rows", "Add", [floats((3, 5, 20)), floats((3, 5, 20))]),
        Case("Where-row-broadcast", "Where", [bools((4, 1, 33)), floats((4, 3, 33)), floats((3, 1))]),
    ]  # fmt: skip


CASES = unary_cases() + binary_cases() + multi_operand_cases() + cast_cases() + row_cases()


@pytest.fixture(scope="module")
def target():
    return resolve_target("x86")


@pytest.fixture(scope="module")
def results(target):
    return run_cases(CASES, target)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_kernel_matches_reference(results, case: Case) -> None:
    got, want = results[case.id]
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert_matches(g, w, case.tolerance)


def registered_ops() -> list[str]:
    return sorted(s.name for s in all_schemas() if s.family in FAMILIES)


@pytest.mark.parametrize("op", registered_ops())
def test_every_registered_op_has_a_lowering_and_a_case(op: str) -> None:
    if op in EXCEPTIONS:
        pytest.skip(EXCEPTIONS[op])
    assert op in supported_ops()
    assert any(c.op == op for c in CASES), f"no x86 kernel case for {op}"


def test_epilogue_chain_with_shared_operand(target) -> None:
    """x * y + x: one kernel, x read twice through one argument."""
    case = Case("chain", "Mul", [floats(), floats((8,))])
    node = case.build()
    graph = node.graph
    assert graph is not None
    from ir.builder import Builder

    (out,) = Builder(graph).op("Add", [node.results[0], node.operands[0]], name="add")
    kernel = lower_node(node, target, [out.producer])
    assert [a.role for a in kernel.args] == ["input", "input", "output"]
    assert kernel.sources == ("mul", "add")


def test_sub_byte_dtype_is_stored_a_byte_each(target) -> None:
    """i4 kernels take uint8 buffers, one element per byte (values checked in test_lowering_regressions)."""
    import ml_dtypes as md

    case = Case("i4", "Neg", [np.zeros((4,), md.int4)])
    kernel = lower_node(case.build(), target)
    assert [(a.shape, a.dtype) for a in kernel.args] == [((4,), "uint8"), ((4,), "uint8")]
