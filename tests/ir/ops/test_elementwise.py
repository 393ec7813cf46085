"""Elementwise-family ops: one-node ONNX models of several opsets and dtypes through HAI, against
onnxruntime (or the ONNX reference evaluator where onnxruntime lacks the kernel), plus the
inference errors a bad graph gets."""

from __future__ import annotations

import ml_dtypes
import numpy as np
import onnx
import pytest
from one_node_onnx import assert_close, feeds_of, one_node_model, run_hai, run_onnxruntime, run_reference
from onnx import TensorProto, helper

from hai_compiler.onnx_backend import HaiBackend, HaiCompiledBackend
from hai_compiler.onnx_import import import_onnx
from hai_compiler.onnx_import.converter import ConversionError
from ir import Builder, DType, Graph, IRError, TensorType, run_graph

RNG = np.random.default_rng(11)
F = RNG.standard_normal((2, 3, 4)).astype(np.float32)
G = RNG.standard_normal((3, 1)).astype(np.float32) + 2.5
P = np.abs(F) + 0.1
N = RNG.integers(-20, 20, (2, 3, 4)).astype(np.int32)
M = np.array([[3], [-4], [7]], np.int32)
B1 = RNG.random((2, 3, 4)) > 0.5
B2 = RNG.random((3, 4)) > 0.5
SPECIAL = np.array([-np.inf, -2.5, -0.5, 0.0, 0.5, 1.5, 2.5, np.inf, np.nan], np.float32)


def run_both(op, inputs, opset=13, consts=(), n_out=1, **attrs):  # type: ignore[no-untyped-def]
    model = one_node_model(op, inputs, [f"y{i}" for i in range(n_out)], opset, constants=consts, **attrs)
    feeds = feeds_of(inputs)
    return run_hai(model, feeds), model, feeds


BINARY = [
    ("Add", F, G),
    ("Sub", N, M),
    ("Mul", F, G),
    ("Div", F, G),
    ("Div", N, M),
    ("Pow", P, G),
    ("Pow", P, np.array([2, 3, -1], np.int64)[:, None]),
    ("Pow", N, np.array(2, np.int32)),
    ("Mod", N, M),
    ("Equal", N, M),
    ("Greater", F, G - 2.5),
    ("Less", N, M),
    ("GreaterOrEqual", F, F[:1]),
    ("LessOrEqual", N, M),
    ("And", B1, B2),
    ("Or", B1, B2),
    ("Xor", B1, B2),
    ("Max", F, G - 2.5),
    ("Min", N, M),
    ("Sum", F, G),
    ("Mean", F, G),
]


@pytest.mark.parametrize(("op", "a", "b"), BINARY, ids=[f"{c[0]}-{c[1].dtype}-{c[2].dtype}" for c in BINARY])
def test_broadcasting_binary_ops_match_onnxruntime(op: str, a: np.ndarray, b: np.ndarray) -> None:
    ours, model, feeds = run_both(op, [("a", a), ("b", b)])
    assert_close(ours, run_onnxruntime(model, feeds), rtol=1e-6, atol=1e-6)


@pytest.mark.parametrize("dtype", [np.int8, np.int16, np.int64, np.uint8])
def test_integer_division_truncates_toward_zero(dtype: type) -> None:
    a = np.array([7, -7, 7, -7, 0, 9], dtype if dtype != np.uint8 else np.int16).astype(dtype)
    b = (
        np.array([2, 2, -2, -2, 3, 4], np.int16).astype(dtype)
        if dtype != np.uint8
        else np.array([2] * 6, dtype)
    )
    ours, model, feeds = run_both("Div", [("a", a), ("b", b)], opset=14)
    assert_close(ours, run_reference(model, feeds), rtol=0, atol=0)


@pytest.mark.parametrize(
    ("fmod", "dtype"), [(0, np.int32), (1, np.int32), (0, np.int64), (1, np.int64), (1, np.float32)]
)
def test_mod_sign_follows_divisor_or_dividend(fmod: int, dtype: type) -> None:
    a = np.array([5, -5, 5, -5, 7.5 if dtype == np.float32 else 7], dtype)
    b = np.array([3, 3, -3, -3, 2], dtype)
    ours, model, feeds = run_both("Mod", [("a", a), ("b", b)], fmod=fmod)
    assert_close(ours, run_onnxruntime(model, feeds), rtol=0, atol=1e-6)


