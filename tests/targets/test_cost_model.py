"""The measured cost rule (targets/cost_model.py) and the dense conv's tile choice by it
(targets/lowering/conv_tiles.py): deterministic, keyed by target facts, never an unfit tile, and the
tiles it may pick compute what onnxruntime computes."""

from __future__ import annotations

import dataclasses

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper
from target_helpers import OneOp, relative_error, run_kernel

from targets import cost_model
from targets.cost_model import (
    TIE,
    TiledWork,
    cheapest,
    cost_table,
    measured_tables,
    nominal_table,
    predict_seconds,
    step_efficiency,
)
from targets.lowering.conv import lower_dense_conv
from targets.lowering.conv_geometry import Geometry
from targets.lowering.conv_tiles import DenseTile, choose_dense_tile, dense_tiles, legacy_tile
from targets.registry import get_target, resolve_target
from targets.schedules import GemmKnobs

TARGETS = [("x86", "sapphirerapids"), ("x86", "znver5"), ("x86", "haswell"), ("arm64", "neoverse-n1")]
# (x, w, stride, pads, group): the zoo's heavy shapes and the odd ones (1-D, grouped, few channels)
SHAPES = [
    ((1, 64, 56, 56), (64, 64, 3, 3), 1, [1, 1, 1, 1], 1),
    ((1, 3, 224, 224), (64, 3, 7, 7), 2, [3, 3, 3, 3], 1),
    ((1, 256, 14, 14), (256, 256, 1, 1), 1, [0, 0, 0, 0], 1),
    ((1, 32, 224, 224), (9, 32, 3, 3), 1, [1, 1, 1, 1], 1),
    ((1, 12, 28, 1), (20, 12, 5, 1), 1, [0, 0, 0, 0], 1),
    ((1, 64, 28, 28), (64, 16, 3, 3), 1, [1, 1, 1, 1], 4),
    ((1, 16, 8, 8), (24, 16, 1, 1), 1, [0, 0, 0, 0], 1),
    ((1, 384, 13, 13), (192, 384, 1, 1), 1, [0, 0, 0, 0], 1),  # 169 positions: padded flat tiles
    ((1, 1, 56, 56), (64, 1, 5, 5), 1, [2, 2, 2, 2], 1),  # ESPCN's stem: a broadcast per tile row
]


def conv_node(x_shape, w_shape, stride, pads, group, seed=0):  # type: ignore[no-untyped-def]
    g = OneOp(seed)
    x = g.input("x", x_shape)
    w, b = g.const("w", w_shape), g.const("b", (w_shape[0],))
    node = g.op("Conv", [x, w, b], "conv", strides=[stride] * 2, pads=pads, dilations=[1, 1], group=group)
    return g, node


