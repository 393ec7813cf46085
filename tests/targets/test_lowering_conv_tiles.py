"""The conv templates' shape-dependent tilings, against the IR op's numpy reference (rel err <= 1e-5).

Dense NCHW conv vectorises along output rows or the plane when they are whole
vectors ("spatial"), else tiles over whole output rows, over the flattened plane (narrow rows,
1-D convs such as magika's 5x1) or as a plain GEMM (pointwise 1x1); depthwise
rows whose width no vector divides are computed padded to whole vectors. Each
case carries an epilogue that reads a full-size operand, so the flattened
index is checked on the epilogue side too.
"""

from __future__ import annotations

import numpy as np
import pytest
from target_helpers import OneOp, relative_error, run_kernel

from targets.lowering.dispatch import lower_node
from targets.registry import resolve_target

TOLERANCE = 1e-5


@pytest.fixture(scope="module")
def target():
    return resolve_target("x86")


def check(g: OneOp, nodes, target, layout: str = "NCHW") -> None:
    """As test_lowering.check, but the output may be a flattened view ((n, c, h*w) or (n, h*w, c))."""
    kernel = lower_node(nodes[0], target, nodes[1:], layout=layout)
    nhwc = layout == "NHWC"
    feeds = {k: v.transpose(0, 2, 3, 1) if nhwc and v.ndim == 4 else v for k, v in g.feeds.items()}
    got = run_kernel(kernel, feeds, g.constants(), target)
    want = g.reference(nodes)
    n, c, h, w = want.shape
    got = got.reshape(n, h, w, c).transpose(0, 3, 1, 2) if nhwc else got.reshape(want.shape)
    assert np.abs(want).max() > 0
    assert relative_error(got, want) <= TOLERANCE


def conv_residual(g: OneOp, x_shape, w_shape, pads, stride=1, group=1):
    x = g.input("x", x_shape)
    w, b = g.const("w", w_shape), g.const("b", (w_shape[0],))
    c = g.op("Conv", [x, w, b], "conv", strides=[stride, stride], pads=pads, dilations=[1, 1], group=group)
    skip = g.input("skip", c.results[0].type.shape)
    add = g.op("Add", [c.results[0], skip], "residual")
    act = g.op("HardSwish", [add.results[0]], "hswish")
    return [c, add, act]


@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize(
    "x_shape, w_shape, pads",
    [
        ((1, 12, 28, 1), (20, 12, 5, 1), [0, 0, 0, 0]),  # 1-D conv along H: ow = 1, flat tile
        ((1, 8, 14, 14), (24, 8, 3, 3), [1, 1, 1, 1]),  # 14-wide rows: flat tile over 196 positions
        ((1, 16, 6, 6), (40, 16, 1, 1), [0, 0, 0, 0]),  # pointwise: a GEMM over 36 positions
        ((1, 16, 8, 8), (24, 16, 1, 1), [0, 0, 0, 0]),  # NCHW spatial: 64 positions as vectors
        ((1, 6, 9, 32), (20, 6, 3, 3), [1, 1, 1, 1]),  # NCHW spatial: 32-wide rows as vectors
        ((1, 5, 10, 32), (12, 5, 3, 3), [0, 1, 2, 1]),  # NCHW spatial, asymmetric pads
    ],
)
def test_dense_conv_tiles(target, layout, x_shape, w_shape, pads) -> None:
    g = OneOp(11)
    check(g, conv_residual(g, x_shape, w_shape, pads), target, layout)


