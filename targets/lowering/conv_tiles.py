"""The dense conv's register tiles: which tiles fit a conv (`dense_tiles`), the hand rule's tile
(`legacy_tile`), and each tile as the GEMM the cost rule prices (`tile_gemm`).

Rule: a tile is a kind (conv.py's module rule: "spatial", "rows", "flat", "pointwise"), an `mi` x `nb`
register tile (GemmKnobs) and the columns a "rows" tile computes per output row (`owp`, padded to whole
tiles). A tile fits when its accumulators, its `nb / lanes` panel loads and one broadcast fit the
vector registers, its rows divide the GEMM rows it tiles (a "rows" tile may pad the row; a "flat" or
"pointwise" tile pads the plane to whole tiles where no height of at least MIN_TILE_ROWS divides it:
13x13 = 169 positions would otherwise take 1-position tiles that re-read every weight panel per
position), and for "spatial" its columns divide the row (or the plane) and the rows are whole vectors.
Which fitting tile a conv gets is the cost rule's choice (targets/cost_model.py, via `choose_dense_tile`).
"""

from __future__ import annotations

from dataclasses import dataclass

from targets.cost_model import TiledWork, cheapest, cost_table
from targets.lowering.conv_geometry import Geometry
from targets.lowering.tiling import choose_knobs, padded
from targets.schedules import MAX_GEMM_VECTORS, ROW_PREFERENCE, GemmKnobs
from targets.target import TargetDescription

MIN_TILE_ROWS = 3
"""A "rows" tile of fewer output positions (the row width's best divisor) re-reads each weight panel
too often: the row is computed padded to whole tiles of ROW_PREFERENCE[0] positions instead (an
STFT conv's 247 columns: 4-position tiles, not 1)."""
TILE_ROWS = (1, 2, 3, 4, 5, 6, 7, 8, 10, 12, 14)
"""Register-tile row counts the candidates take (those the registers allow)."""


@dataclass(frozen=True)
class DenseTile:
    """One way to tile a dense conv: `kind`, the register tile `knobs`, `owp` columns per row."""

    kind: str
    knobs: GemmKnobs
    owp: int

    @property
    def name(self) -> str:
        pad = f"/w{self.owp}" if self.kind == "rows" else ""
        return f"{self.kind}:{self.knobs.mi}x{self.knobs.nb}{pad}"

    def flat_positions(self, g: Geometry) -> int:
        """The positions a "flat" or "pointwise" tile computes: the plane, padded to whole tiles
        (the padded ones read the last position again and are never stored)."""
        return padded(g.oh * g.ow, self.knobs.mi)


def row_rank(rows: int) -> int:
    """How good a register tile `rows` output positions allow (lower is better, ROW_PREFERENCE order)."""
    return next(k for k, r in enumerate(ROW_PREFERENCE) if rows % r == 0)


def tile_kind(g: Geometry, layout: str, lanes: int) -> str:
    """The hand rule's kind ("spatial", "pointwise", "flat" or "rows"; see conv.py's module rule)."""
    if spatial_fits(g, layout, lanes):
        return "spatial"
    if g.pointwise:
        return "pointwise"
    return "flat" if row_rank(g.ow) > row_rank(g.oh * g.ow) else "rows"


def spatial_fits(g: Geometry, layout: str, lanes: int) -> bool:
    return layout == "NCHW" and spatial_columns(g) % lanes == 0


def spatial_columns(g: Geometry) -> int:
    return g.oh * g.ow if g.pointwise else g.ow


def legacy_tile(g: Geometry, layout: str, target: TargetDescription) -> DenseTile:
    """The hand rule's tile: the kind by `tile_kind`, the knobs by the register-budget rule (the
    fallback where a target has no cost rule, and the baseline bench/kernels.py reports)."""
    kind = tile_kind(g, layout, target.vector_lanes_f32)
    if kind == "spatial":
        return DenseTile(kind, choose_knobs(target, g.mg, spatial_columns(g)), g.ow)
    flat_out = kind in ("pointwise", "flat")
    knobs = choose_knobs(target, g.oh * g.ow if flat_out else g.ow, g.mg)
    owp = g.ow
    if kind == "rows" and knobs.mi < MIN_TILE_ROWS:  # pad the row to whole tiles of the best height
        owp = padded(g.ow, ROW_PREFERENCE[0])
        knobs = choose_knobs(target, owp, g.mg)
    return DenseTile(kind, knobs, owp)


