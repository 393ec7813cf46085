"""The `quantize` pass on the embedded digits CNN, calibrated on held-out digits: INT8 (ConvInteger /
MatMulInteger), INT4 group-wise and FP16 weight-only graphs run in the interpreter close to onnxruntime's
fp32 outputs; per-layer `precision` annotations win; uncalibrated inputs and bad options are clear errors;
quantized graphs round-trip `.hir` with their weights file."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from hai_compiler.demo import EMBEDDED_MODEL, load_heldout_digits
from hai_compiler.quantize.calibrate import calibrate, prepare_graph
from ir import DType, Graph, QuantParams, run_graph
from ir.parser import read_hir
from ir.printer import write_hir
from ir.quantization import dequantize, quantize, record_range
from passes.manager import PassContext
from passes.quantize import PRECISION_KEY, QuantizationError, Quantize, layers
from passes.weight_quantization import quantize_groupwise, quantize_per_channel

SHAPES = {"image": (1, 1, 8, 8)}
CALIBRATION, EVALUATION = slice(0, 64), slice(64, 160)


@pytest.fixture(scope="module")
def digits() -> tuple[np.ndarray, np.ndarray]:
    return load_heldout_digits()


@pytest.fixture(scope="module")
def ranges(digits: tuple[np.ndarray, np.ndarray]) -> dict[str, str]:
    """Graph metadata with min/max ranges of every activation over the calibration digits."""
    graph = prepare_graph(EMBEDDED_MODEL, SHAPES)
    x = digits[0][CALIBRATION]
    stats = calibrate(graph, [{"image": x[i : i + 1]} for i in range(len(x))], "minmax", progress=False)
    metadata: dict[str, str] = {}
    for name, (lo, hi) in stats.ranges.items():
        record_range(metadata, name, lo, hi)
    return metadata


@pytest.fixture(scope="module")
def reference(digits: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """onnxruntime's fp32 logits on the evaluation digits."""
    session = ort.InferenceSession(str(EMBEDDED_MODEL), providers=["CPUExecutionProvider"])
    return np.concatenate([session.run(None, {"image": x[None]})[0] for x in digits[0][EVALUATION]])


def calibrated_graph(ranges: dict[str, str]) -> Graph:
    graph = prepare_graph(EMBEDDED_MODEL, SHAPES)
    graph.metadata.update(ranges)
    return graph


