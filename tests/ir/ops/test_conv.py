"""Conv and ConvTranspose: one-node ONNX models through HAI against onnxruntime, the converter's
resolution of auto_pad / output_shape into explicit attributes, and the inference errors users see."""

from __future__ import annotations

import numpy as np
import pytest
from one_node_onnx import assert_close, one_node_model, run_hai, run_onnxruntime, run_reference

from hai_compiler.onnx_import import import_onnx
from hai_compiler.onnx_import.converter import ConversionError
from ir import Builder, DType, Graph, IRError, TensorType, verify

RNG = np.random.default_rng(11)


def f32(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


# (id, x shape, w shape, with bias, attributes)
CONV_CASES = [
    ("2d-pads", (1, 3, 9, 9), (4, 3, 3, 3), True, {"pads": [1, 1, 1, 1]}),
    ("2d-no-bias", (2, 3, 7, 8), (5, 3, 3, 2), False, {}),
    (
        "2d-stride2-asymmetric-pads",
        (1, 2, 10, 9),
        (3, 2, 3, 3),
        True,
        {"strides": [2, 2], "pads": [1, 0, 2, 1]},
    ),
    ("2d-dilations", (1, 2, 11, 11), (3, 2, 3, 3), True, {"dilations": [2, 3], "pads": [2, 1, 2, 1]}),
    ("2d-group2", (1, 4, 8, 8), (6, 2, 3, 3), True, {"group": 2, "pads": [1, 1, 1, 1]}),
    (
        "depthwise-3x3-s2-pads",
        (1, 16, 32, 32),
        (16, 1, 3, 3),
        True,
        {"group": 16, "strides": [2, 2], "pads": [1, 1, 1, 1]},
    ),
    ("depthwise-5x5-multiplier2", (1, 4, 12, 12), (8, 1, 5, 5), True, {"group": 4, "pads": [2, 2, 2, 2]}),
    ("pointwise-1x1", (1, 8, 6, 6), (12, 8, 1, 1), True, {}),
    ("pointwise-1x1-stride2", (1, 8, 7, 7), (4, 8, 1, 1), False, {"strides": [2, 2]}),
    ("1d", (2, 3, 17), (4, 3, 5), True, {"strides": [2], "pads": [2, 1]}),
    ("3d", (1, 2, 6, 7, 5), (3, 2, 3, 3, 2), True, {"pads": [1, 0, 1, 1, 1, 0], "strides": [1, 2, 1]}),
    ("same-upper-stride2", (1, 3, 10, 9), (4, 3, 4, 3), True, {"auto_pad": "SAME_UPPER", "strides": [2, 2]}),
    ("same-lower-stride2", (1, 3, 10, 9), (4, 3, 4, 3), True, {"auto_pad": "SAME_LOWER", "strides": [2, 2]}),
    ("valid", (1, 3, 10, 9), (4, 3, 3, 3), True, {"auto_pad": "VALID", "strides": [2, 1]}),
    ("kernel-shape-given", (1, 3, 8, 8), (4, 3, 3, 3), True, {"kernel_shape": [3, 3]}),
]


def _conv_model(op: str, x_shape, w_shape, bias_channels: int | None, attrs: dict, opset: int = 13):
    x, w = f32(*x_shape), f32(*w_shape)
    constants = [("w", w)] + ([("b", f32(bias_channels))] if bias_channels else [])
    return one_node_model(op, [("x", x)], ["y"], opset, constants, **attrs), {"x": x}


@pytest.mark.parametrize(
    "x_shape, w_shape, bias, attrs", [c[1:] for c in CONV_CASES], ids=[c[0] for c in CONV_CASES]
)
def test_conv_matches_onnxruntime(x_shape, w_shape, bias, attrs) -> None:
    model, feeds = _conv_model("Conv", x_shape, w_shape, w_shape[0] if bias else None, attrs)
    assert_close(run_hai(model, feeds), run_onnxruntime(model, feeds), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("opset", [7, 11, 22])
def test_conv_every_opset(opset: int) -> None:
    model, feeds = _conv_model("Conv", (1, 2, 6, 6), (3, 2, 3, 3), 3, {"pads": [1, 1, 1, 1]}, opset)
    assert_close(run_hai(model, feeds), run_onnxruntime(model, feeds), rtol=1e-4, atol=1e-5)


def test_conv_same_with_dilations_pads_the_dilated_kernel() -> None:
    # onnxruntime refuses this combination; the ONNX reference pads for the dilated kernel
    model, feeds = _conv_model(
        "Conv",
        (1, 2, 9, 8),
        (2, 2, 3, 3),
        None,
        {"auto_pad": "SAME_UPPER", "dilations": [2, 3], "strides": [2, 1]},
    )
    assert_close(run_hai(model, feeds), run_reference(model, feeds), rtol=1e-5, atol=1e-5)


def test_conv_float16_matches_onnxruntime() -> None:
    x, w = f32(1, 4, 10, 10).astype(np.float16), f32(6, 4, 3, 3).astype(np.float16)
    model = one_node_model("Conv", [("x", x)], ["y"], 13, [("w", w)], pads=[1, 1, 1, 1])
    assert_close(run_hai(model, {"x": x}), run_onnxruntime(model, {"x": x}), rtol=1e-2, atol=1e-2)


def test_converter_makes_window_explicit() -> None:
    model, _ = _conv_model(
        "Conv", (1, 3, 10, 9), (4, 3, 4, 3), None, {"auto_pad": "SAME_UPPER", "strides": [2, 2]}
    )
    graph = import_onnx(model)
    verify(graph)
    (node,) = graph.nodes
    # out = ceil(in / 2) = [5, 5]; total pad = (5-1)*2 + k - in = [2, 2]: split evenly
    assert node.attrs == {"strides": (2, 2), "pads": (1, 1, 1, 1), "dilations": (1, 1), "group": 1}
    assert node.results[0].type.shape == (1, 4, 5, 5)


# (id, x shape, w shape, group, attributes)
TRANSPOSE_CASES = [
    ("2d-stride2-kernel2", (1, 8, 10, 10), (8, 4, 2, 2), 1, {"strides": [2, 2]}),
    (
        "2d-stride2-kernel3-pads-output-padding",
        (1, 3, 5, 6),
        (3, 2, 3, 3),
        1,
        {"strides": [2, 2], "pads": [1, 1, 1, 1], "output_padding": [1, 1]},
    ),
    ("2d-asymmetric-pads", (1, 2, 4, 4), (2, 3, 3, 3), 1, {"strides": [3, 2], "pads": [1, 0, 2, 1]}),
    ("2d-dilations", (1, 2, 4, 5), (2, 2, 3, 2), 1, {"dilations": [2, 3]}),
    ("2d-group2", (2, 4, 5, 5), (4, 3, 3, 3), 2, {"strides": [2, 1]}),
    ("depthwise", (1, 6, 4, 4), (6, 1, 2, 2), 6, {"strides": [2, 2]}),
    ("1d", (1, 3, 7), (3, 2, 4), 1, {"strides": [3], "pads": [1, 2]}),
    ("3d", (1, 2, 3, 4, 3), (2, 2, 2, 3, 2), 1, {"strides": [2, 1, 2]}),
    ("output-shape-larger", (1, 1, 3, 3), (1, 2, 3, 3), 1, {"strides": [3, 2], "output_shape": [10, 8]}),
    ("output-shape-smaller", (1, 1, 4, 4), (1, 2, 3, 3), 1, {"strides": [2, 2], "output_shape": [8, 8]}),
    (
        "output-shape-same-lower",
        (1, 1, 3, 3),
        (1, 2, 3, 3),
        1,
        {"strides": [2, 2], "output_shape": [5, 4], "auto_pad": "SAME_LOWER"},
    ),
    ("same-upper-even-total", (1, 2, 5, 5), (2, 3, 4, 4), 1, {"strides": [2, 2], "auto_pad": "SAME_UPPER"}),
]


@pytest.mark.parametrize(
    "x_shape, w_shape, group, attrs", [c[1:] for c in TRANSPOSE_CASES], ids=[c[0] for c in TRANSPOSE_CASES]
)
def test_conv_transpose_matches_onnxruntime(x_shape, w_shape, group, attrs) -> None:
    model, feeds = _conv_model(
        "ConvTranspose", x_shape, w_shape, w_shape[1] * group, {**attrs, "group": group}
    )
    assert_close(run_hai(model, feeds), run_onnxruntime(model, feeds), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("auto_pad, pads", [("SAME_UPPER", (0, 0, 1, 1)), ("SAME_LOWER", (1, 1, 0, 0))])
def test_conv_transpose_odd_same_padding_side(auto_pad: str, pads: tuple[int, ...]) -> None:
    # total padding 1: SAME_UPPER puts it at the end, SAME_LOWER at the beginning (ONNX spec, onnxruntime)
    model, feeds = _conv_model(
        "ConvTranspose", (1, 1, 3, 3), (1, 2, 3, 3), None, {"strides": [2, 2], "auto_pad": auto_pad}
    )
    (node,) = import_onnx(model).nodes
    assert node.attrs["pads"] == pads and node.attrs["output_padding"] == (0, 0)
    assert_close(run_hai(model, feeds), run_onnxruntime(model, feeds), rtol=1e-5, atol=1e-6)
    assert_close(run_hai(model, feeds), run_reference(model, feeds), rtol=1e-5, atol=1e-6)


def _conv_node(op: str, x: tuple[int, ...], w: tuple[int, ...], b: tuple[int, ...] | None = None, **attrs):
    graph = Graph()
    operands = [
        graph.add_input("x", TensorType(DType.F32, x)),
        graph.add_input("w", TensorType(DType.F32, w)),
    ]
    if b is not None:
        operands.append(graph.add_input("b", TensorType(DType.F32, b)))
    window = {
        "strides": (1,) * (len(x) - 2),
        "pads": (0,) * (2 * len(x) - 4),
        "dilations": (1,) * (len(x) - 2),
    }
    if op == "ConvTranspose":
        window["output_padding"] = (0,) * (len(x) - 2)
    return Builder(graph).op(op, operands, {**window, **attrs}, name="c1")


def test_channel_mismatch_names_the_channels() -> None:
    with pytest.raises(IRError, match=r"Conv node 'c1'.*X .* has 3 channels but W .* expects 4"):
        _conv_node("Conv", (1, 3, 8, 8), (6, 2, 3, 3), group=2)


def test_group_must_divide_output_channels() -> None:
    with pytest.raises(IRError, match=r"group 2 must .* divide the 5 output channels"):
        _conv_node("Conv", (1, 4, 8, 8), (5, 2, 3, 3), group=2)


def test_bias_must_match_output_channels() -> None:
    with pytest.raises(IRError, match=r"B f32\[4\] must have shape \[5\]"):
        _conv_node("Conv", (1, 2, 8, 8), (5, 2, 3, 3), b=(4,))


def test_kernel_larger_than_input_is_an_error() -> None:
    with pytest.raises(IRError, match=r"kernel \[5, 5\] .* does not fit spatial shape \[4, 4\]"):
        _conv_node("Conv", (1, 2, 4, 4), (3, 2, 5, 5))


def test_window_attribute_lengths_are_checked() -> None:
    with pytest.raises(IRError, match=r"pads \[1, 1\] must have 4 entries"):
        _conv_node("Conv", (1, 2, 8, 8), (3, 2, 3, 3), pads=(1, 1))


def test_conv_transpose_channel_mismatch() -> None:
    with pytest.raises(IRError, match=r"ConvTranspose node 'c1'.*has 3 channels but W .* expects 4"):
        _conv_node("ConvTranspose", (1, 3, 4, 4), (4, 2, 2, 2))


def test_kernel_shape_attribute_must_match_the_weight() -> None:
    model, _ = _conv_model("Conv", (1, 3, 8, 8), (4, 3, 3, 3), None, {"kernel_shape": [5, 5]})
    with pytest.raises(
        ConversionError, match=r"kernel_shape \[5, 5\] does not match the weight's spatial dims"
    ):
        import_onnx(model)


def test_import_error_names_the_onnx_node() -> None:
    model, _ = _conv_model("Conv", (1, 3, 8, 8), (4, 2, 3, 3), None, {})
    with pytest.raises(ConversionError, match=r"node 'y' \(Conv\).*3 channels but W"):
        import_onnx(model)
