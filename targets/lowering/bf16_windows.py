# mypy: disable-error-code="valid-type"
"""A stride-1 k x k bf16 conv on AMX tiles without an im2col copy: windows read in place.

Rule: where the target's bf16 tiles have a windowed form (`TileGemm.window_import`,
targets/x86/amx.py `hai_amx_bf16_32x32_w`) and a dense Conv has stride 1, a k x k
window (both sides over 1) and input channels a multiple of the tiles' depth, the
"a" stage is the input once, rounded to bf16 and zero padded, channels last, as
rows A[(n * hp + y) * wp + x, c] of the padded image (`wp` wide). Output position
(y, x) then reads its window position (i, j) at row q + i * dh * wp + j * dw of A,
q = (n * hp + y) * wp + x: one constant shift per window position. The "acc" stage
is computed over every row q of the padded grid (the wp - ow columns past the
output's edge are computed and dropped), 32 rows x 32 channels a block, each block
one call that sums the window's positions, A tiles loaded in place with the shift
(no (rows, k*k*c) copy: the copy and its f32 -> bf16 rounding per window position cost
more than the tile products, measured on resnet18's 3 x 3 convs). The "out" stage
(bias, fused epilogue) reads acc at the output's rows after all blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from tvm import te

from ir.graph import Node
from targets.lowering.bf16_gemm import BF16ConvTail, activation, as_bf16, bf16_weight, weight_placeholder
from targets.lowering.conv_geometry import Geometry, finish_kernel
from targets.lowering.conv_integer import padded_input
from targets.lowering.elementwise import Epilogue
from targets.lowering.integer_gemm import LANES, fused_tables, packed_table_stage
from targets.lowering.kernel import LoweredKernel
from targets.lowering.tile_gemm import tile_knobs, widened
from targets.lowering.tiling import padded
from targets.schedules import TileGemm


def reads_in_place(tiles: TileGemm, g: Geometry) -> bool:
    """Whether conv `g` runs windowed (module rule)."""
    return (
        bool(tiles.window_import)
        and g.group == 1
        and tuple(g.stride) == (1, 1)
        and g.kh > 1
        and g.kw > 1
        and g.c % tiles.depth == 0
    )


MAX_BLOCKS = 8
"""Row blocks one call computes at most (the most that divides the conv's row blocks): one tile
configuration for all of them. Measured on resnet18's bf16 3 x 3 convs (Sapphire Rapids core, one
thread), one block a call spent about a quarter of the kernel configuring tiles."""


class Window:
    """Conv `g`'s rows over its padded grid: `rows` computed (whole blocks), the shift of window
    position (i, j), `blocks` row blocks a call and `span` the A rows one call reads."""

    def __init__(self, tiles: TileGemm, g: Geometry) -> None:
        self.g, self.tiles = g, tiles
        (dh, dw) = g.dilation
        self.row_shift, self.col_shift = dh * g.wp, dw
        self.rows = padded((g.n - 1) * g.hp * g.wp + g.oh * g.wp, tiles.rows)
        count = self.rows // tiles.rows
        self.blocks = max(b for b in range(1, MAX_BLOCKS + 1) if count % b == 0)
        self.reach = (g.kh - 1) * self.row_shift + (g.kw - 1) * self.col_shift
        self.span = tiles.rows * self.blocks + self.reach

    def pair(self, i: Any, j: Any, c: Any) -> Any:
        """The weight packing's reduction pair of window position (i, j), channel c."""
        return (i * self.g.kw + j) * (self.g.c // 2) + c // 2

    def at(self, n: Any, p: Any) -> Any:
        """The acc row of output position p of image n."""
        g = self.g
        return (n * g.hp + p // g.ow) * g.wp + p % g.ow


def window_rows(xq: Any, w: Window) -> Any:
    """The "a" stage: the padded channels-last copy `xq` as rows of the padded grid, zeros past it."""
    g = w.g
    image, total = g.hp * g.wp, g.n * g.hp * g.wp

    def row(r: Any, c: Any) -> Any:
        q = te.min(r, total - 1)
        read = xq[q // image, q % image // g.wp, q % g.wp, c]
        return te.if_then_else(r < total, read, te.const(0, "uint16"))

    return te.compute((w.rows + w.reach, g.c), row, name="a")


def window_acc(w: Window, a: Any, wp: Any, mp: int) -> Any:
    g = w.g
    ri, rj = te.reduce_axis((0, g.kh), "wi"), te.reduce_axis((0, g.kw), "wj")
    rc = te.reduce_axis((0, g.c), "c")
    tiles = w.tiles

    def dot(q: Any, o: Any) -> Any:
        read = a[q + ri * w.row_shift + rj * w.col_shift, rc]
        weight = wp[o // LANES, w.pair(ri, rj, rc), o % LANES, rc % 2]
        return te.sum(widened(tiles, read) * widened(tiles, weight), axis=[ri, rj, rc])

    return te.compute((w.rows, mp), dot, name="acc")


def window_description(w: Window, panel_rows: int, channels: int) -> Any:
    """One call's semantics: C[32 * blocks, 32] = the window's sum over A's `span` rows and the
    weight panels (C's init is the call's: the tiles are zeroed, no stage writes zeros first)."""
    from tvm.script import tirx as T

    g, tiles = w.g, w.tiles
    rows, columns, panels = tiles.rows * w.blocks, tiles.columns, tiles.columns // LANES
    b_strides = (panel_rows * LANES * 2, LANES * 2, 2, 1)
    b_shape = (panels, g.kh * g.kw * g.c // 2, LANES, 2)
    kh, kw, c, span = g.kh, g.kw, g.c, w.span

    @T.prim_func(s_tir=True)
    def desc(
        A: T.Buffer((span, c), "uint16", offset_factor=1),
        B: T.Buffer(b_shape, "uint16", offset_factor=1, strides=b_strides),
        C: T.Buffer((rows, columns), "float32", offset_factor=1, strides=(channels, 1)),
    ) -> None:
        with T.sblock("root"):
            T.reads(A[0:span, 0:c], B[0:panels, 0 : b_shape[1], 0:LANES, 0:2])
            T.writes(C[0:rows, 0:columns])
            for q, o, i, j, r in T.grid(rows, columns, kh, kw, c):
                with T.sblock("update"):
                    vq, vo, vi, vj, vr = T.axis.remap("SSRRR", [q, o, i, j, r])
                    T.reads(
                        C[vq, vo],
                        A[vq + vi * w.row_shift + vj * w.col_shift, vr],
                        B[vo // LANES, w.pair(vi, vj, vr), vo % LANES, vr % 2],
                    )
                    T.writes(C[vq, vo])
                    with T.init():
                        C[vq, vo] = T.float32(0)
                    C[vq, vo] = C[vq, vo] + widened(
                        tiles, A[vq + vi * w.row_shift + vj * w.col_shift, vr]
                    ) * widened(tiles, B[vo // LANES, w.pair(vi, vj, vr), vo % LANES, vr % 2])

    @T.prim_func(s_tir=True)
    def impl(
        A: T.Buffer((span, c), "uint16", offset_factor=1),
        B: T.Buffer(b_shape, "uint16", offset_factor=1, strides=b_strides),
        C: T.Buffer((rows, columns), "float32", offset_factor=1, strides=(channels, 1)),
    ) -> None:
        with T.sblock("root"):
            T.reads(A[0:span, 0:c], B[0:panels, 0 : b_shape[1], 0:LANES, 0:2])
            T.writes(C[0:rows, 0:columns])
            T.evaluate(
                T.call_extern(
                    "int32",
                    f"{tiles.function}_w",
                    A.access_ptr("r"),
                    T.int64(c * 2),
                    B.access_ptr("r"),
                    B.access_ptr("r", offset=b_strides[0]),
                    T.int64(c // tiles.depth),
                    C.access_ptr("rw"),
                    T.int64(channels * 4),
                    T.int64(kw),
                    T.int64(kh * kw),
                    T.int64(w.row_shift * c * 2),
                    T.int64(w.col_shift * c * 2),
                    T.int64(w.blocks),
                )  # fmt: skip
            )

    return desc, impl


def register_window(w: Window, panel_rows: int, channels: int) -> str:
    """The tensor intrinsic of one windowed block for this conv (registered once), by name."""
    from tvm.s_tir import TensorIntrin

    g = w.g
    name = (f"{w.tiles.function}_w_c{g.c}_k{g.kh}x{g.kw}_s{w.row_shift}x{w.col_shift}"
            f"_b{w.blocks}_p{panel_rows}_o{channels}")  # fmt: skip
    try:
        TensorIntrin.get(name)
    except Exception:  # noqa: BLE001 - TVM raises a plain error for an unknown name
        TensorIntrin.register(name, *window_description(w, panel_rows, channels))
    return name


def schedule_windows(sch: Any, w: Window, intrinsic: str, vector_out: bool) -> None:
    """ "a" whole first ("pad" inlined; parallel over rows, vectorised over channels), then every
    block in parallel, tensorized with its init, then "out" (parallel, vectorised)."""
    sch.compute_inline(sch.get_sblock("ctab"))
    sch.compute_inline(sch.get_sblock("pad"))
    a = sch.get_sblock("a")
    row, channel = sch.get_loops(a)
    sch.parallel(row)
    sch.vectorize(sch.split(channel, [None, LANES])[1])
    acc = sch.get_sblock("acc")
    q, o, *_ = sch.get_loops(acc)
    tiles = w.tiles
    qo, qi = sch.split(q, [None, tiles.rows * w.blocks])
    oo, oi = sch.split(o, [None, tiles.columns])
    sch.reorder(qo, oo, qi, oi)
    block = sch.fuse(qo, oo)
    sch.parallel(block)
    sch.annotate(block, "pragma_import_llvm", tiles.window_import)
    sch.tensorize(qi, intrinsic)
    out = sch.get_sblock("out")
    *outer, inner = sch.get_loops(out)
    if outer:
        sch.parallel(sch.fuse(*outer))
    if vector_out and int(sch.get(inner).extent) % LANES == 0:
        sch.vectorize(sch.split(inner, [None, LANES])[1])


def conv_parts(node: Node, epilogue: Sequence[Node], layout: str) -> tuple[Geometry, Any, Any, Epilogue, Any]:
    """A bf16 conv's geometry, activation, stored bf16 weight, epilogue chain and its fused tables (the
    chain's `tables`), as both conv paths (windows in place, im2col tiles) start."""
    g = Geometry(node)
    x_v, stored = activation(node), bf16_weight(node)
    assert stored is not None
    chain = Epilogue.build(node.results[0], epilogue, layout=layout)
    chain.tables = tables = fused_tables(chain.nodes, 1)
    return g, x_v, stored, chain, tables


def windowed_conv(node: Node, epilogue: Sequence[Node], layout: str, tiles: TileGemm) -> LoweredKernel:
    g, x_v, stored, chain, tables = conv_parts(node, epilogue, layout)
    w = Window(tiles, g)
    k, mp = g.kh * g.kw * g.c, padded(g.m, tiles.columns)
    x = te.placeholder(g.in_shape(layout), "float32", name="x")
    xq = padded_input(x, g, layout, g.c, as_bf16, te.const(0, "uint16"), channels_last=True)
    a = window_rows(xq, w)
    wp = weight_placeholder(k, g.m, 1 + len(tables.rows), tiles.depth, tiles.columns)
    tables.ctab = ctab = packed_table_stage(wp, k, 1 + len(tables.rows))
    acc = window_acc(w, a, wp, mp)
    intrinsic = register_window(w, int(wp.shape[1]), mp)
    tail = BF16ConvTail(node, g, chain, layout, g.c)
    params, args, result = tail.signature(x, x_v, wp, stored, ctab, lambda n, p, o: acc[w.at(n, p), o])
    table_rows = list(tables.rows)
    pack = tail.packer(stored.name, table_rows, tiles.depth, tiles.columns)
    workload = {"op": "conv_bf16_windows", "geometry": g.to_json(), "layout": layout,
                "tables": len(table_rows), "epilogue": chain.describe(),
                "tiles": tile_knobs(tiles), "blocks": w.blocks, "zeroed": "tiles"}  # fmt: skip
    flops = 2 * g.n * g.m * g.oh * g.ow * g.c * g.kh * g.kw + chain.flops(result.type.size)

    def schedule(sch: Any) -> None:
        schedule_windows(sch, w, intrinsic, vector_out=layout != "NCHW")

    return finish_kernel(node, epilogue, "convamxw", workload, schedule, params, args, flops, layout, pack)
