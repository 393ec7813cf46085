"""`--precision bf16` and `auto` end to end: dense Convs, MatMuls and Gemms multiply bf16 values, sum in f32.

Checked two ways: against the IR interpreter on the same bf16 graph (the kernels
add only summation-order error; in a deep model that can flip an activation's
rounding to bf16, a 2^-9 step, in the next layer, so <= 2e-3 there, a tenth of
the bf16 error itself) and against onnxruntime's fp32 run
(the bf16 error itself: a bf16 value carries 8 significant bits, a relative
rounding error up to 2^-9, so a few layers stay well within 1e-2 and the
deeper ppocr_cls, 53 layers, within 3e-2). A CPU without native bf16 is refused
with an error that names it. Runs on any x86 host: without avx512_bf16 the same
kernels run the emulated float32 step.

`auto` is checked against onnxruntime on the very inputs it chose on (generated
here): its choice keeps every output within the tolerance, takes bf16 for every
layer when the tolerance is loose, none when it is below bf16's error, and,
between the two layers' own bf16 errors, keeps bf16 only for the less sensitive
one; where the kernels have no native bf16 it keeps fp32 with a warning.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from compile_helpers import onnxruntime_outputs, small_model
from typer.testing import CliRunner

import runtime
from hai_compiler import real_models
from hai_compiler.accuracy import relative_error
from hai_compiler.cli import app
from hai_compiler.compiler import CompileOptions, compile_model
from hai_compiler.quantize.caveats import QuantizationWarning
from hai_compiler.quantize.quantizer import AUTO_SAMPLES, DynamicQuantizer, generated_samples
from ir import run_graph
from targets.registry import resolve_target

KERNEL_TOLERANCE = 2e-3

CHANNELS = 8
"""The small model's input channels: a Conv of fewer stays fp32 at bf16 (passes/quantize.py
BF16_MIN_CHANNELS)."""


def hai(*args: str):  # type: ignore[no-untyped-def]
    return CliRunner().invoke(app, [str(a) for a in args], catch_exceptions=False)


def test_compile_precision_bf16_matches_onnxruntime(tmp_path: Path) -> None:
    model = small_model(tmp_path / "small.onnx", channels=CHANNELS)
    artifact = tmp_path / "small.hai"
    compiled = hai("compile", model, "-o", artifact, "--precision", "bf16", "--report")
    assert compiled.exit_code == 0, compiled.output
    rows = [
        [cell.strip() for cell in line.split("│")] for line in compiled.stdout.splitlines() if "│" in line
    ]
    assert sum("bf16" in row for row in rows) >= 2  # the conv's rows (the fc writes y: fp32)
    x = np.random.default_rng(3).standard_normal((1, CHANNELS, 6, 6)).astype(np.float32)
    got = runtime.load(artifact, threads=2).run({"x": x})
    want = onnxruntime_outputs(model, {"x": x})
    error = relative_error(got["y"], want["y"])
    assert 0 < error <= 1e-2  # bf16 rounding shows, within its tolerance
    assert relative_error(got["xf"], want["xf"]) == 0  # a view of the input is exact


def test_precision_bf16_is_refused_on_a_cpu_without_bf16(tmp_path: Path) -> None:
    model = small_model(tmp_path / "small.onnx", channels=CHANNELS)
    refused = hai(
        "compile", model, "-o", tmp_path / "s.hai", "--precision", "bf16", "--cpu", "skylake-avx512"
    )
    assert refused.exit_code == 1
    assert "error: target x86 (cpu skylake-avx512) has no bf16 support" in refused.output


@pytest.mark.slow
def test_ppocr_cls_in_bf16(tmp_path: Path) -> None:
    spec = real_models.MODELS["ppocr_cls"]
    path = real_models.fetch("ppocr_cls")
    quantized = DynamicQuantizer(resolve_target("x86"), "bf16").fit(path, input_shapes=spec.input_shapes)
    assert set(quantized.precisions.values()) == {"bf16", "fp32"}  # depthwise convs keep fp32
    result = compile_model(quantized.graph, tmp_path / "cls.hai", CompileOptions())
    feeds = spec.sample_inputs()
    got = runtime.load(result.path, threads=2).run(feeds)
    interpreted = run_graph(quantized.graph, feeds)
    want = onnxruntime_outputs(path, feeds)
    for name, reference in want.items():
        assert relative_error(got[name], interpreted[name]) <= KERNEL_TOLERANCE
        assert relative_error(got[name], reference) <= 3e-2


# -- --precision auto ------------------------------------------------------------------------------------


def auto(model: Path, tolerance: float, cpu: str | None = None, arch: str = "x86"):  # type: ignore[no-untyped-def]
    target = resolve_target(arch, cpu=cpu) if cpu else resolve_target(arch)
    return DynamicQuantizer(target, "auto", tolerance=tolerance, progress=False).fit(model)


def worst_error(quantized, model: Path) -> float:  # type: ignore[no-untyped-def]
    """The worst output's relative error against onnxruntime over the generated inputs auto checked
    (each output's values of all the samples together)."""
    feeds = generated_samples(quantized.graph, AUTO_SAMPLES, 0)
    got = [run_graph(quantized.graph, feed) for feed in feeds]
    want = [onnxruntime_outputs(model, feed) for feed in feeds]
    return max(
        relative_error(np.stack([g[name] for g in got]), np.stack([w[name] for w in want]))
        for name in want[0]
    )


@pytest.mark.parametrize(("tolerance", "expected"), [(0.5, {"bf16"}), (1e-7, {"fp32"})])
def test_auto_takes_bf16_only_within_the_tolerance(tmp_path: Path, tolerance, expected) -> None:  # type: ignore[no-untyped-def]
    model = small_model(tmp_path / "small.onnx", channels=CHANNELS)
    quantized = auto(model, tolerance)
    assert set(quantized.precisions.values()) == expected
    assert quantized.verified.source == "generated inputs"
    assert worst_error(quantized, model) <= max(tolerance, 1e-6)


def test_auto_falls_back_per_layer(tmp_path: Path) -> None:
    """A tolerance between the two layers' own bf16 errors: the more sensitive layer goes back to fp32."""
    model = small_model(tmp_path / "small.onnx", channels=CHANNELS)
    layers = ("conv", "fc")
    only = {name: {other: "bf16" if other == name else "fp32" for other in layers} for name in layers}
    alone = {
        name: worst_error(DynamicQuantizer(resolve_target("x86"), "bf16", layer_precision=precisions,
                                           progress=False).fit(model), model)
        for name, precisions in only.items()
    }  # fmt: skip
    tolerance = (min(alone.values()) * max(alone.values())) ** 0.5
    quantized = auto(model, tolerance)
    kept = min(alone, key=alone.__getitem__)
    assert quantized.precisions == {kept: "bf16", max(alone, key=alone.__getitem__): "fp32"}
    assert worst_error(quantized, model) <= tolerance


@pytest.mark.parametrize(("arch", "cpu"), [("x86", "skylake-avx512"), ("arm64", "neoverse-v1")])
def test_auto_keeps_fp32_where_the_kernels_have_no_native_bf16(tmp_path: Path, arch, cpu) -> None:  # type: ignore[no-untyped-def]
    """skylake-avx512 has no bf16 at all; neoverse-v1 has, but HAI's arm64 bf16 kernels emulate it."""
    model = small_model(tmp_path / "small.onnx", channels=CHANNELS)
    with pytest.warns(QuantizationWarning, match="no native bf16"):
        quantized = auto(model, 0.5, cpu=cpu, arch=arch)
    assert set(quantized.precisions.values()) == {"fp32"}


def test_compile_precision_auto_says_what_it_checked(tmp_path: Path) -> None:
    model = small_model(tmp_path / "small.onnx", channels=CHANNELS)
    compiled = hai("compile", model, "-o", tmp_path / "a.hai", "--precision", "auto", "--tolerance", "0.05")
    assert compiled.exit_code == 0, compiled.output
    assert "generated inputs" in compiled.output and "--tolerance 0.05" in compiled.output
    x = np.random.default_rng(3).standard_normal((1, CHANNELS, 6, 6)).astype(np.float32)
    np.savez(tmp_path / "cal.npz", x=np.repeat(x, 8, axis=0))
    calibrated = hai("compile", model, "-o", tmp_path / "c.hai", "--precision", "auto",
                     "--calibration-data", tmp_path / "cal.npz")  # fmt: skip
    assert calibrated.exit_code == 0, calibrated.output
    assert "8 calibration samples" in calibrated.output


def test_bf16_keeps_the_output_layer_fp32_unless_named(tmp_path: Path) -> None:
    """The layer writing a graph output (the small model's fc) stays fp32 at bf16 (quantizer.py
    BF16_OUTPUT_LAYERS): the error against onnxruntime is the conv's rounding alone, below that with
    the fc in bf16 too, which `layer_precision` still asks for."""
    model = small_model(tmp_path / "small.onnx", channels=CHANNELS)
    default = DynamicQuantizer(resolve_target("x86"), "bf16", progress=False).fit(model)
    assert default.precisions == {"conv": "bf16", "fc": "fp32"}
    named = DynamicQuantizer(resolve_target("x86"), "bf16", layer_precision={"fc": "bf16"}, progress=False)
    everything = named.fit(model)
    assert everything.precisions == {"conv": "bf16", "fc": "bf16"}
    assert 0 < worst_error(default, model) < worst_error(everything, model)