def flat_rows_fit(positions: int, mi: int) -> bool:
    """Whether `mi`-position tiles fit a plane of `positions` (module rule): `mi` divides it, or no
    height of at least MIN_TILE_ROWS does (then the plane is padded to whole tiles)."""
    return positions % mi == 0 or not any(positions % r == 0 for r in TILE_ROWS if r >= MIN_TILE_ROWS)


UNROLLED_ROW = 16
"""A kernel row whose whole reduction (kw x C/group steps) is at most this many steps is unrolled by
LLVM; where its columns overlap (stride below kw), the input broadcast for one column is the next
position's for the column after it, and LLVM keeps it in a register: such a tile holds a broadcast
per row, not one (ESPCN's 5x5 stem over one channel: a 14 x 32 tile spilled and ran 1.6x slower
than a 4 x 64 one)."""


def broadcast_registers(g: Geometry, mi: int) -> int:
    """The vector registers a tile of `mi` rows holds for its broadcasts (UNROLLED_ROW)."""
    shared = g.kw * g.cg <= UNROLLED_ROW and g.stride[1] < g.kw
    return mi if shared else 1


def register_fit(target: TargetDescription, mi: int, vectors: int, broadcasts: int = 1) -> bool:
    return mi * vectors + vectors + broadcasts <= target.vector_registers


def dense_tiles(g: Geometry, layout: str, target: TargetDescription) -> list[DenseTile]:
    """Every tile that fits the conv (the module rule), in a fixed order."""
    lanes = target.vector_lanes_f32
    tiles: list[DenseTile] = []
    vectors = range(1, MAX_GEMM_VECTORS + 1)
    if spatial_fits(g, layout, lanes):
        columns = spatial_columns(g)
        for mi in TILE_ROWS:
            for v in vectors:
                fit = register_fit(target, mi, v, broadcast_registers(g, mi))
                if fit and columns % (v * lanes) == 0 and mi <= padded(g.mg, 1):
                    tiles.append(DenseTile("spatial", GemmKnobs(mi, v * lanes, lanes), g.ow))
    channel_vectors = -(-g.mg // lanes)
    row_kinds = ("pointwise",) if g.pointwise else ("flat", "rows")
    for kind in row_kinds:
        for mi in TILE_ROWS:
            for v in vectors:
                if not register_fit(target, mi, v, broadcast_registers(g, mi)) or v > channel_vectors:
                    continue
                knobs = GemmKnobs(mi, v * lanes, lanes)
                if kind == "rows":
                    owp = padded(g.ow, mi)
                    if owp - g.ow < mi and owp <= 2 * g.ow:  # at most one padded tile per row
                        tiles.append(DenseTile(kind, knobs, owp))
                elif flat_rows_fit(g.oh * g.ow, mi):
                    tiles.append(DenseTile(kind, knobs, g.ow))
    return tiles


def tile_work(g: Geometry, tile: DenseTile, layout: str) -> TiledWork:
    """The GEMM `tile` computes for `g` in `layout`, as the cost rule prices it (padded tiles counted;
    the template key "conv.LAYOUT.KIND")."""
    mi, nb, lanes = tile.knobs.mi, tile.knobs.nb, tile.knobs.lanes
    if tile.kind == "spatial":
        columns = spatial_columns(g)
        per_plane = 1 if g.pointwise else g.oh
        tiles = g.n * g.group * per_plane * (padded(g.mg, mi) // mi) * (columns // nb)
    else:
        rows = g.oh * tile.owp if tile.kind == "rows" else g.oh * g.ow
        tiles = g.n * g.group * -(-rows // mi) * (padded(g.mg, nb) // nb)
    flops = 2 * g.n * g.m * g.oh * g.ow * g.cg * g.kh * g.kw
    return TiledWork(f"conv.{layout}.{tile.kind}", tiles, g.cg * g.kh * g.kw, mi, nb // lanes, lanes, flops)


def choose_dense_tile(g: Geometry, layout: str, target: TargetDescription) -> DenseTile:
    """The fitting tile the target's measured cost rule predicts fastest; the hand rule's
    (`legacy_tile`) where no table was measured for the target's class."""
    if cost_table(target).cpu == "nominal":
        return legacy_tile(g, layout, target)
    return cheapest(target, [(tile, tile_work(g, tile, layout)) for tile in dense_tiles(g, layout, target)])
