"""bf16 layers: the `quantize` pass's bf16 rung, its fused prologues and the bf16 GEMM kernels.

Each case is one Conv / MatMul / Gemm layer quantized to bf16 (weight stored
bf16, input rounded by a Cast pair), grouped by `fuse` (the Cast pair and the
weight's DequantizeLinear become the kernel's prologue), lowered, built for this
host and run on the f32 input: against the IR interpreter on the same graph,
which multiplies the same bf16 values exactly and sums in float64/float32, so
only the summation order differs (relative error <= 1e-5). Two kernels: the
dot GEMM (this host with its AMX features taken away: `vdpbf16ps` where it has
avx512_bf16, else the plain float32 reduction, emulated bf16, checked too) and
the AMX tile GEMM (skipped where the host has no amx_bf16; the test process
asks Linux for the tile state as the runtime does). Extra cases whose rows and
channels are whole 32 x 32 blocks take the tile GEMM's per-block output path (with 8 row blocks, its
per-row-block A).
The assembly cases cross-compile for named CPUs: AMX tiles (`tdpbf16ps` after
`ldtilecfg`) on sapphirerapids, `vdpbf16ps` on znver4 (no AMX), neither on
skylake-avx512 (no avx512_bf16).
"""

from __future__ import annotations

import numpy as np
import pytest
from target_helpers import OneOp, relative_error
from test_cross_isa_asm import asm_of
from test_lowering_weight_only import LAYERS, conv_layer, matmul_layer, run

from ir import DType, run_graph
from ir.fusion import kernels
from ir.target_facts import TargetFacts
from passes.fuse import Fuse
from passes.manager import PassContext
from passes.quantize import PRECISION_KEY, Quantize, layers
from runtime.amx import request_tile_state
from targets.lowering.dispatch import lower_node
from targets.registry import resolve_target

TOLERANCE = 1e-5


def dilated_conv(g: OneOp) -> None:
    """A 3 x 3 conv of dilation 2 (stride 1, 32 channels: windows read in place, shifted twice as far)."""
    x, w, b = g.input("x", (1, 32, 9, 10)), g.const("w", (32, 32, 3, 3)), g.const("b", (32,))
    attrs = {"strides": [1, 1], "pads": [2, 2, 2, 1], "dilations": [2, 2], "group": 1}
    g.op("Conv", [x, w, b], "conv", **attrs)


CASES = {
    **{name: build for name, build in LAYERS.items() if name not in ("depthwise", "grouped-conv")},
    "conv-whole-blocks": conv_layer((1, 32, 8, 8), (64, 32, 3, 3), pads=(1, 1, 1, 1)),
    "matmul-whole-blocks": matmul_layer((64, 96), (96, 64)),
    "conv-row-blocks": conv_layer((1, 16, 16, 16), (32, 16, 3, 3), pads=(1, 1, 1, 1)),  # 8: A per row block
    # stride 1, channels a multiple of 32: windows read in place (bf16_windows.py)
    "conv-windows-batch2": conv_layer((2, 64, 7, 9), (48, 64, 3, 3), pads=(1, 0, 2, 1)),
    "conv-windows-5x5": conv_layer((1, 32, 12, 12), (32, 32, 5, 3), pads=(2, 1, 2, 1), relu=False),
    "conv-windows-dilated": dilated_conv,
}

STEM = conv_layer((1, 3, 16, 16), (16, 3, 3, 3), pads=(1, 1, 1, 1), stride=2)
NO_AMX = "-amx,-amx_bf16,-amx_int8"


@pytest.fixture(scope="module")
def target():
    return resolve_target("x86")


@pytest.fixture(scope="module")
def tiles():
    """The host with its AMX tiles, the tile state asked for as the runtime does."""
    host = resolve_target("x86")
    if not {"amx", "amx_bf16"} <= host.features:
        pytest.skip("this host has no AMX-BF16 tiles")
    assert request_tile_state() == 0
    return host


@pytest.fixture(scope="module")
def dots():
    return resolve_target("x86", cpu_features=NO_AMX)


def bf16_layer(layer: str, target_facts: TargetFacts | None = None) -> OneOp:
    builds = {**LAYERS, **CASES, "stem": STEM}
    g = OneOp(seed=sorted(builds).index(layer))
    builds[layer](g)
    g.graph.outputs.append(list(g.graph.nodes)[-1].results[0])
    Quantize(precision="bf16").run(g.graph, PassContext(target=target_facts or TargetFacts()))
    Fuse().run(g.graph, PassContext())
    return g


def layer_kernel(g: OneOp, target):  # type: ignore[no-untyped-def]
    (group,) = kernels(g.graph)
    return group, lower_node(group.anchor, target, group.epilogue)


@pytest.mark.parametrize("kind", ["dots", "tiles"])
@pytest.mark.parametrize("layer", sorted(CASES))
def test_bf16_kernel_matches_the_interpreter(layer, kind, request) -> None:  # type: ignore[no-untyped-def]
    target = request.getfixturevalue(kind)
    g = bf16_layer(layer)
    group, kernel = layer_kernel(g, target)
    assert ("tiles" in kernel.workload) is (kind == "tiles")
    assert [n.op for n in group.prologue] == ["Cast", "Cast", "DequantizeLinear"]
    assert group.prologue[2].operands[0].type.dtype is DType.BF16
    assert [a.value for a in kernel.inputs] == ["x"]  # the kernel rounds the input itself
    assert [a.dtype for a in kernel.weights] == ["uint16"]
    got = run(kernel, g, target)
    want = run_graph(g.graph, g.feeds)[g.graph.outputs[0].name]
    assert np.abs(want).max() > 0
    assert relative_error(got.reshape(want.shape), want) <= TOLERANCE


