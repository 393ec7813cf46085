"""Shape computations fold while importing: Shape→Gather→Unsqueeze→Concat→Reshape and
Shape→Slice→Concat chains become constants, so Reshape gets a static `shape` attribute.
Results are checked against onnxruntime."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from onnx.numpy_helper import from_array

from hai_compiler.onnx_import import import_onnx
from ir import run_graph

MODELS = Path(__file__).resolve().parents[2] / ".cache" / "models"
SHAPE_OPS = {"Shape", "Gather", "Unsqueeze", "Concat", "Slice", "Cast", "Squeeze", "Range", "ConstantOfShape"}


def chain_model(opset: int) -> onnx.ModelProto:
    """y = Reshape(x, Concat(Unsqueeze(Gather(Shape(x), 0)), [-1], Slice(Shape(x), -1, MAX))):
    x [N, C, H, W] -> [N, C*H, W], written the way exporters write it (N symbolic)."""
    one_axis = {"axes": [0]} if opset < 13 else {}
    nodes = [
        helper.make_node("Shape", ["x"], ["shape"]),
        helper.make_node("Gather", ["shape", "zero"], ["n"], axis=0),
        helper.make_node("Unsqueeze", ["n"] + ([] if opset < 13 else ["axes0"]), ["n1"], **one_axis),
        helper.make_node("Slice", ["shape", "start", "end"], ["tail"]),
        helper.make_node("Concat", ["n1", "minus_one", "tail"], ["target"], axis=0),
        helper.make_node("Reshape", ["x", "target"], ["y"]),
    ]
    inits = [
        from_array(np.array(0, np.int64), "zero"),
        from_array(np.array([0], np.int64), "axes0"),
        from_array(np.array([-1], np.int64), "start"),
        from_array(np.array([np.iinfo(np.int64).max], np.int64), "end"),
        from_array(np.array([-1], np.int64), "minus_one"),
    ]
    graph = helper.make_graph(
        nodes,
        "shape_chain",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["N", 3, 4, 5])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        initializer=inits,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


@pytest.mark.parametrize("opset", [11, 13])
def test_shape_chain_folds_into_a_static_reshape(opset: int) -> None:
    model = chain_model(opset)
    graph = import_onnx(model, input_shapes={"x": (2, 3, 4, 5)})
    (node,) = graph.nodes
    assert node.op == "Reshape" and node.attrs["shape"] == (2, 12, 5)
    x = np.random.default_rng(0).standard_normal((2, 3, 4, 5)).astype(np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    (expected,) = session.run(None, {"x": x})
    np.testing.assert_array_equal(run_graph(graph, {"x": x})["y"], expected)


@pytest.mark.parametrize(
    ("name", "inputs"),
    [("ppocr_rec", {"x": (1, 3, 48, 320)}), ("magika", {"bytes": (1, 2048)})],
)
def test_real_models_keep_no_shape_arithmetic(name: str, inputs: dict) -> None:
    """Their Reshape shapes come from Shape chains: the import fails unless the chains fold."""
    path = MODELS / f"{name}.onnx"
    if not path.exists():
        pytest.skip(f"{path} is not downloaded")
    graph = import_onnx(path, input_shapes=inputs)
    shape_inputs = [
        node
        for node in graph.nodes
        if node.op in SHAPE_OPS and all(o is None or o.is_constant for o in node.operands)
    ]
    assert not shape_inputs, f"left unfolded: {[n.label() for n in shape_inputs]}"
    onnx_ops = {n.op_type for n in onnx.load(str(path), load_external_data=False).graph.node}
    assert "Shape" in onnx_ops and not any(n.op == "Shape" for n in graph.nodes)
