"""`fold-batchnorm`: BN folds into Conv, Gemm and MatMul(+Add) weights, or becomes Mul + Add.

Each model is made with onnx.helper and run by onnxruntime (the independent
reference); the imported graph must match it after the pass, and the reference
interpreter must give the same outputs before and after.
"""

from __future__ import annotations

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from pass_helpers import check_pass, f32, ops

from hai_compiler.onnx_import.importer import import_onnx
from ir import Builder, ElidedConstant, Graph, TensorType, run_graph
from passes import PassFailedError, PassManager
from passes.fold_batchnorm import FoldBatchNorm

RNG = np.random.default_rng(7)


def array(*shape: int, positive: bool = False) -> np.ndarray:
    data = RNG.uniform(0.5, 1.5, shape) if positive else RNG.standard_normal(shape)
    return data.astype(np.float32)


def bn_initializers(prefix: str, channels: int) -> list[onnx.TensorProto]:
    arrays = {"scale": array(channels), "bias": array(channels), "mean": array(channels),
              "var": array(channels, positive=True)}
    return [numpy_helper.from_array(a, f"{prefix}_{k}") for k, a in arrays.items()]


def bn_node(x: str, y: str, prefix: str = "bn") -> onnx.NodeProto:
    names = [f"{prefix}_{k}" for k in ("scale", "bias", "mean", "var")]
    return helper.make_node("BatchNormalization", [x, *names], [y], epsilon=1e-3, name=prefix)


def model(
    nodes: list, inputs: dict[str, tuple[int, ...]], outputs: list[str], inits: list
) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "m",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def fold_and_compare(proto: onnx.ModelProto) -> Graph:
    """Import, fold with the interpreter check, and compare the folded graph with onnxruntime."""
    inputs = {i.name: array(*(d.dim_value for d in i.type.tensor_type.shape.dim)) for i in proto.graph.input}
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = dict(zip([o.name for o in proto.graph.output], session.run(None, inputs), strict=True))
    graph, _ = check_pass(import_onnx(proto), "fold-batchnorm", inputs, rtol=1e-4, atol=1e-4)
    for name, got in run_graph(graph, inputs).items():
        np.testing.assert_allclose(got, expected[name], rtol=1e-4, atol=1e-4, err_msg=name)
    assert "BatchNormalization" not in ops(graph)
    return graph


