"""bf16 layers (MatMul, plain Gemm, dense Conv): bf16 operands, float32 accumulators, as a dot GEMM.

Rule: a layer whose weight is a bf16 constant read through its fused weight
prologue (the bf16 rung of passes/quantize.py: DequantizeLinear of a bf16
constant) computes acc[n, p, o] = sum over k of f32(bf16(A[n, p, k])) * f32(W[k, o])
in float32. A "pad" stage rounds the activation to bf16 bits (nearest even,
targets/lowering/pointwise.py `narrow`; a value the IR already rounded, by its
Cast pair, is unchanged) into xq[P, Kp] (a conv: the channels-last padded copy
of targets/lowering/conv_integer.py, zeros outside), K padded to a multiple of 2.
W is packed at compile time as Wp[Mp/16, K2 + T, 16, 2] of bf16 bits: panel
o//16, reduction pair k//2, lane o%16, element k%2. The T rows after the K2
pairs hold per-channel 32-bit words as two 16-bit halves (the integer GEMM's
`ctab` tables, targets/lowering/integer_gemm.py): row 0 the float32 bias, the
others the fused quantize steps' constants. The 16 x 2 step is tensorized into
the target's bf16 dot instruction (x86 avx512_bf16 `vdpbf16ps`, targets/x86/avx512_bf16.py;
the schedule table's `bf16_dot`), else it is the plain float32 reduction of the
widened values (exact products: a target without native bf16 emulates it). When
the layer's activation prologue (the Cast pair, passes/fuse.py) is fused, the
kernel reads the value that pair rounds, so no Cast runs as a kernel. The
integer GEMM's knob rule and schedule serve unchanged: 16 float32 lanes a panel
as 16 int32 lanes there.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from functools import partial
from typing import Any

import ml_dtypes
import numpy as np
from tvm import te, tirx

from ir.dtypes import DType
from ir.graph import Node, Value
from targets.lowering.conv_geometry import Geometry, finish_kernel
from targets.lowering.conv_integer import bias_array, padded_input
from targets.lowering.dot_step import widen_bf16
from targets.lowering.elementwise import Epilogue, epilogue_signature, output_arg
from targets.lowering.integer_gemm import (
    LANES,
    choose_int_knobs,
    dot_step,
    fused_tables,
    packed_table_stage,
    schedule_integer_gemm,
)
from targets.lowering.kernel import KernelArg, LoweredKernel, arg, unravel
from targets.lowering.pointwise import narrow
from targets.lowering.tiling import padded
from targets.lowering.weight_only import GROUP_KEY, PROLOGUE_KEY, fused_weight_prologue
from targets.schedules import DotStep, IntKnobs, schedules_of
from targets.target import TargetDescription

DEPTH = 2
"""bf16 values one float32 accumulator lane takes per reduction step."""


def bf16_weight(node: Node) -> Value | None:
    """The bf16 constant `node`'s fused weight prologue dequantises, else None."""
    prologue = fused_weight_prologue(node)
    stored = prologue.operands[0] if prologue is not None else None
    return stored if stored is not None and stored.type.dtype is DType.BF16 else None


def activation(node: Node) -> Value:
    """What the kernel reads as its input: operand 0, or the value its fused Cast pair rounds."""
    value = node.operands[0]
    assert value is not None
    label, group = node.name or node.results[0].name, node.annotations.get(GROUP_KEY)
    while (cast := value.producer) is not None and cast.op == "Cast" and group is not None:
        if cast.annotations.get(PROLOGUE_KEY) != label or cast.annotations.get(GROUP_KEY) != group:
            break
        value = cast.operands[0]
        assert value is not None
    return value


def bf16_bits(array: np.ndarray) -> np.ndarray:
    """The uint16 bits of a bf16 array (a float array is rounded to nearest even first)."""
    values = np.asarray(array)
    return values.astype(ml_dtypes.bfloat16).view(np.uint16)


