"""Models quantized by onnxruntime's `quantize_dynamic` compile and match onnxruntime on the same model.

quantize_dynamic (onnxruntime 1.32) writes MatMul/Gemm/Conv as DynamicQuantizeLinear(x) ->
MatMulInteger/ConvInteger(x_q, W_q, x_zp, w_zp) -> Cast -> Mul(x_scale * w_scale) (-> Add bias), and
an LSTM as com.microsoft DynamicQuantizeLSTM (converters/dynamic_quantized*.py).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import runtime
from hai_compiler import real_models
from hai_compiler.compiler import CompileOptions, compile_model
from hai_compiler.compiler.bench import relative_error
from hai_compiler.compiler.layer_precision import layer_precisions
from hai_compiler.onnx_import import UnsupportedModelError, import_onnx

ort = pytest.importorskip("onnxruntime")
quantization = pytest.importorskip("onnxruntime.quantization")

LSTM_SEQ, LSTM_BATCH, LSTM_INPUT, LSTM_HIDDEN = 16, 1, 32, 64
LSTM_TOLERANCE = 1e-4
"""max |HAI - onnxruntime| / max |onnxruntime| of each of Y, Y_h and Y_c (the issue's bar: 1e-2); measured
at most 2.6e-7 (per tensor) and 1.8e-7 (per channel): the kernel quantizes X and each step's hidden
state to u8 as onnxruntime does and multiplies integers (targets/lowering/rnn_quantized.py); only f32
roundings and the activations' approximations differ."""


def quantized(model: onnx.ModelProto, tag: str, **options: object) -> Path:
    """`model` quantized by quantize_dynamic(**options), cached by a hash of the model and options."""
    key = hashlib.sha256(model.SerializeToString() + repr(sorted(options.items())).encode()).hexdigest()[:16]
    path = real_models.cache_dir() / "dynamic_quantized" / f"{tag}-{key}.onnx"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        source = path.with_suffix(".float.onnx")
        onnx.save(model, source)
        quantization.quantize_dynamic(str(source), str(path), **options)
    return path


def run_both(path: Path, feeds: dict[str, np.ndarray], out: Path) -> tuple[list, list, list[str]]:
    """(onnxruntime's outputs, HAI's, each kernel's ops joined by '+') on the same quantized model."""
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    expected = session.run(None, feeds)
    shapes = {name: array.shape for name, array in feeds.items()}
    result = compile_model(str(path), out / "m.hai", CompileOptions(input_shapes=shapes))
    got = runtime.load(result.path, threads=2).run(feeds)
    actual = [got[o.name] for o in session.get_outputs()]
    return expected, actual, ["+".join(n.op for n in g.nodes) for g in result.groups]


def matmul_gemm_model() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    weights = {
        "w1": rng.normal(0, 0.2, (32, 48)).astype(np.float32),
        "w2": rng.normal(0, 0.2, (16, 48)).astype(np.float32),
        "b2": rng.normal(0, 0.5, 16).astype(np.float32),
    }
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"]),
        helper.make_node("Relu", ["h"], ["r"]),
        helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], transB=1),
    ]
    graph = helper.make_graph(
        nodes, "mlp",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [4, 32])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [4, 16])],
        [numpy_helper.from_array(a, n) for n, a in weights.items()],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("per_channel", [False, True], ids=["per-tensor", "per-channel"])
@pytest.mark.parametrize("weight_type", ["QInt8", "QUInt8"])
def test_matmul_and_gemm_run_as_integer_kernels(tmp_path, weight_type, per_channel) -> None:  # type: ignore[no-untyped-def]
    path = quantized(
        matmul_gemm_model(), "mlp", weight_type=getattr(quantization.QuantType, weight_type),
        per_channel=per_channel,
    )  # fmt: skip
    assert {n.op_type for n in onnx.load(str(path)).graph.node} >= {"DynamicQuantizeLinear", "MatMulInteger"}
    x = np.random.default_rng(1).normal(0, 1, (4, 32)).astype(np.float32)
    expected, actual, kernels = run_both(path, {"x": x}, tmp_path)
    assert relative_error(actual, expected) <= 1e-5  # exact integers; only f32 roundings differ
    assert sum(k.startswith("MatMulInteger") for k in kernels) == 2, kernels
    assert "MatMul" not in {op for k in kernels for op in k.split("+")}


