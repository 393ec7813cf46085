"""Models in onnxruntime's QOperator format (`quantize_static(..., QuantFormat.QOperator)`: QLinearConv,
QGemm and the com.microsoft QLinear* helpers) compile for x86, run their layers on the integer kernels and
match onnxruntime on the same quantized model; each com.microsoft helper matches onnxruntime on a tiny
graph; helpers HAI has no converter for are one UnsupportedModelError naming every node."""

from __future__ import annotations

import hashlib
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

from hai_compiler import real_models
from hai_compiler.compiler import CompileOptions, compile_model
from hai_compiler.demo import EMBEDDED_MODEL, load_heldout_digits
from hai_compiler.onnx_import.converter import UnsupportedModelError
from hai_compiler.onnx_import.importer import import_onnx
from hai_compiler.quantize import onnxruntime_int8
from ir import Interpreter
from ir.quantization import PRECISION_SOURCE_KEY

RNG = np.random.default_rng(66)
RECIPE = "qoperator-per-channel-u8s8-minmax-folded-v1"
MS = "com.microsoft"


# -- onnxruntime's QOperator model of a float model, cached ---------------------------------------------


def qoperator_model(source: Path, shapes: Mapping[str, tuple[int, ...]], feeds: list[dict]) -> Path:  # type: ignore[type-arg]
    """onnxruntime's QOperator INT8 (u8 activations, per-channel s8 weights, MinMax) of `source`."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    digest = hashlib.sha256(Path(source).read_bytes())
    digest.update(repr((RECIPE, ort.__version__, sorted(shapes.items()))).encode())
    for feed in feeds:
        digest.update(b"".join(np.ascontiguousarray(v).tobytes() for _, v in sorted(feed.items())))
    target = real_models.cache_dir() / "quantized" / f"{Path(source).stem}-qop-{digest.hexdigest()[:16]}.onnx"
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        prepared, optimised = Path(tmp) / "prepared.onnx", Path(tmp) / "optimised.onnx"
        onnxruntime_int8._prepare(Path(source).read_bytes(), shapes, prepared)
        onnxruntime_int8._quant_pre_process(prepared, optimised)
        fold_constants(optimised)  # the digits model computes its zero conv biases (Shape -> Expand)
        onnxruntime_int8._quant_pre_process(optimised, prepared)  # now BatchNormalization fuses
        quantized = Path(tmp) / "quantized.onnx"
        quantize_static(
            str(prepared), str(quantized), onnxruntime_int8._feed_reader(feeds),
            quant_format=QuantFormat.QOperator, per_channel=True,
            activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            calibrate_method=CalibrationMethod.MinMax,
        )  # fmt: skip
        quantized.replace(target)
    return target


def fold_constants(path: Path) -> None:
    """Replace every ONNX-domain node whose inputs are all initializers by initializers of its outputs."""
    from onnx.reference import ReferenceEvaluator

    model = onnx.load(path)
    known = {init.name: numpy_helper.to_array(init) for init in model.graph.initializer}
    kept = []
    for node in model.graph.node:
        names = [name for name in node.input if name]
        if node.domain not in ("", "ai.onnx") or not all(name in known for name in names):
            kept.append(node)
            continue
        inputs = [
            helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(known[n].dtype), known[n].shape)
            for n in names
        ]
        outputs = [helper.make_tensor_value_info(o, TensorProto.UNDEFINED, None) for o in node.output]
        single = helper.make_model(
            helper.make_graph([node], "f", inputs, outputs), opset_imports=model.opset_import
        )
        for name, value in zip(
            node.output, ReferenceEvaluator(single).run(None, {n: known[n] for n in names})
        ):
            known[name] = np.asarray(value)
            model.graph.initializer.append(numpy_helper.from_array(known[name], name))
    del model.graph.node[:]
    model.graph.node.extend(kept)
    onnx.save(model, path)


# -- comparing HAI with onnxruntime on one quantized model ----------------------------------------------


def compile_and_run(
    model: Path, name: str, inputs: Sequence[np.ndarray], tmp_path: Path
) -> tuple[list[str], np.ndarray, np.ndarray]:
    """Compile `model`; (the kernel groups' op chains, HAI's outputs, onnxruntime's) for every input."""
    import runtime

    result = compile_model(model, tmp_path / "m.hai", CompileOptions(input_shapes={name: inputs[0].shape}))
    hai = runtime.load(result.path, threads=2)
    session = ort.InferenceSession(str(model), providers=["CPUExecutionProvider"])
    ours = np.stack([next(iter(hai.run({name: x}).values())) for x in inputs])
    theirs = np.stack([session.run(None, {name: x})[0] for x in inputs])
    return ["+".join(node.op for node in group.nodes) for group in result.groups], ours, theirs


def top1_agreement(ours: np.ndarray, theirs: np.ndarray) -> float:
    count = len(ours)
    return float(np.mean(ours.reshape(count, -1).argmax(-1) == theirs.reshape(count, -1).argmax(-1)))


def digits_qoperator() -> Path:
    images, _ = load_heldout_digits()
    feeds = [{"image": images[i : i + 1]} for i in range(32)]
    return qoperator_model(EMBEDDED_MODEL, {"image": (1, 1, 8, 8)}, feeds)


def test_digits_qoperator_runs_integer_kernels_and_matches_onnxruntime(tmp_path: Path) -> None:
    model = digits_qoperator()
    ops = {(n.domain, n.op_type) for n in onnx.load(model).graph.node}
    assert ("", "QLinearConv") in ops and (MS, "QGemm") in ops
    images, _ = load_heldout_digits()
    groups, ours, theirs = compile_and_run(
        model, "image", [images[i : i + 1] for i in range(len(images))], tmp_path
    )
    np.testing.assert_array_equal(ours, theirs)  # bit-identical (issue 6's bar: 1e-2, top-1 99%)
    assert sum(g.startswith("ConvInteger") for g in groups) == 3
    assert any(g.startswith("MatMulInteger") for g in groups)
    assert not any(g.startswith(("Conv+", "Gemm", "MatMul+")) or g in ("Conv", "MatMul") for g in groups)


@pytest.mark.slow
def test_ppocr_cls_qoperator_matches_onnxruntime(tmp_path: Path) -> None:
    spec = real_models.MODELS["ppocr_cls"]
    calibration = [spec.sample_inputs(seed=s) for s in range(4)]
    model = qoperator_model(real_models.fetch("ppocr_cls"), spec.input_shapes, calibration)
    helpers = {n.op_type for n in onnx.load(model).graph.node if n.domain == MS}
    assert {"QLinearAdd", "QLinearMul", "QLinearGlobalAveragePool", "QLinearSoftmax", "QGemm"} <= helpers
    sample = spec.sample_inputs()["x"]
    rng = np.random.default_rng(1)
    inputs = [sample] + [(sample + rng.normal(0, 0.1, sample.shape)).astype(np.float32) for _ in range(20)]
    groups, ours, theirs = compile_and_run(model, "x", inputs, tmp_path)
    assert top1_agreement(ours, theirs) >= 0.99
    # The output is a u8 softmax (step 1/256) after ~50 requantizations, each rounded as onnxruntime's
    # kernels round (ir/quantization.py, passes/qlinear_forms.py): within 1 LSB (measured: equal).
    steps = np.round(np.abs(ours - theirs).reshape(len(inputs), -1).max(-1) * 256)
    assert steps.max() <= 1, steps
    assert sum(g.startswith("ConvInteger") for g in groups) >= 50
    assert any(g.startswith("MatMulInteger") for g in groups)


# -- each helper on a tiny graph -------------------------------------------------------------------------


def helper_model(
    op: str, inputs: list[str], attrs: dict[str, Any], shapes: dict[str, list[int]], y_scale: float = 0.03
) -> onnx.ModelProto:
    """Each x f32 -> QuantizeLinear(u8) -> com.microsoft `op`(inputs, y scale, y zero point) -> Dequantize."""
    nodes, inits = [], [("y_s", np.float32(y_scale)), ("y_z", np.uint8(120))]
    for i, name in enumerate(shapes):
        nodes.append(helper.make_node("QuantizeLinear", [name, f"{name}_s", f"{name}_z"], [f"{name}_q"]))
        inits += [(f"{name}_s", np.float32(0.02 + 0.01 * i)), (f"{name}_z", np.uint8(100 + 20 * i))]
    nodes.append(helper.make_node(op, inputs, ["y_q"], domain=MS, name=f"the_{op}", **attrs))
    nodes.append(helper.make_node("DequantizeLinear", ["y_q", "y_s", "y_z"], ["y"]))
    graph = helper.make_graph(
        nodes, op, [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in shapes.items()],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.asarray(a), n) for n, a in inits],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19), helper.make_opsetid(MS, 1)])