def pack_bf16_weights(
    w_ko: np.ndarray, tables: Sequence[np.ndarray], k_step: int = DEPTH, m_step: int = LANES
) -> np.ndarray:
    """(K, M) bf16 bits in reduction order and 1-D (M,) 32-bit tables -> Wp[Mp/16, K2 + T, 16, 2],
    K padded to a multiple of `k_step`, M of `m_step` (a tile GEMM's block)."""
    k, m = w_ko.shape
    kp, mp = padded(k, k_step), padded(m, m_step)
    full = np.zeros((kp, mp), np.uint16)
    full[:k, :m] = w_ko
    pairs = full.reshape(kp // DEPTH, DEPTH, mp // LANES, LANES).transpose(2, 0, 3, 1)
    words = np.zeros((mp, len(tables)), np.uint32)
    words[:m] = np.stack([np.asarray(t).astype(t.dtype.newbyteorder("<")).view(np.uint32) for t in tables], 1)
    halves = words.astype("<u4").view(np.uint16).reshape(mp // LANES, LANES, len(tables), DEPTH)
    return np.ascontiguousarray(np.concatenate([pairs, halves.transpose(0, 2, 1, 3)], axis=1))


def bias_table(node: Node, channels: int) -> np.ndarray:
    """The layer's float32 bias (zeros without one), ctab row 0."""
    bias = bias_array(node)
    return np.zeros(channels, np.float32) if bias is None else bias.astype(np.float32)


def bf16_knobs(
    target: TargetDescription, positions: int, channels: int, macs: int
) -> tuple[IntKnobs, DotStep]:
    """The integer GEMM's knobs for this workload with the target's bf16 step, and that step."""
    knobs = choose_int_knobs(target, positions, channels, macs)
    knobs = dataclasses.replace(knobs, dot=schedules_of(target).bf16_dot(target))
    return knobs, dot_step(target, knobs)


def as_bf16(read: Any) -> Any:
    return narrow(read, DType.BF16)


def weight_placeholder(k: int, channels: int, tables: int, k_step: int = DEPTH, m_step: int = LANES) -> Any:
    shape = (padded(channels, m_step) // LANES, padded(k, k_step) // DEPTH + tables, LANES, DEPTH)
    return te.placeholder(shape, "uint16", name="Wp")


def product(a_bits: Any, wp: Any, o: Any, pair: Any, element: Any) -> Any:
    return widen_bf16(a_bits) * widen_bf16(wp[o // LANES, pair, o % LANES, element])


def bias_at(ctab: Any, o: Any) -> Any:
    return tirx.reinterpret("float32", ctab[0, o])


def lower_bf16_matmul(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], *, trans_b: bool = False
) -> LoweredKernel:
    """MatMul (..., K) x (K, N) or a plain Gemm (B (N, K) when `trans_b`) with a bf16 weight."""
    x_v, stored = activation(node), bf16_weight(node)
    assert stored is not None
    n, k = stored.type.shape if trans_b else stored.type.shape[::-1]
    result_shape = node.results[0].type.shape
    rows = math.prod(x_v.type.shape[:-1])
    chain = Epilogue.build(node.results[0], epilogue)
    chain.tables = tables = fused_tables(chain.nodes, len(result_shape) - 1)
    knobs, step = bf16_knobs(target, rows, n, rows * k * n)
    kp = padded(k, DEPTH)
    x = te.placeholder((rows, k), "float32", name="x")
    xq = te.compute((rows, kp), lambda p, c: te.if_then_else(
        c < k, as_bf16(x[p, te.min(c, k - 1)]), te.const(0, "uint16")), name="pad")  # fmt: skip
    wp = weight_placeholder(k, n, 1 + len(tables.rows))
    tables.ctab = ctab = packed_table_stage(wp, kp, 1 + len(tables.rows))
    rc2, rci = te.reduce_axis((0, kp // DEPTH), "c4"), te.reduce_axis((0, DEPTH), "ci")

    def dot(_: Any, p: Any, o: Any) -> Any:
        return te.sum(product(xq[p, rc2 * DEPTH + rci], wp, o, rc2, rci), axis=[rc2, rci])

    acc = te.compute((1, rows, wp.shape[0] * LANES), dot, name="acc")
    tail = BF16MatMulTail(node, chain, rows, n, trans_b)
    params, args, result = tail.signature(x, x_v, wp, stored, ctab, lambda p, o: acc[0, p, o])
    table_rows = list(tables.rows)
    pack = tail.packer(stored.name, table_rows, DEPTH, LANES)
    workload = {"op": "matmul_bf16", "rows": rows, "k": k, "n": n, "result": list(result_shape),
                "tables": len(table_rows), "epilogue": chain.describe(),
                "knobs": knobs.to_json()}  # fmt: skip
    flops = 2 * rows * k * n + chain.flops(result.type.size)
    schedule = partial(
        schedule_integer_gemm, knobs=knobs, stages=["pad"], vector_out=True, channels=n, dot=step
    )
    return finish_kernel(node, epilogue, "matmulbf16", workload, schedule, params, args, flops, "any", pack)


@dataclasses.dataclass
class BF16MatMulTail:
    """What a bf16 MatMul/Gemm kernel does after its GEMM, whichever unit computes it (the dot step
    here, a matrix unit in bf16_tiles.py): the (rows, n) output stage (bias row of `ctab`, the fused
    epilogue), the kernel signature, and the packer of its weight ((K, N), or (N, K) when `trans_b`)."""

    node: Node
    chain: Epilogue
    rows: int
    n: int
    trans_b: bool

    def signature(
        self, x: Any, x_v: Any, wp: Any, stored: Any, ctab: Any, acc_at: Callable[[Any, Any], Any]
    ) -> tuple[Any, Any, Any]:
        """(params, args, result) of the kernel whose GEMM value at (row, o) is `acc_at`."""
        chain, batch = self.chain, self.node.results[0].type.shape[:-1]
        result = chain.result or self.node.results[0]
        out = te.compute((self.rows, self.n), lambda p, o: chain.apply(
            bias_at(ctab, o) + acc_at(p, o), (*unravel(p, batch), o)), name="out")  # fmt: skip
        anchor = [
            (x, arg(x_v, "input", x.shape)),
            (wp, KernelArg(stored.name, "weight", tuple(int(d) for d in wp.shape), "uint16")),
        ]
        output = KernelArg(result.name, "output", (self.rows, self.n), output_arg(result).dtype)
        params, args = epilogue_signature(anchor, chain, out, output)
        return params, args, result

    def packer(
        self, name: str, rows: Sequence[Any], k_step: int, m_step: int
    ) -> Callable[[Mapping[str, np.ndarray]], dict]:
        """Packs weight `name` in reduction order with the bias and the tables' `rows`."""
        bias, trans_b = bias_table(self.node, self.n), self.trans_b

        def pack(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
            packed = {key: np.ascontiguousarray(a) for key, a in arrays.items()}
            bits = bf16_bits(arrays[name])
            packed[name] = pack_bf16_weights(bits.T if trans_b else bits, [bias, *rows], k_step, m_step)
            return packed

        return pack


@dataclasses.dataclass
class BF16ConvTail:
    """What a bf16 dense Conv kernel does after its GEMM, whichever unit computes it (the dot step
    here, a matrix unit in bf16_tiles.py): the output stage (bias row of `ctab`, the fused epilogue,
    NCHW or NHWC), the kernel signature, and the packer of its weight (channels padded to `cp`)."""

    node: Node
    g: Geometry
    chain: Epilogue
    layout: str
    cp: int

    def signature(
        self, x: Any, x_v: Any, wp: Any, stored: Any, ctab: Any, acc_at: Callable[[Any, Any, Any], Any]
    ) -> tuple[Any, Any, Any]:
        """(params, args, result) of the kernel whose GEMM value at (n, position, o) is `acc_at`, its
        bias row in `ctab`."""
        g, chain, nchw = self.g, self.chain, self.layout == "NCHW"
        positions = g.oh * g.ow
        out_shape = (g.n, g.m, positions) if nchw else (g.n, positions, g.m)
        result = chain.result or self.node.results[0]

        def finish(*i: Any) -> Any:
            n, o, p = i if nchw else (i[0], i[2], i[1])
            return chain.apply(bias_at(ctab, o) + acc_at(n, p, o), (n, o, p // g.ow, p % g.ow))

        out = te.compute(out_shape, finish, name="out")
        anchor = [
            (x, arg(x_v, "input", x.shape)),
            (wp, KernelArg(stored.name, "weight", tuple(int(d) for d in wp.shape), "uint16")),
        ]
        output = KernelArg(result.name, "output", out_shape, output_arg(result).dtype)
        params, args = epilogue_signature(anchor, chain, out, output)
        return params, args, result

    def packer(
        self, name: str, rows: Sequence[Any], k_step: int, m_step: int
    ) -> Callable[[Mapping[str, np.ndarray]], dict]:
        """Packs weight `name` as (kh, kw, channels padded to cp) x m rows, with the bias and the
        tables' `rows`."""
        g, cp = self.g, self.cp
        bias = bias_table(self.node, g.m)

        def pack(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
            packed = {key: np.ascontiguousarray(a) for key, a in arrays.items()}
            w = np.zeros((g.m, cp, g.kh, g.kw), np.uint16)
            w[:, : g.c] = bf16_bits(arrays[name])
            w_ko = w.transpose(2, 3, 1, 0).reshape(g.kh * g.kw * cp, g.m)
            packed[name] = pack_bf16_weights(w_ko, [bias, *rows], k_step, m_step)
            return packed

        return pack


def lower_bf16_conv(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    """A dense (group 1) Conv with a bf16 weight: the GEMM over a channels-last bf16 copy of the input."""
    g = Geometry(node)
    x_v, stored = activation(node), bf16_weight(node)
    assert stored is not None
    chain = Epilogue.build(node.results[0], epilogue, layout=layout)
    chain.tables = tables = fused_tables(chain.nodes, 1)
    cp = padded(g.c, DEPTH)
    k, positions = g.kh * g.kw * cp, g.oh * g.ow
    knobs, step = bf16_knobs(target, positions, g.m, g.n * g.m * positions * g.c * g.kh * g.kw)
    x = te.placeholder(g.in_shape(layout), "float32", name="x")
    xq = padded_input(x, g, layout, cp, as_bf16, te.const(0, "uint16"), channels_last=True)
    wp = weight_placeholder(k, g.m, 1 + len(tables.rows))
    tables.ctab = ctab = packed_table_stage(wp, k, 1 + len(tables.rows))
    rkh, rkw = te.reduce_axis((0, g.kh), "kh"), te.reduce_axis((0, g.kw), "kw")
    rc2, rci = te.reduce_axis((0, cp // DEPTH), "c4"), te.reduce_axis((0, DEPTH), "ci")
    (sh, sw), (dh, dw) = g.stride, g.dilation

    def window(n: Any, p: Any, o: Any) -> Any:
        read = xq[n, (p // g.ow) * sh + rkh * dh, (p % g.ow) * sw + rkw * dw, rc2 * DEPTH + rci]
        pair = (rkh * g.kw + rkw) * (cp // DEPTH) + rc2
        return te.sum(product(read, wp, o, pair, rci), axis=[rkh, rkw, rc2, rci])

    acc = te.compute((g.n, positions, wp.shape[0] * LANES), window, name="acc")
    nchw = layout == "NCHW"
    tail = BF16ConvTail(node, g, chain, layout, cp)
    params, args, result = tail.signature(x, x_v, wp, stored, ctab, lambda n, p, o: acc[n, p, o])
    rows = list(tables.rows)
    pack = tail.packer(stored.name, rows, DEPTH, LANES)
    workload = {"op": "conv_bf16", "geometry": g.to_json(), "layout": layout, "tables": len(rows),
                "epilogue": chain.describe(), "knobs": knobs.to_json()}  # fmt: skip
    flops = 2 * g.n * g.m * positions * g.c * g.kh * g.kw + chain.flops(result.type.size)
    schedule = partial(
        schedule_integer_gemm, knobs=knobs, stages=["pad"], vector_out=not nchw, channels=g.m, dot=step
    )
    return finish_kernel(node, epilogue, "convbf16", workload, schedule, params, args, flops, layout, pack)