def crnn_model() -> onnx.ModelProto:
    """A small text recogniser: a dilated conv, a grouped one (8 outputs per group), a strided depthwise
    one with asymmetric pads, a 1x1 conv, then an LSTM over the columns."""
    rng = np.random.default_rng(0)
    arrays = {
        "c1": rng.normal(0, 0.3, (8, 3, 3, 3)), "b1": rng.normal(0, 0.1, 8),
        "c2": rng.normal(0.05, 0.2, (16, 4, 3, 3)),
        "c3": rng.normal(0, 0.3, (16, 1, 3, 3)), "b3": rng.normal(0, 0.1, 16),
        "c4": rng.normal(0, 0.2, (8, 16, 1, 1)),
        "W": rng.normal(0, 0.2, (1, 48, 32)), "R": rng.normal(0, 0.2, (1, 48, 12)),
    }  # fmt: skip
    initializers = [numpy_helper.from_array(a.astype(np.float32), n) for n, a in arrays.items()]
    initializers.append(numpy_helper.from_array(np.array([0, 0, -1]), "columns"))
    nodes = [
        helper.make_node("Conv", ["x", "c1", "b1"], ["y1"], pads=[1, 2, 1, 2], dilations=[1, 2]),
        helper.make_node("Relu", ["y1"], ["r1"]),
        helper.make_node("Conv", ["r1", "c2"], ["y2"], pads=[1, 1, 1, 1], group=2),
        helper.make_node("Conv", ["y2", "c3", "b3"], ["y3"], pads=[1, 0, 1, 1], strides=[2, 1], group=16),
        helper.make_node("Conv", ["y3", "c4"], ["y4"]),
        helper.make_node("Transpose", ["y4"], ["t"], perm=[3, 0, 1, 2]),
        helper.make_node("Reshape", ["t", "columns"], ["s"]),
        helper.make_node("LSTM", ["s", "W", "R"], ["Y", "Y_h"], hidden_size=12),
    ]
    graph = helper.make_graph(
        nodes, "crnn", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, 3, 8, 16])],
        [helper.make_tensor_value_info("y4", TensorProto.FLOAT, [1, 8, 4, 15]),
         helper.make_tensor_value_info("Y", TensorProto.FLOAT, [15, 1, 1, 12])],
        initializers,
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


@pytest.mark.parametrize("per_channel", [False, True], ids=["per-tensor", "per-channel"])
def test_convs_with_u8_weights_outside_i8_match_onnxruntime(tmp_path, per_channel) -> None:  # type: ignore[no-untyped-def]
    """quantize_dynamic's asymmetric u8 conv weights (zero points far from 128, so W - w_zp leaves i8) run
    as ConvInteger kernels giving onnxruntime's integers; the LSTM behind them as DynamicQuantizeLSTM."""
    path = quantized(
        crnn_model(), "crnn", weight_type=quantization.QuantType.QUInt8, per_channel=per_channel,
        op_types_to_quantize=["Conv", "LSTM"],
    )  # fmt: skip
    model = onnx.load(str(path))
    assert {n.op_type for n in model.graph.node} >= {"ConvInteger", "DynamicQuantizeLSTM"}
    stored = {t.name: numpy_helper.to_array(t).astype(int) for t in model.graph.initializer}
    centred = [stored[f"c{i}_quantized"] - stored[f"c{i}_zero_point"] for i in range(1, 5)]
    assert sum(w.min() < -128 or w.max() > 127 for w in centred) >= 3  # the shift of 128 is needed
    x = np.random.default_rng(1).normal(0, 1, (1, 3, 8, 16)).astype(np.float32)
    expected, actual, kernels = run_both(path, {"x": x}, tmp_path)
    assert relative_error(actual[:1], expected[:1]) <= 1e-6  # the same integers; f32 roundings differ
    assert relative_error(actual[1:], expected[1:]) <= LSTM_TOLERANCE
    assert sum(k.startswith("ConvInteger") for k in kernels) == 4, kernels
    assert sum(k.endswith("LSTM") for k in kernels) == 1, kernels


