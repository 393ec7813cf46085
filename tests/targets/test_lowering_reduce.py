"""Every reduce-family op, lowered for x86, built as one library and run through tvm_ffi, against the IR
op's numpy reference (exact for integers and indices, rel. err <= 1e-5 for f32/f64, 1e-2 for f16/bf16).
The op list comes from the registry, so a newly registered reduce op without a case fails.
"""

from __future__ import annotations

import ml_dtypes
import numpy as np
import pytest
from kernel_batch import Case, assert_matches, run_cases

from ir.ops.registry import all_schemas
from targets.lowering.dispatch import lower_node, supported_ops
from targets.registry import resolve_target

RNG = np.random.default_rng(3)
BF16 = np.dtype(ml_dtypes.bfloat16)
SHAPE = (2, 3, 4, 8)
EXCEPTIONS: dict[str, str] = {}


def floats(shape=SHAPE, dtype=np.float32, low=-2.0, high=2.0) -> np.ndarray:
    return RNG.uniform(low, high, shape).astype(dtype)


def ints(shape=SHAPE, dtype=np.int32, low=-5, high=5) -> np.ndarray:
    return RNG.integers(low, high + 1, shape).astype(dtype)


def with_nan(shape: tuple[int, ...], at: tuple[int, ...]) -> np.ndarray:
    data = floats(shape)
    data[at] = np.nan
    return data


AXES = [([1], 1), ([3], 0), ([1, 3], 1), ([0, 2], 0), ([0, 1, 2, 3], 0), ([], 1)]
REDUCTIONS = ["ReduceSum", "ReduceMean", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceL1", "ReduceL2",
              "ReduceLogSum", "ReduceLogSumExp", "ReduceSumSquare"]  # fmt: skip


def reduce_cases() -> list[Case]:
    cases = []
    for op in REDUCTIONS:
        positive = op == "ReduceLogSum"
        low, high = (0.1, 2.0) if positive else (-2.0, 2.0)
        if op == "ReduceProd":
            low, high = 0.6, 1.4
        for axes, keep in AXES:
            tag = "-".join(map(str, axes)) or "none"
            cases.append(
                Case(
                    f"{op}-f32-{tag}-k{keep}",
                    op,
                    [floats(low=low, high=high)],
                    {"axes": axes, "keepdims": keep},
                )
            )
        cases.append(
            Case(
                f"{op}-f16", op, [floats(dtype=np.float16, low=low, high=high)], {"axes": [3], "keepdims": 1}
            )
        )
        cases.append(
            Case(
                f"{op}-f64",
                op,
                [floats(dtype=np.float64, low=low, high=high)],
                {"axes": [1, 2], "keepdims": 0},
            )
        )
        if op not in ("ReduceLogSum", "ReduceLogSumExp"):
            low_i = 1 if op in ("ReduceProd",) else -5
            for dtype, axes in ((np.int32, [3]), (np.int64, [1]), (np.int8, [0, 2]), (np.uint8, [2, 3])):
                data = ints(
                    dtype=dtype, low=0 if dtype == np.uint8 else low_i, high=3 if op == "ReduceProd" else 5
                )
                cases.append(
                    Case(f"{op}-{np.dtype(dtype)}-{axes}", op, [data], {"axes": axes, "keepdims": 0})
                )
    cases += [
        Case("ReduceMax-bool", "ReduceMax", [RNG.random(SHAPE) > 0.7], {"axes": [3], "keepdims": 0}),
        Case("ReduceMin-bool", "ReduceMin", [RNG.random(SHAPE) > 0.3], {"axes": [1], "keepdims": 1}),
        Case("ReduceSum-bf16", "ReduceSum", [floats(dtype=BF16)], {"axes": [2], "keepdims": 1}),
        Case("ReduceMax-nan", "ReduceMax", [np.where(RNG.random(SHAPE) > 0.9, np.nan, floats())],
             {"axes": [3], "keepdims": 1}),
        Case("ReduceLogSumExp-inf", "ReduceLogSumExp",
             [np.where(RNG.random(SHAPE) > 0.8, -np.inf, floats(low=50, high=90))],
             {"axes": [3], "keepdims": 1}),
        Case("ReduceSum-large-f32", "ReduceSum", [floats((4, 96, 128))], {"axes": [1], "keepdims": 0}),
        # rows reduced in place over the last axis, large enough to run rows in parallel (ddddocr)
        Case("ReduceSum-rows-f32", "ReduceSum", [floats((32, 1024))], {"axes": [1], "keepdims": 0}),
        # max / min over the innermost group in lane partials (reduce_lanes.py): a whole tensor (the
        # DynamicQuantizeLinear range), rows with a NaN in one lane, rows of bytes
        Case("ReduceMin-whole-f32", "ReduceMin", [floats((1, 64, 8, 32))],
             {"axes": [0, 1, 2, 3], "keepdims": 0}),
        Case("ReduceMax-whole-nan", "ReduceMax", [with_nan((5, 96), (3, 37))],
             {"axes": [0, 1], "keepdims": 1}),
        Case("ReduceMax-rows-nan", "ReduceMax", [with_nan((6, 4, 64), (4, 1, 50))],
             {"axes": [2], "keepdims": 0}),
        Case("ReduceMin-rows-u8", "ReduceMin", [ints((3, 128), dtype=np.uint8, low=1, high=200)],
             {"axes": [1], "keepdims": 1}),
    ]  # fmt: skip
    return cases


