"""Shape-family ops (Reshape ... Pad) and the generate family (ConstantOfShape, Range, Constant, Shape,
Size): one-node ONNX models of several opsets through HAI, against the ONNX reference evaluator or
onnxruntime. Shape-deciding operands are initializers, so these test the import-time resolution."""

from __future__ import annotations

import numpy as np
import pytest
from one_node_onnx import assert_close, feeds_of, one_node_model, run_hai, run_onnxruntime, run_reference
from onnx.numpy_helper import from_array

from hai_compiler.onnx_import import import_onnx
from hai_compiler.onnx_import.converter import ConversionError, StaticOperandError
from ir import Builder, DType, Graph, IRError, TensorType

RNG = np.random.default_rng(7)
X = RNG.standard_normal((2, 3, 4)).astype(np.float32)
X4 = RNG.standard_normal((2, 1, 3, 1)).astype(np.float32)


def i64(*values: int) -> np.ndarray:
    return np.array(values, dtype=np.int64)


# (id, op, opset, graph inputs, initializers, attributes, outputs)
CASES = [
    ("reshape-0-and-minus1", "Reshape", 13, [("x", X)], [("s", i64(0, -1))], {}, 1),
    ("reshape-opset7", "Reshape", 7, [("x", X)], [("s", i64(4, 0, -1))], {}, 1),
    ("reshape-allowzero", "Reshape", 14, [("x", X)], [("s", i64(3, 8))], {"allowzero": 1}, 1),
    ("flatten-default", "Flatten", 9, [("x", X)], [], {}, 1),
    ("flatten-negative", "Flatten", 13, [("x", X)], [], {"axis": -1}, 1),
    ("flatten-zero", "Flatten", 13, [("x", X)], [], {"axis": 0}, 1),
    ("transpose-default", "Transpose", 13, [("x", X)], [], {}, 1),
    ("transpose-perm", "Transpose", 7, [("x", X)], [], {"perm": [1, 2, 0]}, 1),
    ("squeeze-attr", "Squeeze", 11, [("x", X4)], [], {"axes": [-1, 1]}, 1),
    ("squeeze-input", "Squeeze", 13, [("x", X4)], [("a", i64(3))], {}, 1),
    ("squeeze-all", "Squeeze", 13, [("x", X4)], [], {}, 1),
    ("unsqueeze-attr", "Unsqueeze", 11, [("x", X)], [], {"axes": [0, -1]}, 1),
    ("unsqueeze-input", "Unsqueeze", 13, [("x", X)], [("a", i64(4, 1))], {}, 1),
    ("concat-negative", "Concat", 13, [("x", X), ("y", X[:, :1])], [], {"axis": -2}, 1),
    ("concat-opset7", "Concat", 7, [("x", X), ("y", X)], [], {"axis": 0}, 1),
    ("split-attr", "Split", 11, [("x", X)], [], {"axis": 2, "split": [1, 3]}, 2),
    ("split-equal", "Split", 11, [("x", X)], [], {"axis": -1}, 2),
    ("split-input", "Split", 13, [("x", X)], [("s", i64(2, 0, 1))], {"axis": 1}, 3),
    ("split-num-outputs-uneven", "Split", 18, [("x", X)], [], {"axis": 1, "num_outputs": 2}, 2),
    ("expand-lower-rank", "Expand", 13, [("x", X[:, :1])], [("s", i64(3, 1))], {}, 1),
    ("expand-higher-rank", "Expand", 8, [("x", X[:, :1])], [("s", i64(2, 1, 3, 4))], {}, 1),
    ("tile", "Tile", 13, [("x", X)], [("r", i64(1, 2, 3))], {}, 1),
    ("pad-opset7-attrs", "Pad", 7, [("x", X)], [], {"pads": [0, 1, 0, 0, 2, 1], "value": 1.5}, 1),
    ("pad-reflect", "Pad", 11, [("x", X)], [("p", i64(0, 2, 1, 0, 1, 2))], {"mode": "reflect"}, 1),
    ("pad-edge", "Pad", 13, [("x", X)], [("p", i64(1, 0, 3, 0, 2, 1))], {"mode": "edge"}, 1),
    (
        "pad-axes",
        "Pad",
        18,
        [("x", X)],
        [("p", i64(1, 2, 0, 3)), ("v", np.array(-2.0, np.float32)), ("a", i64(-1, 0))],
        {},
        1,
    ),
    ("pad-wrap", "Pad", 19, [("x", X)], [("p", i64(0, 1, 2, 0, 2, 3))], {"mode": "wrap"}, 1),
    (
        "pad-int-value",
        "Pad",
        13,
        [("x", np.arange(6, dtype=np.int32).reshape(2, 3))],
        [("p", i64(1, 1, 0, 1)), ("v", np.array(9, np.int32))],
        {},
        1,
    ),
    ("shape", "Shape", 13, [("x", X)], [], {}, 1),
    ("shape-start-end", "Shape", 15, [("x", X)], [], {"start": -2, "end": 10}, 1),
    ("size", "Size", 13, [("x", X)], [], {}, 1),
    (
        "constant-of-shape-int",
        "ConstantOfShape",
        9,
        [],
        [("s", i64(2, 3))],
        {"value": from_array(np.array([7], np.int64))},
        1,
    ),
    ("constant-of-shape-default", "ConstantOfShape", 20, [], [("s", i64(4))], {}, 1),
    (
        "range-int",
        "Range",
        11,
        [],
        [("a", np.array(10, np.int32)), ("b", np.array(-3, np.int32)), ("c", np.array(-4, np.int32))],
        {},
        1,
    ),
    (
        "range-float",
        "Range",
        11,
        [],
        [
            ("a", np.array(0.5, np.float32)),
            ("b", np.array(3.0, np.float32)),
            ("c", np.array(0.3, np.float32)),
        ],
        {},
        1,
    ),
]


