"""Quantized ops against onnxruntime and the ONNX reference evaluator: QuantizeLinear (per tensor, per
axis, per block), DequantizeLinear, requantization of int32 accumulators (the one rule of
ir/quantization.py), ConvInteger and MatMulInteger; `.hir` round-trip and inference errors."""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from onnx.reference import ReferenceEvaluator

from ir import Builder, DType, Graph, IRError, QuantParams, TensorType, run_graph
from ir.parser import parse_hir
from ir.printer import print_graph
from ir.quantization import multiplier, params_for_range

RNG = np.random.default_rng(11)


def onnx_model(node: onnx.NodeProto, inputs: list[tuple[str, np.ndarray]], inits: dict[str, np.ndarray],
               output: tuple[str, int], opset: int = 21) -> onnx.ModelProto:  # fmt: skip
    graph = helper.make_graph(
        [node],
        "q",
        [
            helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), a.shape)
            for n, a in inputs
        ],
        [helper.make_tensor_value_info(output[0], output[1], None)],
        [onnx.numpy_helper.from_array(a, n) for n, a in inits.items()],
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def ort_run(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> np.ndarray:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)[0]


def quantize_graph(x: np.ndarray, attrs: dict) -> Graph:
    graph = Graph("q")
    value = graph.add_input("x", TensorType(DType.F32, x.shape))
    (q,) = Builder(graph).op("QuantizeLinear", [value], attrs, name="q")
    graph.set_outputs([q])
    return graph


@pytest.mark.parametrize("dtype, onnx_dtype", [(DType.I8, TensorProto.INT8), (DType.U8, TensorProto.UINT8)])
def test_quantize_per_tensor_and_per_axis_match_onnxruntime(dtype, onnx_dtype) -> None:
    x = (RNG.standard_normal((2, 3, 5, 4)) * 3).astype(np.float32)
    zero = 0 if dtype is DType.I8 else 128
    for scale, axis in [((0.05,), None), ((0.02, 0.05, 0.11), 1)]:
        attrs = {"dtype": dtype, "scale": scale, "zero_point": (zero,) * len(scale), "axis": axis}
        ours = run_graph(quantize_graph(x, attrs), {"x": x})["q"]
        node = helper.make_node(
            "QuantizeLinear", ["x", "s", "z"], ["y"], axis=axis if axis is not None else 1
        )
        inits = {"s": np.array(scale if axis is not None else scale[0], np.float32)}
        inits["z"] = np.full(inits["s"].shape, zero, dtype.numpy)
        theirs = ort_run(onnx_model(node, [("x", x)], inits, ("y", onnx_dtype)), {"x": x})
        assert ours.dtype == theirs.dtype
        assert np.abs(ours.astype(int) - theirs.astype(int)).max() <= 1  # x*(1/s) vs x/s: ties may differ
        assert np.mean(ours != theirs) < 1e-3


def test_blocked_int4_quantize_and_dequantize_match_onnxruntime() -> None:
    x = RNG.standard_normal((6, 10)).astype(np.float32)
    scales = (RNG.uniform(0.05, 0.3, (6, 3))).astype(np.float32)  # blocks of 4 along axis 1: 4+4+2
    attrs = {"dtype": DType.I4, "scale": tuple(scales.ravel()), "zero_point": (0,) * 18, "axis": 1,
             "group_size": 4}  # fmt: skip
    graph = quantize_graph(x, attrs)
    builder = Builder(graph)
    (real,) = builder.op("DequantizeLinear", [graph.outputs[0]], name="dq")
    graph.set_outputs([graph.outputs[0], real])
    ours = run_graph(graph, {"x": x})
    q = helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], axis=1, block_size=4)
    dq = helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], axis=1, block_size=4)
    inits = {"s": scales, "z": np.zeros((6, 3), dtype=onnx.helper.tensor_dtype_to_np_dtype(TensorProto.INT4))}
    model = onnx_model(q, [("x", x)], inits, ("y", TensorProto.FLOAT))
    model.graph.node.append(dq)
    model.graph.output[0].name = "y"
    expected = ReferenceEvaluator(model).run(None, {"x": x})[0]
    np.testing.assert_allclose(ours["dq"], expected, rtol=0, atol=1e-6)


def test_requantize_follows_the_one_rule() -> None:
    acc = RNG.integers(-50000, 50000, (1, 4, 3, 3)).astype(np.int32)
    acc_scales = (0.001, 0.002, 0.0005, 0.003)
    graph = Graph("rq")
    x = graph.add_input("acc", TensorType(DType.I32, acc.shape, quant=QuantParams(acc_scales, (0,) * 4, 1)))
    (q,) = Builder(graph).op("QuantizeLinear", [x], {"dtype": DType.I8, "scale": (0.25,), "zero_point": (3,)})
    graph.set_outputs([q])
    ours = run_graph(graph, {"acc": acc})[q.name]
    m = multiplier(np.array(acc_scales).reshape(1, 4, 1, 1), 0.25)
    expected = np.clip(np.rint(acc.astype(np.float32) * m) + 3, -128, 127).astype(np.int8)
    np.testing.assert_array_equal(ours, expected)


