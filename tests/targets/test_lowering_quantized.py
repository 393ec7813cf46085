"""INT8 kernels against the IR interpreter: ConvInteger / MatMulInteger with fused requantisation bit-exact
(VNNI on a target with avx512_vnni, the plain int32 template on x86-64-v3), float epilogues within
tolerance, standalone QuantizeLinear / DequantizeLinear per tensor and per channel bit-exact."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
from target_helpers import relative_error, run_kernel

from ir import run_graph
from ir.builder import Builder
from ir.dtypes import DType
from ir.graph import Graph, Node
from ir.types import QuantParams, TensorType
from targets.lowering.dispatch import lower_node
from targets.lowering.integer_gemm import dot_instruction
from targets.registry import resolve_target
from targets.target import cpu_target, host_target

HOST = host_target()
TARGETS = {
    "vnni": pytest.param(  # AMX-INT8 tiles taken away: test_lowering_integer_tiles.py tests those
        resolve_target("x86", cpu_features="-amx,-amx_bf16,-amx_int8"),
        marks=pytest.mark.skipif(dot_instruction(HOST) != "vpdpbusd", reason="host has no avx512_vnni"),
    ),
    "avx2": pytest.param(  # runs here: kernels for x86-64-v3 need a host with its features
        cpu_target("x86", "x86-64-v3"),
        marks=pytest.mark.skipif("avx2" not in HOST.features, reason="host has no avx2"),
    ),
}


class QGraph:
    """A float input quantized to u8/i8, then integer layers built on it; the interpreter is the reference."""

    def __init__(self, shape: tuple[int, ...], dtype: DType = DType.U8, zero: int = 7, seed: int = 0) -> None:
        self.rng = np.random.default_rng(seed)
        self.graph = Graph("q")
        self.b = Builder(self.graph)
        x = self.graph.add_input("x", TensorType(DType.F32, shape))
        self.feeds = {"x": (self.rng.standard_normal(shape) * 2).astype(np.float32)}
        self.x = self.op("QuantizeLinear", [x], "xq", dtype=dtype, scale=[0.02], zero_point=[zero])

    def op(self, op: str, operands: list[Any], name: str, **attrs: Any) -> Any:
        (result,) = self.b.op(op, operands, attrs, name=name)
        return result

    def weight(self, shape: tuple[int, ...], axis: int) -> Any:
        w = self.graph.add_constant("w", self.rng.integers(-127, 128, shape).astype(np.int8))
        scales = tuple(float(s) for s in self.rng.uniform(0.005, 0.02, shape[axis]))
        w.type = TensorType(DType.I8, shape, quant=QuantParams(scales, (0,) * shape[axis], axis))
        return w

    def bias(self, n: int) -> Any:
        return self.graph.add_constant("b", self.rng.integers(-5000, 5000, n).astype(np.int32))

    def node(self, name: str) -> Node:
        return next(n for n in self.graph.nodes if n.name == name)

    def check(self, anchor: str, epilogue: list[str], target: Any, tolerance: float | None = None) -> None:
        """Lower `anchor` with `epilogue`, run it on the interpreter's input to it, compare its result."""
        anchor_node = self.node(anchor)
        nodes = [self.node(n) for n in epilogue]
        last = (nodes[-1] if nodes else anchor_node).results[0]
        self.graph.outputs[:] = [anchor_node.operands[0], last]
        values = run_graph(self.graph, self.feeds)
        kernel = lower_node(anchor_node, target, nodes)
        constants = {name: v.constant_array() for name, v in self.graph.constants.items()}
        feeds = {anchor_node.operands[0].name: values[anchor_node.operands[0].name], **self.feeds}
        got = run_kernel(kernel, feeds, constants, target).reshape(last.type.shape)
        want = values[last.name]
        if tolerance is None:
            assert got.dtype == want.dtype and np.array_equal(got, want), np.abs(got.astype(int) - want).max()
        else:
            assert relative_error(got, want) < tolerance


def conv(q: QGraph, w_shape: tuple[int, ...], pads: list[int], stride: int = 1, group: int = 1) -> Any:
    attrs = {"pads": pads, "strides": [stride, stride], "dilations": [1, 1], "group": group}
    return q.op("ConvInteger", [q.x, q.weight(w_shape, 0), q.bias(w_shape[0])], "anchor", **attrs)


def requant_chain(q: QGraph, acc: Any, out: DType = DType.U8, zero: int = 3) -> list[str]:
    dq = q.op("DequantizeLinear", [acc], "dq", dtype=DType.F32)
    hs = q.op("HardSwish", [dq], "act")
    q.op("QuantizeLinear", [hs], "requant", dtype=out, scale=[0.03], zero_point=[zero])
    return ["dq", "act", "requant"]


