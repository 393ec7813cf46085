"""Unit tests of the `.hir` text format, one syntax element at a time, plus weights files and a real model.

The reference for every check is the graph the test built (or numpy/hashlib),
never text saved from an earlier run.
"""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

import ml_dtypes
import numpy as np
import pytest

from ir import Builder, DType, ElidedConstant, Graph, IRError, QuantParams, TensorType, run_graph, verify
from ir.ops.registry import has_op
from ir.parser import HirParseError, parse_hir, read_hir
from ir.printer import HEADER, print_graph, write_hir
from ir.weights_file import WeightsFileError


def roundtrip(graph: Graph) -> Graph:
    """Print, parse, verify, and check the second print equals the first."""
    text = print_graph(graph)
    parsed = parse_hir(text)
    verify(parsed)
    assert print_graph(parsed) == text
    return parsed


def f32(*shape: int, **facts) -> TensorType:
    return TensorType(DType.F32, tuple(shape), **facts)


def one_relu_graph(input_name: str = "x", result_name: str = "y", node_name: str = "relu") -> Graph:
    g = Graph("main")
    x = g.add_input(input_name, f32(2, 3))
    (y,) = Builder(g).op("Relu", [x], name=node_name, result_names=[result_name])
    g.set_outputs([y])
    return g


# -- header and signature -------------------------------------------------------------
def test_text_layout_of_a_small_graph():
    text = print_graph(one_relu_graph())
    assert text == (
        f"{HEADER}\n"
        "graph @main(%x: f32[2,3]) -> (%y) {\n"
        '  %y = Relu(%x) : f32[2,3] loc("relu")\n'
        "  return %y\n"
        "}\n"
    )


def test_header_is_optional_and_comments_are_ignored():
    text = "// my notes\ngraph @g(%x: f32[2]) -> (%x) { // inline comment\n  return %x\n}\n"
    g = parse_hir(text)
    assert [v.name for v in g.outputs] == ["x"] and g.name == "g"


def test_newer_format_version_is_refused_with_position():
    text = print_graph(one_relu_graph()).replace("format version 1", "format version 99")
    with pytest.raises(HirParseError, match=r"<string>:1:\d+: .hir format version 99 is newer"):
        parse_hir(text)


@pytest.mark.parametrize(
    "name", ["/conv1/Conv_output_0", "onnx::Add_12", "with space", 'quote"and\\slash', "ünï", "1", "a.b-c$d"]
)
def test_value_and_graph_names_round_trip(name):
    g = one_relu_graph(input_name=name, result_name=name + ".out", node_name=name)
    g.name = name
    parsed = roundtrip(g)
    assert parsed.name == name
    assert parsed.inputs[0].name == name
    assert parsed.outputs[0].name == name + ".out"
    assert next(iter(parsed.nodes)).name == name


def test_simple_names_are_not_quoted_and_odd_ones_are():
    text = print_graph(one_relu_graph(input_name="/a/b:0", result_name="y.1"))
    assert '%"/a/b:0"' in text and "%y.1 " in text


def test_graph_without_inputs_or_outputs():
    g = Graph("empty")
    assert roundtrip(g).outputs == []
    assert "-> () {" in print_graph(g) and "  return\n" in print_graph(g)


def test_outputs_may_repeat_and_may_be_inputs():
    g = Graph("main")
    x = g.add_input("x", f32(1))
    g.set_outputs([x, x])
    parsed = roundtrip(g)
    assert [v.name for v in parsed.outputs] == ["x", "x"]


def test_metadata_round_trips_with_escapes():
    g = one_relu_graph()
    g.metadata.update({"producer_name": "pytorch", "doc": 'line1\nline2 "quoted" \\ tab\t'})
    assert roundtrip(g).metadata == g.metadata