def test_conv_integer_matches_onnx_reference() -> None:
    x = RNG.integers(0, 256, (1, 3, 7, 7)).astype(np.uint8)
    w = RNG.integers(-127, 128, (4, 3, 3, 3)).astype(np.int8)
    bias = RNG.integers(-1000, 1000, (4,)).astype(np.int32)
    graph = Graph("ci")
    xv = graph.add_input("x", TensorType(DType.U8, x.shape, quant=QuantParams((0.02,), (120,))))
    wv = graph.add_constant("w", w, TensorType(DType.I8, w.shape, quant=QuantParams((0.1,) * 4, (0,) * 4, 0)))
    bv = graph.add_constant("b", bias, TensorType(DType.I32, (4,)))
    attrs = {"strides": (2, 2), "pads": (1, 1, 1, 1), "dilations": (1, 1), "group": 1}
    (y,) = Builder(graph).op("ConvInteger", [xv, wv, bv], attrs, name="conv")
    graph.set_outputs([y])
    assert y.type.quant == QuantParams((0.02 * 0.1,) * 4, (0,) * 4, 1)
    ours = run_graph(graph, {"x": x})["conv"]
    node = helper.make_node("ConvInteger", ["x", "w", "xz"], ["y"], strides=[2, 2], pads=[1, 1, 1, 1])
    model = onnx_model(
        node, [("x", x)], {"w": w, "xz": np.array(120, np.uint8)}, ("y", TensorProto.INT32), 10
    )
    expected = ReferenceEvaluator(model).run(None, {"x": x})[0] + bias.reshape(1, 4, 1, 1)
    np.testing.assert_array_equal(ours, expected)


def test_matmul_integer_matches_onnxruntime() -> None:
    a = RNG.integers(-128, 128, (2, 5, 16)).astype(np.int8)
    w = RNG.integers(-127, 128, (16, 6)).astype(np.int8)
    graph = Graph("mi")
    av = graph.add_input("a", TensorType(DType.I8, a.shape, quant=QuantParams((0.5,), (-3,))))
    wv = graph.add_constant("w", w, TensorType(DType.I8, w.shape, quant=QuantParams((0.1,) * 6, (0,) * 6, 1)))
    (y,) = Builder(graph).op("MatMulInteger", [av, wv], name="mm")
    graph.set_outputs([y])
    assert y.type.quant is not None and y.type.quant.axis == 2
    ours = run_graph(graph, {"a": a})["mm"]
    node = helper.make_node("MatMulInteger", ["a", "w", "az"], ["y"])
    model = onnx_model(node, [("a", a)], {"w": w, "az": np.array(-3, np.int8)}, ("y", TensorProto.INT32), 10)
    np.testing.assert_array_equal(ours, ort_run(model, {"a": a}))


def test_quantized_graph_round_trips_hir() -> None:
    x = RNG.standard_normal((1, 3, 5, 5)).astype(np.float32)
    graph = quantize_graph(x, {"dtype": DType.U8, "scale": (0.03,), "zero_point": (128,)})
    w = RNG.integers(-127, 128, (2, 3, 1, 1)).astype(np.int8)
    wv = graph.add_constant("w", w, TensorType(DType.I8, w.shape, quant=QuantParams((0.1, 0.2), (0, 0), 0)))
    builder = Builder(graph)
    attrs = {"strides": (1, 1), "pads": (0, 0, 0, 0), "dilations": (1, 1), "group": 1}
    (acc,) = builder.op("ConvInteger", [graph.outputs[0], wv], attrs, name="conv")
    (y,) = builder.op("QuantizeLinear", [acc], {"dtype": DType.I8, "scale": (0.05,), "zero_point": (0,)})
    graph.set_outputs([y])
    text = print_graph(graph)
    assert "quant = (scale = [0.003, 0.006]" in text.replace("0.0030000000000000005", "0.003").replace(
        "0.006000000000000001", "0.006"
    )
    again = parse_hir(text)
    assert print_graph(again) == text
    np.testing.assert_array_equal(run_graph(again, {"x": x})[y.name], run_graph(graph, {"x": x})[y.name])


