# mypy: disable-error-code="valid-type"
"""A GEMM on a matrix unit's blocks (x86 AMX): the tensorized block, its "acc" stage and the schedule.

Rule: a layer computed on a target's tile function (`TileGemm`, targets/x86/amx.py:
a `rows` x `columns` block over `depth`-long steps of K) has an "a" stage, the
activation as a row matrix A[Rp, Kp] of the tile's `operand` (bf16 bits, u8),
rows padded to the block's rows and K to its depth; the "acc" stage
acc[Rp, Mp] = A x W over the weight's 16-lane panels packed `group` elements of K a
lane (bf16_gemm.py's 16 x 2, integer_gemm.py's 16 x 4 packing; channels padded to
the block's columns, K to its depth), widened to the `accumulator` type and summed,
zeroed, then tensorized block by block (parallel) into one call of the tile
function each (`register_tiles`: one intrinsic per tile function, K, panel and
row-stride shape, the call's pointers from its buffers; where the unit has a windowed
function, `window_import`, one call of it computes `call_blocks` row blocks with C
zeroed in its tiles, the init tensorized with it); and the "out" stage the
layer's own (bias, fused epilogue), written right after each block where the
blocks cover the output exactly (`per_block`), else after all of them. The tile
function's LLVM IR is imported by the acc loop (`pragma_import_llvm`).
bf16_tiles.py (bf16 layers) and integer_tiles.py (ConvInteger, MatMulInteger) build on it.
"""

from __future__ import annotations

import math
from typing import Any

from tvm import te

from targets.lowering.dot_step import widen_bf16
from targets.lowering.integer_gemm import LANES, packed_table_stage
from targets.lowering.tiling import padded
from targets.schedules import TileGemm


def widened(tiles: TileGemm, value: Any) -> Any:
    """An operand element as the accumulator type (bf16 bits: the float32 they are)."""
    return widen_bf16(value) if tiles.operand == "uint16" else value.astype(tiles.accumulator)


