"""bf16 layers on a matrix unit (x86 AMX-BF16): the GEMM in blocks of the target's tile function.

Rule: where the target's schedule table has a bf16 tile GEMM (`bf16_tiles`,
targets/x86/amx.py: a 32 x 32 float32 block over 32-long steps of K), a bf16
layer (bf16_gemm.py) is computed on it as tile_gemm.py says: an "a" stage, the
activation as a bf16 row matrix A[Rp, Kp] (a MatMul's rows; a Conv's windows,
im2col from the channels-last "pad" stage, K ordered (kh, kw, c) as the packing),
zeros outside; the "acc" stage over the bf16 packing's 16-column weight panels,
one tile call per block; and the "out" stage, bias (ctab row 0) plus acc
through the fused epilogue at the result's index. Elsewhere, and for layers too
thin to fill the blocks at least half (`fills_tiles`: K under 16 or fewer than
16 channels), the dot GEMM of bf16_gemm.py computes the layer."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from tvm import te

from ir.graph import Node
from targets.lowering.bf16_gemm import (
    BF16ConvTail,
    BF16MatMulTail,
    activation,
    as_bf16,
    bf16_weight,
    lower_bf16_conv,
    lower_bf16_matmul,
    weight_placeholder,
)
from targets.lowering.bf16_windows import conv_parts, reads_in_place, windowed_conv
from targets.lowering.conv_geometry import Geometry, finish_kernel
from targets.lowering.conv_integer import padded_input
from targets.lowering.elementwise import Epilogue
from targets.lowering.integer_gemm import LANES, fused_tables
from targets.lowering.kernel import LoweredKernel
from targets.lowering.tile_gemm import schedule_tiled, tile_knobs, tile_stages, window_channels, window_matrix
from targets.lowering.tiling import padded
from targets.schedules import TileGemm, schedules_of
from targets.target import TargetDescription


def lower_bf16_layer_matmul(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], *, trans_b: bool = False
) -> LoweredKernel:
    """A bf16 MatMul / plain Gemm: on the target's tiles where it has them, else the dot GEMM."""
    tiles = schedules_of(target).bf16_tiles(target)
    stored = bf16_weight(node)
    assert stored is not None
    n, k = stored.type.shape if trans_b else stored.type.shape[::-1]
    if tiles is None or not fills_tiles(tiles, k, n):
        return lower_bf16_matmul(node, target, epilogue, trans_b=trans_b)
    return tiled_matmul(node, epilogue, tiles, trans_b)


