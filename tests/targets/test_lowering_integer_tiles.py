"""INT8 layers on AMX-INT8 tiles (`tdpbusd`): ConvInteger / MatMulInteger with fused requantisation bit-exact
against the IR interpreter and against the VNNI dot GEMM (the host with its AMX features taken away), in
NCHW and NHWC, u8 and i8 activations, blocks covered exactly and padded; the tile rule (thin layers keep
the dot GEMM). Skipped where the host has no AMX-INT8 (the test process asks Linux for the tile state as the
runtime does); test_cross_isa_asm.py checks `tdpbusd` in assembly cross-compiled for sapphirerapids."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from target_helpers import run_kernel
from test_lowering_quantized import QGraph, conv, requant_chain

from ir import run_graph
from ir.dtypes import DType
from runtime.amx import request_tile_state
from targets.lowering.dispatch import lower_node
from targets.lowering.integer_tiles import pays_tiles
from targets.registry import resolve_target
from targets.x86.amx import AMX_INT8

NO_AMX = "-amx,-amx_bf16,-amx_int8"


@pytest.fixture(scope="module")
def tiles() -> Any:
    host = resolve_target("x86")
    if not {"amx", "amx_int8"} <= host.features:
        pytest.skip("this host has no AMX-INT8 tiles")
    assert request_tile_state() == 0
    return host


@pytest.fixture(scope="module")
def dots() -> Any:
    return resolve_target("x86", cpu_features=NO_AMX)


CONVS = {  # x shape, w shape, pads, stride, x dtype, x zero point
    "3x3-u8-padded-block": ((1, 16, 9, 9), (64, 16, 3, 3), [1, 1, 1, 1], 1, DType.U8, 7),
    "3x3-i8-stride2": ((1, 12, 11, 10), (48, 12, 3, 3), [1, 0, 1, 1], 2, DType.I8, -3),
    "3x3-few-channels": ((1, 4, 12, 12), (32, 4, 3, 3), [1, 1, 1, 1], 1, DType.U8, 0),
    "1x1-whole-blocks": ((2, 64, 4, 8), (64, 64, 1, 1), [0, 0, 0, 0], 1, DType.I8, 5),
    "3x3-row-blocks": ((1, 16, 16, 16), (64, 16, 3, 3), [1, 1, 1, 1], 1, DType.U8, 2),  # A per row block
}
MATMULS = {  # x shape, k, n
    "rows-padded": ((2, 30, 128), 128, 48),
    "whole-blocks": ((64, 128), 128, 64),
    "k-padded": ((64, 50), 50, 32),
}


def conv_graph(case: str) -> tuple[QGraph, list[str]]:
    x_shape, w_shape, pads, stride, dtype, zero = CONVS[case]
    q = QGraph(x_shape, dtype, zero, seed=sorted(CONVS).index(case))
    out = DType.I8 if dtype is DType.I8 else DType.U8
    return q, requant_chain(q, conv(q, w_shape, pads, stride), out)


def matmul_graph(case: str) -> tuple[QGraph, list[str]]:
    x_shape, k, n = MATMULS[case]
    q = QGraph(x_shape, seed=sorted(MATMULS).index(case))
    acc = q.op("MatMulInteger", [q.x, q.weight((k, n), 1), q.bias(n)], "anchor")
    return q, requant_chain(q, acc)


def kernel_output(
    q: QGraph, epilogue: list[str], target: Any, layout: str = "NCHW"
) -> tuple[Any, np.ndarray]:
    """The anchor's kernel with `epilogue` fused, lowered for `target` in `layout`, and its output."""
    anchor = q.node("anchor")
    x = anchor.operands[0]
    assert x is not None
    q.graph.outputs[:] = [x]
    feed = run_graph(q.graph, q.feeds)[x.name]
    if layout == "NHWC":
        feed = feed.transpose(0, 2, 3, 1)
    kernel = lower_node(anchor, target, [q.node(n) for n in epilogue], layout)
    constants = {name: v.constant_array() for name, v in q.graph.constants.items()}
    return kernel, run_kernel(kernel, {x.name: feed}, constants, target)


@pytest.mark.parametrize("case", sorted(CONVS))
def test_conv_integer_on_tiles_is_bit_exact(case: str, tiles: Any, dots: Any) -> None:
    q, chain = conv_graph(case)
    kernel, got = kernel_output(q, chain, tiles)
    assert kernel.workload["tiles"]["function"] == AMX_INT8.function
    last = q.node(chain[-1]).results[0]
    q.graph.outputs[:] = [last]
    want = run_graph(q.graph, q.feeds)[last.name]
    assert got.dtype == want.dtype and np.array_equal(got.reshape(want.shape), want)
    for layout in ("NCHW", "NHWC"):  # against the VNNI dot GEMM, in both layouts
        dot_kernel, dot_got = kernel_output(q, chain, dots, layout)
        assert "tiles" not in dot_kernel.workload
        assert np.array_equal(kernel_output(q, chain, tiles, layout)[1], dot_got)


@pytest.mark.parametrize("case", sorted(MATMULS))
def test_matmul_integer_on_tiles_is_bit_exact(case: str, tiles: Any, dots: Any) -> None:
    q, chain = matmul_graph(case)
    for epilogue in (chain, []):  # requantised, and the int32 accumulator itself
        kernel, got = kernel_output(q, epilogue, tiles)
        assert kernel.workload["tiles"]["function"] == AMX_INT8.function
        last = q.node(epilogue[-1] if epilogue else "anchor").results[0]
        q.graph.outputs[:] = [last]
        want = run_graph(q.graph, q.feeds)[last.name]
        assert got.dtype == want.dtype and np.array_equal(got.reshape(want.shape), want)
        assert np.array_equal(got, kernel_output(q, epilogue, dots)[1])


@pytest.mark.parametrize(
    ("rows", "k", "channels", "tiles"),
    [
        (64, 128, 64, True),
        (3136, 144, 32, True),
        (16, 64, 64, True),
        (8, 128, 64, False),
        (64, 16, 64, False),
        (64, 128, 8, False),
        (784, 32, 16, False),
    ],
)
def test_the_tile_rule_keeps_thin_layers_on_the_dot_gemm(
    rows: int, k: int, channels: int, tiles: bool
) -> None:
    """Padding rows, K and channels to whole 32 x 32 x 64 blocks may at most double the work; else VNNI."""
    assert pays_tiles(AMX_INT8, rows, k, channels) is tiles


def test_a_thin_layer_on_an_amx_host_takes_the_dot_gemm(tiles: Any) -> None:
    q = QGraph((4, 64))
    q.op("MatMulInteger", [q.x, q.weight((64, 32), 1), q.bias(32)], "anchor")
    kernel = lower_node(q.node("anchor"), tiles)
    assert "tiles" not in kernel.workload and "knobs" in kernel.workload