def tile_description(tiles: TileGemm, k: int, panel_rows: int, channels: int, blocks: int = 1) -> Any:
    """One block's semantics (what `sch.tensorize` matches): C[32, 32] += A[32, k] x the two weight
    panels' k rows, widened to the accumulator type; A rows `k` apart, panels `panel_rows` 16-lane
    rows apart, C rows `channels` apart (the block's columns when the schedule computes each block's
    outputs right after it: compaction then leaves acc one block per iteration)."""
    from tvm.script import tirx as T

    if tiles.window_import:
        return window_tiles(tiles, k, panel_rows, channels, blocks)
    rows, columns, panels, group = tiles.rows, tiles.columns, tiles.columns // LANES, tiles.group
    b_strides = (panel_rows * LANES * group, LANES * group, group, 1)
    b_shape = (panels, k // group, LANES, group)
    a_type, b_type, c_type = tiles.operand, tiles.weight, tiles.accumulator

    @T.prim_func(s_tir=True)
    def desc(
        A: T.Buffer((rows, k), a_type, offset_factor=1),
        B: T.Buffer(b_shape, b_type, offset_factor=1, strides=b_strides),
        C: T.Buffer((rows, columns), c_type, offset_factor=1, strides=(channels, 1)),
    ) -> None:
        with T.sblock("root"):
            T.reads(C[0:rows, 0:columns], A[0:rows, 0:k], B[0:panels, 0 : k // group, 0:LANES, 0:group])
            T.writes(C[0:rows, 0:columns])
            for i, j, r in T.grid(rows, columns, k):
                with T.sblock("update"):
                    vi, vj, vr = T.axis.remap("SSR", [i, j, r])
                    C[vi, vj] = C[vi, vj] + widened(tiles, A[vi, vr]) * widened(
                        tiles, B[vj // LANES, vr // group, vj % LANES, vr % group]
                    )

    @T.prim_func(s_tir=True)
    def impl(
        A: T.Buffer((rows, k), a_type, offset_factor=1),
        B: T.Buffer(b_shape, b_type, offset_factor=1, strides=b_strides),
        C: T.Buffer((rows, columns), c_type, offset_factor=1, strides=(channels, 1)),
    ) -> None:
        with T.sblock("root"):
            T.reads(C[0:rows, 0:columns], A[0:rows, 0:k], B[0:panels, 0 : k // group, 0:LANES, 0:group])
            T.writes(C[0:rows, 0:columns])
            T.evaluate(
                T.call_extern(
                    "int32",
                    tiles.function,
                    A.access_ptr("r"),
                    T.int64(k * tiles.element_bytes),
                    B.access_ptr("r"),
                    B.access_ptr("r", offset=b_strides[0]),
                    T.int64(k // tiles.depth),
                    C.access_ptr("rw"),
                    T.int64(channels * 4),
                )  # fmt: skip
            )

    return desc, impl


def window_tiles(tiles: TileGemm, k: int, panel_rows: int, channels: int, blocks: int) -> Any:
    """`blocks` row blocks in one call of the unit's windowed function (`window_import`, one window
    position: A read as it is), C = A x W zeroed in the tiles (the description's init)."""
    from tvm.script import tirx as T

    rows, columns, panels, group = tiles.rows * blocks, tiles.columns, tiles.columns // LANES, tiles.group
    b_strides = (panel_rows * LANES * group, LANES * group, group, 1)
    b_shape = (panels, k // group, LANES, group)
    a_type, b_type, c_type = tiles.operand, tiles.weight, tiles.accumulator

    @T.prim_func(s_tir=True)
    def desc(
        A: T.Buffer((rows, k), a_type, offset_factor=1),
        B: T.Buffer(b_shape, b_type, offset_factor=1, strides=b_strides),
        C: T.Buffer((rows, columns), c_type, offset_factor=1, strides=(channels, 1)),
    ) -> None:
        with T.sblock("root"):
            T.reads(A[0:rows, 0:k], B[0:panels, 0 : k // group, 0:LANES, 0:group])
            T.writes(C[0:rows, 0:columns])
            for i, j, r in T.grid(rows, columns, k):
                with T.sblock("update"):
                    vi, vj, vr = T.axis.remap("SSR", [i, j, r])
                    T.reads(C[vi, vj], A[vi, vr], B[vj // LANES, vr // group, vj % LANES, vr % group])
                    T.writes(C[vi, vj])
                    with T.init():
                        C[vi, vj] = T.Cast(c_type, 0)
                    C[vi, vj] = C[vi, vj] + widened(tiles, A[vi, vr]) * widened(
                        tiles, B[vj // LANES, vr // group, vj % LANES, vr % group]
                    )

    @T.prim_func(s_tir=True)
    def impl(
        A: T.Buffer((rows, k), a_type, offset_factor=1),
        B: T.Buffer(b_shape, b_type, offset_factor=1, strides=b_strides),
        C: T.Buffer((rows, columns), c_type, offset_factor=1, strides=(channels, 1)),
    ) -> None:
        with T.sblock("root"):
            T.reads(A[0:rows, 0:k], B[0:panels, 0 : k // group, 0:LANES, 0:group])
            T.writes(C[0:rows, 0:columns])
            T.evaluate(
                T.call_extern(
                    "int32",
                    f"{tiles.function}_w",
                    A.access_ptr("r"),
                    T.int64(k * tiles.element_bytes),
                    B.access_ptr("r"),
                    B.access_ptr("r", offset=b_strides[0]),
                    T.int64(k // tiles.depth),
                    C.access_ptr("rw"),
                    T.int64(channels * 4),
                    T.int64(1),
                    T.int64(1),
                    T.int64(0),
                    T.int64(0),
                    T.int64(blocks),
                )  # fmt: skip
            )

    return desc, impl


def call_blocks(tiles: TileGemm, rows: int) -> int:
    """Row blocks one call of the tile function computes over `rows` (whole blocks): up to
    MAX_CALL_BLOCKS, the most that divides them, where the unit has a windowed function; else 1."""
    count = rows // tiles.rows
    if not tiles.window_import:
        return 1
    return max(b for b in range(1, MAX_CALL_BLOCKS + 1) if count % b == 0)


MAX_CALL_BLOCKS = 8
"""One tile configuration (`ldtilecfg`) and C zeroed in the tiles for up to this many row blocks:
per 32 x 32 block, configuring and loading C took about a fifth of resnet50's bf16 1 x 1 convs; 16
measured no faster (resnet18 within noise, resnet50 4-8% slower). In the workload (`tile_knobs`)."""


def register_tiles(tiles: TileGemm, k: int, panel_rows: int, channels: int, blocks: int = 1) -> str:
    """The tensor intrinsic of one call for this shape (registered once), by name."""
    from tvm.s_tir import TensorIntrin

    name = f"{tiles.function}_k{k}_p{panel_rows}_c{channels}" + (f"_w{blocks}" if tiles.window_import else "")
    try:
        TensorIntrin.get(name)
    except Exception:  # noqa: BLE001 - TVM raises a plain error for an unknown name
        TensorIntrin.register(name, *tile_description(tiles, k, panel_rows, channels, blocks))
    return name


def tile_acc(tiles: TileGemm, a: Any, wp: Any, rows: int, k: int, channels: int) -> Any:
    """The "acc" stage: acc[rows, channels] = A[rows, k] x W, widened, summed in the accumulator type."""
    r, group = te.reduce_axis((0, k), "k"), tiles.group

    def dot(p: Any, o: Any) -> Any:
        w = wp[o // LANES, r // group, o % LANES, r % group]
        return te.sum(widened(tiles, a[p, r]) * widened(tiles, w), axis=r)

    return te.compute((rows, channels), dot, name="acc")


def tile_stages(
    tiles: TileGemm, a: Any, wp: Any, kp: int, mp: int, tables: int, rows: int, channels: int
) -> tuple[Any, Any, str, bool]:
    """(ctab, acc, the block's intrinsic, blockwise) of A[Rp, kp] times the packed weight `wp` of `mp`
    padded channels and `tables` table rows; `rows` x `channels` the real output."""
    ctab = packed_table_stage(wp, kp, tables)
    acc = tile_acc(tiles, a, wp, int(a.shape[0]), kp, mp)
    blockwise = per_block(tiles, rows, channels)
    blocks = call_blocks(tiles, int(a.shape[0]))
    intrinsic = register_tiles(tiles, kp, int(wp.shape[1]), tiles.columns if blockwise else mp, blocks)
    return ctab, acc, intrinsic, blockwise


def window_matrix(xq: Any, g: Any, cp: int, shape: tuple[int, int], pad: Any) -> Any:
    """A[Rp, kp] of a conv over the channels-last input `xq` (`cp` channels a window position): row
    n * positions + p, column (kh * kw_extent + kw) * cp + ch; `pad` past the real rows and columns."""
    positions, k = g.oh * g.ow, g.kh * g.kw * cp
    rows = g.n * positions
    (sh, sw), (dh, dw) = g.stride, g.dilation

    def window(r: Any, c: Any) -> Any:
        row, col = te.min(r, rows - 1), te.min(c, k - 1)
        n, p = row // positions, row % positions
        kh, kw, ch = col // (g.kw * cp), col // cp % g.kw, col % cp
        read = xq[n, (p // g.ow) * sh + kh * dh, (p % g.ow) * sw + kw * dw, ch]
        return te.if_then_else(te.all(r < rows, c < k), read, pad)

    return te.compute(shape, window, name="a")


def per_block(tiles: TileGemm, rows: int, channels: int) -> bool:
    """Whether each block's outputs are written right after it: where the blocks cover the output
    exactly (padded rows or channels leave the output stage its own pass over the whole acc)."""
    return rows % tiles.rows == 0 and channels % tiles.columns == 0


VECTOR_CHANNELS = 8
"""A conv with this many input channels or more pads them to 16: each window's channels are then whole
16-lane vectors, and a k x k conv's im2col copy is vectorised (fewer pad its channels to the packing's
group only; a 1 x 1 conv's copy is left to LLVM, which vectorises it better measured: 83 against 180 us)."""


MAX_PADDING = 2.0
"""Work of the padded blocks over the layer's own above which the dot GEMM wins (`pays_tiles`). Measured
with bench/kernels_int8.py on a Sapphire Rapids core (requantised int8 3 x 3 and 1 x 1 convs): 1.7-2.6x
VNNI's speed at padding up to 1.3 (64 -> 64 channels 56 x 56, 128 -> 128 7 x 7, 16 -> 32 56 x 56),
1.2-1.3x at 2 (64 -> 64 1 x 1 on 4 x 4), 0.3-0.5x at 4 (32 -> 16 1 x 1 on 28 x 28: K and channels half
padding)."""


def padding(tiles: TileGemm, k: int, channels: int, rows: int | None = None) -> float:
    """The work of whole blocks over a layer's own: K and channels padded to the block's depth and
    columns, and `rows` to its rows when given."""
    blocks = padded(k, tiles.depth) * padded(channels, tiles.columns) / (k * channels)
    return blocks * (padded(rows, tiles.rows) / rows if rows is not None else 1.0)


def window_channels(tiles: TileGemm, channels: int) -> int:
    """A conv's input channels as its im2col rows hold them (VECTOR_CHANNELS)."""
    return padded(channels, LANES) if channels >= VECTOR_CHANNELS else padded(channels, tiles.group)


def tile_knobs(tiles: TileGemm) -> dict[str, Any]:
    """What the kernel's workload records of its tiles and schedule (a change is another kernel)."""
    knobs = {"function": tiles.function, "block": [tiles.rows, tiles.columns, tiles.depth], "out": 4, "a": 3}
    return knobs | ({"calls": "zeroed-blocks", "call_blocks": MAX_CALL_BLOCKS} if tiles.window_import else {})


ROW_BLOCKS = 8
"""Row blocks from which each one's A rows are computed right before its blocks (in cache, shared by
its column blocks: a 3 x 3 64 -> 64 bf16 conv at 56 x 56 0.72 -> 0.56 ms, single-thread CPU time on a
Sapphire Rapids core); fewer run the whole A first and parallelise over every block instead."""


def schedule_tiled(
    sch: Any, tiles: TileGemm, intrinsic: str, vector_out: bool, conv: bool, blockwise: bool,
    window: int = 0,
) -> None:  # fmt: skip
    """ "a" (with "pad" inlined into it), a k x k conv's (`window`: its padded channels, 0 for a
    1 x 1 conv or a MatMul) in runs of one window position's channels, so its index arithmetic is
    per position, not per element, vectorised; "acc" in blocks of the tile function, zeroed
    vectorised; the outputs (vectorised where channels last) right after each block when
    `blockwise`, else after all of them, parallel over their outer loops. Blockwise with
    ROW_BLOCKS row blocks or more: parallel over row blocks, each computing its A rows, then its
    column blocks; else A whole first (parallel over its rows), then every block in parallel."""
    sch.compute_inline(sch.get_sblock("ctab"))
    if conv:  # its channels-last copy read in place by the windows
        sch.compute_inline(sch.get_sblock("pad"))
    acc = sch.get_sblock("acc")
    p, o, r = sch.get_loops(acc)
    blocks = call_blocks(tiles, int(sch.get(p).extent))
    po, pi = sch.split(p, [None, tiles.rows * blocks])
    oo, oi = sch.split(o, [None, tiles.columns])
    sch.reorder(po, oo, pi, oi, r)
    out = sch.get_sblock("out")
    a = sch.get_sblock("a")
    if blockwise and int(sch.get(po).extent) * blocks >= ROW_BLOCKS:  # a row block's A, in cache, serves all
        block = po  # its column blocks
        sch.compute_at(a, po)
        sch.reverse_compute_at(out, oo)
    else:
        block = sch.fuse(po, oo)
        sch.parallel(sch.get_loops(a)[0])
        if blockwise:
            sch.reverse_compute_at(out, block)
        else:
            *outer, _ = sch.get_loops(out)
            if outer:
                sch.parallel(sch.fuse(*outer))
    sch.annotate(block, "pragma_import_llvm", tiles.window_import or tiles.llvm_import)
    columns = sch.get_loops(a)[-1]
    if conv and window:
        extent = int(sch.get(columns).extent)
        run = window if extent % window == 0 else math.gcd(window, LANES)
        channels = sch.split(columns, [None, run])[1]
        sch.vectorize(sch.split(channels, [None, LANES])[1] if run % LANES == 0 else channels)
    sch.parallel(block)
    if not tiles.window_import:  # a windowed call zeroes its C tiles itself
        init = sch.decompose_reduction(acc, pi)
        sch.vectorize(sch.get_loops(init)[-1])
    sch.tensorize(pi, intrinsic)
    inner = sch.get_loops(out)[-1]
    if vector_out and int(sch.get(inner).extent) % LANES == 0:
        sch.vectorize(sch.split(inner, [None, LANES])[1])