def fits(g: Geometry, tile: DenseTile, registers: int) -> bool:
    """The module rule of conv_tiles, written out independently of `dense_tiles`."""
    mi, nb, lanes = tile.knobs.mi, tile.knobs.nb, tile.knobs.lanes
    # a short, overlapping kernel row keeps a broadcast per tile row live (conv_tiles.UNROLLED_ROW)
    broadcasts = mi if g.kw * g.cg <= 16 and g.stride[1] < g.kw else 1
    if nb % lanes or mi * (nb // lanes) + nb // lanes + broadcasts > registers:
        return False
    if tile.kind == "spatial":
        return (g.oh * g.ow if g.pointwise else g.ow) % nb == 0
    if tile.kind == "rows":
        return tile.owp % mi == 0 and tile.owp >= g.ow
    positions = g.oh * g.ow
    padded_plane = all(positions % r for r in (3, 4, 5, 6, 7, 8, 10, 12, 14))  # no tile height >= 3 divides
    return (positions % mi == 0 or padded_plane) and (tile.kind == "pointwise") == g.pointwise


@pytest.mark.parametrize("name, cpu", TARGETS)
@pytest.mark.parametrize("layout", ["NCHW", "NHWC"])
@pytest.mark.parametrize("shape", SHAPES)
def test_the_pick_is_deterministic_and_fits(name, cpu, layout, shape) -> None:
    target = resolve_target(name, cpu=cpu)
    _, node = conv_node(*shape)
    g = Geometry(node)
    pick = choose_dense_tile(g, layout, target)
    assert pick == choose_dense_tile(Geometry(node), layout, target)
    assert fits(g, pick, target.vector_registers)
    assert all(fits(g, t, target.vector_registers) for t in dense_tiles(g, layout, target))
    if cost_table(target).cpu == "nominal":
        assert pick == legacy_tile(g, layout, target)
    else:
        assert pick in dense_tiles(g, layout, target)


def test_tables_are_keyed_by_target_facts() -> None:
    """A measured table applies only to targets with its vector width and features; others get the
    nominal table (and so the hand rule's tiles)."""
    tables = measured_tables()
    assert tables, "targets/cost_tables/ holds no measured table"
    for name, cpu in TARGETS:
        target = resolve_target(name, cpu=cpu)
        table = cost_table(target)
        applies = [
            t for t in tables if t.vector_bytes == target.vector_bytes and t.requires <= target.features
        ]
        assert table == (applies[0] if applies else nominal_table(target))
    assert cost_table(resolve_target("arm64", cpu="neoverse-n1")).cpu == "nominal"
    assert cost_table(resolve_target("x86", cpu="haswell")).cpu == "nominal"


def test_the_layout_fact_comes_from_the_table() -> None:
    """`channels_last_dense` (the layout pass's fact) is what the target's table measured: NHWC tiles
    faster than NCHW vector rows; never set without a measured table."""
    for name, cpu in TARGETS:
        target = resolve_target(name, cpu=cpu)
        table = cost_table(target)
        nhwc = max((e for k, e in table.efficiency.items() if k.startswith("conv.NHWC.")), default=0.0)
        expected = nhwc > table.efficiency.get("conv.NCHW.spatial", float("inf"))
        assert get_target(name).facts(target).channels_last_dense == expected
        if table.cpu == "nominal":
            assert not expected


def test_prediction_follows_the_work() -> None:
    target = resolve_target("x86", cpu="sapphirerapids")
    table = cost_table(target)
    work = TiledWork("conv.rows", tiles=4096, depth=576, mi=6, vectors=4, lanes=16, flops=1)
    double = dataclasses.replace(work, tiles=2 * work.tiles)
    launch = table.launch_us * 1e-6
    one, two = predict_seconds(target, work, threads=1), predict_seconds(target, double, threads=1)
    assert two - launch == pytest.approx(2 * (one - launch))
    assert predict_seconds(target, work, threads=2) < one
    # a 1 x 1 tile waits on the FMA latency and its loads: a fraction of a 6 x 4 tile's rate
    assert step_efficiency(table, 1, 1) < step_efficiency(table, 6, 4)
    small = dataclasses.replace(work, mi=1, vectors=1, tiles=24 * work.tiles)  # the same multiply-adds
    assert cheapest(target, [("one", small), ("six", work)]) == "six"


def test_a_step_overhead_favours_tiles_of_more_multiply_adds_a_step() -> None:
    """Tiles that all reach the FMA bound on paper (4 x 3 and 8 x 3 vectors) differ by the fixed cost
    of a reduction step (`step_overhead`): the larger tile spreads it over twice the multiply-adds, so
    it reaches a larger share of the peak; without the overhead both reach all of it."""
    table = dataclasses.replace(nominal_table(resolve_target("x86", cpu="sapphirerapids")), step_overhead=1.0)
    assert step_efficiency(table, 4, 3) < step_efficiency(table, 8, 3) < 1.0
    flat = dataclasses.replace(table, step_overhead=0.0)
    assert step_efficiency(flat, 4, 3) == step_efficiency(flat, 8, 3) == 1.0


def test_a_tie_goes_to_the_fewest_bytes_streamed_then_the_fewest_tiles(monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """ResNet's 128-channel 3x3 conv at 28x28: its 4x64 and 14x32 row tiles both reach the FMA peak,
    so without a step overhead they predict the same time, but 14x32 streams less than half the bytes
    (fewer panel passes): it is the pick, whichever is listed first. (The measured table's step
    overhead also predicts it faster: see the test above.)"""
    target = resolve_target("x86", cpu="sapphirerapids")
    without = dataclasses.replace(cost_table(target), step_overhead=0.0)
    monkeypatch.setattr(cost_model, "cost_table", lambda _: without)
    rows = 28 * 28
    wide = TiledWork("conv.NHWC.rows", tiles=rows // 4 * 2, depth=1152, mi=4, vectors=4, lanes=16, flops=1)
    tall = TiledWork("conv.NHWC.rows", tiles=rows // 14 * 4, depth=1152, mi=14, vectors=2, lanes=16, flops=1)
    assert predict_seconds(target, wide) == pytest.approx(predict_seconds(target, tall), rel=TIE)
    assert cheapest(target, [("4x64", wide), ("14x32", tall)]) == "14x32"
    assert cheapest(target, [("14x32", tall), ("4x64", wide)]) == "14x32"
    # MobileNetV2's stem (27-deep panels stay in L1): 7x32 and 14x32 stream the same bytes; fewer tiles win
    short = TiledWork("conv.NHWC.rows", tiles=112 * 112 // 7, depth=27, mi=7, vectors=2, lanes=16, flops=1)
    long = dataclasses.replace(short, tiles=short.tiles // 2, mi=14)
    assert predict_seconds(target, short) == pytest.approx(predict_seconds(target, long), rel=TIE)
    assert cheapest(target, [("7x32", short), ("14x32", long)]) == "14x32"


def ort_conv(x: np.ndarray, w: np.ndarray, b: np.ndarray, stride: int, pads: list[int]) -> np.ndarray:
    node = helper.make_node("Conv", ["x", "w", "b"], ["y"], strides=[stride] * 2, pads=pads)
    graph = helper.make_graph(
        [node],
        "conv",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, list(x.shape))],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(w, "w"), numpy_helper.from_array(b, "b")],
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"x": x})[0]


SMALL = ((1, 8, 6, 20), (24, 8, 3, 3), 1, [1, 1, 1, 1], 1)
STRIDED = ((1, 8, 9, 9), (40, 8, 3, 3), 2, [1, 1, 1, 1], 1)
POINTWISE = ((1, 16, 6, 6), (40, 16, 1, 1), 1, [0, 0, 0, 0], 1)
ROWS32 = ((1, 6, 5, 32), (20, 6, 3, 3), 1, [1, 1, 1, 1], 1)


@pytest.mark.parametrize(
    "layout, shape, tile",
    [
        (
            "NHWC",
            ((1, 8, 6, 20), (24, 8, 3, 3), 1, [1, 1, 1, 1], 1),
            DenseTile("rows", GemmKnobs(14, 16, 16), 28),
        ),
        (
            "NHWC",
            ((1, 8, 6, 20), (24, 8, 3, 3), 1, [1, 1, 1, 1], 1),
            DenseTile("flat", GemmKnobs(12, 32, 16), 20),
        ),
        (
            "NHWC",
            ((1, 8, 9, 9), (40, 8, 3, 3), 2, [1, 1, 1, 1], 1),
            DenseTile("rows", GemmKnobs(6, 48, 16), 6),
        ),
        (
            "NHWC",
            ((1, 16, 6, 6), (40, 16, 1, 1), 1, [0, 0, 0, 0], 1),
            DenseTile("pointwise", GemmKnobs(12, 32, 16), 6),
        ),
        (
            "NCHW",
            ((1, 6, 5, 32), (20, 6, 3, 3), 1, [1, 1, 1, 1], 1),
            DenseTile("spatial", GemmKnobs(14, 32, 16), 32),
        ),
        (
            "NCHW",
            ((1, 6, 5, 32), (20, 6, 3, 3), 1, [1, 1, 1, 1], 1),
            DenseTile("rows", GemmKnobs(8, 16, 16), 32),
        ),
    ],
)
def test_tiles_match_onnxruntime(layout, shape, tile) -> None:
    """Tiles beyond the hand rule's (tall rows, padded rows, wide panels over few channels)."""
    target = resolve_target("x86")
    if target.vector_lanes_f32 != 16:
        pytest.skip("the tiles are written for 16-lane (AVX-512) hosts")
    g, node = conv_node(*shape, seed=3)
    assert tile in dense_tiles(Geometry(node), layout, target)
    x = g.feeds["x"]
    consts = g.constants()
    feeds = {"x": x.transpose(0, 2, 3, 1) if layout == "NHWC" else x}
    got = run_kernel(lower_dense_conv(node, target, (), layout, tile), feeds, consts, target)
    want = ort_conv(x, consts["w"], consts["b"], shape[2], shape[3])
    n, c, h, w = want.shape
    got = got.reshape(n, h, w, c).transpose(0, 3, 1, 2) if layout == "NHWC" else got.reshape(want.shape)
    assert relative_error(got, want) <= 1e-5