@pytest.mark.parametrize("hw, k, stride", [(14, 5, 1), (14, 3, 2), (7, 5, 1), (28, 3, 1), (20, 3, 1)])
def test_depthwise_padded_rows(target, hw, k, stride) -> None:
    g = OneOp(12)
    nodes = conv_residual(g, (1, 8, hw, hw), (8, 1, k, k), [k // 2] * 4, stride=stride, group=8)
    check(g, nodes, target)


@pytest.mark.parametrize("x_shape, w_shape", [((1, 3, 20, 64), (16, 3, 3, 3)), ((1, 4, 9, 63), (8, 4, 3, 3))])
def test_strided_spatial_conv(target, x_shape, w_shape) -> None:
    """Column stride 2 on the spatial tile: the input is phase-split (even and odd input widths)."""
    g = OneOp(13)
    check(g, conv_residual(g, x_shape, w_shape, [1, 1, 1, 1], stride=2), target)


@pytest.mark.parametrize(
    "x_shape, w_shape, pads, kind, bands",
    [
        ((1, 16, 8, 8), (40, 16, 1, 1), [0, 0, 0, 0], "pointwise", 4),  # 64 positions: 4 bands of tiles
        ((1, 8, 6, 10), (24, 8, 3, 3), [1, 1, 1, 1], "rows", 2),  # 6 output rows: 2 bands of 3
        ((1, 8, 4, 6), (72, 8, 3, 3), [1, 1, 1, 1], "flat", 4),  # 24 positions, a partial last panel
        ((1, 8, 7, 10), (24, 8, 3, 3), [1, 1, 1, 1], "rows", 1),  # 7 rows: no even bands, panels outermost
    ],
)
def test_channels_last_row_bands(target, x_shape, w_shape, pads, kind, bands) -> None:
    """x86 splits a channels-last conv's tiles into even bands of rows (each thread writes whole bands):
    4, or 2 where 4 do not divide the rows, else none; every output is written once either way."""
    from targets.lowering.conv import lower_dense_conv
    from targets.lowering.conv_geometry import Geometry
    from targets.lowering.conv_tiles import dense_tiles

    g = OneOp(14)
    nodes = conv_residual(g, x_shape, w_shape, pads)
    tile = next(t for t in dense_tiles(Geometry(nodes[0]), "NHWC", target) if t.kind == kind)
    kernel = lower_dense_conv(nodes[0], target, nodes[1:], "NHWC", tile)
    assert kernel.workload.get("bands", 1) == bands
    got = run_kernel(kernel, {k: v.transpose(0, 2, 3, 1) for k, v in g.feeds.items()}, g.constants(), target)
    want = g.reference(nodes)
    n, c, h, w = want.shape
    assert relative_error(got.reshape(n, h, w, c).transpose(0, 3, 1, 2), want) <= TOLERANCE


@pytest.mark.parametrize(
    "x_shape, w_shape, pads, kind",
    [
        ((1, 16, 13, 13), (40, 16, 1, 1), [0, 0, 0, 0], "pointwise"),  # 169 positions: no height >= 3 divides
        ((1, 8, 13, 13), (24, 8, 3, 3), [1, 1, 1, 1], "flat"),
    ],
)
def test_padded_flat_tiles(target, x_shape, w_shape, pads, kind) -> None:
    """A plane no tile height of at least 3 divides takes taller tiles padded to whole tiles (their
    padded positions read the last one again and are never stored): every such fitting tile matches."""
    from targets.lowering.conv import lower_dense_conv
    from targets.lowering.conv_geometry import Geometry
    from targets.lowering.conv_tiles import dense_tiles

    g = OneOp(15)
    nodes = conv_residual(g, x_shape, w_shape, pads)
    geometry = Geometry(nodes[0])
    positions = geometry.oh * geometry.ow
    tiles = [t for t in dense_tiles(geometry, "NHWC", target) if t.kind == kind and positions % t.knobs.mi]
    assert {t.knobs.mi for t in tiles} >= {4, 8}
    feeds = {k: v.transpose(0, 2, 3, 1) for k, v in g.feeds.items()}
    want = g.reference(nodes)
    n, c, h, w = want.shape
    for tile in {t.knobs.mi: t for t in tiles}.values():  # one tile per height
        kernel = lower_dense_conv(nodes[0], target, nodes[1:], "NHWC", tile)
        got = run_kernel(kernel, feeds, g.constants(), target)
        assert relative_error(got.reshape(n, h, w, c).transpose(0, 3, 1, 2), want) <= TOLERANCE