def test_dynamic_quantize_linear_follows_the_spec(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """y, scale and zero point against onnx.reference, on a tensor with ties and an all-positive one."""
    from onnx.reference import ReferenceEvaluator

    node = helper.make_node("DynamicQuantizeLinear", ["x"], ["y", "scale", "zp"])
    graph = helper.make_graph(
        [node], "dql", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 50])],
        [helper.make_tensor_value_info("y", TensorProto.UINT8, [3, 50]),
         helper.make_tensor_value_info("scale", TensorProto.FLOAT, []),
         helper.make_tensor_value_info("zp", TensorProto.UINT8, [])],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    result = compile_model(model, tmp_path / "m.hai", CompileOptions(input_shapes={"x": (3, 50)}))
    compiled = runtime.load(result.path)
    rng = np.random.default_rng(2)
    for x in (rng.normal(0, 3, (3, 50)), rng.uniform(0.5, 4, (3, 50)), np.zeros((3, 50))):
        feeds = {"x": x.astype(np.float32)}
        y, scale, zero = ReferenceEvaluator(model).run(None, feeds)
        got = compiled.run(feeds)
        np.testing.assert_allclose(got["scale"], scale, rtol=1e-7)
        assert got["zp"] == zero
        assert np.abs(got["y"].astype(int) - y.astype(int)).max() <= 1  # 1 LSB at a .5 tie at most


def lstm_model() -> onnx.ModelProto:
    rng = np.random.default_rng(0)
    hidden = LSTM_HIDDEN
    weights = {
        "W": rng.normal(0, 0.2, (1, 4 * hidden, LSTM_INPUT)).astype(np.float32),
        "R": rng.normal(0, 0.2, (1, 4 * hidden, hidden)).astype(np.float32),
        "B": rng.normal(0, 0.1, (1, 8 * hidden)).astype(np.float32),
    }
    node = helper.make_node("LSTM", ["x", "W", "R", "B"], ["Y", "Y_h", "Y_c"], hidden_size=hidden)
    graph = helper.make_graph(
        [node], "lstm",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [LSTM_SEQ, LSTM_BATCH, LSTM_INPUT])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [LSTM_SEQ, 1, LSTM_BATCH, hidden]),
         helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [1, LSTM_BATCH, hidden]),
         helper.make_tensor_value_info("Y_c", TensorProto.FLOAT, [1, LSTM_BATCH, hidden])],
        [numpy_helper.from_array(a, n) for n, a in weights.items()],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def weight_dtypes(artifact: Path) -> dict[str, str]:
    """{weight name: dtype} the plan's steps read, from the artifact's manifest."""
    manifest = json.loads((artifact / "manifest.json").read_text())
    return {
        a["name"]: a["dtype"] for s in manifest["plan"]["steps"] for a in s["args"] if a["kind"] == "weight"
    }


