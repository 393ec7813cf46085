"""The quantizer's rungs on `--target opencl`: FP16 where the device has cl_khr_fp16, INT8 on every device.

- FP16 (weights stored f16): kernels read `half` weights under `#pragma OPENCL EXTENSION cl_khr_fp16`
  and accumulate in f32; a profile without the extension refuses `--precision fp16` naming it, and
  mixed precision's top rung there is fp32. Numerics need a device reporting cl_khr_fp16 (PoCL's CPU
  device does not): the test skips, saying so, where none is installed.
- INT8: the calibrated INT8 digits CNN (tests/compile/test_compile_int8.py's graph) compiled for
  OpenCL and run on this machine's OpenCL device gives logits equal to the x86 CPU artifact's.
"""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

import runtime
from hai_compiler.accuracy import relative_error
from hai_compiler.cli import app
from hai_compiler.compiler import CompileOptions, compile_model
from hai_compiler.compiler.options import profile_target_of, resolve_compile_target
from hai_compiler.demo import EMBEDDED_MODEL, load_heldout_digits
from hai_compiler.quantize.calibrate import calibrate, prepare_graph
from hai_compiler.quantize.mixed import LADDER, ladder_for
from hai_compiler.quantize.quantizer import DynamicQuantizer
from ir import Graph, run_graph
from ir.quantization import record_range
from passes.manager import PassContext
from passes.quantize import Quantize
from runtime.artifact import kernel_library_file
from targets.registry import resolve_target

SHAPES = {"image": (1, 1, 8, 8)}
FP16_TOLERANCE = 1e-5
"""fp16 weights computed in f32 on the device against the same graph run by the interpreter."""


@pytest.fixture(scope="module")
def digits() -> np.ndarray:
    return load_heldout_digits()[0]


def library_source(artifact: Path) -> str:
    import json

    return json.loads((artifact / kernel_library_file("opencl")).read_text())["source"]


def integer_schedules(artifact: Path) -> set[str]:
    """The schedule rules of the integer anchors' kernels (the three ConvIntegers, the MatMulInteger)."""
    import json

    kernels = json.loads((artifact / kernel_library_file("opencl")).read_text())["kernels"]
    integer = [
        k["schedule"] for name, k in kernels.items() if name.startswith(("hai_convint_", "hai_matmulint_"))
    ]
    assert len(integer) == 4
    return set(integer)


def fp16_digits(cpu: str, features: str | None, folder: Path) -> tuple[Graph, Path]:
    """The digits CNN quantized to FP16 for an OpenCL profile and compiled for it."""
    target = resolve_target("opencl", cpu=cpu, cpu_features=features)
    quantized = DynamicQuantizer(target=target, precision_profile="fp16", progress=False).fit(
        EMBEDDED_MODEL, input_shapes=SHAPES
    )
    options = CompileOptions(target="opencl", cpu=cpu, cpu_features=features, input_shapes=SHAPES)
    return quantized.graph, compile_model(quantized.graph, folder / "fp16.hai", options).path


def test_fp16_kernels_read_half_weights_and_accumulate_in_f32(tmp_path: Path) -> None:
    _, artifact = fp16_digits("nvidia-h100", "+fp16", tmp_path)
    source = library_source(artifact)
    assert "#pragma OPENCL EXTENSION cl_khr_fp16 : enable" in source
    signatures = re.findall(r"__kernel void (hai_(?:conv|gemm)_[0-9a-f]+)\w*\(([^)]*)\)", source)
    layers = {name for name, _ in signatures}
    assert len(layers) == 4  # the three convs and the classifier
    assert layers == {name for name, params in signatures if "__global half*" in params}  # f16 weights
    assert not re.findall(r"^\s*half\d* \w+", source, re.MULTILINE)  # no private value is half
    assert re.search(r"^\s*float \w*acc\w*\[", source, re.MULTILINE)  # accumulators are float


def test_fp16_is_refused_on_a_profile_without_cl_khr_fp16(tmp_path: Path) -> None:
    refused = CliRunner().invoke(
        app,
        ["compile", str(EMBEDDED_MODEL), "-o", str(tmp_path / "m.hai"), "--input-shape", "image=1,1,8,8",
         "--target", "opencl", "--cpu", "nvidia-h100", "--precision", "fp16"],
        catch_exceptions=False,
    )  # fmt: skip
    assert refused.exit_code == 1
    assert (
        "error: target opencl (cpu nvidia-h100) has no f16 support (f16 needs a device with cl_khr_fp16"
        in refused.output
    )


def test_mixed_precision_offers_fp16_where_the_device_has_it() -> None:
    assert ladder_for(resolve_target("opencl", cpu="nvidia-h100")) == ("int4", "int8", "fp32")
    assert ladder_for(resolve_target("opencl", cpu="nvidia-h100", cpu_features="+fp16")) == LADDER


def test_fp16_digits_on_a_device_with_cl_khr_fp16(digits: np.ndarray, tmp_path: Path) -> None:
    """Compiled for the first device reporting cl_khr_fp16 (a `hai doctor` profile keeping only it)."""
    import json

    from hai_compiler import doctor

    profile = doctor.scan()
    devices = [d for p in profile["opencl"].get("platforms", []) for d in p.get("devices", [])]
    index = next((i for i, d in enumerate(devices) if d["fp16"]), None)
    if index is None:
        pytest.skip("no OpenCL device here reports cl_khr_fp16 (PoCL's CPU device does not)")
    profile["opencl"]["platforms"] = [{"devices": [devices[index]]}]
    path = tmp_path / "profile.json"
    path.write_text(json.dumps(profile))
    options = CompileOptions(target="opencl", hardware_profile=path, input_shapes=SHAPES)
    target = resolve_compile_target(options, profile_target_of(options))
    quantized = DynamicQuantizer(target=target, precision_profile="fp16", progress=False).fit(
        EMBEDDED_MODEL, input_shapes=SHAPES
    )
    artifact = compile_model(quantized.graph, tmp_path / "fp16.hai", options).path
    model = runtime.load(artifact, device=f"opencl:{index}")
    for i in range(4):
        feed = {"image": digits[i : i + 1]}
        got = model.run(feed)["logits"]
        assert relative_error(got, run_graph(quantized.graph, feed)["logits"]) <= FP16_TOLERANCE


