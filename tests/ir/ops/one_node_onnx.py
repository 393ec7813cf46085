"""Build one-node ONNX models and run them through HAI, onnxruntime and the ONNX reference evaluator."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import onnx
import onnxruntime as ort
from onnx import helper
from onnx.reference import ReferenceEvaluator

from hai_compiler.onnx_backend import HaiBackend


def one_node_model(
    op: str,
    inputs: Sequence[tuple[str, np.ndarray | None]],
    outputs: Sequence[str],
    opset: int,
    constants: Sequence[tuple[str, np.ndarray | None]] = (),
    **attrs: object,
) -> onnx.ModelProto:
    """`inputs` become graph inputs and `constants` initializers, in that operand order; a None is
    an absent operand (empty name)."""
    names, graph_inputs, initializers = [], [], []
    for kind, pairs in (("input", inputs), ("init", constants)):
        for name, array in pairs:
            if array is None:
                names.append("")
            elif kind == "input":
                names.append(name)
                dtype = helper.np_dtype_to_tensor_dtype(array.dtype)
                graph_inputs.append(helper.make_tensor_value_info(name, dtype, array.shape))
            else:
                names.append(name)
                initializers.append(onnx.numpy_helper.from_array(array, name))
    node = helper.make_node(op, names, list(outputs), **attrs)
    graph = helper.make_graph(
        [node], f"one_{op}", graph_inputs, [helper.make_empty_tensor_value_info(o) for o in outputs],
        initializer=initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])


def feeds_of(inputs: Sequence[tuple[str, np.ndarray | None]]) -> dict[str, np.ndarray]:
    return {name: array for name, array in inputs if array is not None}


def run_hai(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    return list(HaiBackend.prepare(model).run(feeds))


def run_onnxruntime(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, feeds)


def run_reference(model: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> list[np.ndarray]:
    return list(ReferenceEvaluator(model).run(None, feeds))


def assert_close(ours: Sequence[np.ndarray], ref: Sequence[np.ndarray], rtol: float, atol: float) -> None:
    assert len(ours) == len(ref)
    for got, want in zip(ours, ref, strict=True):
        assert (got.dtype, got.shape) == (want.dtype, want.shape)
        np.testing.assert_allclose(got.astype(np.float64), want.astype(np.float64), rtol=rtol, atol=atol)
