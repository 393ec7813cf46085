"""ConvInteger and MatMulInteger on a matrix unit (x86 AMX-INT8), where the layer pays; else the dot GEMM.

Rule: where the target's schedule table has a u8 x i8 tile GEMM (`integer_tiles`,
targets/x86/amx.py: a 32 x 32 int32 block over 64-byte steps of K, `tdpbusd`), a
dense ConvInteger or a MatMulInteger whose shape fills the blocks enough
(`pays_tiles`: padding to whole blocks at most doubles the work) is computed on
them (tile_gemm.py): an "a" stage, the activation as u8 rows A[Rp, Kp] (a
MatMul's rows, an i8 input shifted by +128; a Conv's windows, im2col from the
channels-last u8 "pad" stage of conv_integer.py, K ordered (kh, kw, c) as the
packing), the u8 zero point outside it (padded K meets zero weights, padded rows
are never stored); the weights packed as the integer GEMM's 16 x 4 panels
(integer_gemm.py), K padded to the block's depth and channels to its columns;
the "acc" stage tensorized into one tile call per block; and the integer GEMM's
own output stage (ctab row 0, the corrected bias, plus the fused epilogue).
Integer sums in any order are exact: the results are bit-exact against the dot
GEMM and the interpreter. Every other integer layer takes conv_integer.py or
matmul_integer.py (VNNI `vpdpbusd` steps where the target has them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from tvm import te

from ir.graph import Node
from targets.lowering.conv_geometry import Geometry, finish_kernel
from targets.lowering.conv_integer import (
    activation_zero,
    as_u8,
    conv_epilogue,
    conv_output,
    conv_packer,
    lower_conv_integer,
    u8_input,
)
from targets.lowering.elementwise import Epilogue
from targets.lowering.integer_gemm import DEPTH, fused_tables, weight_placeholder
from targets.lowering.kernel import LoweredKernel
from targets.lowering.matmul_integer import lower_matmul_integer, matmul_output, matmul_packer
from targets.lowering.registry import lowering
from targets.lowering.tile_gemm import (
    MAX_PADDING,
    padding,
    schedule_tiled,
    tile_knobs,
    tile_stages,
    window_channels,
    window_matrix,
)
from targets.lowering.tiling import padded
from targets.schedules import TileGemm, schedules_of
from targets.target import TargetDescription


def pays_tiles(tiles: TileGemm, rows: int, k: int, channels: int) -> bool:
    """Whether a layer of `rows` output rows, reduction length `k` and `channels` outputs runs on the
    tiles: the blocks, padded to whole ones in rows, K and channels, do at most MAX_PADDING x its work."""
    return padding(tiles, k, channels, rows) <= MAX_PADDING


def integer_tiles(target: TargetDescription, rows: int, k: int, channels: int) -> TileGemm | None:
    """The target's u8 x i8 tile block when it has one and the layer pays it, else None."""
    tiles = schedules_of(target).integer_tiles(target)
    return tiles if tiles is not None and pays_tiles(tiles, rows, k, channels) else None