CONVS = [  # x shape, w shape, pads, stride, group, x dtype, x zero point
    ((1, 5, 9, 9), (16, 5, 3, 3), [1, 1, 1, 1], 1, 1, DType.U8, 7),
    ((1, 8, 9, 9), (20, 8, 3, 3), [1, 0, 1, 0], 2, 1, DType.U8, 0),
    ((1, 16, 7, 7), (32, 16, 1, 1), [0, 0, 0, 0], 1, 1, DType.I8, -3),
    ((1, 8, 6, 6), (8, 1, 3, 3), [1, 1, 1, 1], 1, 8, DType.U8, 5),
    ((1, 8, 6, 6), (12, 4, 3, 3), [0, 0, 0, 0], 1, 2, DType.I8, 2),
    # grouped rows of at least 16 outputs are vectorised along the row (whole and partial vectors)
    ((1, 16, 5, 34), (16, 1, 3, 3), [1, 1, 1, 1], 1, 16, DType.U8, 9),
    ((1, 16, 7, 33), (16, 1, 3, 3), [1, 1, 1, 1], 2, 16, DType.I8, -4),
    ((1, 8, 6, 32), (8, 1, 5, 5), [2, 2, 2, 2], 1, 8, DType.U8, 3),
    ((1, 8, 4, 16), (12, 4, 3, 3), [1, 1, 1, 1], 1, 2, DType.U8, 1),
    ((1, 64, 40, 40), (64, 1, 5, 5), [2, 2, 2, 2], 1, 64, DType.U8, 4),  # parallel tiles
]


@pytest.mark.parametrize("target", TARGETS.values(), ids=TARGETS.keys())
@pytest.mark.parametrize("x_shape, w_shape, pads, stride, group, dtype, zero", CONVS)
def test_conv_integer_requantised_is_bit_exact(
    target, x_shape, w_shape, pads, stride, group, dtype, zero
) -> None:  # type: ignore[no-untyped-def]
    q = QGraph(x_shape, dtype, zero)
    chain = requant_chain(
        q, conv(q, w_shape, pads, stride, group), DType.I8 if dtype is DType.I8 else DType.U8
    )
    q.check("anchor", chain, target)


@pytest.mark.parametrize("target", TARGETS.values(), ids=TARGETS.keys())
def test_conv_integer_alone_and_float_epilogue(target) -> None:  # type: ignore[no-untyped-def]
    q = QGraph((1, 6, 8, 8))
    requant_chain(q, conv(q, (16, 6, 3, 3), [1, 1, 1, 1]))
    q.check("anchor", [], target)  # the int32 accumulator itself
    q.check("anchor", ["dq", "act"], target, tolerance=1e-6)


@pytest.mark.parametrize("target", TARGETS.values(), ids=TARGETS.keys())
@pytest.mark.parametrize("x_shape, k, n", [((2, 3, 8), 8, 10), ((4, 64), 64, 32), ((1, 7), 7, 16)])
def test_matmul_integer_requantised_is_bit_exact(target, x_shape, k, n) -> None:  # type: ignore[no-untyped-def]
    q = QGraph(x_shape)
    acc = q.op("MatMulInteger", [q.x, q.weight((k, n), 1), q.bias(n)], "anchor")
    q.check("anchor", requant_chain(q, acc), target)


def test_requantize_accumulator_directly_per_channel() -> None:
    """QuantizeLinear of the int32 accumulator itself: a per-channel multiplier in the packed tables;
    the same node standalone reads it from a select tree."""
    q = QGraph((1, 4, 6, 6))
    acc = conv(q, (24, 4, 3, 3), [1, 1, 1, 1])
    q.op("QuantizeLinear", [acc], "requant", dtype=DType.I8, scale=[0.05], zero_point=[-2])
    q.check("anchor", ["requant"], HOST)
    q.check("requant", [], HOST)


def test_standalone_quantize_and_dequantize_per_channel() -> None:
    q = QGraph((1, 6, 5, 5), DType.I8, 0)
    scales = [0.01 * (i + 1) for i in range(6)]
    per_channel = q.op(
        "QuantizeLinear", [q.x], "pc", dtype=DType.U8, scale=scales, zero_point=[1, 2, 3, 4, 5, 6], axis=1
    )
    q.op("DequantizeLinear", [per_channel], "dq", dtype=DType.F32)
    q.check("xq", [], HOST)
    q.check("pc", [], HOST)
    q.check("pc", ["dq"], HOST)
    q.check("dq", [], HOST)


def test_round_half_to_even_and_saturation() -> None:
    """Ties (x.5 after scaling) round to even; values beyond the range saturate before the narrowing."""
    graph = Graph("ties")
    x = graph.add_input("x", TensorType(DType.F32, (32,)))
    (result,) = Builder(graph).op(
        "QuantizeLinear", [x], {"dtype": DType.I8, "scale": [0.5], "zero_point": [1]}
    )
    graph.outputs.append(result)
    feed = np.array(
        [0.25, 0.75, -0.25, -0.75, 1.25, 1.75, 63.25, 63.75, 500.0, -500.0] + [0.0] * 22, np.float32
    )
    want = run_graph(graph, {"x": feed})[result.name]
    kernel = lower_node(result.producer, HOST)  # type: ignore[arg-type]
    assert np.array_equal(run_kernel(kernel, {"x": feed}, {}, HOST), want)
