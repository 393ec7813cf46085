"""Every conv shape class and the window pools get a scheduled template, for x86 and arm64.

One ONNX model per family holds a branch per shape class (strided, dilated, grouped,
depthwise with a channel multiplier, asymmetric pads, 1-D dense, grouped and depthwise, a
strided STFT-like 1-D conv; MaxPool/AveragePool with strides, ceil_mode and pads, and a
YOLO SPPF: a 1x1 conv, three 5x5 stride-1 MaxPools and their Concat). Compiled for x86 they match onnxruntime
(fp32, relative error <= 1e-4); the plan's kernels are the scheduled templates (the
workload `op` of each step's kernel), never the general conv or pool, for x86 and for
`--target arm64` (compiled, not run: tests/arm64 runs artifacts under qemu).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import onnx
import pytest
from compile_helpers import assert_matches_onnxruntime
from onnx import TensorProto, helper, numpy_helper

from hai_compiler.compiler import CompileOptions, compile_model
from targets.plan.kernels import layout_of

Attrs = dict[str, Any]
# name -> (x shape, w shape, attrs)
CONVS: dict[str, tuple[tuple[int, ...], tuple[int, ...], Attrs]] = {
    "strided": ((1, 8, 17, 19), (16, 8, 3, 3), {"strides": [2, 2], "pads": [1, 1, 1, 1]}),
    "dilated": ((1, 8, 16, 16), (16, 8, 3, 3), {"dilations": [2, 2], "pads": [2, 2, 2, 2]}),
    "grouped": ((1, 16, 12, 12), (32, 4, 3, 3), {"group": 4, "pads": [1, 1, 1, 1]}),
    "grouped_strided_rows": ((1, 12, 15, 15), (18, 4, 3, 3), {"group": 3, "strides": [2, 1]}),
    "grouped_many_narrow": (
        (1, 128, 28, 28),
        (128, 4, 3, 3),
        {"group": 32, "strides": [2, 2], "pads": [1] * 4},
    ),
    "depthwise_multiplier": ((1, 8, 10, 10), (16, 1, 3, 3), {"group": 8, "pads": [1, 1, 1, 1]}),
    "asymmetric_pads": ((1, 8, 14, 14), (16, 8, 3, 3), {"pads": [0, 1, 2, 0]}),
    "conv1d": ((1, 8, 50), (16, 8, 5), {"pads": [2, 1]}),
    "depthwise1d_strided": ((1, 8, 40), (8, 1, 5), {"group": 8, "strides": [2], "pads": [2, 2]}),
    "conv1d_grouped_dilated": ((2, 8, 33), (8, 2, 3), {"group": 4, "dilations": [2], "pads": [1, 3]}),
    "stft_like": ((1, 1, 4000), (258, 1, 256), {"strides": [64]}),
}
# name -> (op, x shape, attrs)
WINDOW_3X3_S2: Attrs = {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]}
POOLS: dict[str, tuple[str, tuple[int, ...], Attrs]] = {
    "max3x3s2_ceil": ("MaxPool", (1, 8, 15, 15), {**WINDOW_3X3_S2, "ceil_mode": 1}),
    "max2x2s2": ("MaxPool", (1, 16, 16, 16), {"kernel_shape": [2, 2], "strides": [2, 2]}),
    "avg_include_pad_asym": (
        "AveragePool",
        (1, 8, 13, 11),
        {"kernel_shape": [3, 5], "pads": [0, 2, 1, 1], "count_include_pad": 1},
    ),
    "avg_exclude_pad": ("AveragePool", (1, 8, 12, 12), {**WINDOW_3X3_S2, "strides": [1, 2]}),
    "max1d_ceil": (
        "MaxPool",
        (1, 8, 33),
        {"kernel_shape": [3], "strides": [2], "pads": [1, 0], "ceil_mode": 1},
    ),
    "avg1d_include_pad": (
        "AveragePool",
        (2, 8, 30),
        {"kernel_shape": [4], "strides": [2], "pads": [1, 2], "count_include_pad": 1},
    ),
}
SCHEDULED = {"conv2d", "depthwise2d", "window_pool"}


def weight(rng: np.random.Generator, name: str, *shape: int) -> onnx.TensorProto:
    return numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), name)


def model(nodes: list, inputs: dict[str, tuple], outputs: list[str], initializers: list) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes,
        "templates",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in inputs.items()],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in outputs],
        initializers,
    )
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def conv_model() -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    nodes, inputs, inits = [], {}, []
    for name, (x, w, attrs) in CONVS.items():
        inputs[f"x_{name}"] = x
        inits += [weight(rng, f"w_{name}", *w), weight(rng, f"b_{name}", w[0])]
        operands = [f"x_{name}", f"w_{name}", f"b_{name}"]
        nodes.append(helper.make_node("Conv", operands, [name], name=name, **attrs))
    return model(nodes, inputs, list(CONVS), inits), feeds(inputs)


def pool_model() -> tuple[onnx.ModelProto, dict[str, np.ndarray]]:
    """The POOLS branches, each behind a 1x1 conv (so `layout=NHWC` makes it a channels-last
    region), and a YOLO SPPF whose 1x1 convs make its region channels-last under the cost rule."""
    rng = np.random.default_rng(1)
    nodes, inits = [], []
    for n, (op, x, a) in POOLS.items():
        inits.append(weight(rng, f"w_pre_{n}", x[1], x[1], *[1] * (len(x) - 2)))
        nodes.append(helper.make_node("Conv", [f"x_{n}", f"w_pre_{n}"], [f"pre_{n}"], name=f"pre_{n}"))
        nodes.append(helper.make_node(op, [f"pre_{n}"], [n], name=n, **a))
    inputs = {f"x_{n}": x for n, (_, x, _) in POOLS.items()}
    inputs["x_sppf"] = (1, 8, 20, 20)
    window: Attrs = {"kernel_shape": [5, 5], "strides": [1, 1], "pads": [2, 2, 2, 2]}
    nodes += [
        helper.make_node("Conv", ["x_sppf", "w_cv1"], ["cv1"], name="cv1"),
        helper.make_node("MaxPool", ["cv1"], ["p1"], name="p1", **window),
        helper.make_node("MaxPool", ["p1"], ["p2"], name="p2", **window),
        helper.make_node("MaxPool", ["p2"], ["p3"], name="p3", **window),
        helper.make_node("Concat", ["cv1", "p1", "p2", "p3"], ["cat"], name="cat", axis=1),
        helper.make_node("Conv", ["cat", "w_cv2"], ["sppf"], name="cv2"),
    ]
    inits += [weight(rng, "w_cv1", 64, 8, 1, 1), weight(rng, "w_cv2", 16, 256, 1, 1)]
    return model(nodes, inputs, [*POOLS, "sppf"], inits), feeds(inputs)


def feeds(inputs: dict[str, tuple]) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(2)
    return {n: rng.standard_normal(s).astype(np.float32) for n, s in inputs.items()}


def assert_scheduled(result, count: int) -> None:  # type: ignore[no-untyped-def]
    """Each of the `count` Conv and pool steps runs a scheduled template (its kernel's workload `op`)."""
    templates = {
        group.anchor.name: kernel.workload.get("op")
        for group, kernel in zip(result.groups, result.plan.kernels)
        if group.anchor.op in ("Conv", "MaxPool", "AveragePool")
    }
    assert len(templates) == count
    assert all(op in SCHEDULED for op in templates.values()), templates


@pytest.fixture(scope="module", params=["conv", "pool"])
def family(request, tmp_path_factory) -> tuple[str, Path, dict[str, np.ndarray], int]:  # type: ignore[no-untyped-def]
    onnx_model, inputs = conv_model() if request.param == "conv" else pool_model()
    path = tmp_path_factory.mktemp(request.param) / f"{request.param}.onnx"
    onnx.save(onnx_model, str(path))
    count = len(CONVS) if request.param == "conv" else 2 * len(POOLS) + 5
    return request.param, path, inputs, count


@pytest.mark.parametrize("layout", ["auto", "NCHW", "NHWC"])
def test_templates_match_onnxruntime(family, layout: str, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    name, path, inputs, count = family
    result = compile_model(path, tmp_path / f"{name}.hai", CompileOptions(layout=layout))
    assert_scheduled(result, count)
    if name == "pool" and layout == "NHWC":
        nhwc = {g.anchor.name for g in result.groups if layout_of(g) == "NHWC"}
        assert {n for n, (_, x, _) in POOLS.items() if len(x) == 4} <= nhwc
    assert_matches_onnxruntime(result.path, path, inputs)


def test_sppf_stays_channels_last_under_the_cost_rule(tmp_path: Path) -> None:
    onnx_model, _ = pool_model()
    path = tmp_path / "pool.onnx"
    onnx.save(onnx_model, str(path))
    result = compile_model(path, tmp_path / "pool.hai", CompileOptions())
    nhwc = {g.anchor.name for g in result.groups if layout_of(g) == "NHWC"}
    assert {"cv1", "p1", "p2", "p3", "cat", "cv2"} <= nhwc


def test_templates_compile_for_arm64(family, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    name, path, _, count = family
    result = compile_model(path, tmp_path / f"{name}.hai", CompileOptions(target="arm64"))
    assert result.target.name == "arm64"
    assert_scheduled(result, count)
