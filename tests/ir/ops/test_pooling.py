"""Pooling ops (MaxPool with Indices, AveragePool, LpPool, Global*): one-node ONNX models through HAI
against onnxruntime, the explicit windows the converter writes, and inference errors."""

from __future__ import annotations

import numpy as np
import pytest
from one_node_onnx import assert_close, one_node_model, run_hai, run_onnxruntime

from hai_compiler.onnx_import import import_onnx
from ir import Builder, DType, Graph, IRError, TensorType, verify

RNG = np.random.default_rng(5)
X2 = RNG.standard_normal((2, 3, 9, 10)).astype(np.float32)
X1 = RNG.standard_normal((1, 4, 13)).astype(np.float32)
X3 = RNG.standard_normal((1, 2, 6, 7, 5)).astype(np.float32)

# (id, op, opset, x, attributes)
CASES = [
    ("max-2d", "MaxPool", 13, X2, {"kernel_shape": [3, 3]}),
    (
        "max-2d-stride2-pads",
        "MaxPool",
        13,
        X2,
        {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
    ),
    ("max-2d-asymmetric-pads", "MaxPool", 13, X2, {"kernel_shape": [3, 2], "pads": [0, 1, 2, 0]}),
    ("max-2d-ceil", "MaxPool", 13, X2, {"kernel_shape": [3, 3], "strides": [2, 2], "ceil_mode": 1}),
    (
        "max-2d-ceil-pads",
        "MaxPool",
        13,
        X2,
        {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1, "pads": [1, 0, 1, 0]},
    ),
    ("max-2d-dilations", "MaxPool", 13, X2, {"kernel_shape": [2, 3], "dilations": [2, 2], "strides": [1, 2]}),
    (
        "max-2d-same-upper",
        "MaxPool",
        13,
        X2,
        {"kernel_shape": [3, 2], "strides": [2, 2], "auto_pad": "SAME_UPPER"},
    ),
    (
        "max-2d-same-lower",
        "MaxPool",
        13,
        X2,
        {"kernel_shape": [2, 2], "strides": [2, 2], "auto_pad": "SAME_LOWER"},
    ),
    ("max-2d-valid", "MaxPool", 13, X2, {"kernel_shape": [2, 2], "strides": [2, 2], "auto_pad": "VALID"}),
    ("max-2d-opset7", "MaxPool", 7, X2, {"kernel_shape": [2, 2], "strides": [2, 2]}),
    ("max-1d", "MaxPool", 13, X1, {"kernel_shape": [3], "strides": [2], "pads": [1, 1]}),
    ("max-3d", "MaxPool", 13, X3, {"kernel_shape": [2, 3, 2], "strides": [2, 1, 2]}),
    ("max-int8", "MaxPool", 13, (X2 * 40).astype(np.int8), {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}),
    (
        "max-uint8",
        "MaxPool",
        13,
        (np.abs(X2) * 40).astype(np.uint8),
        {"kernel_shape": [2, 2], "strides": [2, 2]},
    ),
    ("avg-2d", "AveragePool", 13, X2, {"kernel_shape": [3, 3]}),
    ("avg-2d-pads-exclude", "AveragePool", 13, X2, {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1]}),
    (
        "avg-2d-pads-include",
        "AveragePool",
        13,
        X2,
        {"kernel_shape": [3, 3], "pads": [1, 1, 1, 1], "count_include_pad": 1},
    ),
    (
        "avg-2d-ceil-include",
        "AveragePool",
        13,
        X2,
        {
            "kernel_shape": [3, 3],
            "strides": [2, 2],
            "pads": [1, 0, 1, 0],
            "ceil_mode": 1,
            "count_include_pad": 1,
        },
    ),
    (
        "avg-2d-ceil-exclude",
        "AveragePool",
        13,
        X2,
        {"kernel_shape": [2, 2], "strides": [2, 2], "ceil_mode": 1},
    ),
    (
        "avg-2d-dilations",
        "AveragePool",
        19,
        X2,
        {"kernel_shape": [2, 2], "dilations": [2, 3], "pads": [1, 1, 1, 1], "ceil_mode": 1},
    ),
    (
        "avg-2d-same-upper",
        "AveragePool",
        13,
        X2,
        {"kernel_shape": [3, 3], "strides": [2, 2], "auto_pad": "SAME_UPPER"},
    ),
    (
        "avg-2d-opset7",
        "AveragePool",
        7,
        X2,
        {"kernel_shape": [2, 2], "count_include_pad": 1, "pads": [1, 1, 0, 0]},
    ),
    ("avg-2d-2x2-s2", "AveragePool", 13, X2, {"kernel_shape": [2, 2], "strides": [2, 2]}),
    ("avg-1d", "AveragePool", 13, X1, {"kernel_shape": [4], "strides": [3], "pads": [2, 1]}),
    ("avg-3d", "AveragePool", 13, X3, {"kernel_shape": [2, 2, 2], "pads": [1, 0, 1, 1, 0, 1]}),
    ("lp-2d-p2", "LpPool", 18, X2, {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ("lp-2d-p3-ceil", "LpPool", 18, X2, {"kernel_shape": [2, 2], "strides": [2, 2], "p": 3, "ceil_mode": 1}),
    ("lp-2d-p1-opset11", "LpPool", 11, X2, {"kernel_shape": [2, 3], "p": 1}),
    ("global-avg-2d", "GlobalAveragePool", 13, X2, {}),
    ("global-avg-3d", "GlobalAveragePool", 13, X3, {}),
    ("global-max-2d", "GlobalMaxPool", 13, X2, {}),
    ("global-max-1d", "GlobalMaxPool", 13, X1, {}),
    ("global-lp", "GlobalLpPool", 13, X2, {"p": 3}),
]


@pytest.mark.parametrize("op, opset, x, attrs", [c[1:] for c in CASES], ids=[c[0] for c in CASES])
def test_pooling_matches_onnxruntime(op: str, opset: int, x: np.ndarray, attrs: dict) -> None:
    model = one_node_model(op, [("x", x)], ["y"], opset, **attrs)
    assert_close(run_hai(model, {"x": x}), run_onnxruntime(model, {"x": x}), rtol=1e-5, atol=1e-5)


# MaxPool's Indices: flat over the unpadded input, N and C included (storage_order 1: spatial column major)
INDICES_CASES = [
    ("2d-pads", X2, {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}),
    ("2d-ceil", X2, {"kernel_shape": [2, 3], "strides": [2, 2], "ceil_mode": 1}),
    ("2d-dilations", X2, {"kernel_shape": [2, 2], "dilations": [2, 2]}),
    ("2d-column-major", X2, {"kernel_shape": [3, 3], "strides": [2, 2], "storage_order": 1}),
    ("1d", X1, {"kernel_shape": [3], "strides": [2], "pads": [1, 1]}),
    ("3d", X3, {"kernel_shape": [2, 2, 2], "strides": [2, 2, 2]}),
]


@pytest.mark.parametrize("x, attrs", [c[1:] for c in INDICES_CASES], ids=[c[0] for c in INDICES_CASES])
def test_max_pool_indices_match_onnxruntime(x: np.ndarray, attrs: dict) -> None:
    model = one_node_model("MaxPool", [("x", x)], ["y", "indices"], 12, **attrs)
    assert_close(run_hai(model, {"x": x}), run_onnxruntime(model, {"x": x}), rtol=0, atol=0)


def test_converter_writes_the_explicit_window() -> None:
    model = one_node_model(
        "MaxPool",
        [("x", X2)],
        ["y"],
        13,
        kernel_shape=[3, 3],
        strides=[2, 2],
        auto_pad="SAME_UPPER",
        ceil_mode=1,
    )
    graph = import_onnx(model)
    verify(graph)
    (node,) = graph.nodes
    # out = ceil([9, 10] / 2) = [5, 5]; total pad = (5-1)*2 + 3 - in = [2, 1]; the odd one at the end
    assert node.attrs == {
        "kernel_shape": (3, 3),
        "strides": (2, 2),
        "pads": (1, 0, 1, 1),
        "dilations": (1, 1),
        "ceil_mode": 0,
        "return_indices": 0,
        "storage_order": 0,
    }
    assert node.results[0].type.shape == (2, 3, 5, 5)


def _pool(op: str, shape: tuple[int, ...], dtype: DType = DType.F32, **attrs):
    graph = Graph()
    x = graph.add_input("x", TensorType(dtype, shape))
    n = len(shape) - 2
    window = {"strides": (1,) * n, "pads": (0,) * (2 * n), "dilations": (1,) * n}
    return Builder(graph).op(op, [x], {**window, **attrs}, name="p1")


def test_window_larger_than_input_is_an_error() -> None:
    with pytest.raises(
        IRError, match=r"MaxPool node 'p1'.*kernel \[5, 5\].*does not fit spatial shape \[4, 4\]"
    ):
        _pool("MaxPool", (1, 2, 4, 4), kernel_shape=(5, 5))


def test_kernel_rank_must_match_input() -> None:
    with pytest.raises(IRError, match=r"strides \[1, 1\] must have 3 entries"):
        _pool("AveragePool", (1, 2, 4, 4), kernel_shape=(2, 2, 2))


def test_average_pool_needs_floats() -> None:
    with pytest.raises(IRError, match=r"AveragePool node 'p1'.*X must be a float tensor"):
        _pool("AveragePool", (1, 2, 4, 4), DType.I8, kernel_shape=(2, 2))


def test_pooling_needs_spatial_dims() -> None:
    with pytest.raises(IRError, match=r"X must be \(N, C, spatial...\)"):
        graph = Graph()
        Builder(graph).op("GlobalAveragePool", [graph.add_input("x", TensorType(DType.F32, (2, 3)))])