def run_case(op, opset, inputs, consts, attrs, n_out):  # type: ignore[no-untyped-def]
    model = one_node_model(op, inputs, [f"y{i}" for i in range(n_out)], opset, constants=consts, **attrs)
    feeds = feeds_of(inputs)
    return run_hai(model, feeds), model, feeds


@pytest.mark.parametrize(
    ("op", "opset", "inputs", "consts", "attrs", "n_out"), [c[1:] for c in CASES], ids=[c[0] for c in CASES]
)
def test_matches_onnx_reference(op, opset, inputs, consts, attrs, n_out) -> None:  # type: ignore[no-untyped-def]
    ours, model, feeds = run_case(op, opset, inputs, consts, attrs, n_out)
    assert_close(ours, run_reference(model, feeds), rtol=1e-6, atol=1e-6)


def test_pad_negative_pads_crop_like_onnxruntime() -> None:
    case = ("Pad", 13, [("x", X)], [("p", i64(0, -1, 2, 1, 0, -3))], {}, 1)
    ours, model, feeds = run_case(*case)
    assert_close(ours, run_onnxruntime(model, feeds), rtol=0, atol=0)


@pytest.mark.parametrize("name", ["value_float", "value_floats", "value_int", "value_ints", "value"])
def test_constant_attribute_forms(name: str) -> None:
    value = {
        "value_float": 2.5,
        "value_floats": [1.0, 2.0],
        "value_int": 3,
        "value_ints": [4, 5],
        "value": np.array([[1, 2]], np.int8),
    }[name]
    if name == "value":
        value = from_array(value)
    model = one_node_model("Constant", [], ["y"], 13, **{name: value})
    assert_close(run_hai(model, {}), run_reference(model, {}), rtol=0, atol=0)


def test_string_constant_is_a_clear_error() -> None:
    model = one_node_model("Constant", [], ["y"], 13, value_strings=["a"])
    with pytest.raises(ConversionError, match="Constant.*value_strings"):
        import_onnx(model)


def test_resolved_attributes_in_the_ir() -> None:
    model = one_node_model("Reshape", [("x", X)], ["y"], 13, constants=[("s", i64(0, -1, 2))])
    (node,) = import_onnx(model).nodes
    assert (node.op, node.attrs["shape"]) == ("Reshape", (2, 6, 2))
    model = one_node_model("Unsqueeze", [("x", X)], ["y"], 13, constants=[("a", i64(-1, 0))])
    (node,) = import_onnx(model).nodes
    assert node.attrs["axes"] == (0, 4)
    model = one_node_model("Split", [("x", X)], ["a", "b"], 18, axis=-1, num_outputs=2)
    (node,) = import_onnx(model).nodes
    assert (node.attrs["axis"], node.attrs["split"]) == (2, (2, 2))


def test_shape_operand_from_a_graph_input_is_a_static_operand_error() -> None:
    shape = i64(3, -1)
    model = one_node_model("Reshape", [("x", X), ("s", shape)], ["y"], 13)
    with pytest.raises(StaticOperandError, match=r"Reshape.*shape.*compile time"):
        import_onnx(model)
    ours = run_hai(model, {"x": X, "s": shape})  # HaiBackend binds the value at run
    assert_close(ours, [X.reshape(3, -1)], rtol=0, atol=0)


@pytest.mark.parametrize(
    ("op", "attrs", "message"),
    [
        ("Reshape", {"shape": (5, 5)}, "cannot reshape"),
        ("Reshape", {"shape": (-1, 12)}, "explicit"),
        ("Transpose", {"perm": (0, 0, 1)}, "permutation"),
        ("Squeeze", {"axes": (0,)}, "size is not 1"),
        ("Split", {"axis": 0, "split": (1, 2)}, "sum to"),
        ("Expand", {"shape": (1, 3, 4)}, "broadcast"),
        ("Pad", {"pads": (0, 0, 0, 0, 0, -9)}, "crop"),
        ("Pad", {"pads": (0,) * 6, "mode": "mirror"}, "mode"),
    ],
)
def test_inference_rejects_unresolved_or_wrong_attributes(op: str, attrs: dict, message: str) -> None:
    graph = Graph()
    x = graph.add_input("x", TensorType(DType.F32, (2, 3, 4)))
    with pytest.raises(IRError, match=message):
        Builder(graph).op(op, [x], attrs)


def test_range_and_constant_of_shape_need_no_operands() -> None:
    graph = Graph()
    (r,) = Builder(graph).op("Range", [], {"start": 5, "limit": 0, "delta": -2, "dtype": "i64"})
    (c,) = Builder(graph).op("ConstantOfShape", [], {"shape": (2, 0)})
    assert r.type == TensorType(DType.I64, (3,)) and c.type == TensorType(DType.F32, (2, 0))
