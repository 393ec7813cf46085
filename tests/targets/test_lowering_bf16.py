"""bf16 layers: the `quantize` pass's bf16 rung, its fused prologues and the bf16 GEMM kernel.

Each case is one Conv / MatMul / Gemm layer quantized to bf16 (weight stored
bf16, input rounded by a Cast pair), grouped by `fuse` (the Cast pair and the
weight's DequantizeLinear become the kernel's prologue), lowered, built for this
host and run on the f32 input: against the IR interpreter on the same graph,
which multiplies the same bf16 values exactly and sums in float64/float32, so
only the summation order differs (relative error <= 1e-5). On a host with
avx512_bf16 the kernel's step is `vdpbf16ps`; elsewhere the same kernel is the
plain float32 reduction (emulated bf16), which these cases check as well. The
assembly cases cross-compile for named CPUs: `vdpbf16ps` on sapphirerapids and
znver4, none on skylake-avx512 (no avx512_bf16).
"""

from __future__ import annotations

import numpy as np
import pytest
from target_helpers import OneOp, relative_error
from test_cross_isa_asm import asm_of
from test_lowering_weight_only import LAYERS, run

from ir import DType, run_graph
from ir.fusion import kernels
from ir.target_facts import TargetFacts
from passes.fuse import Fuse
from passes.manager import PassContext
from passes.quantize import PRECISION_KEY, Quantize, layers
from targets.lowering.dispatch import lower_node
from targets.registry import resolve_target

TOLERANCE = 1e-5
BF16_LAYERS = sorted(set(LAYERS) - {"depthwise", "grouped-conv"})


@pytest.fixture(scope="module")
def target():
    return resolve_target("x86")


def bf16_layer(layer: str, target_facts: TargetFacts | None = None) -> OneOp:
    g = OneOp(seed=sorted(LAYERS).index(layer))
    LAYERS[layer](g)
    g.graph.outputs.append(list(g.graph.nodes)[-1].results[0])
    Quantize(precision="bf16").run(g.graph, PassContext(target=target_facts or TargetFacts()))
    Fuse().run(g.graph, PassContext())
    return g


def layer_kernel(g: OneOp, target):  # type: ignore[no-untyped-def]
    (group,) = kernels(g.graph)
    return group, lower_node(group.anchor, target, group.epilogue)


@pytest.mark.parametrize("layer", BF16_LAYERS)
def test_bf16_kernel_matches_the_interpreter(layer, target) -> None:  # type: ignore[no-untyped-def]
    g = bf16_layer(layer)
    group, kernel = layer_kernel(g, target)
    assert [n.op for n in group.prologue] == ["Cast", "Cast", "DequantizeLinear"]
    assert group.prologue[2].operands[0].type.dtype is DType.BF16
    assert [a.value for a in kernel.inputs] == ["x"]  # the kernel rounds the input itself
    assert [a.dtype for a in kernel.weights] == ["uint16"]
    got = run(kernel, g, target)
    want = run_graph(g.graph, g.feeds)[g.graph.outputs[0].name]
    assert np.abs(want).max() > 0
    assert relative_error(got.reshape(want.shape), want) <= TOLERANCE


def test_bf16_rounds_inputs_and_weights_to_nearest_even(target) -> None:  # type: ignore[no-untyped-def]
    """Against numpy on bf16-rounded operands: 1 + 2^-8 (a tie) rounds to 1, 1 + 3 * 2^-8 up to 1 + 2^-6."""
    g = bf16_layer("matmul-m1")
    g.feeds["x"][...] = 1.0 + 2.0**-8
    g.feeds["x"][0, 1::2] = 1.0 + 3 * 2.0**-8
    _, kernel = layer_kernel(g, target)
    got = run(kernel, g, target).reshape(1, -1)
    (weight,) = [c for c in g.graph.constants.values() if c.type.dtype is DType.BF16]
    x = np.where(np.arange(100) % 2 == 1, 1.0 + 2.0**-6, 1.0).astype(np.float64)
    want = x @ weight.constant_array().astype(np.float64)
    assert relative_error(got[0], want) <= TOLERANCE


def test_step_is_vdpbf16ps_where_the_host_has_avx512_bf16(target) -> None:  # type: ignore[no-untyped-def]
    if "avx512_bf16" not in target.features:
        pytest.skip("this host has no avx512_bf16: the bf16 kernels run the emulated float32 step")
    _, kernel = layer_kernel(bf16_layer("conv-spatial"), target)
    assert kernel.workload["knobs"]["dot"] == "vdpbf16ps"


@pytest.mark.parametrize(
    ("cpu", "native"), [("sapphirerapids", True), ("znver4", True), ("skylake-avx512", False)]
)
def test_bf16_kernel_assembly(cpu, native) -> None:  # type: ignore[no-untyped-def]
    described = resolve_target("x86", cpu=cpu)
    _, kernel = layer_kernel(bf16_layer("conv-spatial"), described)
    asm = asm_of(kernel.func, kernel.name, cpu)
    assert ("vdpbf16ps" in asm) is native
    if not native:
        assert "vfmadd" in asm  # the emulated step: float32 FMAs on the widened values


def test_layers_the_bf16_gemm_cannot_take_stay_fp32() -> None:
    g = bf16_layer("depthwise")
    (node,) = layers(g.graph)
    assert PRECISION_KEY not in node.annotations
    assert all(c.type.dtype is DType.F32 for c in g.graph.constants.values())


def test_a_target_without_bf16_keeps_fp32_and_says_so() -> None:
    g = OneOp(seed=0)
    LAYERS["matmul-m12"](g)
    ctx = PassContext(target=TargetFacts(supported_precisions=("f32", "i8")))
    Quantize(precision="bf16").run(g.graph, ctx)
    assert [n.op for n in g.graph.nodes] == ["MatMul"]
    assert any("no bf16 support" in d.message for d in ctx.diagnostics if d.severity == "note")