def test_variadic_ops_take_three_broadcasting_operands() -> None:
    inputs = [("a", F), ("b", G), ("c", F[0, :1, :])]
    for op in ("Sum", "Mean", "Max", "Min"):
        ours, model, feeds = run_both(op, inputs, opset=8)
        assert_close(ours, run_onnxruntime(model, feeds), rtol=1e-6, atol=1e-6)
    ours, model, feeds = run_both("Sum", [("a", N)], opset=13)  # one operand: itself
    assert_close(ours, [N], rtol=0, atol=0)


UNARY = [
    "Neg",
    "Abs",
    "Reciprocal",
    "Floor",
    "Ceil",
    "Round",
    "Sign",
    "Exp",
    "Log",
    "Sqrt",
    "Erf",
    "Sin",
    "Cos",
    "Tan",
    "Asin",
    "Acos",
    "Atan",
    "Sinh",
    "Cosh",
    "Asinh",
    "Atanh",
    "IsNaN",
]


@pytest.mark.parametrize("op", UNARY)
def test_float_unary_ops_match_onnxruntime(op: str) -> None:
    x = np.concatenate([SPECIAL, (F.reshape(-1) * 0.9)]).astype(np.float32)
    ours, model, feeds = run_both(op, [("x", x)])
    assert_close(ours, run_onnxruntime(model, feeds), rtol=2e-6, atol=1e-6)


@pytest.mark.parametrize("op", ["Neg", "Abs", "Sign"])
def test_integer_unary_ops_match_onnxruntime(op: str) -> None:
    ours, model, feeds = run_both(op, [("x", N)])
    assert_close(ours, run_onnxruntime(model, feeds), rtol=0, atol=0)


def test_round_is_half_to_even() -> None:
    ours, _, _ = run_both("Round", [("x", SPECIAL)])
    np.testing.assert_array_equal(ours[0], [-np.inf, -2, -0, 0, 0, 2, 2, np.inf, np.nan])


@pytest.mark.parametrize(("negative", "positive"), [(1, 1), (1, 0), (0, 1), (0, 0)])
def test_isinf_detects_the_chosen_signs(negative: int, positive: int) -> None:
    ours, model, feeds = run_both(
        "IsInf", [("x", SPECIAL)], opset=10, detect_negative=negative, detect_positive=positive
    )
    assert_close(ours, run_onnxruntime(model, feeds), rtol=0, atol=0)


def test_not_and_where() -> None:
    ours, model, feeds = run_both("Not", [("x", B1)])
    assert_close(ours, run_onnxruntime(model, feeds), rtol=0, atol=0)
    ours, model, feeds = run_both("Where", [("c", B2), ("x", F), ("y", G)], opset=9)
    assert_close(ours, run_onnxruntime(model, feeds), rtol=0, atol=0)


CASTS = [
    (F * 300, TensorProto.INT8),
    (F * 10, TensorProto.INT32),
    (F, TensorProto.BOOL),
    (F, TensorProto.FLOAT16),
    (F, TensorProto.DOUBLE),
    (N, TensorProto.FLOAT),
    (N, TensorProto.UINT8),
    (B1, TensorProto.FLOAT),
    (N.astype(np.int64), TensorProto.INT16),
    (F.astype(np.float16), TensorProto.FLOAT),
]


@pytest.mark.parametrize(
    ("x", "to"), CASTS, ids=[f"{c[0].dtype}-{TensorProto.DataType.Name(c[1])}" for c in CASTS]
)
def test_cast_matches_onnxruntime(x: np.ndarray, to: int) -> None:
    ours, model, feeds = run_both("Cast", [("x", x)], to=to)
    assert_close(ours, run_onnxruntime(model, feeds), rtol=0, atol=0)


def test_cast_to_bfloat16_rounds_to_nearest_even() -> None:
    ours, model, feeds = run_both("Cast", [("x", F)], opset=19, to=TensorProto.BFLOAT16)
    assert ours[0].dtype == ml_dtypes.bfloat16
    assert_close(ours, run_reference(model, feeds), rtol=0, atol=0)


def test_castlike_becomes_cast_to_the_like_dtype() -> None:
    model = one_node_model("CastLike", [("x", F), ("like", np.zeros(1, np.float16))], ["y"], 15)
    (node,) = import_onnx(model).nodes
    assert (node.op, node.attrs["to"]) == ("Cast", DType.F16)
    feeds = {"x": F, "like": np.zeros(1, np.float16)}
    assert_close(run_hai(model, feeds), run_onnxruntime(model, feeds), rtol=0, atol=0)


