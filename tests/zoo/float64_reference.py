"""A float64 reference of an fp32 ONNX model: onnx's ReferenceEvaluator on a float64 copy of it.

Rule: every float32 weight, constant, Cast and value type becomes float64, so what is left of the
reference's error is float64 rounding: it judges how far an fp32 engine (HAI, onnxruntime) is from
the exact result, where two fp32 engines only differ by their summation orders. BatchNormalization
is written out as Mul + Add with factors computed in float64 first: the reference's opset-9
BatchNormalization uses the batch's statistics whenever `momentum` is set (and its schema sets it).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnx.reference import ReferenceEvaluator


def float64_outputs(path: Path, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    model = onnx.shape_inference.infer_shapes(onnx.load(str(path)))
    _unfold_batchnorm(model.graph)
    _to_float64(model.graph)
    feeds = {k: v.astype(np.float64) if v.dtype == np.float32 else v for k, v in feeds.items()}
    with np.errstate(all="ignore"):
        return list(ReferenceEvaluator(model).run(None, feeds))


def _constants(graph: onnx.GraphProto) -> dict[str, np.ndarray]:
    found = {
        n.output[0]: numpy_helper.to_array(n.attribute[0].t) for n in graph.node if n.op_type == "Constant"
    }
    found.update({t.name: numpy_helper.to_array(t) for t in graph.initializer})
    return found


def _unfold_batchnorm(graph: onnx.GraphProto) -> None:
    """Each inference BatchNormalization of constant operands as x * a + c (a, c in float64)."""
    constants, nodes = _constants(graph), []
    ranks = {i.name: len(i.type.tensor_type.shape.dim) for i in [*graph.input, *graph.value_info]}
    for node in graph.node:
        if node.op_type != "BatchNormalization":
            nodes.append(node)
            continue
        epsilon = next((a.f for a in node.attribute if a.name == "epsilon"), 1e-5)
        scale, bias, mean, var = (constants[name].astype(np.float64) for name in node.input[1:5])
        a = scale / np.sqrt(var + np.float64(np.float32(epsilon)))
        shape = (-1,) + (1,) * (ranks[node.input[0]] - 2)  # the channel axis is 1
        factor, offset = f"{node.output[0]}/a", f"{node.output[0]}/c"
        graph.initializer.append(numpy_helper.from_array(a.reshape(shape), factor))
        graph.initializer.append(numpy_helper.from_array((bias - mean * a).reshape(shape), offset))
        scaled = f"{node.output[0]}/ax"
        nodes += [
            helper.make_node("Mul", [node.input[0], factor], [scaled]),
            helper.make_node("Add", [scaled, offset], [node.output[0]]),
        ]
    del graph.node[:]
    graph.node.extend(nodes)


def _to_float64(graph: onnx.GraphProto) -> None:
    for i, tensor in enumerate(graph.initializer):
        if tensor.data_type in (TensorProto.FLOAT, TensorProto.DOUBLE):
            array = numpy_helper.to_array(tensor).astype(np.float64)
            graph.initializer[i].CopyFrom(numpy_helper.from_array(array, tensor.name))
    for info in [*graph.input, *graph.output, *graph.value_info]:
        if info.type.tensor_type.elem_type == TensorProto.FLOAT:
            info.type.tensor_type.elem_type = TensorProto.DOUBLE
    for node in graph.node:
        for attr in node.attribute:
            if attr.name == "value" and attr.t.data_type == TensorProto.FLOAT:
                attr.t.CopyFrom(numpy_helper.from_array(numpy_helper.to_array(attr.t).astype(np.float64)))
            if node.op_type == "Cast" and attr.name == "to" and attr.i == TensorProto.FLOAT:
                attr.i = TensorProto.DOUBLE
