"""`split-weights`: MatMul, Gemm and Conv weights larger than `max-bytes` are cut along the output axis.

Each model is made with onnx.helper and run by onnxruntime (the independent
reference); the split graph must match it within 1e-6 relative error (each output
element is still one whole reduction), and the interpreter must give the same
outputs before and after the pass. Piece counts are worked out by hand from the
rule: a piece holds max-bytes // (bytes of one output column or channel) of them.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from pass_helpers import check_pass, ops

from hai_compiler.accuracy import relative_error
from hai_compiler.onnx_import.importer import import_onnx
from ir import Builder, DType, Graph, HaiError, TensorType, run_graph
from ir.fusion import FOLDED_FROM
from ir.units import ByteSize
from passes import PassContext, parse_pipeline
from passes.split_weights import SplitWeights, WeightSplitError

RNG = np.random.default_rng(11)


def array(*shape: int) -> np.ndarray:
    return RNG.standard_normal(shape).astype(np.float32)


def model(nodes: list, inputs: dict[str, tuple[int, ...]], weights: dict[str, np.ndarray]) -> onnx.ModelProto:
    graph = helper.make_graph(
        nodes, "m",
        [helper.make_tensor_value_info(n, TensorProto.FLOAT, s) for n, s in inputs.items()],
        [helper.make_tensor_value_info(nodes[-1].output[0], TensorProto.FLOAT, None)],
        [numpy_helper.from_array(a, n) for n, a in weights.items()],
    )  # fmt: skip
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])


def matmul_model(x_shape: tuple[int, ...]) -> onnx.ModelProto:
    """y = MatMul(x, w) with w f32[8, 10] (320 bytes; a column is 32) in node `mm`."""
    return model(
        [helper.make_node("MatMul", ["x", "w"], ["y"], name="mm")], {"x": x_shape}, {"w": array(8, 10)}
    )


def onnxruntime_outputs(proto: onnx.ModelProto, feeds: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    session = ort.InferenceSession(proto.SerializeToString(), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in session.get_outputs()], session.run(None, feeds), strict=True))


def split_and_compare(proto: onnx.ModelProto, max_bytes: int) -> tuple[Graph, PassContext]:
    """Import, split (the interpreter must not change its outputs), and compare with onnxruntime."""
    feeds = {i.name: array(*(d.dim_value for d in i.type.tensor_type.shape.dim)) for i in proto.graph.input}
    graph, ctx = check_pass(import_onnx(proto), f"split-weights{{max-bytes={max_bytes}}}", feeds, rtol=1e-6)
    expected = onnxruntime_outputs(proto, feeds)
    for name, got in run_graph(graph, feeds).items():
        assert relative_error(got, expected[name]) <= 1e-6, name
    assert all(c.type.nbytes <= max_bytes for c in graph.constants.values())
    return graph, ctx


def test_option_is_a_size_in_units_and_a_bad_one_names_the_option() -> None:
    assert SplitWeights().max_bytes == 4 * 2**20
    for text in ("4MB", "4MiB", "4194304"):
        (split,) = parse_pipeline(f"split-weights{{max-bytes={text}}}")
        assert split.max_bytes == 4 * 2**20 and split.pipeline_text() == "split-weights"
    assert parse_pipeline("split-weights{max-bytes=96}")[0].pipeline_text() == "split-weights{max-bytes=96}"
    with pytest.raises(HaiError, match="option 'max-bytes' of pass 'split-weights' expects a size"):
        parse_pipeline("split-weights{max-bytes=4pages}")
    with pytest.raises(HaiError, match="max-bytes"):
        parse_pipeline("split-weights{max-bytes=0}")


@pytest.mark.parametrize("x_shape", [(4, 8), (2, 3, 8)])
def test_matmul_weight_splits_into_column_pieces(x_shape: tuple[int, ...]) -> None:
    # W f32[8, 10]: a column is 8 * 4 = 32 bytes; 96 bytes hold 3 columns: pieces of 3, 3, 3, 1.
    proto = matmul_model(x_shape)
    graph, ctx = split_and_compare(proto, 96)
    assert ops(graph) == ["MatMul"] * 4 + ["Concat"]
    assert [graph.constants[f"w.part{j}"].type.shape for j in range(4)] == [(8, 3)] * 3 + [(8, 1)]
    parts = list(graph.nodes)[:4]
    assert [n.name for n in parts] == [f"mm.part{j}" for j in range(4)]
    assert all(n.annotations[FOLDED_FROM] == "mm" for n in parts)  # provenance: they came from `mm`
    concat = graph.nodes.last
    assert concat.name == "mm" and concat.attrs["axis"] == len(x_shape) - 1 and graph.outputs[0].name == "y"
    assert "w" not in graph.constants  # the whole weight is gone
    assert ctx.statistics["split-weights"] == {"split-matmul": 1, "pieces": 4}


@pytest.mark.parametrize(
    ("trans_b", "c_shape"),
    [(0, None), (1, None), (0, (10,)), (1, (1, 10)), (0, (4, 10)), (1, (4, 1)), (0, (1,))],
)
def test_gemm_weight_and_bias_split_along_n(trans_b: int, c_shape: tuple[int, ...] | None) -> None:
    # B f32[8, 10] (or [10, 8]): a column of the result takes 32 bytes of B; 96 bytes: pieces of 3, 3, 3, 1.
    weights = {"b": array(10, 8) if trans_b else array(8, 10)}
    inputs = ["a", "b"]
    if c_shape is not None:
        weights["c"] = array(*c_shape)
        inputs.append("c")
    gemm = helper.make_node("Gemm", inputs, ["y"], alpha=0.5, beta=2.0, transB=trans_b, name="fc")
    graph, _ = split_and_compare(model([gemm], {"a": (4, 8)}, weights), 96)
    assert ops(graph) == ["Gemm"] * 4 + ["Concat"]
    pieces = list(graph.nodes)[:4]
    widths = [p.results[0].type.shape[1] for p in pieces]
    assert widths == [3, 3, 3, 1]
    assert all(p.attrs == {"alpha": 0.5, "beta": 2.0, "transA": 0, "transB": trans_b} for p in pieces)
    if c_shape is not None and c_shape[-1] == 10:  # C varies along N: cut with B
        assert [p.operands[2].type.shape[-1] for p in pieces] == widths
    elif c_shape is not None:  # C broadcasts along N: every piece reads it whole
        assert all(p.operands[2].name == "c" for p in pieces)


@pytest.mark.parametrize("with_bias", [False, True])
def test_conv_weight_and_bias_split_into_channel_pieces(with_bias: bool) -> None:
    # W f32[10, 3, 3, 3]: an output channel is 27 * 4 = 108 bytes; 324 bytes hold 3: pieces of 3, 3, 3, 1.
    weights = {"w": array(10, 3, 3, 3)} | ({"b": array(10)} if with_bias else {})
    conv = helper.make_node("Conv", ["x", *weights], ["y"], pads=[1, 1, 1, 1], name="conv")
    graph, _ = split_and_compare(model([conv], {"x": (1, 3, 6, 6)}, weights), 324)
    assert ops(graph) == ["Conv"] * 4 + ["Concat"]
    assert graph.nodes.last.attrs["axis"] == 1
    assert sorted(graph.constants) == sorted(
        f"{name}.part{j}" for name in weights for j in range(4)
    )  # fmt: skip
    assert graph.constants["w.part3"].type.shape == (1, 3, 3, 3)


def test_weights_that_fit_non_constant_weights_and_grouped_conv_are_left_alone() -> None:
    nodes = [
        helper.make_node("MatMul", ["x", "big"], ["h"], name="big_mm"),
        helper.make_node("MatMul", ["h", "small"], ["s"], name="small_mm"),
        helper.make_node("MatMul", ["s", "x2"], ["y"], name="dynamic_mm"),  # its weight is an input
    ]
    weights = {"big": array(8, 10), "small": array(10, 2)}  # 320 and 80 bytes
    graph, _ = split_and_compare(model(nodes, {"x": (4, 8), "x2": (2, 40)}, weights), 96)
    small_mm = graph.nodes.last.operands[0].producer
    assert small_mm.name == "small_mm" and small_mm.operands[1] is graph.constants["small"]
    assert graph.constants["small"].constant_array().tobytes() == weights["small"].tobytes()
    assert ops(graph) == ["MatMul"] * 4 + ["Concat", "MatMul", "MatMul"]

    grouped = model(
        [helper.make_node("Conv", ["x", "w"], ["y"], group=2)], {"x": (1, 4, 5, 5)}, {"w": array(6, 2, 3, 3)}
    )  # fmt: skip
    graph, _ = check_pass(import_onnx(grouped), "split-weights{max-bytes=100}")
    assert ops(graph) == ["Conv"] and "w" in graph.constants


@pytest.mark.parametrize(("dtype", "pieces"), [(DType.F16, 4), (DType.BF16, 1)])
def test_f16_weights_split_and_bf16_ones_are_left_alone(dtype: DType, pieces: int) -> None:
    # W [8, 10] at 2 bytes: a column is 16 bytes; 48 bytes hold 3 columns: pieces of 3, 3, 3, 1.
    graph = Graph()
    x = graph.add_input("x", TensorType(dtype, (4, 8)))
    w = graph.add_constant("w", array(8, 10).astype(dtype.numpy))
    (y,) = Builder(graph).op("MatMul", [x, w], name="mm")
    graph.set_outputs([y])
    feeds = {"x": array(4, 8).astype(dtype.numpy)}
    graph, _ = check_pass(graph, "split-weights{max-bytes=48}", feeds, rtol=0, atol=0)
    assert ops(graph).count("MatMul") == pieces
    reference = feeds["x"].astype(np.float64) @ w.constant_array().astype(np.float64)
    assert relative_error(run_graph(graph, feeds)["mm"], reference) <= 1e-2  # 8-bit (bf16) mantissas


def test_a_column_larger_than_max_bytes_is_an_error_naming_node_weight_and_size() -> None:
    proto = matmul_model((4, 8))
    with pytest.raises(WeightSplitError) as caught:
        SplitWeights(max_bytes=ByteSize(31)).run(import_onnx(proto), PassContext())
    message = str(caught.value)
    assert "MatMul node 'mm'" in message and "%w f32[8,10]" in message and "(320 B)" in message
    assert "one column alone takes 32 bytes; give max-bytes=32 or more" in message
    SplitWeights(max_bytes=ByteSize(32)).run(import_onnx(proto), PassContext())  # the size it names works


def test_mlp_split_then_compiled_matches_onnxruntime(tmp_path: Path) -> None:
    import runtime
    from hai_compiler.compiler import CompileOptions, compile_model

    # W1 f32[16, 32]: a column is 64 bytes, 768 bytes hold 12: pieces of 12, 12, 8.
    # W2 f32[32, 10] (Gemm, with C [10]): a column is 128 bytes, 768 bytes hold 6: pieces of 6, 4.
    nodes = [
        helper.make_node("MatMul", ["x", "w1"], ["h"], name="fc1"),
        helper.make_node("Add", ["h", "b1"], ["hb"], name="add1"),
        helper.make_node("Relu", ["hb"], ["r"], name="relu1"),
        helper.make_node("Gemm", ["r", "w2", "b2"], ["y"], name="fc2"),
    ]
    weights = {"w1": array(16, 32), "b1": array(32), "w2": array(32, 10), "b2": array(10)}
    proto = model(nodes, {"x": (2, 16)}, weights)
    onnx.save(proto, str(tmp_path / "mlp.onnx"))
    options = CompileOptions(passes="default,split-weights{max-bytes=768}")
    result = compile_model(tmp_path / "mlp.onnx", tmp_path / "mlp.hai", options)
    compiled_ops = [n.op for g in result.groups for n in g.nodes]
    assert compiled_ops.count("MatMul") == 3 and compiled_ops.count("Gemm") == 2
    feeds = {"x": array(2, 16)}
    got = runtime.load(result.path, threads=2).run(feeds)["y"]
    assert relative_error(got, onnxruntime_outputs(proto, feeds)["y"]) <= 1e-5
