"""The `layout` pass end to end: NHWC regions compiled for x86 and run by the runtime match onnxruntime
(relative error <= 1e-4), with their kernels really NHWC and the Relayouts as steps of the plan."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import onnx
import pytest
from compile_helpers import assert_matches_onnxruntime

from hai_compiler import real_models
from hai_compiler.compiler import CompileOptions, compile_model
from targets.plan.kernels import layout_of

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "passes"))
from layout_models import se_block  # noqa: E402


def nhwc_kernels(result) -> list[str]:  # type: ignore[no-untyped-def]
    return [g.anchor.op for g in result.groups if layout_of(g) == "NHWC"]


def compile_real(name: str, layout: str, tmp_path: Path):  # type: ignore[no-untyped-def]
    model = real_models.MODELS[name]
    path = real_models.fetch(name)
    options = CompileOptions(input_shapes=model.input_shapes, layout=layout)
    result = compile_model(path, tmp_path / f"{name}.hai", options)
    assert_matches_onnxruntime(result.path, path, model.sample_inputs())
    return result


def test_small_se_block_compiled_nhwc_matches_onnxruntime(tmp_path: Path) -> None:
    model = tmp_path / "se.onnx"
    onnx.save(se_block(32, 14, seed=4), str(model))
    result = compile_model(model, tmp_path / "se.hai", CompileOptions(layout="NHWC"))
    assert {"Conv", "Mul", "Relayout"} <= set(nhwc_kernels(result))
    x = np.random.default_rng(5).standard_normal((1, 3, 14, 14)).astype(np.float32)
    assert_matches_onnxruntime(result.path, model, {"x": x})


def test_ppocr_cls_with_every_conv_region_nhwc_matches_onnxruntime(tmp_path: Path) -> None:
    result = compile_real("ppocr_cls", "NHWC", tmp_path)
    assert nhwc_kernels(result).count("Conv") >= 40


def test_default_cost_rule_on_ppocr_cls(tmp_path: Path) -> None:
    """PP-LCNet's convs tile their NCHW planes in whole vectors: the hand rule (a CPU class without a
    measured cost table, Zen 5) keeps it NCHW; the default compile for this host matches onnxruntime
    whatever its cost rule chose (on the AMX Xeon's measured table its dense convs go NHWC: 0.457 ms
    against 0.472 NCHW, 1 thread, measured when that rule met the depthwise layout rules)."""
    compile_real("ppocr_cls", "auto", tmp_path)
    model = real_models.MODELS["ppocr_cls"]
    options = CompileOptions(input_shapes=model.input_shapes, cpu="znver5")
    result = compile_model(real_models.fetch("ppocr_cls"), tmp_path / "zen5.hai", options)
    assert nhwc_kernels(result) == []
    assert not any(node.op == "Relayout" for node in result.graph.nodes)


@pytest.mark.slow
@pytest.mark.parametrize("name", ["orientation", "ppocr_det"])
def test_models_the_cost_rule_converts_match_onnxruntime(name: str, tmp_path: Path) -> None:
    result = compile_real(name, "auto", tmp_path)
    assert nhwc_kernels(result).count("Conv") >= 10


def split_resize_model(seed: int) -> onnx.ModelProto:
    """YOLOv8's C2f split and its upsampling: Conv -> Split (channels) -> two Convs -> Concat, then
    nearest x2 and linear x2 Resizes between Convs."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)

    def weight(name: str, *shape: int) -> onnx.TensorProto:
        return numpy_helper.from_array((rng.standard_normal(shape) * 0.3).astype(np.float32), name)

    scales = numpy_helper.from_array(np.array([1, 1, 2, 2], np.float32), "S")
    nodes = [
        helper.make_node("Conv", ["x", "W0"], ["c0"], name="c0", pads=[1, 1, 1, 1]),
        helper.make_node("Split", ["c0", "parts"], ["s0", "s1"], axis=1, name="split"),
        helper.make_node("Conv", ["s1", "W1"], ["c1"], name="c1", pads=[1, 1, 1, 1]),
        helper.make_node("Concat", ["s0", "s1", "c1"], ["cat"], axis=1, name="cat"),
        helper.make_node("Resize", ["cat", "", "S"], ["up"], mode="nearest", name="up"),
        helper.make_node("Conv", ["up", "W2"], ["c2"], name="c2", pads=[1, 1, 1, 1]),
        helper.make_node("Resize", ["c2", "", "S"], ["lin"], mode="linear", name="lin"),
        helper.make_node("Conv", ["lin", "W3"], ["y"], name="c3", pads=[1, 1, 1, 1]),
    ]
    inits = [
        weight("W0", 32, 3, 3, 3),
        numpy_helper.from_array(np.array([8, 24], np.int64), "parts"),
        weight("W1", 16, 24, 3, 3),
        weight("W2", 16, 48, 3, 3),
        weight("W3", 16, 16, 3, 3),
        scales,
    ]
    graph = helper.make_graph(
        nodes, "c2f", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 10, 12])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits,
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_split_and_resize_compiled_nhwc_match_onnxruntime(tmp_path: Path) -> None:
    """A channel Split and Resizes inside an NHWC region cut and resample the stored (channels-last)
    axes: no Relayout around them, outputs as onnxruntime's."""
    model = tmp_path / "c2f.onnx"
    onnx.save(split_resize_model(6), str(model))
    result = compile_model(model, tmp_path / "c2f.hai", CompileOptions(layout="NHWC"))
    assert {"Conv", "Split", "Concat", "Resize"} <= set(nhwc_kernels(result))
    assert sum(node.op == "Relayout" for node in result.graph.nodes) == 2  # the input and the output
    x = np.random.default_rng(7).standard_normal((1, 3, 10, 12)).astype(np.float32)
    assert_matches_onnxruntime(result.path, model, {"x": x})


