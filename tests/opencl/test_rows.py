"""Row kernels on OpenCL (targets/opencl/rows.py): Softmax, LogSoftmax, ReduceMax and LayerNormalization
over rows of 6625 elements (PP-OCR rec's classes) get a work-group a row, rows of 8 keep the other rules;
both match onnxruntime on this machine's OpenCL device (PoCL in CI), rows holding NaN, -inf and +inf
included (ReduceMax/Min: numpy's, which propagate NaN as HAI's reference does; onnxruntime's skip it).
One model holds every case: one compile, one run."""

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

LONG, SHORT = (40, 6625), (64, 8)
OPS = {
    "long": ("Softmax", "LogSoftmax", "ReduceMax", "ReduceMin", "LayerNormalization"),
    "short": ("Softmax", "ReduceMax", "LayerNormalization"),
}


def rows_model(path: Path) -> None:
    """The OPS of `long` and `short`, over their last axis, one output each."""
    from onnx import TensorProto, helper, numpy_helper

    nodes, outputs, inits = [], [], []
    for x, shape in (("long", LONG), ("short", SHORT)):
        for op in OPS[x]:
            out = f"{op}_{x}"
            if op.startswith("Reduce"):
                axes = numpy_helper.from_array(np.array([-1], np.int64), f"axes_{op}_{x}")
                inits.append(axes)
                nodes.append(helper.make_node(op, [x, axes.name], [out], keepdims=1))
            elif op == "LayerNormalization":
                scale = numpy_helper.from_array(np.linspace(0.5, 1.5, shape[1], dtype=np.float32), f"g_{x}")
                bias = numpy_helper.from_array(np.linspace(-1, 1, shape[1], dtype=np.float32), f"b_{x}")
                inits += [scale, bias]
                nodes.append(helper.make_node(op, [x, scale.name, bias.name], [out], axis=-1))
            else:
                nodes.append(helper.make_node(op, [x], [out], axis=-1))
            outputs.append(helper.make_tensor_value_info(out, TensorProto.FLOAT, None))
    inputs = [
        helper.make_tensor_value_info(n, TensorProto.FLOAT, list(s))
        for n, s in (("long", LONG), ("short", SHORT))
    ]
    graph = helper.make_graph(nodes, "rows", inputs, outputs, initializer=inits)
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)]), path)


def rows_input(shape: tuple[int, int], rng: np.random.Generator) -> np.ndarray:
    """Logits with special rows: a NaN, all -inf, a +inf, some -inf among finite values, all +inf."""
    x = rng.normal(0, 4, shape).astype(np.float32)
    x[0, 3] = np.nan
    x[1, :] = -np.inf
    x[2, 5] = np.inf
    x[3, ::3] = -np.inf
    x[4, :] = np.inf
    return x


def test_long_rows_take_a_work_group_each_and_match_onnxruntime(opencl_device: dict, tmp_path: Path) -> None:
    model = tmp_path / "rows.onnx"
    rows_model(model)
    rng = np.random.default_rng(7)
    feeds = {"long": rows_input(LONG, rng), "short": rows_input(SHORT, rng)}
    artifact = compile_opencl(model, tmp_path / "rows.hai", {"long": LONG, "short": SHORT})
    got = runtime.load(artifact).run(feeds)
    want = onnxruntime_outputs(model, feeds)
    for x in ("long", "short"):  # onnxruntime's ReduceMax/Min skip NaN; HAI's (ir/ops) propagate it: numpy's
        for op, pick in (("ReduceMax", np.max), ("ReduceMin", np.min)):
            if op in OPS[x]:
                want[f"{op}_{x}"] = pick(feeds[x], axis=-1, keepdims=True)
    for name, expected in want.items():
        np.testing.assert_allclose(got[name], expected, rtol=2e-5, atol=1e-6, err_msg=name)  # NaN where it is

    kernels = json.loads((artifact / kernel_library_file("opencl")).read_text())["kernels"]
    by_op: dict[str, list[dict]] = {}
    for name, kernel in kernels.items():
        by_op.setdefault(name.split("_")[1], []).append(kernel)
    for op in ("softmax", "logsoftmax", "reducemax", "reducemin", "layernorm"):
        (long_row,) = [k for k in by_op[op] if k["schedule"] == "Rows"]
        (launch,) = long_row["launches"]
        assert launch["global"][0] // launch["local"][0] == LONG[0]  # a work-group a row
        assert ROW_MIN <= launch["local"][0] <= LONG[1]
    for op in ("softmax", "reducemax", "layernorm"):
        assert len(by_op[op]) == 2  # the short rows' kernel: another rule
