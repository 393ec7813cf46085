"""Mixed precision on the digits CNN: incremental evaluation equals interpreting from scratch; budgets
(min SQNR, max disagreement, target size) hold on the samples and cost less than uniform precision;
first/last layers and overrides are respected; unreachable budgets and bad overrides are clear errors;
the `DynamicQuantizer` API end to end, deterministic for a seed."""

from __future__ import annotations

import warnings

import numpy as np
import pytest

from hai_compiler import DynamicQuantizer
from hai_compiler.demo import EMBEDDED_MODEL, load_heldout_digits
from hai_compiler.quantize import calibrate, prepare_graph
from hai_compiler.quantize.incremental import IncrementalEvaluator
from hai_compiler.quantize.metrics import sqnr_db
from hai_compiler.quantize.mixed import Budget, MixedPrecision, QuantizationBudgetError, configured
from hai_compiler.quantize.quantize_pass import QuantizeRunner
from hai_compiler.quantize.quantizer import QuantizerError
from ir import Graph, run_graph
from ir.quantization import record_range

SHAPES = {"image": (1, 1, 8, 8)}


def feeds(start: int, stop: int) -> list[dict[str, np.ndarray]]:
    x = load_heldout_digits()[0]
    return [{"image": x[i : i + 1]} for i in range(start, stop)]


@pytest.fixture(scope="module")
def calibrated() -> Graph:
    graph = prepare_graph(EMBEDDED_MODEL, SHAPES)
    stats = calibrate(graph, feeds(0, 64), "percentile", progress=False)
    for name, (lo, hi) in stats.ranges.items():
        record_range(graph.metadata, name, lo, hi)
    return graph


@pytest.fixture(scope="module")
def chooser(calibrated: Graph) -> MixedPrecision:
    return MixedPrecision(calibrated, feeds(64, 72))


def test_incremental_evaluation_equals_interpreting_from_scratch(calibrated: Graph) -> None:
    samples = feeds(100, 103)
    evaluator = IncrementalEvaluator(calibrated, samples)
    names = [layer.name for layer in MixedPrecision(calibrated, samples[:1]).layers]
    copy = configured(calibrated, {names[1]: "int8", names[2]: "int4"}, QuantizeRunner())
    for outputs, feed in zip(evaluator.outputs(copy), samples):
        np.testing.assert_array_equal(outputs[0], run_graph(copy, feed)["logits"])


def test_min_sqnr_budget_holds_and_costs_less_than_fp16(chooser: MixedPrecision) -> None:
    precisions = chooser.choose(Budget(min_sqnr=35.0))
    sqnr, _ = chooser.score(precisions)
    assert sqnr >= 35.0
    fp16_bytes = sum(layer.bytes["fp16"] for layer in chooser.layers)
    assert chooser.size() < fp16_bytes
    first, last = chooser.layers[0], chooser.layers[-1]
    assert first.precision != "int4" and last.precision != "int4"  # kept higher by default


def test_looser_budget_is_never_larger(chooser: MixedPrecision) -> None:
    chooser.choose(Budget(min_sqnr=40.0))
    strict = chooser.size()
    chooser.choose(Budget(min_sqnr=25.0))
    assert chooser.size() <= strict


def test_disagreement_and_size_budgets(chooser: MixedPrecision) -> None:
    precisions = chooser.choose(Budget(max_disagreement=0.0))
    assert chooser.score(precisions)[1] == 0.0
    target = sum(layer.bytes["int8"] for layer in chooser.layers)
    chooser.choose(Budget(target_size=target))
    assert chooser.size() <= target


def test_unreachable_budgets_say_what_is_reachable(chooser: MixedPrecision) -> None:
    with pytest.raises(QuantizationBudgetError, match=r"--min-sqnr 200 dB is unreachable.*gives [\d.]+ dB"):
        chooser.choose(Budget(min_sqnr=200.0))
    with pytest.raises(QuantizationBudgetError, match="--target-size 100 bytes is unreachable"):
        chooser.choose(Budget(target_size=100))
    with pytest.raises(QuantizationBudgetError, match="give one budget"):
        Budget(min_sqnr=30.0, target_size=1000)


