"""Normalization ops (BatchNormalization, Instance-, Layer-, Group-, LpNormalization): one-node ONNX
models through HAI against onnxruntime (or the ONNX reference where onnxruntime lacks the op), and
the clear errors for training mode and bad parameter shapes."""

from __future__ import annotations

import numpy as np
import pytest
from one_node_onnx import assert_close, one_node_model, run_hai, run_onnxruntime, run_reference

from hai_compiler.onnx_import import import_onnx
from hai_compiler.onnx_import.converter import ConversionError
from ir import Builder, DType, Graph, IRError, TensorType

RNG = np.random.default_rng(9)


def f32(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


X = f32(2, 3, 5, 6)


def _bn_params(channels: int) -> list[tuple[str, np.ndarray]]:
    var = np.abs(f32(channels)) + 0.1
    return [("scale", f32(channels)), ("bias", f32(channels)), ("mean", f32(channels)), ("var", var)]


@pytest.mark.parametrize("opset", [7, 9, 14, 15])
def test_batch_norm_every_opset(opset: int) -> None:
    model = one_node_model("BatchNormalization", [("x", X)], ["y"], opset, _bn_params(3), epsilon=1e-3)
    assert_close(run_hai(model, {"x": X}), run_onnxruntime(model, {"x": X}), rtol=1e-5, atol=1e-5)


def test_batch_norm_2d_input() -> None:
    x = f32(4, 3)
    model = one_node_model("BatchNormalization", [("x", x)], ["y"], 15, _bn_params(3))
    assert_close(run_hai(model, {"x": x}), run_onnxruntime(model, {"x": x}), rtol=1e-5, atol=1e-5)


def test_batch_norm_training_mode_is_a_clear_error() -> None:
    model = one_node_model(
        "BatchNormalization", [("x", X)], ["y", "m", "v"], 15, _bn_params(3), training_mode=1
    )
    with pytest.raises(
        ConversionError, match=r"node 'y' \(BatchNormalization\): training_mode=1 is not supported"
    ):
        import_onnx(model)


def test_batch_norm_training_outputs_of_old_opsets_are_a_clear_error() -> None:
    outputs = ["y", "running_mean", "running_var", "saved_mean", "saved_var"]  # opset 9 has 1 or 5 outputs
    model = one_node_model("BatchNormalization", [("x", X)], outputs, 9, _bn_params(3))
    with pytest.raises(ConversionError, match=r"only in training mode.*inference \(eval\) mode"):
        import_onnx(model)


def test_batch_norm_parameters_must_be_per_channel() -> None:
    graph = Graph()
    x = graph.add_input("x", TensorType(DType.F32, (1, 3, 4, 4)))
    params = [
        graph.add_input(n, TensorType(DType.F32, (4 if n == "var" else 3,))) for n in ("s", "b", "m", "var")
    ]
    with pytest.raises(IRError, match=r"BatchNormalization node 'bn'.*var f32\[4\] must have shape \[3\]"):
        Builder(graph).op("BatchNormalization", [x, *params], name="bn")


def test_instance_norm() -> None:
    model = one_node_model(
        "InstanceNormalization", [("x", X)], ["y"], 6 + 7, [("s", f32(3)), ("b", f32(3))], epsilon=1e-4
    )
    assert_close(run_hai(model, {"x": X}), run_onnxruntime(model, {"x": X}), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("axis", [-1, -2, 1, 0])
def test_layer_norm_with_stats(axis: int) -> None:
    normalized = X.shape[axis:] if axis >= 0 else X.shape[axis:]
    model = one_node_model(
        "LayerNormalization",
        [("x", X)],
        ["y", "mean", "inv_std"],
        17,
        [("s", f32(*normalized)), ("b", f32(*normalized))],
        axis=axis,
        epsilon=1e-3,
    )
    assert_close(run_hai(model, {"x": X}), run_onnxruntime(model, {"x": X}), rtol=1e-4, atol=1e-5)


def test_layer_norm_without_bias_or_stats() -> None:
    x = f32(1, 40, 96)
    model = one_node_model("LayerNormalization", [("x", x)], ["y"], 17, [("s", f32(96))])
    (node,) = import_onnx(model).nodes
    assert node.attrs["axis"] == 2 and node.attrs["return_stats"] == 0 and len(node.results) == 1
    assert_close(run_hai(model, {"x": x}), run_onnxruntime(model, {"x": x}), rtol=1e-4, atol=1e-5)


def test_layer_norm_scale_must_fit_the_normalized_dims() -> None:
    model = one_node_model("LayerNormalization", [("x", X)], ["y"], 17, [("s", f32(5))])
    with pytest.raises(
        ConversionError, match=r"Scale f32\[5\] does not broadcast to the normalized dims \[6\]"
    ):
        import_onnx(model)


def test_group_norm_opset21() -> None:
    x = f32(2, 6, 4, 3)
    model = one_node_model(
        "GroupNormalization",
        [("x", x)],
        ["y"],
        21,
        [("s", f32(6)), ("b", f32(6))],
        num_groups=3,
        epsilon=1e-3,
    )
    assert_close(run_hai(model, {"x": x}), run_reference(model, {"x": x}), rtol=1e-4, atol=1e-5)


def test_group_norm_opset18_per_group_parameters_become_per_channel() -> None:
    x = f32(2, 6, 4, 3)
    scale, bias = f32(2), f32(2)
    model = one_node_model(
        "GroupNormalization", [("x", x)], ["y"], 18, [("s", scale), ("b", bias)], num_groups=2
    )
    expected = one_node_model(
        "GroupNormalization",
        [("x", x)],
        ["y"],
        21,
        [("s", np.repeat(scale, 3)), ("b", np.repeat(bias, 3))],
        num_groups=2,
    )
    assert_close(run_hai(model, {"x": x}), run_reference(expected, {"x": x}), rtol=1e-4, atol=1e-5)


def test_group_norm_groups_must_divide_channels() -> None:
    x = f32(1, 6, 2, 2)
    model = one_node_model(
        "GroupNormalization", [("x", x)], ["y"], 21, [("s", f32(6)), ("b", f32(6))], num_groups=4
    )
    with pytest.raises(ConversionError, match=r"num_groups 4 must be >= 1 and divide the 6 channels"):
        import_onnx(model)


@pytest.mark.parametrize("p, axis", [(2, -1), (1, 1), (2, 0)])
def test_lp_normalization(p: int, axis: int) -> None:
    model = one_node_model("LpNormalization", [("x", X)], ["y"], 13, p=p, axis=axis)
    assert_close(run_hai(model, {"x": X}), run_onnxruntime(model, {"x": X}), rtol=1e-5, atol=1e-6)
