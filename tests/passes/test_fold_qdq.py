"""fold-qdq: QDQ layers become ConvInteger/MatMulInteger; the interpreter agrees within 1 LSB.

The QDQ models are small float ONNX models quantized by onnxruntime's own
quantize_static (QDQ format) on a few random calibration feeds; the reference
is the interpreter on the unfolded (imported) graph.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from hai_compiler.onnx_import import import_onnx
from ir import Builder, DType, Graph, TensorType, run_graph
from ir.quantization import PRECISION_SOURCE_KEY
from ir.types import QuantParams
from passes import PassContext, PassManager, parse_pipeline
from passes.fold_qdq import FoldQdq

quantization = pytest.importorskip("onnxruntime.quantization")

PREPARE = "infer-shapes,fold-constants"
LAYER_OPS = {"Conv", "MatMul", "Gemm"}


# -- models ----------------------------------------------------------------------------------------------


def float_model(layer: str, bias: bool, seed: int = 0) -> tuple[onnx.ModelProto, tuple[int, ...]]:
    """A one-layer float model (+ Relu) with constant weights; its input shape."""
    rng = np.random.default_rng(seed)
    inits, attrs = [], {}
    if layer == "Conv":
        shape, w_shape, b_len = (1, 3, 6, 6), (4, 3, 3, 3), 4
        attrs = {"pads": [1, 1, 1, 1]}
    elif layer == "MatMul":
        shape, w_shape, b_len = (2, 8), (8, 5), 0
    else:  # Gemm with transB: W is (N, K)
        shape, w_shape, b_len = (2, 8), (5, 8), 5
        attrs = {"transB": 1}
    inits.append(helper.make_tensor("W", TensorProto.FLOAT, w_shape, rng.uniform(-1, 1, w_shape).ravel()))
    inputs = ["x", "W"]
    if bias and b_len:
        inits.append(helper.make_tensor("B", TensorProto.FLOAT, (b_len,), rng.uniform(-0.5, 0.5, b_len)))
        inputs.append("B")
    nodes = [helper.make_node(layer, inputs, ["y"], **attrs), helper.make_node("Relu", ["y"], ["out"])]
    x = helper.make_tensor_value_info("x", TensorProto.FLOAT, shape)
    out = helper.make_tensor_value_info("out", TensorProto.FLOAT, None)
    graph = helper.make_graph(nodes, "layer", [x], [out], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), shape


class Feeds(quantization.CalibrationDataReader):
    def __init__(self, feeds: list[dict[str, np.ndarray]]) -> None:
        self.feeds = iter(feeds)

    def get_next(self) -> dict[str, np.ndarray] | None:
        return next(self.feeds, None)


def quantized(
    model: onnx.ModelProto,
    shape: tuple[int, ...],
    tmp_path: Path,
    activation: str,
    weight: str = "QInt8",
    per_channel: bool = True,
    **extra: object,
) -> onnx.ModelProto:
    rng = np.random.default_rng(1)
    feeds = [{"x": rng.standard_normal(shape).astype(np.float32)} for _ in range(8)]
    source, target = tmp_path / "float.onnx", tmp_path / "qdq.onnx"
    onnx.save(model, str(source))
    quantization.quantize_static(
        str(source), str(target), Feeds(feeds),
        quant_format=quantization.QuantFormat.QDQ, per_channel=per_channel,
        activation_type=getattr(quantization.QuantType, activation),
        weight_type=getattr(quantization.QuantType, weight), extra_options=dict(extra),
    )  # fmt: skip
    return onnx.load(str(target))


def prepared(model: onnx.ModelProto) -> Graph:
    graph = import_onnx(model)
    return PassManager(parse_pipeline(PREPARE)).run(graph)


def fold(graph: Graph) -> tuple[Graph, PassContext]:
    ctx = PassContext()
    return PassManager([FoldQdq()], verify_each=True).run(graph, ctx), ctx


def output_lsb(graph: Graph) -> float:
    """The scale of the quantized value the graph's output dequantizes."""
    producer = graph.outputs[0].producer
    assert producer is not None and producer.op == "DequantizeLinear"
    quant = producer.operands[0].type.quant  # type: ignore[union-attr]
    assert quant is not None
    return quant.scale[0]


def assert_within_one_lsb(before: Graph, after: Graph, inputs: dict[str, np.ndarray], lsb: float) -> None:
    want, got = run_graph(before, inputs), run_graph(after, inputs)
    for name in want:
        steps = np.abs(got[name].astype(np.float64) - want[name]) / lsb
        assert steps.max() <= 1.0 + 1e-6, f"{name}: {steps.max():.2f} LSB apart"


def random_input(graph: Graph, seed: int = 2) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    return {v.name: rng.standard_normal(v.type.shape).astype(np.float32) for v in graph.inputs}


def ops(graph: Graph) -> list[str]:
    return [node.op for node in graph.nodes]


# -- onnxruntime QDQ models ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("layer", "activation", "per_channel", "bias"),
    [
        ("Conv", "QUInt8", True, True),
        ("Conv", "QInt8", False, True),
        ("Conv", "QUInt8", False, False),
        ("MatMul", "QUInt8", True, False),
        ("MatMul", "QInt8", False, False),
        ("Gemm", "QUInt8", True, True),
        ("Gemm", "QInt8", False, False),
    ],
)
def test_qdq_layer_folds_onto_the_integer_op(
    tmp_path: Path, layer: str, activation: str, per_channel: bool, bias: bool
) -> None:
    model, shape = float_model(layer, bias)
    qdq = quantized(model, shape, tmp_path, activation, per_channel=per_channel)
    graph, reference = prepared(qdq), prepared(qdq)
    assert layer in ops(graph)
    folded, ctx = fold(graph)
    assert not LAYER_OPS & set(ops(folded)), ops(folded)
    integer = [n for n in folded.nodes if n.op in ("ConvInteger", "MatMulInteger")]
    assert len(integer) == 1 and integer[0].annotations[PRECISION_SOURCE_KEY] == "imported"
    assert len(integer[0].operands) == (3 if bias and layer != "MatMul" else 2)
    assert not [n for n in folded.nodes if n.op == "DequantizeLinear" and n.operands[0].is_constant]
    lsb = output_lsb(folded)
    for seed in range(3):
        assert_within_one_lsb(reference, folded, random_input(reference, seed), lsb)