# -- types ---------------------------------------------------------------------------
@pytest.mark.parametrize(
    "type",
    [
        TensorType(DType.F32, ()),
        TensorType(DType.I64, (0, 5)),
        TensorType(DType.F32, (1, 16, 8, 8), device="cpu", offset=1024),
        TensorType(DType.I8, (64,), quant=QuantParams((0.1,), (0,))),
        TensorType(DType.I8, (4, 2), quant=QuantParams((0.5, 0.25, 1e-3, 2.0), (0, 1, -1, 3), axis=0)),
        TensorType(DType.I4, (4, 64), quant=QuantParams((0.1, 0.2) * 4, (0,) * 8, 1, 32), page=7),
        TensorType(DType.BOOL, (3,), device="opencl:gpu", offset=0, page=0),
    ],
    ids=str,
)
def test_every_type_fact_round_trips(type):
    g = Graph("main")
    x = g.add_input("x", type)
    (y,) = Builder(g).op("Identity", [x], result_types=[type])
    g.set_outputs([y])
    parsed = roundtrip(g)
    assert parsed.value("x").type == type
    assert parsed.value(y.name).type == type


def test_type_fact_syntax_is_documented_form():
    t = TensorType(DType.I8, (64,), quant=QuantParams((0.1,), (0,), axis=0), device="cpu", offset=8, page=2)
    g = Graph("main")
    g.add_input("x", t)
    assert (
        'i8[64]{quant = (scale = [0.1], zero_point = [0], axis = 0), device = "cpu", offset = 8, page = 2}'
        in print_graph(g)
    )


# -- constants ---------------------------------------------------------------------------
INLINE_CASES = {
    "f32 specials": np.array([0.1, -0.0, np.nan, np.inf, -np.inf, 1e-45, 3.4028235e38], np.float32),
    "f16": np.array([[0.1, 65504.0], [-6e-8, np.inf]], np.float16),
    "bf16": np.array([0.1, 1.0, -3.140625, 1e20, np.nan], ml_dtypes.bfloat16),
    "f64": np.array([0.1, 1 / 3, 5e-324, -1.7976931348623157e308]),
    "i64 extremes": np.array([np.iinfo(np.int64).min, np.iinfo(np.int64).max, 0], np.int64),
    "i32 scalar": np.array(-7, np.int32),
    "i16": np.array([-32768, 32767], np.int16),
    "i8": np.array([-128, 127], np.int8),
    "u8": np.array([0, 255], np.uint8),
    "i4": np.array([-8, 7, 0, -1], ml_dtypes.int4),
    "bool": np.array([[True, False], [False, True]]),
    "empty": np.zeros((0, 3), np.float32),
}


@pytest.mark.parametrize("name", list(INLINE_CASES))
def test_small_constants_are_inline_and_bit_exact(name):
    array = INLINE_CASES[name]
    g = Graph("main")
    c = g.add_constant("c", array)
    g.set_outputs([c])
    assert "dense<[" in print_graph(g)
    parsed = roundtrip(g).value("c").const
    assert isinstance(parsed, np.ndarray)
    assert parsed.dtype == array.dtype and parsed.shape == array.shape
    assert parsed.tobytes() == array.tobytes() or (  # nan payload aside, bits are equal
        np.array_equal(parsed.astype(np.float64), array.astype(np.float64), equal_nan=True)
    )


def test_inline_values_are_written_shortest():
    g = Graph("main")
    g.add_constant("c", np.array([0.1, 1.0, -0.0, 1e20], np.float32))
    g.add_constant("b", np.array([1.0, 0.1], ml_dtypes.bfloat16))
    text = print_graph(g)
    assert "dense<[0.1, 1.0, -0.0, 1e+20]>" in text
    assert "dense<[1.0, 0.1]>" in text


def test_large_constants_print_their_content_hash():
    array = np.arange(17, dtype=np.float32)
    g = Graph("main")
    g.add_constant("w", array)
    text = print_graph(g)
    assert f"%w = constant f32[17] sha256:{hashlib.sha256(array.tobytes()).hexdigest()}" in text
    const = parse_hir(text).value("w").const
    assert isinstance(const, ElidedConstant) and const.sha256 == hashlib.sha256(array.tobytes()).hexdigest()