def test_cast_to_an_unsupported_dtype_names_the_node() -> None:
    model = one_node_model("Cast", [("x", F)], ["y"], 13, to=TensorProto.UINT32)
    with pytest.raises(ConversionError, match=r"Cast.*'to'.*UINT32"):
        import_onnx(model)


CLIPS = [
    ("opset7-attrs", 7, [("x", F)], [], {"min": -0.5, "max": 0.7}),
    ("opset10-min-only", 10, [("x", F)], [], {"min": 0.1}),
    (
        "opset11-inputs",
        11,
        [("x", F)],
        [("lo", np.array(-0.3, np.float32)), ("hi", np.array(0.2, np.float32))],
        {},
    ),
    ("opset13-max-only", 13, [("x", F)], [("lo", None), ("hi", np.array(0.2, np.float32))], {}),
    ("opset13-no-bounds", 13, [("x", F)], [], {}),
    (
        "opset13-min-over-max",
        13,
        [("x", F)],
        [("lo", np.array(1, np.float32)), ("hi", np.array(0, np.float32))],
        {},
    ),
    ("opset13-int8", 13, [("x", (N * 6).astype(np.int8))], [("lo", np.array(-100, np.int8))], {}),
    (
        "opset13-int64-extremes",
        13,
        [("x", N.astype(np.int64) << 40)],
        [
            ("lo", np.array(np.iinfo(np.int64).min, np.int64)),
            ("hi", np.array(np.iinfo(np.int64).max, np.int64)),
        ],
        {},
    ),
]


@pytest.mark.parametrize(
    ("opset", "inputs", "consts", "attrs"), [c[1:] for c in CLIPS], ids=[c[0] for c in CLIPS]
)
def test_clip_bounds_from_attributes_or_inputs(opset, inputs, consts, attrs) -> None:  # type: ignore[no-untyped-def]
    ours, model, feeds = run_both("Clip", inputs, opset=opset, consts=consts, **attrs)
    assert_close(ours, run_onnxruntime(model, feeds), rtol=0, atol=0)


RUNTIME_CLIPS = [  # (an absent bound with an infinite x: onnxruntime clips to FLT_MAX, the reference not)
    ("min-and-max", [("x", F), ("lo", np.array(-0.3, np.float32)), ("hi", np.array(0.2, np.float32))]),
    ("min-over-max", [("x", F), ("lo", np.array(1, np.float32)), ("hi", np.array(0, np.float32))]),
    ("max-only", [("x", F), ("lo", None), ("hi", np.array(0.7, np.float32))]),
    ("min-only", [("x", F), ("lo", np.array(-0.5, np.float32))]),
    ("nan-inf", [("x", SPECIAL), ("lo", np.array(-1, np.float32)), ("hi", np.array(2, np.float32))]),
    ("int32", [("x", N), ("lo", np.array(-7, np.int32)), ("hi", np.array(9, np.int32))]),
    (
        "bounds-of-shape-1",
        [("x", F), ("lo", np.array([-0.3], np.float32)), ("hi", np.array([0.2], np.float32))],
    ),
]


@pytest.mark.parametrize("backend", [HaiBackend, HaiCompiledBackend], ids=["interpreted", "compiled"])
@pytest.mark.parametrize("inputs", [c[1] for c in RUNTIME_CLIPS], ids=[c[0] for c in RUNTIME_CLIPS])
def test_clip_bounds_computed_at_run_time(inputs, backend) -> None:  # type: ignore[no-untyped-def]
    model = one_node_model("Clip", inputs, ["y"], 13)
    feeds = feeds_of(inputs)
    ops = {n.op for n in import_onnx(model).nodes}
    assert "Clip" not in ops and ops & {"Max", "Min"}
    assert_close(list(backend.prepare(model).run(feeds)), run_onnxruntime(model, feeds), rtol=0, atol=0)