def test_inference_errors_name_the_problem() -> None:
    x = np.zeros((2, 3), np.float32)
    with pytest.raises(IRError, match="2 scale"):
        quantize_graph(x, {"dtype": DType.I8, "scale": (0.1, 0.2), "zero_point": (0, 0), "axis": 1})
    with pytest.raises(IRError, match="outside i8"):
        quantize_graph(x, {"dtype": DType.I8, "scale": (0.1,), "zero_point": (200,)})
    with pytest.raises(IRError, match="cannot hold quantized"):
        quantize_graph(x, {"dtype": DType.F16, "scale": (0.1,), "zero_point": (0,)})
    graph = Graph("bad")
    a = graph.add_input("a", TensorType(DType.I8, (2, 4), quant=QuantParams((0.1,), (0,))))
    w = graph.add_constant(
        "w", np.ones((4, 3), np.int8), TensorType(DType.I8, (4, 3), quant=QuantParams((0.1,), (2,)))
    )
    with pytest.raises(IRError, match="symmetrically"):
        Builder(graph).op("MatMulInteger", [a, w])


def test_params_for_range() -> None:
    assert params_for_range(-1.0, 3.0, DType.U8, symmetric=False) == pytest.approx((4 / 255, 64))
    scale, zero = params_for_range(-2.0, 1.0, DType.I8, symmetric=True)
    assert zero == 0 and scale == pytest.approx(2 / 127.5)


def test_verifier_checks_quantization_parameters() -> None:
    from ir import VerificationError, verify

    graph = Graph("v")
    x = graph.add_input("x", TensorType(DType.F32, (2, 3)))
    bad = TensorType(DType.I8, (3, 4), quant=QuantParams((0.1, 0.2), (0, 0), 0))  # 2 scales for 3 channels
    graph.add_constant("w", np.zeros((3, 4), np.int8), bad)
    graph.set_outputs([x])
    with pytest.raises(VerificationError, match=r"%w: 2 scale\(s\) for shape \[3, 4\], expected 3"):
        verify(graph)
    graph = quantize_graph(
        np.zeros((2, 3), np.float32), {"dtype": DType.I8, "scale": (0.1,), "zero_point": (0,)}
    )
    node = next(iter(graph.nodes))
    node.results[0].type = node.results[0].type.with_(quant=QuantParams((0.5,), (0,)))
    with pytest.raises(VerificationError, match="declared with quant"):
        verify(graph)


def test_accumulator_overflow_names_the_node() -> None:
    graph = Graph("o")
    x = graph.add_input("x", TensorType(DType.U8, (1, 1), quant=QuantParams((1.0,), (0,))))
    w_type = TensorType(DType.I8, (1, 1), quant=QuantParams((1.0,), (0,), 1))
    w = graph.add_constant("w", np.ones((1, 1), np.int8), w_type)
    b = graph.add_constant("b", np.array([2**31 - 1], np.int32))
    (y,) = Builder(graph).op("MatMulInteger", [x, w, b], name="mm")
    graph.set_outputs([y])
    with pytest.raises(IRError, match="MatMulInteger node 'mm': the int32 accumulator overflows"):
        run_graph(graph, {"x": np.array([[200]], np.uint8)})


@pytest.mark.parametrize(("op", "w_shape", "terms"), [("MatMulInteger", (65794, 2), 65794),
                                                      ("ConvInteger", (2, 7311, 3, 3), 65799)])  # fmt: skip
def test_a_reduction_that_can_overflow_int32_is_refused(
    op: str, w_shape: tuple[int, ...], terms: int
) -> None:
    # u8 X with zero point 0: |X| <= 255; i8 W: |W| <= 128; 65793 * 32640 < 2^31 <= 65794 * 32640
    graph = Graph("o")
    x_shape = (1, w_shape[0]) if op == "MatMulInteger" else (1, w_shape[1], 3, 3)
    x = graph.add_input("x", TensorType(DType.U8, x_shape, quant=QuantParams((1.0,), (0,))))
    w_type = TensorType(DType.I8, w_shape, quant=QuantParams((1.0,), (0,)))
    w = graph.add_constant("w", np.zeros(w_shape, np.int8), w_type)
    with pytest.raises(IRError, match=f"reduction over {terms} products of up to 32640 each can overflow"):
        attrs = {"strides": (1, 1), "pads": (0, 0, 0, 0), "dilations": (1, 1), "group": 1}
        Builder(graph).op(op, [x, w], attrs if op == "ConvInteger" else {})
    fits = TensorType(DType.I8, (65793, 2), quant=QuantParams((1.0,), (0,)))
    y = graph.add_input("y", TensorType(DType.U8, (1, 65793), quant=QuantParams((1.0,), (0,))))
    Builder(graph).op("MatMulInteger", [y, graph.add_constant("v", np.zeros((65793, 2), np.int8), fits)])