def test_elided_constant_round_trips_and_interpreter_names_it():
    g = Graph("main")
    x = g.add_input("x", f32(4))
    w = g.add_constant("w", ElidedConstant("ab" * 32), f32(4))
    (y,) = Builder(g).op("Add", [x, w])
    g.set_outputs([y])
    parsed = roundtrip(g)
    with pytest.raises(IRError, match="%w .* has no data: its .hir was written without a weights file"):
        run_graph(parsed, {"x": np.zeros(4, np.float32)})


def test_constants_with_type_facts():
    t = TensorType(DType.I8, (20,), quant=QuantParams((0.5,), (3,)), device="cpu", page=1)
    g = Graph("main")
    g.add_constant("w", np.arange(20, dtype=np.int8), t)
    g.add_constant("s", np.arange(2, dtype=np.int8), t.with_(shape=(2,)))
    parsed = roundtrip(g)
    assert parsed.value("w").type == t and parsed.value("s").type == t.with_(shape=(2,))


def test_weights_given_by_name_or_by_hash_are_checked():
    array = np.arange(20, dtype=np.float32)
    g = Graph("main")
    g.add_constant("w", array)
    text = print_graph(g)
    by_name = parse_hir(text, weights={"w": array}).value("w").const
    by_hash = parse_hir(text, weights={hashlib.sha256(array.tobytes()).hexdigest(): array}).value("w").const
    assert np.array_equal(by_name, array) and np.array_equal(by_hash, array)
    with pytest.raises(HirParseError, match=r"<string>:3:25: the data given for %w has sha256"):
        parse_hir(text, weights={"w": array + 1})
    with pytest.raises(HirParseError, match="the weights given for %w are float64"):
        parse_hir(text, weights={"w": array.astype(np.float64)})


# -- nodes ---------------------------------------------------------------------------
def test_attributes_are_sorted_and_typed():
    g = Graph("main")
    x = g.add_input("x", f32(1, 2, 4, 4))
    w = g.add_constant("w", np.ones((3, 2, 3, 3), np.float32))
    attrs = {"strides": (1, 1), "pads": (1, 1, 1, 1), "dilations": (1, 1), "group": 1}
    (y,) = Builder(g).op("Conv", [x, w], attrs, name="conv1")
    g.set_outputs([y])
    text = print_graph(g)
    assert (
        "%conv1 = Conv(%x, %w) {dilations = [1, 1], group = 1, pads = [1, 1, 1, 1], strides = [1, 1]}"
        ' : f32[1,3,4,4] loc("conv1")' in text
    )
    assert next(iter(roundtrip(g).nodes)).attrs == next(iter(g.nodes)).attrs


@pytest.mark.parametrize("alpha", [0.1, 1e-5, -0.0, 1e300, 5e-324, math.inf, -math.inf, math.nan, 2.0])
def test_float_attributes_round_trip_exactly(alpha):
    g = Graph("main")
    x = g.add_input("x", f32(3))
    (y,) = Builder(g).op("LeakyRelu", [x], {"alpha": alpha})
    g.set_outputs([y])
    parsed = next(iter(roundtrip(g).nodes)).attrs["alpha"]
    assert isinstance(parsed, float)
    assert (math.isnan(parsed) and math.isnan(alpha)) or (
        parsed == alpha and math.copysign(1, parsed) == math.copysign(1, alpha)
    )
    assert f"alpha = {alpha!r}" in print_graph(g)


def test_float_attribute_may_be_written_as_int_by_hand():
    text = "graph @g(%x: f32[3]) -> (%y) {\n  %y = LeakyRelu(%x) {alpha = 2} : f32[3]\n  return %y\n}\n"
    assert next(iter(parse_hir(text).nodes)).attrs["alpha"] == 2.0


