"""Resize, Upsample, DepthToSpace, SpaceToDepth: one-node ONNX models through HAI against
onnxruntime and the ONNX reference evaluator (which computes Resize in float64, as our reference does)."""

from __future__ import annotations

import numpy as np
import onnx
import pytest
from one_node_onnx import (
    assert_close,
    one_node_model,
    run_hai,
    run_onnxruntime,
    run_reference,
)
from onnx import helper

from hai_compiler.onnx_import import import_onnx
from ir import HaiError

RNG = np.random.default_rng(0)
X = RNG.standard_normal((1, 8, 20, 20)).astype(np.float32)  # a PP-OCR FPN map, shrunk
COORDINATE_MODES = ["half_pixel", "pytorch_half_pixel", "align_corners", "asymmetric", "tf_crop_and_resize",
                    "half_pixel_symmetric"]


def f32(*values: float) -> np.ndarray:
    return np.array(values, np.float32)


def resize_model(x: np.ndarray, opset: int = 19, roi=None, scales=None, sizes=None, **attrs):  # type: ignore[no-untyped-def]
    constants = [("roi", roi), ("scales", scales), ("sizes", sizes)]
    return one_node_model("Resize", [("X", x)], ["Y"], opset, constants=constants, **attrs)


def check(model: onnx.ModelProto, x: np.ndarray, reference=run_reference, tol: float = 1e-5) -> None:  # type: ignore[no-untyped-def]
    assert_close(run_hai(model, {"X": x}), reference(model, {"X": x}), rtol=tol, atol=tol)


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("coordinate_mode", COORDINATE_MODES)
@pytest.mark.parametrize("scales", [(1, 1, 2, 2), (1, 1, 0.6, 1.7)])
def test_resize_modes_by_scales(mode: str, coordinate_mode: str, scales) -> None:  # type: ignore[no-untyped-def]
    # (an roi whose coordinates hit no exact .5 tie: there float32 rounding decides nearest's pick)
    roi = f32(0, 0, 0.12, 0.27, 1, 1, 0.83, 0.91) if coordinate_mode == "tf_crop_and_resize" else None
    model = resize_model(X, roi=roi, scales=f32(*scales), mode=mode,
                         coordinate_transformation_mode=coordinate_mode, extrapolation_value=-1.5)
    check(model, X)


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("coordinate_mode", COORDINATE_MODES[:5])
def test_resize_by_sizes_matches_onnxruntime(mode: str, coordinate_mode: str) -> None:
    roi = f32(0, 0, 0.2, 0.1, 1, 1, 0.9, 0.7) if coordinate_mode == "tf_crop_and_resize" else None
    model = resize_model(X, opset=13, roi=roi, sizes=np.array([1, 8, 13, 31], np.int64), mode=mode,
                         coordinate_transformation_mode=coordinate_mode)
    check(model, X, run_onnxruntime, tol=1e-4)  # onnxruntime maps coordinates in float32


@pytest.mark.parametrize("nearest_mode", ["round_prefer_floor", "round_prefer_ceil", "floor", "ceil"])
def test_nearest_modes(nearest_mode: str) -> None:
    model = resize_model(X, scales=f32(1, 1, 1.5, 0.75), mode="nearest", nearest_mode=nearest_mode)
    check(model, X)


@pytest.mark.parametrize("mode", ["linear", "cubic"])
@pytest.mark.parametrize("scales", [(1, 1, 0.42, 0.6), (1, 1, 1.5, 0.8)])
def test_antialias(mode: str, scales) -> None:  # type: ignore[no-untyped-def]
    model = resize_model(X, opset=18, scales=f32(*scales), mode=mode, antialias=1)
    check(model, X)


def test_cubic_coefficient_and_exclude_outside() -> None:
    model = resize_model(X, scales=f32(1, 1, 1.6, 0.6), mode="cubic", cubic_coeff_a=-0.5, exclude_outside=1)
    check(model, X)


@pytest.mark.parametrize("policy", ["stretch", "not_larger", "not_smaller"])
def test_axes_and_keep_aspect_ratio_policy(policy: str) -> None:
    model = resize_model(X, opset=18, sizes=np.array([33, 9], np.int64), axes=[3, 2], mode="linear",
                         keep_aspect_ratio_policy=policy)
    check(model, X)


def test_axes_with_roi() -> None:
    model = resize_model(X, opset=18, roi=f32(0.2, 0.1, 0.9, 0.8), sizes=np.array([7, 11], np.int64),
                         axes=[3, 2], mode="linear", coordinate_transformation_mode="tf_crop_and_resize")
    check(model, X)