def triple(name: str) -> list[str]:
    return [f"{name}_q", f"{name}_s", f"{name}_z"]


NCHW = [1, 4, 6, 6]
HELPERS: dict[str, tuple[list[str], dict[str, Any], dict[str, list[int]]]] = {
    "QLinearAdd": (triple("a") + triple("b") + ["y_s", "y_z"], {}, {"a": NCHW, "b": [4, 1, 1]}),
    "QLinearMul": (triple("a") + triple("b") + ["y_s", "y_z"], {}, {"a": NCHW, "b": NCHW}),
    "QLinearSigmoid": (triple("a") + ["y_s", "y_z"], {}, {"a": NCHW}),
    "QLinearLeakyRelu": (triple("a") + ["y_s", "y_z"], {"alpha": 0.1}, {"a": NCHW}),
    "QLinearGlobalAveragePool": (triple("a") + ["y_s", "y_z"], {"channels_last": 0}, {"a": NCHW}),
    "QLinearAveragePool": (
        triple("a") + ["y_s", "y_z"],
        {"kernel_shape": [3, 3], "strides": [2, 2], "pads": [1, 1, 1, 1]},
        {"a": NCHW},
    ),
    "QLinearConcat": (
        ["y_s", "y_z"] + triple("a") + triple("b"),
        {"axis": 1},
        {"a": NCHW, "b": [1, 2, 6, 6]},
    ),
    "QLinearSoftmax": (triple("a") + ["y_s", "y_z"], {"axis": -1, "opset": 13}, {"a": [2, 10]}),
    "QLinearReduceMean": (triple("a") + ["y_s", "y_z"], {"axes": [2, 3], "keepdims": 1}, {"a": NCHW}),
}