def logits(graph: Graph, digits: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    return np.concatenate([run_graph(graph, {"image": x[None]})["logits"] for x in digits[0][EVALUATION]])


def sqnr_db(reference: np.ndarray, result: np.ndarray) -> float:
    return float(10 * np.log10((reference**2).sum() / ((reference - result) ** 2).sum()))


@pytest.mark.parametrize(
    "precision, min_sqnr, ops",
    [
        ("int8", 30.0, {"ConvInteger", "MatMulInteger", "QuantizeLinear", "DequantizeLinear"}),
        ("int4", 15.0, {"DequantizeLinear", "Conv"}),
        ("fp16", 50.0, {"DequantizeLinear", "Conv"}),
    ],
)
def test_quantized_digits_stay_close_to_onnxruntime_fp32(
    precision, min_sqnr, ops, ranges, reference, digits
) -> None:  # type: ignore[no-untyped-def]
    graph = calibrated_graph(ranges)
    Quantize(precision=precision).run(graph, PassContext())
    assert ops <= {n.op for n in graph.nodes}
    result = logits(graph, digits)
    assert sqnr_db(reference, result) >= min_sqnr
    labels = digits[1][EVALUATION]
    assert np.mean(result.argmax(1) == labels) >= np.mean(reference.argmax(1) == labels) - 0.02


def test_int8_layers_are_replaced_and_weights_are_integers(ranges) -> None:  # type: ignore[no-untyped-def]
    graph = calibrated_graph(ranges)
    count = len(layers(graph))
    Quantize(precision="int8").run(graph, PassContext())
    assert not layers(graph)
    integer = [n for n in graph.nodes if n.op in ("ConvInteger", "MatMulInteger")]
    assert len(integer) == count
    for node in integer:
        weight = node.operands[1]
        assert weight is not None and weight.type.dtype is DType.I8 and weight.type.quant is not None
        assert node.operands[0] is not None and node.operands[0].type.dtype is DType.U8
        assert node.annotations[PRECISION_KEY] == "int8"


def test_precision_annotation_overrides_the_default(ranges) -> None:  # type: ignore[no-untyped-def]
    graph = calibrated_graph(ranges)
    first, *rest = layers(graph)
    first.annotations[PRECISION_KEY] = "fp32"
    rest[-1].annotations[PRECISION_KEY] = "int4"
    Quantize(precision="int8").run(graph, PassContext())
    assert first in list(graph.nodes) and first.op == "Conv"
    assert rest[-1].operands[1] is not None and rest[-1].operands[1].producer is not None
    assert rest[-1].operands[1].producer.op == "DequantizeLinear"
    assert sum(n.op == "ConvInteger" for n in graph.nodes) == len(rest) - 1


def test_uncalibrated_input_is_an_error_naming_it() -> None:
    graph = prepare_graph(EMBEDDED_MODEL, SHAPES)
    with pytest.raises(QuantizationError, match=r"%image has no calibrated range"):
        Quantize(precision="int8").run(graph, PassContext())


def test_unknown_precision_is_refused() -> None:
    with pytest.raises(ValueError, match="precision must be one of"):
        Quantize(precision="int3")
    graph = prepare_graph(EMBEDDED_MODEL, SHAPES)
    layers(graph)[0].annotations[PRECISION_KEY] = "int2"
    with pytest.raises(QuantizationError, match="'int2' is not one of"):
        Quantize(precision="fp16").run(graph, PassContext())


@pytest.mark.parametrize("precision", ["int8", "int4"])
def test_quantized_graph_round_trips_hir_with_its_weights(precision, ranges, digits, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    graph = calibrated_graph(ranges)
    Quantize(precision=precision).run(graph, PassContext())
    again = read_hir(write_hir(graph, tmp_path / "q.hir", save_weights=True))
    x = digits[0][:1]
    np.testing.assert_array_equal(
        run_graph(again, {"image": x})["logits"], run_graph(graph, {"image": x})["logits"]
    )


def test_int4_clipping_search_never_loses_to_max_scaling_and_int8_uses_the_full_range() -> None:
    rng = np.random.default_rng(5)
    weights = rng.standard_t(2, (8, 64, 3, 3)).astype(np.float32)  # heavy tails: clipping pays at 4 bits
    chosen = quantize_groupwise(weights, axis=1, group_size=64)
    error = ((chosen.dequantized() - weights) ** 2).reshape(8, -1).sum(1)
    peak = np.abs(weights).max(axis=1, keepdims=True) / 7
    max_params = QuantParams(tuple(float(s) for s in peak.ravel()), (0,) * peak.size, 1, 64)
    naive = dequantize(quantize(weights, max_params, DType.I4), max_params)
    naive_error = ((naive - weights) ** 2).reshape(8, -1).sum(1)
    assert np.all(error <= naive_error + 1e-9) and np.any(error < naive_error * 0.99)
    int8 = quantize_per_channel(weights, 0)
    np.testing.assert_allclose(int8.params.scale, np.abs(weights).reshape(8, -1).max(1) / 127, rtol=1e-6)


def test_groupwise_int4_has_one_scale_per_group() -> None:
    weights = np.random.default_rng(6).standard_normal((8, 4, 3, 3)).astype(np.float32)
    grouped = quantize_groupwise(weights, axis=1, group_size=3)  # groups of input channels: 3 + 1
    assert grouped.values.dtype == DType.I4.numpy and len(grouped.params.scale) == 8 * 2 * 3 * 3
    assert np.abs(grouped.dequantized() - weights).max() <= max(grouped.params.scale) / 2 + 1e-6


def test_fp16_needs_a_target_with_f16(ranges) -> None:  # type: ignore[no-untyped-def]
    from targets.registry import resolve_target

    graph = calibrated_graph(ranges)
    ctx = PassContext(target=resolve_target("x86", cpu="x86-64-v2").to_pass_context())
    Quantize(precision="fp16").run(graph, ctx)
    assert layers(graph) and not any(n.op == "DequantizeLinear" for n in graph.nodes)
    assert any("no f16 support" in d.message for d in ctx.diagnostics)