def lower_bf16_layer_conv(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    """A bf16 dense Conv: on the target's tiles where it has them, else the dot GEMM."""
    tiles = schedules_of(target).bf16_tiles(target)
    g = Geometry(node)
    if tiles is None or not fills_tiles(tiles, g.c * g.kh * g.kw, g.m):
        return lower_bf16_conv(node, target, epilogue, layout)
    if reads_in_place(tiles, g):
        return windowed_conv(node, epilogue, layout, tiles)
    return tiled_conv(node, epilogue, layout, tiles)


def fills_tiles(tiles: TileGemm, k: int, channels: int) -> bool:
    """Whether a layer of reduction length `k` and `channels` outputs fills the tile blocks at least
    half in K and in channels; a thinner one runs the dot GEMM. Measured single-thread CPU time on a
    Sapphire Rapids core, NHWC 1 x 1 convs, AMX against vdpbf16ps: K 16 -> 96 channels at 112 x 112
    0.76 against 1.37 ms, K 24 -> 144 at 56 x 56 0.44 against 0.49 ms."""
    return 2 * k >= tiles.depth and 2 * channels >= tiles.columns and channels >= LANES


def tiled_matmul(node: Node, epilogue: Sequence[Node], tiles: TileGemm, trans_b: bool) -> LoweredKernel:
    x_v, stored = activation(node), bf16_weight(node)
    assert stored is not None
    n, k = stored.type.shape if trans_b else stored.type.shape[::-1]
    result_shape = node.results[0].type.shape
    rows = math.prod(x_v.type.shape[:-1])
    chain = Epilogue.build(node.results[0], epilogue)
    chain.tables = tables = fused_tables(chain.nodes, len(result_shape) - 1)
    rp, kp, np_ = padded(rows, tiles.rows), padded(k, tiles.depth), padded(n, tiles.columns)
    x = te.placeholder((rows, k), "float32", name="x")
    a = te.compute((rp, kp), lambda p, c: te.if_then_else(
        te.all(p < rows, c < k), as_bf16(x[te.min(p, rows - 1), te.min(c, k - 1)]), te.const(0, "uint16")),
        name="a")  # fmt: skip
    wp = weight_placeholder(k, n, 1 + len(tables.rows), tiles.depth, tiles.columns)
    ctab, acc, intrinsic, blockwise = tile_stages(tiles, a, wp, kp, np_, 1 + len(tables.rows), rows, n)
    tables.ctab = ctab
    tail = BF16MatMulTail(node, chain, rows, n, trans_b)
    params, args, result = tail.signature(x, x_v, wp, stored, ctab, lambda p, o: acc[p, o])
    table_rows = list(tables.rows)
    pack = tail.packer(stored.name, table_rows, tiles.depth, tiles.columns)
    workload = {"op": "matmul_bf16_tiles", "rows": rows, "k": k, "n": n, "result": list(result_shape),
                "tables": len(table_rows), "epilogue": chain.describe(),
                "tiles": tile_knobs(tiles)}  # fmt: skip
    flops = 2 * rows * k * n + chain.flops(result.type.size)

    def schedule(sch: Any) -> None:
        schedule_tiled(sch, tiles, intrinsic, vector_out=True, conv=False, blockwise=blockwise)

    return finish_kernel(node, epilogue, "matmulamx", workload, schedule, params, args, flops, "any", pack)


def tiled_conv(node: Node, epilogue: Sequence[Node], layout: str, tiles: TileGemm) -> LoweredKernel:
    g, x_v, stored, chain, tables = conv_parts(node, epilogue, layout)
    cp = window_channels(tiles, g.c)
    k, positions = g.kh * g.kw * cp, g.oh * g.ow
    rows = g.n * positions
    rp, kp = padded(rows, tiles.rows), padded(k, tiles.depth)
    x = te.placeholder(g.in_shape(layout), "float32", name="x")
    xq = padded_input(x, g, layout, cp, as_bf16, te.const(0, "uint16"), channels_last=True)
    a = window_matrix(xq, g, cp, (rp, kp), te.const(0, "uint16"))
    wp = weight_placeholder(k, g.m, 1 + len(tables.rows), tiles.depth, tiles.columns)
    mp = padded(g.m, tiles.columns)
    ctab, acc, intrinsic, blockwise = tile_stages(tiles, a, wp, kp, mp, 1 + len(tables.rows), rows, g.m)
    tables.ctab = ctab
    nchw = layout == "NCHW"
    tail = BF16ConvTail(node, g, chain, layout, cp)
    params, args, result = tail.signature(x, x_v, wp, stored, ctab, lambda n, p, o: acc[n * positions + p, o])
    table_rows = list(tables.rows)
    pack = tail.packer(stored.name, table_rows, tiles.depth, tiles.columns)
    workload = {"op": "conv_bf16_tiles", "geometry": g.to_json(), "layout": layout, "tables": len(table_rows),
                "epilogue": chain.describe(), "tiles": tile_knobs(tiles)}  # fmt: skip
    flops = 2 * g.n * g.m * positions * g.c * g.kh * g.kw + chain.flops(result.type.size)

    def schedule(sch: Any) -> None:
        schedule_tiled(
            sch,
            tiles,
            intrinsic,
            vector_out=not nchw,
            conv=True,
            blockwise=blockwise,
            window=cp if g.kh * g.kw > 1 else 0,
        )

    return finish_kernel(node, epilogue, "convamx", workload, schedule, params, args, flops, layout, pack)