@pytest.mark.parametrize("with_bias", [False, True])
@pytest.mark.parametrize("group", [1, 2])
def test_conv_bn_folds_into_conv(with_bias: bool, group: int) -> None:
    inits = [numpy_helper.from_array(array(4, 4 // group, 3, 3), "w"), *bn_initializers("bn", 4)]
    conv_inputs = ["x", "w"]
    if with_bias:
        inits.append(numpy_helper.from_array(array(4), "cb"))
        conv_inputs.append("cb")
    nodes = [helper.make_node("Conv", conv_inputs, ["c"], pads=[1, 1, 1, 1], group=group), bn_node("c", "y"),
             helper.make_node("Relu", ["y"], ["out"])]
    graph = fold_and_compare(model(nodes, {"x": (1, 4, 6, 6)}, ["out"], inits))
    assert ops(graph) == ["Conv", "Relu"]
    conv = graph.nodes.last.operands[0].producer
    assert conv.operands[2] is not None and conv.operands[2].is_constant  # the bias was added if missing
    assert conv.results[0].name == "y"  # the folded value keeps the BN's result name
    assert sorted(graph.constants) == sorted(v.name for v in conv.operands[1:])  # old weights dropped


@pytest.mark.parametrize("group", [1, 2])
def test_conv_transpose_bn_folds_into_conv_transpose(group: int) -> None:
    # ConvTranspose weights are [C_in, C_out / group, k...]: 4 inputs, 6 outputs.
    inits = [numpy_helper.from_array(array(4, 6 // group, 2, 2), "w"),
             numpy_helper.from_array(array(6), "cb"),
             *bn_initializers("bn", 6)]
    nodes = [helper.make_node("ConvTranspose", ["x", "w", "cb"], ["c"], strides=[2, 2], group=group),
             bn_node("c", "y")]
    graph = fold_and_compare(model(nodes, {"x": (1, 4, 3, 3)}, ["y"], inits))
    assert ops(graph) == ["ConvTranspose"]


@pytest.mark.parametrize(("trans_b", "with_c"), [(0, False), (1, True), (0, True)])
def test_gemm_bn_folds_into_gemm(trans_b: int, with_c: bool) -> None:
    weight = array(5, 3) if trans_b else array(3, 5)
    inits = [numpy_helper.from_array(weight, "wt"), *bn_initializers("bn", 5)]
    gemm_inputs = ["a", "wt"]
    if with_c:
        inits.append(numpy_helper.from_array(array(5), "c"))
        gemm_inputs.append("c")
    gemm = helper.make_node("Gemm", gemm_inputs, ["g"], alpha=0.5, beta=2.0, transB=trans_b)
    graph = fold_and_compare(model([gemm, bn_node("g", "y")], {"a": (2, 3)}, ["y"], inits))
    assert ops(graph) == ["Gemm"]
    assert graph.outputs[0].name == "y"


@pytest.mark.parametrize("bias_shape", [None, (5,), (1, 5), (1,)])
def test_matmul_add_bn_folds_into_matmul_add(bias_shape: tuple[int, ...] | None) -> None:
    inits = [numpy_helper.from_array(array(3, 5), "w"), *bn_initializers("bn", 5)]
    nodes = [helper.make_node("MatMul", ["a", "w"], ["mm"])]
    last = "mm"
    if bias_shape is not None:
        inits.append(numpy_helper.from_array(array(*bias_shape), "b"))
        nodes.append(helper.make_node("Add", ["mm", "b"], ["biased"]))
        last = "biased"
    nodes.append(bn_node(last, "y"))
    graph = fold_and_compare(model(nodes, {"a": (4, 3)}, ["y"], inits))
    assert ops(graph) == ["MatMul", "Add"]
    assert len(graph.constants) == 2


def test_conv_with_another_reader_keeps_conv_and_bn_becomes_mul_add() -> None:
    inits = [numpy_helper.from_array(array(2, 3, 1, 1), "w"), *bn_initializers("bn", 2)]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), bn_node("c", "y"),
             helper.make_node("Add", ["c", "y"], ["out"])]
    graph = fold_and_compare(model(nodes, {"x": (1, 3, 4, 4)}, ["out"], inits))
    assert ops(graph) == ["Conv", "Mul", "Add", "Add"]
    assert graph.constants["y.scale"].type.shape == (2, 1, 1)  # broadcasts along axis 1


def test_standalone_bn_on_graph_input_becomes_mul_add_keeping_output_name() -> None:
    graph = fold_and_compare(model([bn_node("x", "y")], {"x": (2, 3, 5)}, ["y"], bn_initializers("bn", 3)))
    assert ops(graph) == ["Mul", "Add"]
    assert [v.name for v in graph.outputs] == ["y"]


def test_conv_result_that_is_a_graph_output_is_not_folded() -> None:
    inits = [numpy_helper.from_array(array(2, 3, 1, 1), "w"), *bn_initializers("bn", 2)]
    nodes = [helper.make_node("Conv", ["x", "w"], ["c"]), bn_node("c", "y")]
    graph = fold_and_compare(model(nodes, {"x": (1, 3, 4, 4)}, ["c", "y"], inits))
    assert ops(graph) == ["Conv", "Mul", "Add"]
    assert [v.name for v in graph.outputs] == ["c", "y"]


def test_elided_weights_fail_the_precondition() -> None:
    graph = Graph()
    x = graph.add_input("x", f32(1, 2, 3))
    params = [graph.add_constant(n, ElidedConstant("ab" * 32), TensorType(x.type.dtype, (2,)))
              for n in ("s", "b", "m", "v")]
    (y,) = Builder(graph).op("BatchNormalization", [x, *params])
    graph.set_outputs([y])
    with pytest.raises(PassFailedError, match="requires 'constants-loaded'.*weights file"):
        PassManager([FoldBatchNorm()]).run(graph)