@pytest.mark.parametrize("per_channel", [False, True], ids=["per-tensor", "per-channel"])
def test_lstm_matches_onnxruntime_on_stored_8_bit_weights(tmp_path, per_channel) -> None:  # type: ignore[no-untyped-def]
    """Each output within LSTM_TOLERANCE of onnxruntime; W and R stay int8 in the artifact (weights.bin
    well under the f32 bytes); the report row says int8 (u8 x i8, dynamic), imported."""
    path = quantized(lstm_model(), "lstm", weight_type=quantization.QuantType.QInt8, per_channel=per_channel)
    assert [n.op_type for n in onnx.load(str(path)).graph.node] == ["DynamicQuantizeLSTM"]
    x = np.random.default_rng(1).normal(0, 1, (LSTM_SEQ, LSTM_BATCH, LSTM_INPUT)).astype(np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    result = compile_model(str(path), tmp_path / "m.hai", CompileOptions(input_shapes={"x": x.shape}))
    got = runtime.load(result.path, threads=2).run({"x": x})
    for output, expected in zip(session.get_outputs(), session.run(None, {"x": x}), strict=True):
        assert relative_error([got[output.name]], [expected]) <= LSTM_TOLERANCE, output.name
    assert ["+".join(n.op for n in g.nodes) for g in result.groups] == [
        "DequantizeLinear+DequantizeLinear+LSTM"
    ]
    dtypes = weight_dtypes(Path(result.path))
    assert dtypes["W_quantized.stored:Wp"] == dtypes["R_quantized.stored:Rp"] == "int8", dtypes  # panels
    gate_weights = 4 * LSTM_HIDDEN * (LSTM_INPUT + LSTM_HIDDEN)
    assert (Path(result.path) / "weights.bin").stat().st_size < 2 * gate_weights  # f32: 4 x gate_weights
    (row,) = layer_precisions(result.groups, result.plan.kernels)
    assert (row.op, row.precision, row.source) == ("LSTM", "int8 (u8 x i8, dynamic)", "imported")


def bidirectional_lstm(
    inputs: dict[str, np.ndarray], seq: int, batch: int, features: int, hidden: int
) -> onnx.ModelProto:
    """A bidirectional LSTM over x (seq, batch, features): `inputs` are its other inputs as constants,
    in the LSTM's input order (W, R, B, then any of sequence_lens, initial_h, initial_c)."""
    node = helper.make_node(
        "LSTM", ["x", *inputs], ["Y", "Y_h", "Y_c"], hidden_size=hidden, direction="bidirectional"
    )
    graph = helper.make_graph(
        [node], "bilstm", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [seq, batch, features])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [seq, 2, batch, hidden]),
         helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [2, batch, hidden]),
         helper.make_tensor_value_info("Y_c", TensorProto.FLOAT, [2, batch, hidden])],
        [numpy_helper.from_array(a, n) for n, a in inputs.items()],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def test_lstm_dynamic_quantization_follows_sequence_lengths_and_directions(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A bidirectional LSTM (one weight scale per direction) with sequence_lens and initial states."""
    rng = np.random.default_rng(4)
    hidden, inputs, seq, batch = 16, 8, 6, 1
    weights = {
        "W": rng.normal(0, 0.3, (2, 4 * hidden, inputs)).astype(np.float32),
        "R": rng.normal(0, 0.3, (2, 4 * hidden, hidden)).astype(np.float32),
        "B": rng.normal(0, 0.1, (2, 8 * hidden)).astype(np.float32),
        "lens": np.array([4], np.int32),
        "h0": rng.normal(0, 0.5, (2, batch, hidden)).astype(np.float32),
        "c0": rng.normal(0, 0.5, (2, batch, hidden)).astype(np.float32),
    }
    model = bidirectional_lstm(weights, seq, batch, inputs, hidden)
    path = quantized(model, "bilstm", weight_type=quantization.QuantType.QInt8)
    x = rng.normal(0, 1, (seq, batch, inputs)).astype(np.float32)
    expected, actual, kernels = run_both(path, {"x": x}, tmp_path)
    assert kernels == ["DequantizeLinear+DequantizeLinear+LSTM"]
    for e, a in zip(expected, actual, strict=True):
        assert relative_error([a], [e]) <= LSTM_TOLERANCE


@pytest.mark.parametrize("cpu_features", [None, "-avx512_vnni"], ids=["host", "no-vnni"])
def test_lstm_dynamic_steps_sum_by_the_dot_instruction_where_there_is_one(tmp_path, cpu_features) -> None:  # type: ignore[no-untyped-def]
    """Sizes off the 4-byte steps and 16-lane vectors (hidden 10: a padded tile, R's last step; inputs
    30: X padded), both directions: the same numbers as onnxruntime with the dot step (int32 sums,
    targets/lowering/rnn_quantized.py `state_dot`, where the target has vpdpbusd) and without it."""
    rng = np.random.default_rng(6)
    hidden, inputs, seq = 10, 30, 7
    weights = {
        "W": rng.normal(0, 0.3, (2, 4 * hidden, inputs)).astype(np.float32),
        "R": rng.normal(0, 0.3, (2, 4 * hidden, hidden)).astype(np.float32),
        "B": rng.normal(0, 0.1, (2, 8 * hidden)).astype(np.float32),
    }
    model = bidirectional_lstm(weights, seq, 1, inputs, hidden)
    path = quantized(model, "bilstm-odd", weight_type=quantization.QuantType.QInt8)
    x = rng.normal(0, 1, (seq, 1, inputs)).astype(np.float32)
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    options = CompileOptions(input_shapes={"x": x.shape}, cpu_features=cpu_features)
    result = compile_model(str(path), tmp_path / "m.hai", options)
    got = runtime.load(result.path).run({"x": x})
    for output, expected in zip(session.get_outputs(), session.run(None, {"x": x}), strict=True):
        assert relative_error([got[output.name]], [expected]) <= LSTM_TOLERANCE, output.name
    (kernel,) = result.plan.kernels
    has_dot = "avx512_vnni" in result.target.features and cpu_features is None
    assert ("state_dot" in kernel.notes["knobs"]) == has_dot, kernel.notes


def test_lstm_dynamic_dot_and_float_sums_give_the_same_bits(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Batch 3 (each row's own state quantization), sequence lengths with an empty row, an initial state:
    the dot step's int32 sums (where the host has vpdpbusd) and the f32 sums of the same integers give
    identical outputs (on a host without it both compiles take the f32 sums)."""
    rng = np.random.default_rng(3)
    hidden, inputs, seq, batch = 20, 12, 6, 3
    drawn = {name: rng.normal(0, 0.3, shape).astype(np.float32)
             for name, shape in (("W", (2, 4 * hidden, inputs)), ("R", (2, 4 * hidden, hidden)),
                                 ("B", (2, 8 * hidden)), ("h0", (2, batch, hidden)))}  # fmt: skip
    lens = np.array([6, 3, 0], np.int32)
    model = bidirectional_lstm({**{k: drawn[k] for k in "WRB"}, "lens": lens, "h0": drawn["h0"]},
                               seq, batch, inputs, hidden)  # fmt: skip
    path = quantized(model, "bilstm-batch", weight_type=quantization.QuantType.QInt8)
    x = rng.normal(0, 1, (seq, batch, inputs)).astype(np.float32)
    outputs = []
    for features in (None, "-avx512_vnni"):
        options = CompileOptions(input_shapes={"x": x.shape}, cpu_features=features)
        result = compile_model(str(path), tmp_path / f"{features}.hai", options)
        outputs.append(runtime.load(result.path).run({"x": x}))
    for name, dot in outputs[0].items():
        np.testing.assert_array_equal(dot, outputs[1][name], err_msg=name)


def test_recurrent_weight_only_8_bit_matches_onnxruntime(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """A GRU reading W and R through DequantizeLinear of i8 constants (per gate row; per tensor) keeps
    them int8 in the artifact and computes in f32 from the dequantized values, as onnxruntime does."""
    rng = np.random.default_rng(5)
    hidden, inputs, seq = 16, 8, 5
    w_q = rng.integers(-127, 128, (1, 3 * hidden, inputs)).astype(np.int8)
    r_q = rng.integers(-127, 128, (1, 3 * hidden, hidden)).astype(np.int8)
    arrays = {
        "w_q": w_q, "w_scale": rng.uniform(0.002, 0.004, 3 * hidden).astype(np.float32),
        "w_zero": np.zeros(3 * hidden, np.int8),
        "r_q": r_q, "r_scale": np.array(0.003, np.float32), "r_zero": np.array(3, np.int8),
    }  # fmt: skip
    nodes = [
        helper.make_node("DequantizeLinear", ["w_q", "w_scale", "w_zero"], ["W"], axis=1),
        helper.make_node("DequantizeLinear", ["r_q", "r_scale", "r_zero"], ["R"]),
        helper.make_node("GRU", ["x", "W", "R"], ["Y", "Y_h"], hidden_size=hidden, linear_before_reset=1),
    ]
    graph = helper.make_graph(
        nodes, "gru", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [seq, 1, inputs])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [seq, 1, 1, hidden]),
         helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [1, 1, hidden])],
        [numpy_helper.from_array(a, n) for n, a in arrays.items()],
    )  # fmt: skip
    path = tmp_path / "gru.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 21)]), path)
    x = rng.normal(0, 1, (seq, 1, inputs)).astype(np.float32)
    expected, actual, kernels = run_both(path, {"x": x}, tmp_path)
    assert kernels == ["DequantizeLinear+DequantizeLinear+GRU"]
    assert relative_error(actual, expected) <= 1e-5
    weights = weight_dtypes(tmp_path / "m.hai")  # the tiled kernel's packed W and R, their row parameters
    assert {name.split(":")[0] for name in weights} == {"w_q.q", "r_q.q"}, weights  # no float copy of W or R
    assert sorted(d for d in weights.values() if d != "float32") == ["int8", "int8"], weights