@lowering("MatMulInteger")
def lower_matmul_integer_layer(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    x_v, w_v = node.operands[0], node.operands[1]
    assert x_v is not None and w_v is not None
    if w_v.is_constant:
        k, n = w_v.type.shape
        tiles = integer_tiles(target, math.prod(x_v.type.shape[:-1]), k, n)
        if tiles is not None:
            return tiled_matmul(node, epilogue, tiles)
    return lower_matmul_integer(node, target, epilogue, layout)


@lowering("ConvInteger")
def lower_conv_integer_layer(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    x, w = node.operands[0], node.operands[1]
    if x is not None and x.type.rank == 4 and w is not None and w.is_constant:
        g = Geometry(node)
        tiles = integer_tiles(target, g.n * g.oh * g.ow, g.c * g.kh * g.kw, g.m) if g.group == 1 else None
        if tiles is not None:
            return tiled_conv(node, epilogue, layout, tiles)
    return lower_conv_integer(node, target, epilogue, layout)


def tiled_matmul(node: Node, epilogue: Sequence[Node], tiles: TileGemm) -> LoweredKernel:
    x_v, w_v = node.operands[0], node.operands[1]
    assert x_v is not None and w_v is not None
    shift, zero = activation_zero(x_v)
    k, n = w_v.type.shape
    result_shape = node.results[0].type.shape
    rows = math.prod(x_v.type.shape[:-1])
    chain = Epilogue.build(node.results[0], epilogue)
    chain.tables = tables = fused_tables(chain.nodes, len(result_shape) - 1)
    rp, kp, np_ = padded(rows, tiles.rows), padded(k, tiles.depth), padded(n, tiles.columns)
    x = te.placeholder((rows, k), x_v.type.dtype.numpy.name, name="x")
    a = te.compute((rp, kp), lambda p, c: te.if_then_else(
        te.all(p < rows, c < k), as_u8(x[te.min(p, rows - 1), te.min(c, k - 1)], shift),
        te.const(zero, "uint8")), name="a")  # fmt: skip
    wp = weight_placeholder(kp, np_, 1 + len(tables.rows))
    ctab, acc, intrinsic, blockwise = tile_stages(tiles, a, wp, kp, np_, 1 + len(tables.rows), rows, n)
    tables.ctab = ctab
    params, args, result = matmul_output(node, chain, x, wp, ctab, lambda p, o: acc[p, o])
    table_rows = list(tables.rows)
    pack = matmul_packer(node, table_rows, zero, DEPTH, tiles.depth, tiles.columns)
    workload = {"op": "matmul_integer_tiles", "rows": rows, "k": k, "n": n, "result": list(result_shape),
                "x": [str(x_v.type.dtype), zero], "tables": len(table_rows), "epilogue": chain.describe(),
                "tiles": tile_knobs(tiles)}  # fmt: skip
    flops = 2 * rows * k * n + chain.flops(result.type.size)

    def schedule(sch: Any) -> None:
        schedule_tiled(sch, tiles, intrinsic, vector_out=True, conv=False, blockwise=blockwise)

    return finish_kernel(node, epilogue, "matmulintamx", workload, schedule, params, args, flops, "any", pack)


def tiled_conv(node: Node, epilogue: Sequence[Node], layout: str, tiles: TileGemm) -> LoweredKernel:
    g = Geometry(node)
    x_v = node.operands[0]
    assert x_v is not None
    shift, zero = activation_zero(x_v)
    chain = conv_epilogue(node, epilogue, layout)
    chain.tables = tables = fused_tables(chain.nodes, 1)
    cp = window_channels(tiles, g.c)
    k, positions = g.kh * g.kw * cp, g.oh * g.ow
    rows = g.n * positions
    rp, kp, mp = padded(rows, tiles.rows), padded(k, tiles.depth), padded(g.m, tiles.columns)
    x = te.placeholder(g.in_shape(layout), x_v.type.dtype.numpy.name, name="x")
    xq = u8_input(x, g, layout, cp, shift, zero, channels_last=True)
    a = window_matrix(xq, g, cp, (rp, kp), te.const(zero, "uint8"))
    wp = weight_placeholder(kp, mp, 1 + len(tables.rows))
    ctab, acc, intrinsic, blockwise = tile_stages(tiles, a, wp, kp, mp, 1 + len(tables.rows), rows, g.m)
    tables.ctab = ctab
    params, args, result = conv_output(
        node, g, chain, layout, x, wp, ctab, lambda n, p, o: acc[n * positions + p, o]
    )
    table_rows = list(tables.rows)
    pack = conv_packer(node, g, cp, table_rows, zero, DEPTH, tiles.depth, tiles.columns)
    workload = {"op": "conv_integer_tiles", "geometry": g.to_json(), "layout": layout,
                "x": [str(x_v.type.dtype), zero], "tables": len(table_rows), "epilogue": chain.describe(),
                "tiles": tile_knobs(tiles)}  # fmt: skip
    flops = 2 * g.n * g.m * positions * g.c * g.kh * g.kw + chain.flops(result.type.size)
    taps = cp if g.kh * g.kw > 1 else 0

    def schedule(sch: Any) -> None:
        schedule_tiled(sch, tiles, intrinsic, layout != "NCHW", conv=True, blockwise=blockwise, window=taps)

    return finish_kernel(node, epilogue, "convintamx", workload, schedule, params, args, flops, layout, pack)
