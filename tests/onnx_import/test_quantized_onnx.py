"""ONNX's quantized ops (QuantizeLinear with scale/zero-point inputs, ConvInteger, ...) share names with
HAI's own quantized IR ops but not their form: until they get converters, importing them is one clear
UnsupportedModelError naming each, never a confusing operand-count error from the IR."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper

from hai_compiler.onnx_import.converter import UnsupportedModelError, imports
from hai_compiler.onnx_import.importer import import_onnx


def qdq_model() -> onnx.ModelProto:
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], name="quant"),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], name="dequant"),
    ]
    inits = [
        onnx.numpy_helper.from_array(np.array(0.1, np.float32), "s"),
        onnx.numpy_helper.from_array(np.array(0, np.uint8), "z"),
    ]
    graph = helper.make_graph(
        nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 3])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [2, 3])], inits,
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19)])


def test_quantized_onnx_ops_are_reported_unsupported() -> None:
    assert not imports("QuantizeLinear") and not imports("ConvInteger") and imports("Conv")
    with pytest.raises(UnsupportedModelError, match=r"QuantizeLinear.*quant|DequantizeLinear.*dequant"):
        import_onnx(qdq_model())