def arg_cases() -> list[Case]:
    cases = []
    for op in ("ArgMax", "ArgMin"):
        for axis, keep, last in ((3, 1, 0), (1, 0, 0), (3, 0, 1), (0, 1, 1)):
            cases.append(Case(f"{op}-i32-ties-{axis}-{keep}-{last}", op, [ints(low=-2, high=2)],
                              {"axis": axis, "keepdims": keep, "select_last_index": last}))  # fmt: skip
        cases.append(Case(f"{op}-f32", op, [floats()], {"axis": 2, "keepdims": 1}))
        cases.append(Case(f"{op}-f16", op, [floats(dtype=np.float16)], {"axis": 3, "keepdims": 0}))
        cases.append(Case(f"{op}-bf16-last", op, [floats(dtype=BF16)], {"axis": 1, "select_last_index": 1}))
        cases.append(Case(f"{op}-u8", op, [ints(dtype=np.uint8, low=0, high=3)], {"axis": 3}))
        nan = np.where(RNG.random(SHAPE) > 0.85, np.nan, floats())
        cases.append(Case(f"{op}-nan", op, [nan], {"axis": 3, "keepdims": 1}))
    return cases


def softmax_cases() -> list[Case]:
    cases = []
    for op in ("Softmax", "LogSoftmax", "Hardmax"):
        cases.append(Case(f"{op}-f32-last", op, [floats(low=-30, high=30)], {"axis": 3}))
        cases.append(Case(f"{op}-f32-middle", op, [floats()], {"axis": 1}))
        cases.append(Case(f"{op}-f16", op, [floats(dtype=np.float16)], {"axis": 3}))
        cases.append(Case(f"{op}-f64-first", op, [floats(dtype=np.float64)], {"axis": 0}))
    cases.append(Case("Hardmax-ties", "Hardmax", [np.round(floats())], {"axis": 3}))
    cases.append(Case("Softmax-bf16", "Softmax", [floats(dtype=BF16)], {"axis": 2}))
    cases.append(Case("Softmax-large", "Softmax", [floats((64, 1024), low=-5, high=5)], {"axis": 1}))
    # f32 over a last axis of two vectors or more: lane partials (softmax_rows.py), rows padded by -inf
    padded_row = floats((2, 7, 45), low=-30, high=30)
    cases.append(Case("Softmax-f32-padded-row", "Softmax", [padded_row], {"axis": 2}))
    # rows shorter than two 16-float vectors: narrower lane partials (SSD's 21 classes: 8 floats)
    short_row = floats((3, 50, 21), low=-30, high=30)
    cases.append(Case("Softmax-f32-short-row", "Softmax", [short_row], {"axis": 2}))
    # a long row reduced in runs: 523 floats are 33 vectors of 16 (3 runs of 11) or 66 of 8 (6 runs)
    cases.append(Case("Softmax-f32-long-row", "Softmax", [floats((3, 523), low=-30, high=30)], {"axis": 1}))
    masked = np.where(RNG.random((4, 64)) > 0.7, -np.inf, floats((4, 64))).astype(np.float32)
    cases.append(Case("Softmax-f32-masked", "Softmax", [masked], {"axis": 1}))
    return cases


def topk_cases() -> list[Case]:
    return [
        Case("TopK-f32-last", "TopK", [floats()], {"k": 3, "axis": 3}),
        Case("TopK-f32-smallest-middle", "TopK", [floats()], {"k": 2, "axis": 1, "largest": 0}),
        Case("TopK-i32-ties", "TopK", [ints(low=-1, high=1)], {"k": 5, "axis": 3}),
        Case("TopK-i64-ties-smallest", "TopK", [ints(dtype=np.int64, low=-1, high=1)],
             {"k": 4, "axis": 2, "largest": 0}),
        Case("TopK-f16-all", "TopK", [floats(dtype=np.float16)], {"k": 8, "axis": 3}),
        Case("TopK-u8-first", "TopK", [ints(dtype=np.uint8, low=0, high=4)], {"k": 1, "axis": 0}),
        Case("TopK-nan", "TopK", [np.where(RNG.random(SHAPE) > 0.8, np.nan, floats())], {"k": 4, "axis": 3}),
        Case("TopK-bf16", "TopK", [floats(dtype=BF16)], {"k": 2, "axis": 3}),
    ]  # fmt: skip


CASES = reduce_cases() + arg_cases() + softmax_cases() + topk_cases()


@pytest.fixture(scope="module")
def results():
    return run_cases(CASES, resolve_target("x86"))


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_kernel_matches_reference(results, case: Case) -> None:
    got, want = results[case.id]
    assert len(got) == len(want)
    for g, w in zip(got, want, strict=True):
        assert_matches(g, w, case.tolerance)


@pytest.mark.parametrize("op", sorted(s.name for s in all_schemas() if s.family == "reduce"))
def test_every_registered_reduce_op_has_a_lowering_and_a_case(op: str) -> None:
    if op in EXCEPTIONS:
        pytest.skip(EXCEPTIONS[op])
    assert op in supported_ops()
    assert any(c.op == op for c in CASES), f"no x86 kernel case for {op}"


@pytest.mark.parametrize(
    ("case_id", "lanes"),
    [("Softmax-f32-padded-row", True), ("Softmax-f32-short-row", True), ("Softmax-f32-middle", False)],
)
def test_f32_last_axis_softmax_takes_lane_partials(case_id: str, lanes: bool) -> None:
    """A row of two vectors (of 4 floats or more) takes softmax_rows.py's stages; a softmax over a middle
    axis does not."""
    case = next(c for c in CASES if c.id == case_id)
    kernel = lower_node(case.build(), resolve_target("x86"))
    assert ("max_lanes" in str(kernel.compute)) is lanes