@pytest.mark.parametrize("op", sorted(HELPERS))
def test_helper_matches_onnxruntime(op: str) -> None:
    inputs, attrs, shapes = HELPERS[op]
    y_scale = 1 / 256 if op == "QLinearSoftmax" else 0.03
    model = helper_model(op, inputs, attrs, shapes, y_scale)
    feeds = {n: RNG.normal(0, 1.5, s).astype(np.float32) for n, s in shapes.items()}
    reference = float_form_of_reduce_mean(model) if op == "QLinearReduceMean" else model
    expected = ort.InferenceSession(reference.SerializeToString()).run(None, feeds)[0]
    graph = import_onnx(model)
    actual = next(iter(Interpreter(graph).run(feeds).values()))
    assert actual.shape == expected.shape
    np.testing.assert_allclose(actual, expected, atol=y_scale * 1.01, rtol=0)  # within 1 LSB
    marks = {n.annotations.get(PRECISION_SOURCE_KEY) for n in graph.nodes if n.op == "QuantizeLinear"}
    assert "imported" in marks


def float_form_of_reduce_mean(model: onnx.ModelProto) -> onnx.ModelProto:
    """The spec's definition of QLinearReduceMean (onnxruntime has no CPU kernel for it): DequantizeLinear
    -> ReduceMean -> QuantizeLinear."""
    reference = onnx.ModelProto()
    reference.CopyFrom(model)
    index, node = next((i, n) for i, n in enumerate(reference.graph.node) if n.op_type == "QLinearReduceMean")
    axes = next(a.ints for a in node.attribute if a.name == "axes")
    reference.graph.initializer.append(numpy_helper.from_array(np.array(axes, np.int64), "axes"))
    reference.graph.node.remove(node)
    for offset, replacement in enumerate([
        helper.make_node("DequantizeLinear", node.input[:3], ["real"]),
        helper.make_node("ReduceMean", ["real", "axes"], ["mean"], keepdims=1),
        helper.make_node("QuantizeLinear", ["mean", *node.input[3:]], node.output),
    ]):  # fmt: skip
        reference.graph.node.insert(index + offset, replacement)
    return reference


