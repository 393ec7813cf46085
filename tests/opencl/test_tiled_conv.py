"""The tiled OpenCL conv schedule (targets/opencl/tiled.py) on the shapes it used to handle badly.

Each conv is compiled for the `nvidia-h100` preset (its tiles: 132 compute units, 48 KiB of local
memory) and run on this machine's OpenCL device (PoCL in CI) against onnxruntime: a 3-channel stem
conv (stride 2, pads; a 27-element reduction), at batch 1 and batch 8 with odd extents, a batch-8
pointwise conv, a grouped conv with odd channel counts, a 96-channel 3x3 conv on a small map
(few work-groups), a pointwise conv whose channel tiles must align to the packed weights' 4-wide
panels, and a depthwise conv (the `Fused` rule of flat.py: window sums and epilogue in one
kernel). The schedule facts are checked too: padding staged in local memory and accumulators
private, so the stem-like, pointwise and depthwise kernels are one device kernel with no global
scratch (the H100 run showed the padded input and a global accumulator costing most of their time).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import runtime
from hai_compiler.accuracy import relative_error
from hai_compiler.compiler import CompileOptions, compile_model
from runtime.artifact import kernel_library_file
from targets.opencl.tiled import aligned, depth_of, split_tiles

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("pyopencl")
onnx = pytest.importorskip("onnx")

TOLERANCE = 1e-4
# name: (x shape, output channels, kernel, stride, pad, group, one kernel without scratch)
CONVS: dict[str, tuple[tuple[int, int, int, int], int, int, int, int, int, bool]] = {
    "stem_3to8_s2": ((1, 3, 64, 64), 8, 3, 2, 1, 1, True),
    "stem_batch8_odd": ((8, 3, 17, 17), 8, 3, 2, 1, 1, True),
    "pointwise_batch8": ((8, 24, 20, 20), 40, 1, 1, 0, 1, True),
    "grouped_odd": ((2, 6, 13, 13), 9, 3, 2, 1, 3, False),
    "deep_small_map": ((1, 96, 20, 20), 24, 3, 1, 1, 1, True),
    "pointwise_panels": ((1, 384, 6, 6), 360, 1, 1, 0, 1, True),  # channel tiles across 4-wide panels
    "depthwise_s2": ((2, 16, 33, 33), 16, 3, 2, 1, 16, True),
}


def conv_model(shape: tuple[int, ...], out: int, k: int, stride: int, pad: int, group: int) -> Any:
    """Conv (+bias) then Relu, random weights (fixed seed)."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = rng.standard_normal((out, shape[1] // group, k, k)).astype(np.float32)
    b = rng.standard_normal(out).astype(np.float32)
    nodes = [
        helper.make_node(
            "Conv", ["x", "w", "b"], ["y"], name="conv", strides=[stride] * 2, pads=[pad] * 4, group=group
        ),
        helper.make_node("Relu", ["y"], ["z"], name="relu"),
    ]
    graph = helper.make_graph(
        nodes, "conv", [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(shape))],
        [helper.make_tensor_value_info("z", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("name", CONVS)
def test_tiled_conv_matches_onnxruntime(opencl_device: dict, name: str, tmp_path: Path) -> None:
    shape, out, k, stride, pad, group, single = CONVS[name]
    model = conv_model(shape, out, k, stride, pad, group)
    options = CompileOptions(target="opencl", cpu="nvidia-h100", input_shapes={"x": shape})
    artifact = compile_model(model, tmp_path / "conv.hai", options).path
    library = json.loads((artifact / kernel_library_file("opencl")).read_text())
    (record,) = library["kernels"].values()
    depthwise = group == shape[1]
    assert record["schedule"] == ("Fused" if depthwise else "Tiled"), record
    assert depthwise or record["tile"]["private"], record
    if single:  # padding read through its condition, epilogue applied from the private accumulators
        assert len(record["launches"]) == 1 and record["scratch"] == []
        assert depthwise or not record["tile"]["global_stages"]
    x = np.random.default_rng(1).standard_normal(shape).astype(np.float32)
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    want = session.run(None, {"x": x})
    with runtime.load(artifact) as loaded:
        got = loaded.run({"x": x})
    assert relative_error(got["z"], want[0]) <= TOLERANCE


def test_tiles_stay_inside_rows_and_images() -> None:
    """A batch of 2 images of 17 rows x 20 columns (680 positions): a tile of 40 would span two
    images (340 positions each), so it takes 20 (one row); a tile of 64 across rows of 160 is refused."""
    assert not aligned(40, [340, 20]) and aligned(20, [340, 20]) and aligned(680, [340, 20])
    assert not aligned(64, [160]) and aligned(32, [160])
    ((items, each), _) = split_tiles([(680, [340, 20]), (8, [])], 16, 0)
    assert aligned(items * each, [340, 20]) and items * each == 20


def test_small_problems_get_smaller_tiles_for_more_work_groups() -> None:
    """A 40 x 40 map of 24 channels: the largest tile (10 x 4 positions, 12 x 2 channels) leaves 40
    work-groups for 132 compute units; aiming at 2 a unit, each work-item takes one output (320
    work-groups of 10 x 12 work-items)."""
    axes = [(1600, [40]), (24, [])]
    assert split_tiles(axes, 16, 0) == [(10, 4), (12, 2)]
    assert split_tiles(axes, 16, 2 * 132) == [(10, 1), (12, 1)]


def test_a_step_stages_whole_taps_or_whole_channels_of_one() -> None:
    """A 3 x 3 x 3 stem reduction is staged in one step of 27 (it was 27 steps of 1: a barrier and a
    local copy per multiply-add); 96 channels x 3 x 3 in steps of 48 channels of one tap; a step
    never stages more than half the local memory."""
    assert depth_of(27, [9, 3], 4 * (64 + 16), 48 * 1024) == 27
    assert depth_of(864, [288, 96], 4 * (32 + 24), 48 * 1024) == 48
    assert depth_of(864, [288, 96], 4 * (32 + 24), 4096) == 8  # 9 fit in 2 KiB; 8 divides 96