def fpn_model(seed: int) -> onnx.ModelProto:
    """PP-OCR det's FPN: four pyramid levels (each a stride-2 Conv of the one before), each reduced
    by a Conv, nearest x2 Resizes adding each level into the one above, each sum upsampled to the
    finest level (nearest x8, x4, x2) and Concat'ed along the channels, then a Conv."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    inits, nodes = [], []

    def conv(x: str, y: str, cin: int, cout: int, stride: int = 1) -> None:
        inits.append(
            numpy_helper.from_array(
                (rng.standard_normal((cout, cin, 3, 3)) * 0.2).astype(np.float32), f"W{y}"
            )
        )
        nodes.append(
            helper.make_node("Conv", [x, f"W{y}"], [y], name=y, pads=[1, 1, 1, 1], strides=[stride] * 2)
        )

    def up(x: str, y: str, scale: int) -> None:
        inits.append(numpy_helper.from_array(np.array([1, 1, scale, scale], np.float32), f"S{y}"))
        nodes.append(
            helper.make_node(
                "Resize",
                [x, "", f"S{y}"],
                [y],
                name=y,
                mode="nearest",
                coordinate_transformation_mode="asymmetric",
                nearest_mode="floor",
            )
        )

    conv("x", "c2", 3, 8, 2)
    conv("c2", "c3", 8, 12, 2)
    conv("c3", "c4", 12, 16, 2)
    conv("c4", "c5", 16, 20, 2)
    for level, cin in zip((2, 3, 4, 5), (8, 12, 16, 20), strict=True):
        conv(f"c{level}", f"in{level}", cin, 16)
    up("in5", "u5", 2)
    nodes.append(helper.make_node("Add", ["in4", "u5"], ["o4"], name="o4"))
    up("o4", "u4", 2)
    nodes.append(helper.make_node("Add", ["in3", "u4"], ["o3"], name="o3"))
    up("o3", "u3", 2)
    nodes.append(helper.make_node("Add", ["in2", "u3"], ["o2"], name="o2"))
    for level, source, scale in ((5, "in5", 8), (4, "o4", 4), (3, "o3", 2)):
        conv(source, f"p{level}", 16, 4)
        up(f"p{level}", f"q{level}", scale)
    conv("o2", "p2", 16, 4)
    nodes.append(helper.make_node("Concat", ["q5", "q4", "q3", "p2"], ["fuse"], axis=1, name="fuse"))
    conv("fuse", "y", 16, 4)
    graph = helper.make_graph(
        nodes, "fpn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 64, 64])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)], inits,
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_fpn_resizes_and_concat_compiled_nhwc_match_onnxruntime(tmp_path: Path) -> None:
    """PP-OCR det's FPN pattern channels-last: the six nearest Resizes and the four-branch Concat
    run NHWC, outputs as onnxruntime's."""
    model = tmp_path / "fpn.onnx"
    onnx.save(fpn_model(3), str(model))
    result = compile_model(model, tmp_path / "fpn.hai", CompileOptions(layout="NHWC"))
    assert nhwc_kernels(result).count("Resize") == 6 and "Concat" in nhwc_kernels(result)
    x = np.random.default_rng(8).standard_normal((1, 3, 64, 64)).astype(np.float32)
    assert_matches_onnxruntime(result.path, model, {"x": x})