@pytest.mark.parametrize("mode", ["nearest", "linear", "cubic"])
@pytest.mark.parametrize("dtype", [np.uint8, np.int8, np.float16])
def test_other_dtypes_saturate_like_onnx(mode: str, dtype) -> None:  # type: ignore[no-untyped-def]
    offset = 120 if dtype == np.uint8 else 0
    x = np.clip(RNG.standard_normal((1, 2, 6, 8)) * 90 + offset, -128, 255).astype(dtype)
    model = resize_model(x, scales=f32(1, 1, 1.5, 0.75), mode=mode)
    check(model, x, tol=1e-3 if dtype == np.float16 else 0)


def test_ppocr_style_resize_with_constant_nodes() -> None:
    """PP-OCR's detector: nearest/asymmetric/floor with an empty roi and scales from Constant nodes."""
    x = RNG.standard_normal((1, 96, 20, 20)).astype(np.float32)
    nodes = [
        helper.make_node("Constant", [], ["roi"], value=onnx.numpy_helper.from_array(f32())),
        helper.make_node("Constant", [], ["scales"], value=onnx.numpy_helper.from_array(f32(1, 1, 8, 8))),
        helper.make_node("Resize", ["X", "roi", "scales"], ["Y"], mode="nearest",
                         coordinate_transformation_mode="asymmetric", nearest_mode="floor"),
    ]
    graph = helper.make_graph(nodes, "ppocr_up", [helper.make_tensor_value_info("X", 1, x.shape)],
                              [helper.make_empty_tensor_value_info("Y")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 12)])
    (node,) = [n for n in import_onnx(model).nodes if n.op == "Resize"]
    assert node.attrs["sizes"] == (1, 96, 160, 160) and node.attrs["scales"] == (1.0, 1.0, 8.0, 8.0)
    assert len(node.operands) == 1
    check(model, x, run_onnxruntime, tol=0)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
@pytest.mark.parametrize("scales", [(1, 1, 0.6, 0.75), (1, 1, 1.75, 2.5), (1, 1, 0.6, 2.0)])
def test_resize_10_matches_onnxruntime(mode: str, scales) -> None:  # type: ignore[no-untyped-def]
    """Scales whose source coordinates have no float32 ties (onnxruntime maps coordinates in float32)."""
    model = one_node_model("Resize", [("X", X)], ["Y"], 10, constants=[("scales", f32(*scales))], mode=mode)
    check(model, X, run_onnxruntime, tol=1e-5)


@pytest.mark.parametrize("mode", ["nearest", "linear"])
@pytest.mark.parametrize("opset", [7, 9])
def test_upsample_becomes_resize(mode: str, opset: int) -> None:
    scales = [1.0, 1.0, 2.0, 1.5]
    if opset == 7:
        model = one_node_model("Upsample", [("X", X)], ["Y"], 7, mode=mode, scales=scales)
    else:
        constants = [("scales", f32(*scales))]
        model = one_node_model("Upsample", [("X", X)], ["Y"], 9, constants=constants, mode=mode)
    assert [n.op for n in import_onnx(model).nodes] == ["Resize"]
    check(model, X, run_onnxruntime, tol=1e-5)


@pytest.mark.parametrize(("op", "mode", "opset"), [("DepthToSpace", "DCR", 13), ("DepthToSpace", "CRD", 13),
                                                   ("SpaceToDepth", None, 13), ("SpaceToDepth", "DCR", 28),
                                                   ("SpaceToDepth", "CRD", 28)])
def test_depth_space_rearrangement(op: str, mode: str | None, opset: int) -> None:
    x = RNG.standard_normal((2, 12, 4, 6)).astype(np.float32)
    attrs = {"mode": mode} if mode else {}
    model = one_node_model(op, [("X", x)], ["Y"], opset, blocksize=2, **attrs)
    check(model, x, run_onnxruntime if opset < 28 else run_reference, tol=0)


@pytest.mark.parametrize(
    ("model", "message"),
    [
        (resize_model(X, scales=f32(1, 1, 2, 2), mode="bicubic"), "bicubic"),
        (resize_model(X, scales=f32(1, 2, 2)), "3 entries|4 entries"),
        (resize_model(X, scales=f32(1, 1, 0, 2)), "positive"),
        (resize_model(X), "scales or sizes"),
        (one_node_model("DepthToSpace", [("X", X)], ["Y"], 13, blocksize=3), "divisible"),
    ],
)
def test_bad_models_are_user_errors(model: onnx.ModelProto, message: str) -> None:
    with pytest.raises(HaiError, match=message):
        import_onnx(model)


def test_size_from_scales_rounds_like_onnxruntime() -> None:
    """20 × 0.7f is 13.99999 in float64 but 14 in float32, which onnxruntime (and HAI) use."""
    model = resize_model(X, opset=13, scales=f32(1, 1, 0.7, 1), mode="linear")
    (node,) = import_onnx(model).nodes
    assert node.attrs["sizes"] == (1, 8, 14, 20)
    check(model, X, run_onnxruntime, tol=1e-4)