def test_string_and_dtype_attributes():
    g = Graph("main")
    x = g.add_input("x", f32(3))
    (y,) = Builder(g).op("Gelu", [x], {"approximate": "tanh"})
    (z,) = Builder(g).op("Cast", [y], {"to": DType.F16})
    g.set_outputs([z])
    text = print_graph(g)
    assert 'approximate = "tanh"' in text and "{to = f16} : f16[3]" in text
    nodes = list(roundtrip(g).nodes)
    assert nodes[0].attrs["approximate"] == "tanh" and nodes[1].attrs["to"] is DType.F16


def test_node_without_operands_and_float_list_attribute():
    g = Graph("main")
    (c,) = Builder(g).op("ConstantOfShape", [], {"shape": (2, 2), "value": 1.5, "dtype": DType.I32})
    img = g.add_input("img", f32(1, 1, 2, 2))
    (r,) = Builder(g).op("Resize", [img], {"scales": (1.0, 1.0, 2.0, 2.0), "sizes": (1, 1, 4, 4)})
    g.set_outputs([c, r])
    text = print_graph(g)
    assert "ConstantOfShape() {dtype = i32, shape = [2, 2], value = 1.5} : i32[2,2]" in text
    assert "scales = [1.0, 1.0, 2.0, 2.0]" in text
    roundtrip(g)


def test_multi_result_nodes():
    g = Graph("main")
    x = g.add_input("x", f32(4, 2))
    a, b = Builder(g).op("Split", [x], {"axis": 0, "split": (1, 3)}, result_names=["a", "/b:0"])
    g.set_outputs([b, a])
    assert '%a, %"/b:0" = Split(%x) {axis = 0, split = [1, 3]} : f32[1,2], f32[3,2]' in print_graph(g)
    parsed = roundtrip(g)
    assert [v.name for v in parsed.outputs] == ["/b:0", "a"]


@pytest.mark.skipif(not has_op("RNN"), reason="RNN op not registered")
def test_absent_optional_operands_print_as_underscore():
    g = Graph("main")
    x = g.add_input("x", f32(2, 1, 3))
    w = g.add_constant("w", np.ones((1, 4, 3), np.float32))
    r = g.add_constant("r", np.ones((1, 4, 4), np.float32))
    h0 = g.add_input("h0", f32(1, 1, 4))
    results = Builder(g).op("RNN", [x, w, r, None, None, h0], {"hidden_size": 4})
    g.set_outputs(results)
    assert "RNN(%x, %w, %r, _, _, %h0)" in print_graph(g)
    node = next(iter(roundtrip(g).nodes))
    assert node.operands[3] is None and node.operands[4] is None and node.operands[5].name == "h0"


def test_types_of_results_keep_their_facts():
    g = Graph("main")
    x = g.add_input("x", f32(2, device="opencl:gpu"))
    placed = f32(2, device="opencl:gpu", offset=128, page=None)
    (y,) = Builder(g).op("Relu", [x], result_types=[placed])
    g.set_outputs([y])
    assert roundtrip(g).value(y.name).type == placed


# -- files ----------------------------------------------------------------------------
def weighted_graph() -> Graph:
    g = Graph("main")
    x = g.add_input("x", f32(2, 20))
    w = g.add_constant("/w:0", np.linspace(-1, 1, 40, dtype=np.float32).reshape(2, 20))
    g.add_constant("same bytes", np.linspace(-1, 1, 40, dtype=np.float32).reshape(2, 20))
    g.add_constant("b16", np.arange(20).astype(ml_dtypes.bfloat16))
    g.add_constant("q4", (np.arange(40) % 16 - 8).astype(ml_dtypes.int4))
    g.add_constant("small", np.array([2.0], np.float32))
    (y,) = Builder(g).op("Add", [x, w])
    g.set_outputs([y])
    return g