def test_overrides_are_fixed_and_checked(calibrated: Graph) -> None:
    names = [layer.name for layer in MixedPrecision(calibrated, feeds(0, 1)).layers]
    chooser = MixedPrecision(calibrated, feeds(64, 68), overrides={names[1]: "fp32"})
    assert chooser.choose(Budget(min_sqnr=20.0))[names[1]] == "fp32"
    with pytest.raises(QuantizationBudgetError, match="names no layer: \\['nope'\\]"):
        MixedPrecision(calibrated, feeds(0, 1), overrides={"nope": "int8"})


def test_dynamic_quantizer_is_deterministic_and_clear_about_bad_input() -> None:
    data = feeds(0, 48)
    quantizer = DynamicQuantizer(target="x86", precision_profile="mixed", min_sqnr=30.0, progress=False)
    first = quantizer.fit(EMBEDDED_MODEL, data, input_shapes=SHAPES)
    again = quantizer.fit(EMBEDDED_MODEL, data, input_shapes=SHAPES)
    assert first.precisions == again.precisions
    x = feeds(200, 201)[0]
    np.testing.assert_array_equal(run_graph(first.graph, x)["logits"], run_graph(again.graph, x)["logits"])
    weight_only = DynamicQuantizer(precision_profile="fp16", progress=False).fit(
        EMBEDDED_MODEL, input_shapes=SHAPES
    )
    assert set(weight_only.precisions.values()) == {"fp16"}
    with pytest.raises(QuantizerError, match="give calibration data"):
        DynamicQuantizer(precision_profile="int8", progress=False).fit(EMBEDDED_MODEL, input_shapes=SHAPES)
    with pytest.raises(QuantizerError, match="unknown precision 'int3'"):
        DynamicQuantizer(precision_profile="int3")


def test_bias_correction_brings_quantized_outputs_closer_to_fp32() -> None:
    data, held_out = feeds(0, 48), feeds(200, 260)
    reference = np.concatenate(
        [run_graph(prepare_graph(EMBEDDED_MODEL, SHAPES), f)["logits"] for f in held_out]
    )
    for profile in ("int4", "int8"):
        scores = []
        for correct in (False, True):
            quantizer = DynamicQuantizer(precision_profile=profile, bias_correction=correct, progress=False)
            graph = quantizer.fit(EMBEDDED_MODEL, data, input_shapes=SHAPES).graph
            result = np.concatenate([run_graph(graph, f)["logits"] for f in held_out])
            scores.append(sqnr_db(result, reference))
        assert scores[1] > scores[0], (profile, scores)


def test_the_target_decides_whether_fp16_is_offered() -> None:
    from hai_compiler.quantize.mixed import ladder_for
    from targets.registry import resolve_target

    v2, v3 = resolve_target("x86", cpu="x86-64-v2"), resolve_target("x86", cpu="x86-64-v3")
    assert ladder_for(v3)[-1] == "fp16"  # F16C: fp16 weights convert at load speed
    assert ladder_for(v2)[-1] == "fp32"  # no F16C: the top rung stays fp32
    with pytest.raises(QuantizerError, match="no f16 support"):
        DynamicQuantizer(target=v2, precision_profile="fp16")


def test_the_target_is_spelled_target_as_in_the_cli() -> None:
    """`target=` (the CLI's `--target`); the old `target_device=` still works, with a DeprecationWarning."""
    from targets.registry import resolve_target

    v3 = resolve_target("x86", cpu="x86-64-v3")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert DynamicQuantizer(target=v3, precision_profile="fp16").target_description == v3
        assert DynamicQuantizer(v3, "fp16").target_description == v3
    with pytest.warns(DeprecationWarning, match=r"target_device=\.\.\.\) is now DynamicQuantizer\(target="):
        old = DynamicQuantizer(target_device=v3, precision_profile="fp16")
    assert old.target == old.target_description == v3
    v2 = resolve_target("x86", cpu="x86-64-v2")
    with pytest.warns(DeprecationWarning), pytest.raises(QuantizerError, match="give the target once"):
        DynamicQuantizer(target=v2, target_device=v3)