def test_u8_symmetric_weights_are_recentred(tmp_path: Path) -> None:
    model, shape = float_model("Conv", True)
    qdq = quantized(model, shape, tmp_path, "QUInt8", "QUInt8", per_channel=True, WeightSymmetric=True)
    graph, reference = prepared(qdq), prepared(qdq)
    folded, _ = fold(graph)
    (conv,) = [n for n in folded.nodes if n.op == "ConvInteger"]
    weight = conv.operands[1]
    assert weight is not None and weight.type.dtype is DType.I8 and not any(weight.type.quant.zero_point)  # type: ignore[union-attr]
    assert_within_one_lsb(reference, folded, random_input(reference), output_lsb(folded))


def test_weight_that_does_not_fit_i8_after_recentring_stays_float(tmp_path: Path) -> None:
    model, shape = float_model("MatMul", False)
    for init in model.graph.initializer:  # all-positive weights: asymmetric u8 puts the zero point at 0
        init.CopyFrom(onnx.numpy_helper.from_array(np.abs(onnx.numpy_helper.to_array(init)) + 0.1, init.name))
    graph = prepared(quantized(model, shape, tmp_path, "QUInt8", "QUInt8", per_channel=False))
    before = ops(graph)
    folded, ctx = fold(graph)
    assert ops(folded) == before
    assert any("outside i8" in d.message for d in ctx.diagnostics), ctx.diagnostics


# -- hand-built graphs -----------------------------------------------------------------------------------


def u8(shape: tuple[int, ...], scale: float = 0.05, zero: int = 128) -> TensorType:
    return TensorType(DType.U8, shape, quant=QuantParams((scale,), (zero,)))


def quantize_attrs(t: TensorType) -> dict[str, object]:
    assert t.quant is not None
    return {"dtype": t.dtype, "scale": t.quant.scale, "zero_point": t.quant.zero_point}


def test_run_time_weight_stays_float_with_a_note() -> None:
    graph = Graph()
    x, w = (
        graph.add_input("x", TensorType(DType.F32, (2, 4))),
        graph.add_input("w", TensorType(DType.F32, (4, 3))),
    )
    b = Builder(graph)
    xq = b.op("QuantizeLinear", [x], quantize_attrs(u8((2, 4))))[0]
    wq = b.op("QuantizeLinear", [w], {"dtype": DType.I8, "scale": (0.02,), "zero_point": (0,)})[0]
    (y,) = b.op("MatMul", [b.op("DequantizeLinear", [xq])[0], b.op("DequantizeLinear", [wq])[0]])
    graph.set_outputs([y])
    folded, ctx = fold(graph)
    assert "MatMul" in ops(folded) and "MatMulInteger" not in ops(folded)
    assert any("computed at run time" in d.message for d in ctx.diagnostics)


def test_max_pool_runs_on_the_integers_and_noop_pairs_vanish() -> None:
    graph = Graph()
    x = graph.add_input("x", TensorType(DType.F32, (1, 2, 6, 6)))
    b = Builder(graph)
    t = u8((1, 2, 6, 6))
    xq = b.op("QuantizeLinear", [x], quantize_attrs(t))[0]
    again = b.op("QuantizeLinear", [b.op("DequantizeLinear", [xq])[0]], quantize_attrs(t))[0]
    attrs = {"kernel_shape": [2, 2], "strides": [2, 2], "pads": [0, 0, 0, 0], "dilations": [1, 1]}
    pooled = b.op("MaxPool", [b.op("DequantizeLinear", [again])[0]], attrs)[0]
    (y,) = b.op("DequantizeLinear", [b.op("QuantizeLinear", [pooled], quantize_attrs(u8((1, 2, 3, 3))))[0]])
    graph.set_outputs([y])
    inputs = random_input(graph)
    want = run_graph(graph, inputs)
    folded, ctx = fold(graph)
    assert ops(folded) == ["QuantizeLinear", "MaxPool", "DequantizeLinear"]
    (got,) = run_graph(folded, inputs).values()
    np.testing.assert_array_equal(got, *want.values())


def test_dequantized_constant_outside_layers_becomes_f32() -> None:
    graph = Graph()
    x = graph.add_input("x", TensorType(DType.F32, (2, 3)))
    c = graph.add_constant(
        "c", np.array([-3, 0, 7], np.int8), TensorType(DType.I8, (3,), quant=QuantParams((0.5,), (1,)))
    )
    b = Builder(graph)
    (y,) = b.op("Mul", [x, b.op("DequantizeLinear", [c])[0]])
    graph.set_outputs([y])
    inputs = random_input(graph)
    want = run_graph(graph, inputs)
    folded, _ = fold(graph)
    assert ops(folded) == ["Mul"]
    (got,) = run_graph(folded, inputs).values()
    np.testing.assert_array_equal(got, *want.values())


def test_fold_qdq_runs_in_the_default_pipeline_after_fold_constants() -> None:
    names = [p.name for p in parse_pipeline("default")]
    assert names.index("fold-qdq") == names.index("fold-constants") + 1
