"""Weight-only INT4 and FP16 models compiled end to end: the weights stay compressed in `weights.bin`
and each layer's kernel dequantises its own weight (no DequantizeLinear step, no f32 weight in the arena).

The digits CNN is quantized by the `quantize` pass, compiled, and run by the
runtime against the IR interpreter on the same quantized graph (relative error
<= 1e-4). Sizes are checked against the fp32 compile of the same model (both
NCHW, so the templates pack the same panels): an INT4 weight takes exactly
1/8 of its fp32 bytes (plus its group scales), an FP16 weight 1/2.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

import runtime
from hai_compiler.accuracy import relative_error
from hai_compiler.compiler import CompileOptions, compile_model
from hai_compiler.demo import EMBEDDED_MODEL, load_heldout_digits
from hai_compiler.quantize.calibrate import prepare_graph
from ir import DType, Graph, run_graph
from passes.manager import PassContext
from passes.quantize import Quantize
from runtime.artifact import WEIGHTS_FILE
from runtime.artifact_files import read_manifest

TOLERANCE = 1e-4
SHAPES = {"image": (1, 1, 8, 8)}
OPTIONS = CompileOptions(layout="NCHW")


def quantized_digits(precision: str) -> Graph:
    graph = prepare_graph(EMBEDDED_MODEL, SHAPES)
    if precision != "fp32":
        Quantize(precision=precision).run(graph, PassContext())
    return graph


@pytest.fixture(scope="module")
def compiled(tmp_path_factory) -> dict[str, tuple[Graph, dict[str, np.ndarray], object]]:  # type: ignore[no-untyped-def]
    """Per precision: the quantized graph, the interpreter's logits on a few digits, the CompileResult."""
    digits = load_heldout_digits()[0][:4]
    found = {}
    for precision in ("fp32", "int4", "fp16"):
        graph = quantized_digits(precision)
        stored = {v.name: v.type.dtype for v in graph.constants.values()}
        want = np.concatenate([run_graph(graph, {"image": x[None]})["logits"] for x in digits])
        result = compile_model(graph, tmp_path_factory.mktemp(precision) / "digits.hai", OPTIONS)
        found[precision] = (stored, want, result)
    return found


def entries(result) -> dict[str, int]:  # type: ignore[no-untyped-def]
    return {w.name: w.nbytes for w in read_manifest(result.path).weights}


@pytest.mark.parametrize("precision", ["int4", "fp16"])
def test_runtime_matches_the_interpreter(precision, compiled) -> None:  # type: ignore[no-untyped-def]
    _, want, result = compiled[precision]
    model = runtime.load(result.path, threads=2)
    digits = load_heldout_digits()[0][:4]
    got = np.concatenate([model.run({"image": x[None]})["logits"] for x in digits])
    assert relative_error(got, want) <= TOLERANCE


@pytest.mark.parametrize("precision", ["int4", "fp16"])
def test_dequantize_is_a_weight_prologue_never_a_step(precision, compiled) -> None:  # type: ignore[no-untyped-def]
    _, _, result = compiled[precision]
    dequantizes = [n for n in result.graph.nodes if n.op == "DequantizeLinear"]
    assert len(dequantizes) == 4  # three convs and the classifier
    prologues = {n for g in result.groups for n in g.prologue}
    assert set(dequantizes) == prologues
    assert all(g.anchor.op != "DequantizeLinear" for g in result.groups)
    for group in result.groups:
        for node in group.prologue:
            assert node.results[0] in group.intermediates and node.results[0].type.offset is None
    assert len(result.plan.plan.steps) == len(result.groups)
    fp32_arena = compiled["fp32"][2].plan.plan.arena_size
    assert result.plan.plan.arena_size <= fp32_arena  # no f32 weight copies at run time


def test_weights_bin_holds_compressed_weights(compiled) -> None:  # type: ignore[no-untyped-def]
    stored4, _, int4 = compiled["int4"]
    stored16, _, fp16 = compiled["fp16"]
    fp32 = entries(compiled["fp32"][2])
    int4_entries, fp16_entries = entries(int4), entries(fp16)
    layers4 = [name[: -len(".q")] for name, dtype in stored4.items() if dtype is DType.I4]
    layers16 = [name[: -len(".q")] for name, dtype in stored16.items() if dtype is DType.F16]
    assert len(layers4) >= 3 and len(layers16) == 4
    for layer in layers4:
        assert int4_entries[f"{layer}.q"] * 8 == fp32[layer]
        assert f"{layer}.q:scales" in int4_entries
    for layer in layers16:
        assert fp16_entries[f"{layer}.q"] * 2 == fp32[layer]
    size = {p: (compiled[p][2].path / WEIGHTS_FILE).stat().st_size for p in compiled}
    assert size["int4"] < 0.25 * size["fp32"]
    assert size["fp16"] < 0.52 * size["fp32"]


@pytest.mark.slow
@pytest.mark.parametrize("precision, ratio", [("int4", 0.2), ("fp16", 0.52)])  # packed panels pad a little
def test_orientation_weight_only(precision, ratio, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    from hai_compiler import real_models

    spec = real_models.MODELS["orientation"]
    graph = prepare_graph(real_models.fetch("orientation"), spec.input_shapes)
    fp32_bytes = sum(v.type.nbytes for v in graph.constants.values())
    Quantize(precision=precision).run(graph, PassContext())
    feeds = spec.sample_inputs()
    want = run_graph(graph, feeds)
    result = compile_model(graph, tmp_path / "orientation.hai", CompileOptions())
    got = runtime.load(result.path, threads=2).run(feeds)
    for name, array in want.items():
        assert relative_error(got[name], array) <= TOLERANCE
    assert (result.path / WEIGHTS_FILE).stat().st_size < ratio * fp32_bytes
    assert not any(g.anchor.op == "DequantizeLinear" for g in result.groups)
