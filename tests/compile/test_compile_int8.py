"""The calibrated INT8 digits CNN compiled end to end: one kernel per ConvInteger with the next layer's
QuantizeLinear fused in, logits bit-exact with the interpreter; a float Conv takes a quantize epilogue."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import runtime
from hai_compiler.compiler import CompileOptions, compile_model
from hai_compiler.demo import EMBEDDED_MODEL, load_heldout_digits
from hai_compiler.quantize.calibrate import calibrate, prepare_graph
from ir import DType, Graph, TensorType, run_graph
from ir.builder import Builder
from ir.fusion import kernels
from ir.quantization import record_range
from passes.fuse import Fuse
from passes.manager import PassContext
from passes.quantize import Quantize
from targets.target import host_target

SHAPES = {"image": (1, 1, 8, 8)}


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return load_heldout_digits()[0]


@pytest.fixture(scope="module")
def int8_graph(digits: np.ndarray) -> Graph:
    graph = prepare_graph(EMBEDDED_MODEL, SHAPES)
    stats = calibrate(graph, [{"image": digits[i : i + 1]} for i in range(16)], "minmax", progress=False)
    for name, (lo, hi) in stats.ranges.items():
        record_range(graph.metadata, name, lo, hi)
    Quantize(precision="int8").run(graph, PassContext())
    return graph


def test_quantized_layers_fuse_into_one_kernel_each(int8_graph: Graph) -> None:
    graph = int8_graph.clone() if hasattr(int8_graph, "clone") else int8_graph
    Fuse().run(graph, PassContext(target=host_target().to_pass_context()))
    groups = kernels(graph)
    convs = [g for g in groups if g.anchor.op == "ConvInteger"]
    assert len(convs) == 3
    for group in convs[:2]:  # the next layer's u8 input is written by the conv kernel itself
        assert [n.op for n in group.epilogue] == ["DequantizeLinear", "Relu", "QuantizeLinear"]
        assert group.result.type.dtype is DType.U8
    (matmul,) = [g for g in groups if g.anchor.op == "MatMulInteger"]
    assert [n.op for n in matmul.epilogue] == ["DequantizeLinear"]


def test_int8_digits_compiled_equal_the_interpreter(
    int8_graph: Graph, digits: np.ndarray, tmp_path: Path
) -> None:
    result = compile_model(int8_graph, tmp_path / "m.hai", CompileOptions(input_shapes=SHAPES))
    model = runtime.load(result.path, threads=2)
    for i in range(100, 132):
        feed = {"image": digits[i : i + 1]}
        want = run_graph(int8_graph, feed)["logits"]
        got = model.run(feed)["logits"]
        assert np.array_equal(got, want), np.abs(got - want).max()


def test_float_conv_takes_a_quantize_epilogue(tmp_path: Path) -> None:
    graph = Graph("conv_q")
    b = Builder(graph)
    rng = np.random.default_rng(0)
    x = graph.add_input("x", TensorType(DType.F32, (1, 8, 10, 10)))
    w = graph.add_constant("w", (rng.standard_normal((16, 8, 3, 3)) * 0.2).astype(np.float32))
    (y,) = b.op(
        "Conv",
        [x, w],
        {"pads": [1, 1, 1, 1], "strides": [1, 1], "dilations": [1, 1], "group": 1},
        name="conv",
    )
    (r,) = b.op("Relu", [y], {}, name="relu")
    (q,) = b.op("QuantizeLinear", [r], {"dtype": DType.U8, "scale": [0.02], "zero_point": [0]}, name="q")
    graph.outputs.append(q)
    Fuse().run(graph, PassContext(target=host_target().to_pass_context()))
    (group,) = kernels(graph)
    assert [n.op for n in group.nodes] == ["Conv", "Relu", "QuantizeLinear"]
    result = compile_model(graph, tmp_path / "m.hai", CompileOptions(input_shapes={"x": (1, 8, 10, 10)}))
    feed = {"x": rng.standard_normal((1, 8, 10, 10)).astype(np.float32)}
    got = runtime.load(result.path, threads=2).run(feed)["q"]  # the compile renames `q` where it relays out
    want = run_graph(graph, feed)["q"]
    assert got.dtype == np.uint8
    assert np.abs(got.astype(int) - want).max() <= 1  # the float conv sums in another order: a tie may flip


def test_compile_api_takes_a_quantized_model(digits: np.ndarray, tmp_path: Path) -> None:
    """DynamicQuantizer(...).fit(...) then hai_compiler.compile(qmodel, ...), as the issue's API reads."""
    from hai_compiler import DynamicQuantizer, compile

    feeds = [{"image": digits[i : i + 1]} for i in range(16)]
    qmodel = DynamicQuantizer(target="x86", precision_profile="mixed", min_sqnr=30.0, progress=False).fit(
        EMBEDDED_MODEL, calibration_data=feeds, input_shapes=SHAPES
    )
    model = runtime.load(compile(qmodel, target="x86", output=tmp_path / "q.hai"), threads=1)
    x = digits[100:101]
    expected = run_graph(qmodel.graph, {"image": x})["logits"]
    np.testing.assert_allclose(model.run({"image": x})["logits"], expected, rtol=1e-4, atol=1e-5)
