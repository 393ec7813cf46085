"""Row kernels on OpenCL (targets/opencl/rows.py): Softmax, LogSoftmax, ReduceMax/Min and
LayerNormalization over rows of 6625 elements (PP-OCR rec's classes), and Softmax/ReduceMax over rows of
300 along a middle axis, get a work-group a row; rows of 8 share work-groups, 8 work-items a row. All
match onnxruntime on this machine's OpenCL device (PoCL in CI), rows holding NaN, -inf and +inf included
(ReduceMax/Min: numpy's, which propagate NaN as HAI's reference does; onnxruntime's skip it). One model
holds every case: one compile, one run."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from test_models_opencl import compile_opencl, onnxruntime_outputs

import runtime
from runtime.artifact import kernel_library_file
from targets.opencl.rows import ROW_MIN

onnx = pytest.importorskip("onnx")
pytest.importorskip("onnxruntime")
pytest.importorskip("pyopencl")

SHAPES = {"long": (40, 6625), "short": (64, 8), "middle": (3, 300, 5)}
AXIS = {"long": 1, "short": 1, "middle": 1}  # middle: rows of 300 elements 5 apart
OPS = {
    "long": ("Softmax", "LogSoftmax", "ReduceMax", "ReduceMin", "LayerNormalization"),
    "short": ("Softmax", "ReduceMax", "LayerNormalization"),
    "middle": ("Softmax", "ReduceMax"),
}


def rows_model(path: Path) -> None:
    """The OPS of each input, over its AXIS, one output each."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, outputs, inits = [], [], []
    for x, shape in SHAPES.items():
        for op in OPS[x]:
            out = f"{op}_{x}"
            if op.startswith("Reduce"):
                axes = numpy_helper.from_array(np.array([AXIS[x]], np.int64), f"axes_{op}_{x}")
                inits.append(axes)
                nodes.append(helper.make_node(op, [x, axes.name], [out], keepdims=1))
            elif op == "LayerNormalization":
                scale = numpy_helper.from_array(np.linspace(0.5, 1.5, shape[1], dtype=np.float32), f"g_{x}")
                bias = numpy_helper.from_array(np.linspace(-1, 1, shape[1], dtype=np.float32), f"b_{x}")
                inits += [scale, bias]
                nodes.append(helper.make_node(op, [x, scale.name, bias.name], [out], axis=-1))
            else:
                nodes.append(helper.make_node(op, [x], [out], axis=AXIS[x]))
            outputs.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, None))
    inputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s)) for n, s in SHAPES.items()]
    graph = helper.make_graph(nodes, "rows", inputs, outputs, initializer=inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)


def rows_input(name: str, rng: np.random.Generator) -> np.ndarray:
    """Logits whose rows (along AXIS) include special ones: a NaN, all -inf, a +inf, some -inf among
    finite values, all +inf."""
    shape = SHAPES[name]
    rows = (int(np.prod(shape)) // shape[AXIS[name]], shape[AXIS[name]])
    x = rng.normal(0, 4, rows).astype(np.float32)
    x[0, 3] = np.nan
    x[1, :] = -np.inf
    x[2, 5] = np.inf
    x[3, ::3] = -np.inf
    x[4, :] = np.inf
    if len(shape) == 3:  # rows (o, i) along the middle axis
        return np.ascontiguousarray(x.reshape(shape[0], shape[2], shape[1]).transpose(0, 2, 1))
    return x


def test_long_rows_take_a_work_group_each_and_match_onnxruntime(opencl_device: dict, tmp_path: Path) -> None:
    model = tmp_path / "rows.onnx"
    rows_model(model)
    rng = np.random.default_rng(7)
    feeds = {name: rows_input(name, rng) for name in SHAPES}
    artifact = compile_opencl(model, tmp_path / "rows.hai", SHAPES)
    got = runtime.load(artifact).run(feeds)
    want = onnxruntime_outputs(model, feeds)
    for x in SHAPES:  # onnxruntime's ReduceMax/Min skip NaN; HAI's (ir/ops) propagate it: numpy's
        for op, pick in (("ReduceMax", np.max), ("ReduceMin", np.min)):
            if op in OPS[x]:
                want[f"{op}_{x}"] = pick(feeds[x], axis=AXIS[x], keepdims=True)
    for name, expected in want.items():
        np.testing.assert_allclose(got[name], expected, rtol=2e-5, atol=1e-6, err_msg=name)  # NaN where it is

    kernels = json.loads((artifact / kernel_library_file("opencl")).read_text())["kernels"]
    by_op: dict[str, list[dict]] = {}
    for name, kernel in kernels.items():
        by_op.setdefault(name.split("_")[1], []).append(kernel)
    for op in ("softmax", "logsoftmax", "reducemax", "reducemin", "layernorm"):
        assert all(k["schedule"] == "Rows" and len(k["launches"]) == 1 for k in by_op[op])
        launches = [k["launches"][0] for k in by_op[op]]
        long = [launch for launch in launches if launch["local"][0] >= ROW_MIN]
        groups = sorted(launch["global"][0] // launch["local"][0] for launch in long)
        assert groups == ([15, 40] if op in ("softmax", "reducemax") else [40])  # a work-group a row
        short = [launch for launch in launches if launch["local"][0] < ROW_MIN]
        assert len(short) == (op in ("softmax", "reducemax", "layernorm"))  # rows of 8
        for launch in short:  # 8 work-items a row, several rows a work-group
            assert launch["local"][0] == 8 and launch["local"][1] > 1
            assert launch["global"][0] // 8 * launch["local"][1] == SHAPES["short"][0]  # every row once
