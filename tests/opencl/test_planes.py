"""Global pools and short rows on OpenCL: GlobalAveragePool, GlobalMaxPool and ReduceMean over NCHW
planes of 160x160, 20x20, 5x7 and 1x1, a squeeze-excite block (pool -> conv -> relu -> conv ->
hardsigmoid -> mul, as PP-OCR det's) and Softmax over short rows (40 and 80 classes, PP-OCR rec's
attention shapes) each run as one device kernel, a work-group reducing one or several rows across its
work-items (a Softmax over a middle axis keeps the other rules); the SE block's element-wise Mul
spreads over every compute unit. Compiled for the `nvidia-h100` preset (132 compute units), run on
this machine's OpenCL device (PoCL in CI) against onnxruntime. One model holds every case: one
compile, one run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_models_opencl import onnxruntime_outputs

import runtime
from hai_compiler.compiler import CompileOptions, compile_model
from runtime.artifact import kernel_library_file
from targets.opencl.rows import ROW_MIN

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("pyopencl")

PLANES = {"big": (1, 8, 160, 160), "mid": (2, 32, 20, 20), "odd": (1, 16, 5, 7), "unit": (1, 8, 1, 1)}
ROWS = {"rows40": (320, 40), "rows80": (3, 26, 80), "middle": (4, 5, 5)}  # middle: Softmax over axis 1


def planes_model(path: Path) -> None:
    """Per plane input: GlobalAveragePool, GlobalMaxPool, ReduceMean over (2, 3); "mid" also feeds a
    squeeze-excite block; each ROWS input a last-axis Softmax."""
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(3)
    nodes, outputs, inits = [], [], []
    axes = numpy_helper.from_array(np.array([2, 3], np.int64), "axes")
    inits.append(axes)
    for x in PLANES:
        for op in ("GlobalAveragePool", "GlobalMaxPool", "ReduceMean"):
            inputs = [x, "axes"] if op == "ReduceMean" else [x]
            nodes.append(helper.make_node(op, inputs, [f"{op}_{x}"]))
            outputs.append(f"{op}_{x}")
    channels = PLANES["mid"][1]
    for name, shape in (
        ("w1", (8, channels, 1, 1)),
        ("b1", (8,)),
        ("w2", (channels, 8, 1, 1)),
        ("b2", (channels,)),
    ):
        inits.append(numpy_helper.from_array(rng.normal(0, 0.3, shape).astype(np.float32), name))
    nodes += [
        helper.make_node("GlobalAveragePool", ["mid"], ["se_pool"]),
        helper.make_node("Conv", ["se_pool", "w1", "b1"], ["se_c1"]),
        helper.make_node("Relu", ["se_c1"], ["se_r"]),
        helper.make_node("Conv", ["se_r", "w2", "b2"], ["se_c2"]),
        helper.make_node("HardSigmoid", ["se_c2"], ["se_gate"], alpha=0.2, beta=0.5),
        helper.make_node("Mul", ["mid", "se_gate"], ["se"]),
    ]
    outputs.append("se")
    for x in ROWS:
        nodes.append(helper.make_node("Softmax", [x], [f"Softmax_{x}"], axis=1 if x == "middle" else -1))
        outputs.append(f"Softmax_{x}")
    shapes = {**PLANES, **ROWS}
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in shapes.items()]
    results = [helper.make_tensor_value_info(o, TensorProto.FLOAT, None) for o in outputs]
    graph = helper.make_graph(nodes, "planes", inputs, results, initializer=inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)


def test_planes_and_short_rows_take_one_kernel_and_match_onnxruntime(
    opencl_device: dict, tmp_path: Path
) -> None:
    model = tmp_path / "planes.onnx"
    planes_model(model)
    rng = np.random.default_rng(5)
    shapes = {**PLANES, **ROWS}
    feeds = {name: rng.normal(0, 3, shape).astype(np.float32) for name, shape in shapes.items()}
    options = CompileOptions(target="opencl", cpu="nvidia-h100", input_shapes=shapes)
    artifact = compile_model(model, tmp_path / "planes.hai", options).path
    got = runtime.load(artifact).run(feeds)
    for name, expected in onnxruntime_outputs(model, feeds).items():
        np.testing.assert_allclose(got[name], expected, rtol=2e-5, atol=2e-6, err_msg=name)

    kernels = json.loads((artifact / kernel_library_file("opencl")).read_text())["kernels"]
    reducing = {n: k for n, k in kernels.items() if n.split("_")[1] in ("global", "reducemean", "softmax")}
    assert all(len(k["launches"]) == 1 for k in reducing.values())  # the epilogue in the same kernel
    rows = {n: k["launches"][0] for n, k in reducing.items() if k["schedule"] == "Rows"}
    others = sorted(n.split("_")[1] for n, k in reducing.items() if k["schedule"] != "Rows")
    assert others == ["global", "global", "reducemean", "softmax"]  # 1x1 planes: copies; "middle"
    long = [launch for launch in rows.values() if launch["local"][0] >= ROW_MIN]  # a work-group a row
    assert sorted(launch["global"][0] // launch["local"][0] for launch in long) == [8, 8, 8, 64, 64, 64]
    short = [launch for launch in rows.values() if launch["local"][0] < ROW_MIN]
    groups = sorted(launch["global"][0] // launch["local"][0] * launch["local"][1] for launch in short)
    assert groups == [16, 16, 16, 78, 320]  # every row once: 5x7 planes, Softmax over 80 and 40
    assert max(launch["local"][1] for launch in short) > 1  # 320 rows of 40: several a work-group

    (mul,) = (k["launches"] for n, k in kernels.items() if n.startswith("hai_ew_"))
    assert mul[0]["global"][0] // mul[0]["local"][0] >= 132  # a work-group for every compute unit
