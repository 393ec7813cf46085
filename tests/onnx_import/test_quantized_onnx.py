"""ONNX's quantized ops (QuantizeLinear/DequantizeLinear with scale and zero-point operands, ConvInteger,
MatMulInteger, QLinearConv, QLinearMatMul) import into HAI's quantized IR ops and match onnxruntime within
1 LSB; quantized ops HAI has no converter for are one clear UnsupportedModelError naming each node."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from hai_compiler.onnx_import.converter import ConversionError, UnsupportedModelError, imports
from hai_compiler.onnx_import.importer import import_onnx
from ir import Interpreter

RNG = np.random.default_rng(6)


def make_model(nodes, inputs, outputs, inits, opset: int = 19) -> onnx.ModelProto:  # type: ignore[no-untyped-def]
    graph = helper.make_graph(nodes, "q", inputs, outputs, [numpy_helper.from_array(a, n) for n, a in inits])
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def run_both(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> tuple[list, list]:  # type: ignore[type-arg]
    expected = ort.InferenceSession(model.SerializeToString()).run(None, feeds)
    actual = list(Interpreter(import_onnx(model)).run(feeds).values())
    return expected, actual


def qdq_model(zero: np.ndarray, shape: list[int], axis: int | None = None) -> onnx.ModelProto:
    attrs = {} if axis is None else {"axis": axis}
    scale = np.full(zero.shape, 0.05, np.float32) * (
        1 + np.arange(zero.size, dtype=np.float32).reshape(zero.shape)
    )
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="quant", **attrs),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], name="dequant", **attrs),
    ]
    elem = helper.np_dtype_to_tensor_dtype(zero.dtype)
    return make_model(
        nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)],
        [helper.make_tensor_value_info("q", elem, shape),
         helper.make_tensor_value_info("y", TensorProto.FLOAT, shape)],
        [("s", scale), ("z", zero)],
    )  # fmt: skip


@pytest.mark.parametrize(
    "zero, axis",
    [(np.array(128, np.uint8), None), (np.array(-3, np.int8), None), (np.array([0, 5, -7], np.int8), 1)],
    ids=["u8", "i8", "i8-per-axis"],
)
def test_qdq_round_trip_matches_onnxruntime(zero: np.ndarray, axis: int | None) -> None:
    x = RNG.normal(0, 3, (2, 3, 4, 5)).astype(np.float32)
    (q_ort, y_ort), (q_hai, y_hai) = run_both(qdq_model(zero, [2, 3, 4, 5], axis), {"x": x})
    assert q_hai.dtype == q_ort.dtype
    assert np.abs(q_hai.astype(np.int64) - q_ort.astype(np.int64)).max() <= 1  # the .5-tie rule
    step = 0.05 * zero.size
    np.testing.assert_allclose(y_hai, y_ort, atol=step * 1.001, rtol=0)


def test_dequantized_weight_initializer_keeps_its_quant_type() -> None:
    w = RNG.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8)
    nodes = [
        helper.make_node("DequantizeLinear", ["w", "ws", "wz"], ["wf"], axis=0, name="dq_w"),
        helper.make_node("Conv", ["x", "wf"], ["y"], name="conv"),
    ]
    scales = np.linspace(0.01, 0.04, 4).astype(np.float32)
    model = make_model(
        nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 6, 6])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [1, 4, 4, 4])],
        [("w", w), ("ws", scales), ("wz", np.zeros(4, np.int8))],
    )  # fmt: skip
    graph = import_onnx(model)
    (dq,) = [n for n in graph.nodes if n.op == "DequantizeLinear"]
    assert dq.operands[0].type.quant is not None and dq.operands[0].type.quant.axis == 0
    x = RNG.normal(size=(1, 3, 6, 6)).astype(np.float32)
    (expected,), (actual,) = run_both(model, {"x": x})
    np.testing.assert_allclose(actual, expected, rtol=1e-5, atol=1e-5)


def qlinear_conv_model(bias: bool) -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    w = RNG.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8)
    inits = [
        ("xs", np.array(0.02, np.float32)), ("xz", np.array(120, np.uint8)), ("w", w),
        ("ws", np.linspace(0.002, 0.005, 4).astype(np.float32)), ("wz", np.zeros(4, np.int8)),
        ("ys", np.array(0.1, np.float32)), ("yz", np.array(100, np.uint8)),
    ]  # fmt: skip
    names = ["x", "xs", "xz", "w", "ws", "wz", "ys", "yz"]
    if bias:
        inits.append(("b", RNG.integers(-2000, 2000, 4).astype(np.int32)))
        names.append("b")
    node = helper.make_node("QLinearConv", names, ["y"], pads=[1, 1, 1, 1], name="qconv")
    model = make_model(
        [node], [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 3, 8, 8])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, [1, 4, 8, 8])], inits, opset=13,
    )  # fmt: skip
    return model, {"x": RNG.integers(0, 256, (1, 3, 8, 8)).astype(np.uint8)}


def qlinear_matmul_model() -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    inits = [
        ("as", np.array(0.03, np.float32)), ("az", np.array(-5, np.int8)),
        ("b", RNG.integers(-127, 128, (16, 6)).astype(np.int8)), ("bs", np.array(0.004, np.float32)),
        ("bz", np.array(0, np.int8)), ("ys", np.array(0.05, np.float32)), ("yz", np.array(3, np.int8)),
    ]  # fmt: skip
    node = helper.make_node(
        "QLinearMatMul", ["a", "as", "az", "b", "bs", "bz", "ys", "yz"], ["y"], name="qmm"
    )
    model = make_model(
        [node], [helper.make_tensor_value_info("a", TensorProto.INT8, [5, 16])],
        [helper.make_tensor_value_info("y", TensorProto.INT8, [5, 6])], inits, opset=13,
    )  # fmt: skip
    return model, {"a": RNG.integers(-128, 128, (5, 16)).astype(np.int8)}


def integer_models() -> list[tuple[onnx.ModelProto, dict[str, np.ndarray]]]:
    """MatMulInteger with a u8 weight whose zero point re-centres into i8, and ConvInteger."""
    b = RNG.integers(60, 200, (16, 6)).astype(np.uint8)
    mm = make_model(
        [helper.make_node("MatMulInteger", ["a", "b", "az", "bz"], ["y"], name="mmi")],
        [helper.make_tensor_value_info("a", TensorProto.UINT8, [5, 16])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [5, 6])],
        [("b", b), ("az", np.array(7, np.uint8)), ("bz", np.array(128, np.uint8))], opset=13,
    )  # fmt: skip
    w = RNG.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8)
    conv = make_model(
        [helper.make_node("ConvInteger", ["x", "w", "xz"], ["y"], strides=[2, 2], name="convi")],
        [helper.make_tensor_value_info("x", TensorProto.UINT8, [1, 3, 9, 9])],
        [helper.make_tensor_value_info("y", TensorProto.INT32, [1, 4, 4, 4])],
        [("w", w), ("xz", np.array(9, np.uint8))], opset=13,
    )  # fmt: skip
    return [
        (mm, {"a": RNG.integers(0, 256, (5, 16)).astype(np.uint8)}),
        (conv, {"x": RNG.integers(0, 256, (1, 3, 9, 9)).astype(np.uint8)}),
    ]


@pytest.mark.parametrize(
    "case", range(5), ids=["qconv", "qconv-bias", "qmatmul", "matmulinteger", "convinteger"]
)
def test_quantized_products_match_onnxruntime(case: int) -> None:
    models = [qlinear_conv_model(False), qlinear_conv_model(True), qlinear_matmul_model(), *integer_models()]
    model, feeds = models[case]
    (expected,), (actual,) = run_both(model, feeds)
    assert actual.dtype == expected.dtype and actual.shape == expected.shape
    tolerance = 0 if expected.dtype == np.int32 else 1  # exact integer products; requantizing: 1 LSB
    assert np.abs(actual.astype(np.int64) - expected.astype(np.int64)).max() <= tolerance
    ops = {n.op for n in import_onnx(model).nodes}
    assert ops & {"ConvInteger", "MatMulInteger"}, ops  # the integer kernels, not float ops


def test_compiled_quantized_products_match_onnxruntime(tmp_path) -> None:  # type: ignore[no-untyped-def]
    import runtime
    from hai_compiler.compiler import CompileOptions, compile_model

    for index, (model, feeds) in enumerate([qlinear_conv_model(True), qlinear_matmul_model()]):
        (expected,) = ort.InferenceSession(model.SerializeToString()).run(None, feeds)
        path = compile_model(import_onnx(model), tmp_path / f"m{index}.hai", CompileOptions()).path
        (actual,) = runtime.load(path).run(feeds).values()
        assert np.abs(actual.astype(np.int64) - expected.astype(np.int64)).max() <= 1


def test_run_time_scale_is_a_conversion_error_naming_the_node() -> None:
    nodes = [helper.make_node("QuantizeLinear", ["x", "s"], ["q"], name="quant")]
    model = make_model(
        nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3]),
                helper.make_tensor_value_info("s", TensorProto.FLOAT, [])],
        [helper.make_tensor_value_info("q", TensorProto.UINT8, [3])], [],
    )  # fmt: skip
    with pytest.raises(ConversionError, match=r"'quant' \(QuantizeLinear\).*compile time"):
        import_onnx(model)


def test_every_node_of_an_unsupported_scheme_is_listed_in_one_error() -> None:
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s"], ["q"], name="quant_a"),
        helper.make_node("DequantizeLinear", ["q", "s"], ["d"], name="after_a"),  # downstream: not listed
        helper.make_node("QuantizeLinear", ["x", "t"], ["r"], name="quant_b"),
    ]
    scalar = [helper.make_tensor_value_info(name, TensorProto.FLOAT, []) for name in ("s", "t")]
    model = make_model(
        nodes, [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3]), *scalar],
        [helper.make_tensor_value_info("d", TensorProto.FLOAT, [3]),
         helper.make_tensor_value_info("r", TensorProto.UINT8, [3])], [],
    )  # fmt: skip
    with pytest.raises(ConversionError) as caught:
        import_onnx(model)
    lines = str(caught.value).splitlines()
    assert lines[0] == "2 nodes cannot be converted:"
    assert "'quant_a' (QuantizeLinear)" in lines[1] and "'quant_b' (QuantizeLinear)" in lines[2]
    assert len(lines) == 3


def test_unsupported_quantized_ops_are_reported_by_name() -> None:
    assert imports("QuantizeLinear") and imports("QLinearConv") and not imports("QAttention", "com.microsoft")
    nodes = [
        helper.make_node("QAttention", ["x"], ["q", "s", "z"], name="dynq", domain="com.microsoft"),
        helper.make_node("QLinearWhere", ["q", "s", "z", "q", "s", "z", "s", "z"], ["y"], name="qwhere",
                         domain="com.microsoft"),
    ]  # fmt: skip
    graph = helper.make_graph(
        nodes, "unsupported", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, [2, 3])],
    )  # fmt: skip
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 19), helper.make_opsetid("com.microsoft", 1)]
    )
    with pytest.raises(UnsupportedModelError, match=r"(?s)QAttention.*dynq.*QLinearWhere.*qwhere"):
        import_onnx(model)