def test_fp16_kernels_on_a_device_without_cl_khr_fp16_fail_to_load_saying_so(
    opencl_device: dict, tmp_path: Path
) -> None:
    """An artifact compiled for a profile that claims cl_khr_fp16 (`--cpu-features +fp16`) on a device
    without it: refused at load, before the build, naming the extensions that would do."""
    from runtime.errors import UnsupportedError

    if opencl_device["fp16"]:
        pytest.skip(f"this machine's first OpenCL device ({opencl_device['name']}) has cl_khr_fp16")
    _, artifact = fp16_digits("pocl-cpu", "+fp16", tmp_path)
    with pytest.raises(UnsupportedError, match="needs the OpenCL extension.*cl_khr_fp16 or cl_amd_fp16"):
        runtime.load(artifact)


@pytest.fixture(scope="module")
def int8_graph(digits: np.ndarray) -> Graph:
    """The calibrated INT8 digits CNN, as tests/compile/test_compile_int8.py builds it for x86."""
    graph = prepare_graph(EMBEDDED_MODEL, SHAPES)
    stats = calibrate(graph, [{"image": digits[i : i + 1]} for i in range(16)], "minmax", progress=False)
    for name, (lo, hi) in stats.ranges.items():
        record_range(graph.metadata, name, lo, hi)
    Quantize(precision="int8").run(graph, PassContext())
    return graph


def test_int8_digits_on_opencl_equal_the_cpu_artifact(
    opencl_device: dict, int8_graph: Graph, digits: np.ndarray, tmp_path: Path
) -> None:
    pytest.importorskip("pyopencl")
    cpu = compile_model(int8_graph, tmp_path / "x86.hai", CompileOptions(target="x86", input_shapes=SHAPES))
    options = CompileOptions(target="opencl", cpu="pocl-cpu", input_shapes=SHAPES)
    opencl = compile_model(int8_graph, tmp_path / "opencl.hai", options)
    assert integer_schedules(opencl.path) == {"IntGemm"}
    assert "dot(" not in library_source(opencl.path)  # PoCL has no integer dot products
    on_cpu, on_device = runtime.load(cpu.path, threads=1), runtime.load(opencl.path)
    for i in range(100, 132):
        feed = {"image": digits[i : i + 1]}
        want = on_cpu.run(feed)["logits"]
        assert np.array_equal(on_device.run(feed)["logits"], want)


DOT_BUILTIN = """int __attribute__((overloadable)) dot(uchar4 a, char4 b) {
  return (int)a.x * (int)b.x + (int)a.y * (int)b.y + (int)a.z * (int)b.z + (int)a.w * (int)b.w;
}
"""
"""OpenCL 3.0's `dot(uchar4, char4)` (integer dot products) as its specification defines it, for a device
without the builtin (PoCL's CPU device): the kernels' use of it is then checked there."""


def test_int8_dot_products_on_a_profile_with_them_equal_the_cpu_artifact(
    opencl_device: dict,
    int8_graph: Graph,
    digits: np.ndarray,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """`--cpu-features +int8_dot`: the integer convs and the classifier run on `dot` builtins, with
    logits equal to the x86 artifact's."""
    from runtime.devices import opencl_programs

    options = CompileOptions(target="opencl", cpu="pocl-cpu", cpu_features="+int8_dot", input_shapes=SHAPES)
    opencl = compile_model(int8_graph, tmp_path / "opencl.hai", options)
    assert integer_schedules(opencl.path) == {"IntGemm"}
    assert "dot(vload4(" in library_source(opencl.path)
    if not opencl_device["int8_dot_product"]:
        build = opencl_programs.build_program
        monkeypatch.setattr(
            opencl_programs,
            "build_program",
            lambda ctx, dev, src, where: build(ctx, dev, DOT_BUILTIN + src, where),
        )
    cpu = compile_model(int8_graph, tmp_path / "x86.hai", CompileOptions(target="x86", input_shapes=SHAPES))
    on_cpu, on_device = runtime.load(cpu.path, threads=1), runtime.load(opencl.path)
    for i in range(100, 132):
        feed = {"image": digits[i : i + 1]}
        assert np.array_equal(on_device.run(feed)["logits"], on_cpu.run(feed)["logits"])


def test_int4_layers_too_short_for_it_fall_back_within_the_target() -> None:
    """INT4 is weight-only: digits' first conv (9 weights per output) cannot take it and, uncalibrated,
    falls back to FP16 where the profile has cl_khr_fp16, else to FP32, as reported and as stored."""
    from ir import DType

    def quantized(features: str | None) -> tuple[dict[str, str], bool]:
        target = resolve_target("opencl", cpu="nvidia-h100", cpu_features=features)
        model = DynamicQuantizer(target=target, precision_profile="int4", progress=False).fit(
            EMBEDDED_MODEL, input_shapes=SHAPES
        )
        return model.precisions, any(v.type.dtype is DType.F16 for v in model.graph.values())

    reported, any_f16 = quantized(None)
    assert reported["node_conv2d"] == "fp32" and not any_f16
    reported, any_f16 = quantized("+fp16")
    assert reported["node_conv2d"] == "fp16" and any_f16