@pytest.mark.parametrize("kind", ["dots", "tiles"])
def test_bf16_rounds_inputs_and_weights_to_nearest_even(kind, request) -> None:  # type: ignore[no-untyped-def]
    """Against numpy on bf16-rounded operands: 1 + 2^-8 (a tie) rounds to 1, 1 + 3 * 2^-8 up to 1 + 2^-6."""
    g = bf16_layer("matmul-m1")
    g.feeds["x"][...] = 1.0 + 2.0**-8
    g.feeds["x"][0, 1::2] = 1.0 + 3 * 2.0**-8
    target = request.getfixturevalue(kind)
    _, kernel = layer_kernel(g, target)
    got = run(kernel, g, target).reshape(1, -1)
    (weight,) = [c for c in g.graph.constants.values() if c.type.dtype is DType.BF16]
    x = np.where(np.arange(100) % 2 == 1, 1.0 + 2.0**-6, 1.0).astype(np.float64)
    want = x @ weight.constant_array().astype(np.float64)
    assert relative_error(got[0], want) <= TOLERANCE


def test_step_is_vdpbf16ps_where_the_host_has_avx512_bf16(dots) -> None:  # type: ignore[no-untyped-def]
    if "avx512_bf16" not in dots.features:
        pytest.skip("this host has no avx512_bf16: the bf16 dot kernels run the emulated float32 step")
    _, kernel = layer_kernel(bf16_layer("conv-spatial"), dots)
    assert kernel.workload["knobs"]["dot"] == "vdpbf16ps"


@pytest.mark.parametrize(
    ("cpu", "instructions"),
    [
        ("sapphirerapids", ("ldtilecfg", "tdpbf16ps")),
        ("znver4", ("vdpbf16ps",)),
        ("skylake-avx512", ("vfmadd",)),
    ],
)
def test_bf16_kernel_assembly(cpu, instructions) -> None:  # type: ignore[no-untyped-def]
    """Cross-compiled for `cpu`: its bf16 instructions (skylake-avx512: float32 FMAs, the emulated step)."""
    _, kernel = layer_kernel(bf16_layer("conv-spatial"), resolve_target("x86", cpu=cpu))
    asm = asm_of(kernel.func, kernel.name, cpu)
    assert all(instruction in asm for instruction in instructions)
    assert ("vdpbf16ps" in asm) is (cpu == "znver4")


def test_sapphirerapids_without_amx_uses_vdpbf16ps() -> None:
    described = resolve_target("x86", cpu="sapphirerapids", cpu_features=NO_AMX)
    _, kernel = layer_kernel(bf16_layer("matmul-m12"), described)
    asm = asm_of(kernel.func, kernel.name, "sapphirerapids")
    assert "vdpbf16ps" in asm and "tdpbf16ps" not in asm


@pytest.mark.parametrize("layer", ["depthwise", "stem"])
def test_layers_the_bf16_gemm_cannot_take_or_does_not_pay_stay_fp32(layer: str) -> None:
    """A depthwise Conv; a Conv of 3 input channels (a stem: its f32 direct conv is faster)."""
    g = bf16_layer(layer)
    (node,) = layers(g.graph)
    assert PRECISION_KEY not in node.annotations
    assert all(c.type.dtype is DType.F32 for c in g.graph.constants.values())


def test_a_target_without_bf16_keeps_fp32_and_says_so() -> None:
    g = OneOp(seed=0)
    CASES["matmul-m12"](g)
    ctx = PassContext(target=TargetFacts(supported_precisions=("f32", "i8")))
    Quantize(precision="bf16").run(g.graph, ctx)
    assert [n.op for n in g.graph.nodes] == ["MatMul"]
    assert any("no bf16 support" in d.message for d in ctx.diagnostics if d.severity == "note")


def test_layers_too_thin_for_the_tiles_take_the_dot_gemm(tiles) -> None:  # type: ignore[no-untyped-def]
    """K under 16 or under 16 channels would fill a 32 x 32 x 32 block less than half."""
    g = OneOp(seed=3)
    matmul_layer((40, 8), (8, 64))(g)
    g.graph.outputs.append(list(g.graph.nodes)[-1].results[0])
    Quantize(precision="bf16").run(g.graph, PassContext())
    Fuse().run(g.graph, PassContext())
    _, kernel = layer_kernel(g, tiles)
    assert "tiles" not in kernel.workload and "knobs" in kernel.workload
    got = run(kernel, g, tiles)
    want = run_graph(g.graph, g.feeds)[g.graph.outputs[0].name]
    assert relative_error(got.reshape(want.shape), want) <= TOLERANCE


@pytest.mark.parametrize(
    ("layer", "windows"),
    [("conv-windows-batch2", True), ("conv-whole-blocks", True), ("conv-windows-dilated", True),
     ("conv-rows-strided", False),
     ("conv-spatial", False), ("conv-pointwise", False)],
)  # fmt: skip
def test_stride1_convs_of_whole_channel_steps_read_windows_in_place(layer, windows, tiles) -> None:  # type: ignore[no-untyped-def]
    """Stride 1, a k x k window and input channels a multiple of 32: no im2col copy (bf16_windows.py);
    strided convs, 40 channels (not whole 32-long steps) and 1 x 1 convs keep the im2col rows."""
    _, kernel = layer_kernel(bf16_layer(layer), tiles)
    assert (kernel.workload["op"] == "conv_bf16_windows") is windows
