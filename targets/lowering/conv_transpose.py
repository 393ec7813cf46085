"""ConvTranspose whose kernel equals its stride (2x2 stride 2, no pads): a GEMM and a depth-to-space write.

Rule: with kernel == stride, unpadded, undilated, group 1, every input pixel
owns its own kh x kw output block: out[n, o, y*kh + a, x*kw + b] = sum over c of
x[n, c, y, x] * W[c, o, a, b]. That is a register-tiled GEMM (targets/lowering/
tiling.py, the "spatial" tile of conv.py) of `mi` rows m = (o, a, b) by `nb`
input columns x over the reduction c, weights packed at compile time into
panels Wp[M/mi, C, mi] (M = O*kh*kw) broadcast per row, input rows read as
whole vectors. The kernel views its output as (n, O, H, kh, W, kw) (the same
bytes as (n, O, H*kh, W*kw)) so each tile's bias and fused epilogue are written
straight into their scattered places; `mi` is a whole number of kh*kw blocks so
a tile owns whole output blocks. Any other ConvTranspose (pads, overlap,
groups, other ranks, dtypes or run-time weights, rows no vector divides) goes
to the general template (conv_general.py).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
from tvm import te

from ir.graph import Node
from targets.lowering.conv_general import lower_general_conv
from targets.lowering.conv_geometry import bias_and_epilogue, finish_kernel
from targets.lowering.elementwise import epilogue_signature
from targets.lowering.kernel import KernelArg, LoweredKernel, arg
from targets.lowering.registry import lowering
from targets.lowering.tiling import choose_knobs, schedule_gemm
from targets.schedules import GemmKnobs
from targets.target import TargetDescription

MAX_ROWS = 8  # accumulator rows of one tile


def block_transpose_knobs(target: TargetDescription, node: Node) -> GemmKnobs | None:
    """Tile knobs when `node` is a kernel == stride ConvTranspose this template takes, else None."""
    x, w = node.operands[0], node.operands[1]
    assert x is not None and w is not None
    if node.results[0].type.dtype.numpy.name != "float32" or x.type.rank != 4 or not w.is_constant:
        return None
    a = node.attrs
    kernel = tuple(w.type.shape[2:])
    plain = (
        int(a["group"]) == 1
        and tuple(a["strides"]) == kernel
        and not any(a["pads"])
        and not any(a["output_padding"])
        and all(d == 1 for d in a["dilations"])
    )
    block = kernel[0] * kernel[1]
    width = x.type.shape[3]
    lanes = next((v for v in (target.vector_lanes_f32, 8, 4) if width % v == 0), None)
    if not plain or block > MAX_ROWS or lanes is None or lanes > target.vector_lanes_f32:
        return None
    outs = w.type.shape[1]
    per_tile = max(q for q in range(1, MAX_ROWS // block + 1) if outs % q == 0)
    knobs = choose_knobs(target, outs * block, width, rows=per_tile * block)
    if knobs.lanes != lanes:
        knobs = GemmKnobs(knobs.mi, lanes * max(1, knobs.nb // knobs.lanes), lanes)
    while width % knobs.nb:
        knobs = GemmKnobs(knobs.mi, knobs.nb - lanes, lanes)
    return knobs


def pack_block_weights(w: np.ndarray, mi: int) -> np.ndarray:
    """(C, O, KH, KW) -> (M/mi, C, mi) with M = O*KH*KW, row m = (o, a, b)."""
    c = w.shape[0]
    rows = w.reshape(c, -1).T  # (M, C)
    return np.ascontiguousarray(rows.reshape(-1, mi, c).transpose(0, 2, 1))


def lower_block_transpose(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], knobs: GemmKnobs
) -> LoweredKernel:
    x_v, w_v = node.operands[0], node.operands[1]
    assert x_v is not None and w_v is not None
    n, c, h, width = x_v.type.shape
    _, outs, kh, kw = w_v.type.shape
    rows, mi = outs * kh * kw, knobs.mi
    x = te.placeholder((n, c, h, width), "float32", name="x")
    wp = te.placeholder((rows // mi, c, mi), "float32", name="Wp")
    rc = te.reduce_axis((0, c), "c")
    acc = te.compute(
        (n, h, rows, width),
        lambda nn, y, m, xx: te.sum(x[nn, rc, y, xx] * wp[m // mi, rc, m % mi], axis=[rc]),
        name="acc",
    )
    b_v, bias, chain = bias_and_epilogue(node, epilogue, "NCHW")

    def finish(nn: Any, o: Any, y: Any, a: Any, xx: Any, b: Any) -> Any:
        value = acc[nn, y, (o * kh + a) * kw + b, xx]
        if bias is not None:
            value = value + bias[o]
        return chain.apply(value, (nn, o, y * kh + a, xx * kw + b))

    out_shape = (n, outs, h, kh, width, kw)
    out = te.compute(out_shape, finish, name="out")
    result = chain.result or node.results[0]
    anchor = [(x, arg(x_v, "input", x.shape)), (wp, arg(w_v, "weight", wp.shape))]
    if b_v is not None:
        anchor.append((bias, arg(b_v, "weight", bias.shape)))
    output = KernelArg(result.name, "output", out_shape, "float32")
    params, args = epilogue_signature(anchor, chain, out, output)
    workload = {
        "op": "conv_transpose_block",
        "x": [n, c, h, width],
        "w": list(w_v.type.shape),
        "bias": b_v is not None,
        "epilogue": chain.describe(),
        "knobs": knobs.to_json(),
    }

    def schedule(sch: Any) -> None:
        schedule_gemm(sch, "acc", "out", knobs, out_lanes=None)

    w_name = w_v.name

    def pack(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        packed = {k: np.ascontiguousarray(v, dtype=np.float32) for k, v in arrays.items()}
        packed[w_name] = pack_block_weights(np.asarray(arrays[w_name], np.float32), mi)
        return packed

    flops = 2 * n * h * width * c * rows + chain.flops(result.type.size)
    return finish_kernel(node, epilogue, "convt", workload, schedule, params, args, flops, "NCHW", pack)


@lowering("ConvTranspose")
def lower_conv_transpose(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    knobs = block_transpose_knobs(target, node) if layout == "NCHW" else None
    if knobs is not None:
        return lower_block_transpose(node, target, epilogue, knobs)
    return lower_general_conv(node, target, epilogue, layout)
