"""ONNX converter: onnxruntime's `com.microsoft` MatMulNBits (4-bit block weight-only MatMul, as
`MatMulNBitsQuantizer` writes it) → HAI's INT4 weight-only layer.

Rule: B is stored as [N, k_blocks, blob] uint8 (column n's K values, two 4-bit
values a byte, element 2i in the low nibble), with one scale per (n, block) and
optional zero points (uint8-packed the same way, or floats; absent: 8). The
real weight is W[k, n] = (q - zp) * scale. HAI's INT4 form
(passes/quantize.py `int4`) is MatMul(A, DequantizeLinear(W4)) with W4 a
constant i4 (K, N), symmetric, one positive scale per `block_size` rows along
K (axis 0), which targets/lowering/weight_only.py decodes inside the MatMul
kernel. Each block is written exactly as W = v * a + c with v in i4 and a > 0:

- scale > 0: v = q - 8, a = scale, c = (8 - zp) * scale;
- scale < 0 (onnxruntime's symmetric quantizer keeps the sign of the block's
  largest value in its scale): v = 7 - q, a = -scale, c = (zp - 7) * -scale;
- scale 0: v = 0, a = 1, c = 0.

Where some c is not 0 (asymmetric zero points, negative scales), the layer adds
the exact rest sum_k A[k] * c[block(k), n] = (A @ G) @ C, with G the (K,
k_blocks) 0/1 block-membership matrix and C the (k_blocks, N) offsets: two
small f32 MatMuls beside the INT4 one; the weights stay 4-bit. Then the
optional bias is added. 8-bit weights (HAI has no INT8 weight-only kernel) and
g_idx (act-order) are a ConversionError naming the node.
"""

from __future__ import annotations

import math

import numpy as np

from hai_compiler.onnx_import.converter import ConversionContext, converter
from hai_compiler.onnx_import.converters.microsoft_quantized import MICROSOFT, mark_imported
from ir import Value
from ir.dtypes import DType
from ir.types import QuantParams, TensorType

BITS = 4
DEFAULT_ZERO_POINT = 8


@converter("MatMulNBits", domain=MICROSOFT)
def matmul_nbits(ctx: ConversionContext) -> list[Value]:
    """(A, B, scales, zero_points?, g_idx?, bias?){K, N, bits, block_size} → INT4 weight-only MatMul."""
    k, n, block = int(ctx.attrs["K"]), int(ctx.attrs["N"]), int(ctx.attrs["block_size"])
    bits = int(ctx.attrs.get("bits", BITS))
    if bits != BITS:
        raise ctx.fail(f"{bits}-bit weights are not supported (HAI's weight-only kernels are INT4)")
    if ctx.input(4) is not None:
        raise ctx.fail("g_idx (act-order block indices) is not supported; quantize without act-order")
    a = ctx.input(0)
    if a is None or a.type.dtype is not DType.F32 or a.type.shape[-1] != k:
        raise ctx.fail(f"A must be an f32 tensor whose last axis is K = {k}")
    q, scales, zeros = _unpacked(ctx, k, n, block)
    values, steps, offsets = _split(q, scales, zeros)
    params = QuantParams(tuple(float(s) for s in steps.T.ravel()), (0,) * steps.size, 0, block)
    typed = TensorType(DType.I4, (k, n), quant=params)
    stored = ctx.graph.add_constant(f"{ctx.node.name or ctx.node.output[0]}/w_int4", values.T.copy(), typed)
    (weight,) = ctx.emit("DequantizeLinear", [stored], {"dtype": DType.F32})
    mark_imported([weight])
    (y,) = ctx.emit("MatMul", [a, weight])
    if offsets.any():
        members = (np.arange(k)[:, None] // block == np.arange(offsets.shape[1])[None, :]).astype(np.float32)
        (sums,) = ctx.emit("MatMul", [a, ctx.constant(members, "block_members")])
        (rest,) = ctx.emit("MatMul", [sums, ctx.constant(offsets.T.astype(np.float32), "block_offsets")])
        (y,) = ctx.emit("Add", [y, rest])
    bias = ctx.input(5)
    return ctx.emit("Add", [y, bias]) if bias is not None else [y]


def _unpacked(ctx: ConversionContext, k: int, n: int, block: int) -> tuple[np.ndarray, ...]:
    """(q (N, K) int64, scales (N, k_blocks) float64, zero points (N, k_blocks) float64)."""
    blocks = math.ceil(k / block)
    packed = ctx.static_input(1, "B")
    scales = ctx.static_input(2, "scales")
    if packed is None or scales is None:
        raise ctx.fail("B and scales are required")
    if packed.dtype != np.uint8 or packed.size != n * blocks * block // 2:
        raise ctx.fail(f"B {packed.dtype}{list(packed.shape)} must be uint8 [{n}, {blocks}, {block // 2}]")
    if scales.size != n * blocks:
        raise ctx.fail(f"scales of shape {list(scales.shape)} must hold {n} x {blocks} values")
    q = _nibbles(packed.reshape(n, blocks * block // 2))[:, :k]
    return q, scales.reshape(n, blocks).astype(np.float64), _zero_points(ctx, n, blocks)


def _nibbles(packed: np.ndarray) -> np.ndarray:
    """uint8 (rows, bytes) → int64 (rows, 2 * bytes): the low nibble first."""
    low, high = packed & 0x0F, packed >> 4
    return np.stack([low, high], axis=-1).reshape(packed.shape[0], -1).astype(np.int64)


def _zero_points(ctx: ConversionContext, n: int, blocks: int) -> np.ndarray:
    zeros = ctx.static_input(3, "zero_points")
    if zeros is None:
        return np.full((n, blocks), DEFAULT_ZERO_POINT, np.float64)
    if zeros.dtype == np.uint8:
        per_row = math.ceil(blocks / 2)
        if zeros.size != n * per_row:
            raise ctx.fail(f"packed zero_points of shape {list(zeros.shape)} must hold {n} x {per_row} bytes")
        return _nibbles(zeros.reshape(n, per_row))[:, :blocks].astype(np.float64)
    if zeros.size != n * blocks:
        raise ctx.fail(f"zero_points of shape {list(zeros.shape)} must hold {n} x {blocks} values")
    return zeros.reshape(n, blocks).astype(np.float64)


def _split(q: np.ndarray, scales: np.ndarray, zeros: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(v i4 (N, K), a > 0 (N, k_blocks), c (N, k_blocks)) with (q - zp) * scale = v * a + c (module rule)."""
    n, k = q.shape
    block = -(-k // scales.shape[1])
    per_element = np.repeat(np.arange(scales.shape[1]), block)[:k]
    negative = scales < 0
    zero = scales == 0
    values = np.where(negative[:, per_element], 7 - q, q - 8)
    values = np.where(zero[:, per_element], 0, values)
    steps = np.where(zero, 1.0, np.abs(scales))
    offsets = np.where(negative, (zeros - 7) * -scales, (8 - zeros) * scales)
    offsets = np.where(zero, 0.0, offsets)
    return values.astype(np.int8).astype(_i4()), steps.astype(np.float32).astype(np.float64), offsets


def _i4() -> np.dtype:
    return DType.I4.numpy