def test_lstm_weights_stay_8_bit_in_the_import(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The imported LSTM reads W and R through DequantizeLinear of stored i8 constants, marked imported."""
    path = quantized(lstm_model(), "lstm", weight_type=quantization.QuantType.QInt8, per_channel=True)
    graph = import_onnx(onnx.load(str(path)), {"x": (LSTM_SEQ, LSTM_BATCH, LSTM_INPUT)})
    (lstm,) = [n for n in graph.nodes if n.op == "LSTM"]
    for weight in lstm.operands[1:3]:
        assert weight is not None and weight.producer is not None
        dequantize = weight.producer
        assert (
            dequantize.op == "DequantizeLinear" and dequantize.annotations["precision_source"] == "imported"
        )
        stored = dequantize.operands[0]
        assert stored is not None and stored.is_constant and stored.type.dtype.value == "i8"


def test_unsupported_dynamic_ops_are_listed_in_one_error() -> None:
    """Every node of an op HAI cannot import is named in one error."""
    nodes = [
        helper.make_node("DynamicQuantizeGRU", ["x", "w", "r"], ["g"], name="gru_a", domain="com.microsoft"),
        helper.make_node("DynamicQuantizeGRU", ["x", "w", "r"], ["h"], name="gru_b", domain="com.microsoft"),
        helper.make_node("QAttention", ["x", "w"], ["a"], name="attention", domain="com.microsoft"),
    ]
    graph = helper.make_graph(
        nodes, "unsupported", [helper.make_tensor_value_info(n, TensorProto.FLOAT, [2, 4]) for n in "xwr"],
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, None) for n in ("g", "h", "a")],
    )  # fmt: skip
    model = helper.make_model(
        graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("com.microsoft", 1)]
    )
    with pytest.raises(UnsupportedModelError) as error:
        import_onnx(model, {"x": (2, 4)})
    message = str(error.value)
    for name in ("DynamicQuantizeGRU", "QAttention", "gru_a", "gru_b", "attention"):
        assert name in message


@pytest.mark.slow
def test_magika_quantized_dynamic_matches_onnxruntime(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """magika (2 MatMuls, 1 Conv) via quantize_dynamic: its sample and 20 perturbed byte inputs."""
    spec = real_models.MODELS["magika"]
    path = quantized(onnx.load(str(real_models.fetch("magika"))), "magika",
                     weight_type=quantization.QuantType.QInt8)  # fmt: skip
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    result = compile_model(str(path), tmp_path / "m.hai", CompileOptions(input_shapes=spec.input_shapes))
    kernels = ["+".join(n.op for n in g.nodes) for g in result.groups]
    assert sum(k.startswith(("MatMulInteger", "ConvInteger")) for k in kernels) == 3, kernels
    compiled = runtime.load(result.path, threads=2)
    ((name, sample),) = spec.sample_inputs().items()
    rng = np.random.default_rng(0)
    agree, errors = 0, []
    for i in range(21):
        x = sample.copy()
        if i:
            x.reshape(-1)[rng.choice(x.size, 64, replace=False)] = rng.integers(0, 256, 64)
        expected = session.run(None, {name: x})
        actual = [compiled.run({name: x})[o.name] for o in session.get_outputs()]
        errors.append(relative_error(actual, expected))
        agree += int(np.argmax(actual[0]) == np.argmax(expected[0]))
    assert max(errors) <= 1e-2
    assert agree / 21 >= 0.99


def test_onnxruntime_fused_dynamic_matmuls_match_it(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """com.microsoft DynamicQuantizeMatMul (u8 weights, per-column zero points) feeding
    MatMulIntegerToFloat of a u8 graph input (i8 weights), each with a bias."""
    rng = np.random.default_rng(3)
    arrays = {
        "b1": rng.integers(0, 256, (32, 24)).astype(np.uint8),
        "s1": rng.uniform(0.01, 0.02, 24).astype(np.float32),
        "z1": rng.integers(100, 160, 24).astype(np.uint8),
        "bias1": rng.normal(0, 1, 24).astype(np.float32),
        "b2": rng.integers(-128, 128, (16, 8)).astype(np.int8),
        "a_scale": np.array(0.05, np.float32),
        "a_zero": np.array(7, np.uint8),
        "s2": np.array(0.03, np.float32),
        "bias2": rng.normal(0, 1, 8).astype(np.float32),
    }
    ms = "com.microsoft"
    nodes = [
        helper.make_node("DynamicQuantizeMatMul", ["x", "b1", "s1", "z1", "bias1"], ["y"], domain=ms),
        helper.make_node(
            "MatMulIntegerToFloat", ["q", "b2", "a_scale", "s2", "a_zero", "", "bias2"], ["z"], domain=ms
        ),
    ]
    graph = helper.make_graph(
        nodes, "fused",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3, 32]),
         helper.make_tensor_value_info("q", TensorProto.UINT8, [3, 16])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, [3, 24]),
         helper.make_tensor_value_info("z", TensorProto.FLOAT, [3, 8])],
        [numpy_helper.from_array(a, n) for n, a in arrays.items()],
    )  # fmt: skip
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid(ms, 1)])
    path = tmp_path / "fused.onnx"
    onnx.save(model, path)
    feeds = {
        "x": rng.normal(0, 1, (3, 32)).astype(np.float32),
        "q": rng.integers(0, 256, (3, 16)).astype(np.uint8),
    }
    expected, actual, kernels = run_both(path, feeds, tmp_path)
    for e, a in zip(expected, actual, strict=True):
        assert relative_error([a], [e]) <= 1e-5
    assert sum(k.startswith("MatMulInteger") for k in kernels) == 2, kernels