def test_clip_min_computed_from_the_input_matches_onnxruntime_compiled() -> None:
    """openWakeWord's log-mel floor: Clip(x, min=max(x) - 80) with a constant max of +inf."""
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 5, 32])
    y = helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 5, 32])
    nodes = [
        helper.make_node("ReduceMax", ["x"], ["top"], keepdims=0),
        helper.make_node("Sub", ["top", "range"], ["floor"]),
        helper.make_node("Clip", ["x", "floor", "ceiling"], ["y"]),
    ]
    constants = [
        onnx.numpy_helper.from_array(np.array(80, np.float32), "range"),
        onnx.numpy_helper.from_array(np.array(np.inf, np.float32), "ceiling"),
    ]
    model = helper.make_model(
        helper.make_graph(nodes, "log_floor", [x], [y], constants),
        opset_imports=[helper.make_opsetid("", 13)],
    )
    feeds = {"x": (RNG.standard_normal((1, 5, 32)) * 60).astype(np.float32)}
    expected = run_onnxruntime(model, feeds)
    assert (expected[0] != feeds["x"]).any(), "the floor must clip something"
    assert_close(list(HaiCompiledBackend.prepare(model).run(feeds)), expected, rtol=0, atol=0)


@pytest.mark.parametrize(
    ("opset", "mask_dtype"), [(7, np.float32), (10, np.bool_), (12, np.bool_), (13, np.bool_)]
)
def test_inference_dropout_is_the_input_and_a_mask_of_ones(opset: int, mask_dtype: type) -> None:
    ours, model, feeds = run_both("Dropout", [("x", F)], opset=opset, n_out=2)
    # the mask type is T before opset 10 and bool after (ONNX's schemas); onnxruntime fills the mask
    # with zeros before opset 12 and ones after, which is what the newer spec and ONNX's reference say
    assert_close(ours, [F, np.ones(F.shape, mask_dtype)], rtol=0, atol=0)
    if opset >= 12:
        assert_close(ours, run_onnxruntime(model, feeds), rtol=0, atol=0)
    assert not any(node.op == "Dropout" for node in import_onnx(model).nodes)


def test_training_dropout_is_accepted_only_when_it_drops_nothing() -> None:
    zero, half, true = np.array(0, np.float32), np.array(0.5, np.float32), np.array(True)
    ours, model, feeds = run_both("Dropout", [("x", F)], opset=13, consts=[("r", zero), ("t", true)], n_out=2)
    assert_close(ours, run_onnxruntime(model, feeds), rtol=0, atol=0)
    model = one_node_model("Dropout", [("x", F)], ["y"], 13, constants=[("r", half), ("t", true)])
    with pytest.raises(ConversionError, match="training-mode Dropout"):
        import_onnx(model)


def test_half_types_round_once_from_f32() -> None:
    graph = Graph()
    a = graph.add_input("a", TensorType(DType.BF16, (4,)))
    b = graph.add_input("b", TensorType(DType.BF16, (4,)))
    (y,) = Builder(graph).op("Div", [a, b], name="y")
    graph.set_outputs([y])
    x1 = np.array([1, 2, 3, 1e30], ml_dtypes.bfloat16)
    x2 = np.array([3, 7, 0, 1e-30], ml_dtypes.bfloat16)
    with np.errstate(divide="ignore", over="ignore"):
        want = (x1.astype(np.float32) / x2.astype(np.float32)).astype(ml_dtypes.bfloat16)
    got = run_graph(graph, {"a": x1, "b": x2})["y"]
    np.testing.assert_array_equal(got.astype(np.float32), want.astype(np.float32))


@pytest.mark.parametrize(
    ("op", "types", "message"),
    [
        ("Add", [(DType.F32, (2, 3)), (DType.F32, (4,))], r"shapes \[2, 3\] and \[4\] do not broadcast"),
        ("Add", [(DType.F32, (2,)), (DType.I32, (2,))], "share one dtype"),
        ("And", [(DType.F32, (2,)), (DType.F32, (2,))], "operand A must be a bool tensor"),
        ("Exp", [(DType.I32, (2,))], "operand X must be a float tensor"),
        ("Neg", [(DType.U8, (2,))], "signed"),
        ("Mean", [(DType.F32, (2,)), (DType.I64, (2,))], "operand inputs\\[1\\] must be a float"),
        ("Sum", [], "at least one operand"),
        ("Where", [(DType.F32, (2,)), (DType.F32, (2,)), (DType.F32, (2,))], "condition must be a bool"),
        ("Where", [(DType.BOOL, (3,)), (DType.F32, (2,)), (DType.F32, (2,))], "do not broadcast"),
    ],
)
def test_inference_errors_name_the_problem(op: str, types: list, message: str) -> None:
    graph = Graph()
    operands = [graph.add_input(f"x{i}", TensorType(d, s)) for i, (d, s) in enumerate(types)]
    with pytest.raises(IRError, match=rf"{op} node 'n'.*{message}"):
        Builder(graph).op(op, operands, name="n")