def test_write_and_read_hir_with_weights(tmp_path: Path):
    g = weighted_graph()
    path = write_hir(g, tmp_path / "model.hir", save_weights=True)
    weights = tmp_path / "model.weights.npz"
    text = path.read_text()
    assert f'weights "model.weights.npz" sha256:{hashlib.sha256(weights.read_bytes()).hexdigest()}' in text
    loaded = read_hir(path)
    verify(loaded)
    for name, value in g.constants.items():
        got = loaded.value(name).const
        assert isinstance(got, np.ndarray) and got.dtype == value.const.dtype
        assert got.tobytes() == value.const.tobytes()
    x = np.random.default_rng(0).standard_normal((2, 20)).astype(np.float32)
    np.testing.assert_array_equal(run_graph(loaded, {"x": x})["add"], x + g.value("/w:0").const)
    assert print_graph(loaded) == print_graph(g)


def test_weights_file_is_deterministic(tmp_path: Path):
    write_hir(weighted_graph(), tmp_path / "a.hir", save_weights=True)
    write_hir(weighted_graph(), tmp_path / "b.hir", save_weights=True)
    assert (tmp_path / "a.weights.npz").read_bytes() == (tmp_path / "b.weights.npz").read_bytes()
    with np.load(tmp_path / "a.weights.npz") as archive:
        assert len(archive.files) == 3  # identical bytes stored once; small constants stay inline


def test_missing_or_altered_weights_file_is_a_clear_error(tmp_path: Path):
    path = write_hir(weighted_graph(), tmp_path / "m.hir", save_weights=True)
    weights = tmp_path / "m.weights.npz"
    weights.write_bytes(weights.read_bytes() + b"\0")
    with pytest.raises(WeightsFileError, match="do not belong to this .hir"):
        read_hir(path)
    weights.unlink()
    with pytest.raises(WeightsFileError, match="m.weights.npz, which does not exist"):
        read_hir(path)


@pytest.mark.parametrize("name", ["/etc/passwd", "../outside.weights.npz", "link.weights.npz"])
def test_weights_file_outside_the_hir_directory_is_refused_unread(tmp_path: Path, name: str):
    folder = tmp_path / "models"
    folder.mkdir()
    path = write_hir(weighted_graph(), folder / "m.hir", save_weights=True)
    outside = tmp_path / "outside.weights.npz"
    outside.write_bytes((folder / "m.weights.npz").read_bytes())
    (folder / "link.weights.npz").symlink_to(outside)
    text = path.read_text()
    path.write_text(text.replace('"m.weights.npz"', json.dumps(name)))
    with pytest.raises(WeightsFileError, match="outside the .hir's directory") as caught:
        read_hir(path)
    assert "sha256" not in str(caught.value)  # nothing about a file the user did not name


def test_hir_without_weights_file_keeps_placeholders(tmp_path: Path):
    path = write_hir(weighted_graph(), tmp_path / "m.hir")
    assert not (tmp_path / "m.weights.npz").exists()
    loaded = read_hir(path)
    assert isinstance(loaded.value("/w:0").const, ElidedConstant)
    assert isinstance(loaded.value("small").const, np.ndarray)
    with pytest.raises(WeightsFileError, match="constant %/w:0 was read without its data"):
        write_hir(loaded, tmp_path / "again.hir", save_weights=True)


# -- a real model ---------------------------------------------------------------------
def test_real_model_round_trips_with_its_weights(tmp_path: Path):
    from hai_compiler import real_models
    from hai_compiler.onnx_import import import_onnx

    g = import_onnx(real_models.fetch("orientation"), input_shapes={"x": (1, 3, 224, 224)})
    loaded = read_hir(write_hir(g, tmp_path / "orientation.hir", save_weights=True))
    verify(loaded)
    assert print_graph(loaded) == print_graph(g)
    x = np.random.default_rng(1).standard_normal((1, 3, 224, 224)).astype(np.float32)
    want, got = run_graph(g, {"x": x}), run_graph(loaded, {"x": x})
    assert list(want) == list(got)
    for name in want:
        np.testing.assert_array_equal(got[name], want[name])