def qgemm_model(trans_b: int, with_y: bool) -> onnx.ModelProto:
    weights = RNG.integers(-127, 128, (5, 8) if trans_b else (8, 5)).astype(np.int8)
    inits = [
        ("x_s", np.float32(0.02)), ("x_z", np.uint8(110)), ("w", weights),
        ("w_s", np.linspace(0.01, 0.02, 5).astype(np.float32)), ("w_z", np.zeros(5, np.int8)),
        ("c", RNG.integers(-500, 500, 5).astype(np.int32)), ("y_s", np.float32(0.5)), ("y_z", np.uint8(128)),
    ]  # fmt: skip
    y_inputs = ["y_s", "y_z"] if with_y else []
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "x_s", "x_z"], ["x_q"]),
        helper.make_node("QGemm", ["x_q", "x_s", "x_z", "w", "w_s", "w_z", "c", *y_inputs], ["g"],
                         domain=MS, transB=trans_b, alpha=0.5),
    ]  # fmt: skip
    if with_y:
        nodes.append(helper.make_node("DequantizeLinear", ["g", "y_s", "y_z"], ["y"]))
    graph = helper.make_graph(
        nodes, "qgemm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 8])],
        [helper.make_tensor_value_info("y" if with_y else "g", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.asarray(a), n) for n, a in inits],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19), helper.make_opsetid(MS, 1)])


@pytest.mark.parametrize("trans_b, with_y", [(0, True), (1, True), (1, False)])
def test_qgemm_compiles_to_matmul_integer_and_matches_onnxruntime(
    trans_b: int, with_y: bool, tmp_path: Path
) -> None:
    import runtime

    model = qgemm_model(trans_b, with_y)
    x = RNG.normal(0, 1, (3, 8)).astype(np.float32)
    expected = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    result = compile_model(model, tmp_path / "g.hai", CompileOptions())
    actual = next(iter(runtime.load(result.path).run({"x": x}).values()))
    assert any(g.nodes[0].op == "MatMulInteger" for g in result.groups)
    np.testing.assert_allclose(actual, expected, atol=0.5 * 1.01 if with_y else 1e-4, rtol=1e-5)


def test_microsoft_quantize_dequantize_match_onnxruntime() -> None:
    nodes = [
        helper.make_node("QuantizeLinear", ["x", "s", "z"], ["q"], domain=MS),
        helper.make_node("DequantizeLinear", ["q", "s", "z"], ["y"], domain=MS),
    ]
    graph = helper.make_graph(
        nodes, "qdq", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [2, 7])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(np.array(0.05, np.float32), "s"),
         numpy_helper.from_array(np.array(128, np.uint8), "z")],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 19), helper.make_opsetid(MS, 1)])
    x = RNG.normal(0, 2, (2, 7)).astype(np.float32)
    expected = ort.InferenceSession(model.SerializeToString()).run(None, {"x": x})[0]
    actual = next(iter(Interpreter(import_onnx(model)).run({"x": x}).values()))
    np.testing.assert_allclose(actual, expected, atol=0.05 * 1.01, rtol=0)


def test_unsupported_helpers_are_one_error_naming_every_node() -> None:
    model = helper_model("QLinearWhere", triple("a") + ["y_s", "y_z"], {}, {"a": NCHW})
    extra = helper.make_node("QAttention", ["a_q"], ["unused"], domain=MS, name="the_attention")
    model.graph.node.insert(1, extra)
    with pytest.raises(UnsupportedModelError) as error:
        import_onnx(model)
    message = str(error.value)
    assert "com.microsoft::QLinearWhere" in message and "the_QLinearWhere" in message
    assert "com.microsoft::QAttention" in message and "the_attention" in message
