"""Calibration statistics: save/load round trip, resuming observers, and refusing stats of another graph."""

from __future__ import annotations

import numpy as np
import pytest

from hai_compiler.quantize import CalibrationStats, StatsError, calibrate
from ir import Builder, DType, Graph, TensorType


def small_graph(width: int = 4, name: str = "small") -> Graph:
    graph = Graph(name)
    x = graph.add_input("x", TensorType(DType.F32, (1, width)))
    (y,) = Builder(graph).op("Relu", [x], name="y")
    (z,) = Builder(graph).op("Neg", [y], name="z")
    graph.set_outputs([z])
    return graph


def feeds(width: int = 4, count: int = 5) -> list[dict[str, np.ndarray]]:
    rng = np.random.default_rng(0)
    return [{"x": rng.standard_normal((1, width)).astype(np.float32)} for _ in range(count)]


@pytest.mark.parametrize("observer", ["minmax", "percentile", "mse", "entropy"])
def test_save_load_round_trip(tmp_path, observer):
    graph = small_graph()
    stats = calibrate(graph, feeds(), observer, progress=False)
    loaded = CalibrationStats.load(stats.save(tmp_path / "stats.npz"))
    assert loaded.ranges == stats.ranges and loaded.shapes == stats.shapes
    assert (loaded.observer, loaded.options, loaded.samples) == (observer, stats.options, 5)
    loaded.check_graph(graph)
    for name in stats.ranges:
        assert loaded.observer_for(name).range() == stats.ranges[name]


def test_ranges_are_the_data_min_max():
    data = feeds()
    stats = calibrate(small_graph(), data, progress=False)
    x = np.stack([f["x"] for f in data])
    assert stats["x"] == (float(x.min()), float(x.max()))
    assert stats["y"] == (0.0, float(x.max()))
    assert stats["z"] == (-float(x.max()), 0.0)


def test_stats_of_another_graph_are_refused(tmp_path):
    stats = CalibrationStats.load(calibrate(small_graph(), feeds(), progress=False).save(tmp_path / "s.npz"))
    other = small_graph()
    other.rename(other.value("y"), "y2")
    with pytest.raises(StatsError, match=r"lack 1 value\(s\) of graph 'small': %y2"):
        stats.check_graph(other)
    with pytest.raises(StatsError, match=r"saw %x with shape \[1, 4\], graph 'small' has \[1, 6\]"):
        stats.check_graph(small_graph(width=6))
    with pytest.raises(StatsError, match="no calibration statistics for value %y2"):
        stats.range("y2")


def test_unreadable_stats_files(tmp_path):
    with pytest.raises(StatsError, match="no such file"):
        CalibrationStats.load(tmp_path / "missing.npz")
    np.savez(tmp_path / "other.npz", a=np.zeros(2))
    with pytest.raises(StatsError, match="not a statistics file"):
        CalibrationStats.load(tmp_path / "other.npz")
