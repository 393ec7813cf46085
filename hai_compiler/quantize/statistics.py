"""Calibration statistics: each observed value's clipping range and observer state, saved and reused.

Rule: `CalibrationStats` maps a value name (as the graph after the default
pipeline names it) to its float range `(lo, hi)`, and keeps each observer's state
so the observers can be resumed (`observer_for`). The file is one `.npz`: a
`meta` JSON string (format version, observer name and options, sample count,
value names, shapes and ranges) plus the state arrays as `state.<index>.<key>`.
`check_graph` refuses statistics that miss a value the graph would calibrate,
naming the values, or that saw a value with another shape.
"""

from __future__ import annotations

import dataclasses
import json
import zipfile
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from hai_compiler.quantize.observers import Observer, restore_observer
from ir import Graph, HaiError, Value

FORMAT = "hai-calibration-stats"
VERSION = 1


class StatsError(HaiError):
    """Statistics that cannot be read, or that do not fit the graph they are used with."""


def observed_values(graph: Graph) -> list[Value]:
    """The values calibration observes: float graph inputs and float node results, in graph order."""
    values = list(graph.inputs) + [r for node in graph.nodes for r in node.results]
    return [v for v in values if v.type.dtype.is_float]


@dataclasses.dataclass
class CalibrationStats:
    """Per-value clipping ranges from one calibration run, with the observer states behind them."""

    observer: str
    options: dict[str, Any]
    samples: int
    ranges: dict[str, tuple[float, float]]
    shapes: dict[str, tuple[int, ...]]
    states: dict[str, dict[str, np.ndarray]]

    def __getitem__(self, name: str) -> tuple[float, float]:
        return self.range(name)

    def __contains__(self, name: object) -> bool:
        return name in self.ranges

    def range(self, name: str) -> tuple[float, float]:
        try:
            return self.ranges[name]
        except KeyError:
            raise StatsError(f"no calibration statistics for value %{name}") from None

    def observer_for(self, name: str) -> Observer:
        """The observer of `name` as calibration left it (to resume or to re-derive its range)."""
        self.range(name)
        return restore_observer(self.observer, self.states[name], self.options)

    @classmethod
    def from_observers(
        cls, observer: str, options: Mapping[str, Any], samples: int, observers: Mapping[Value, Observer]
    ) -> CalibrationStats:
        return cls(
            observer=observer,
            options=dict(options),
            samples=samples,
            ranges={v.name: tuple(float(x) for x in o.range()) for v, o in observers.items()},  # type: ignore[misc]
            shapes={v.name: v.type.shape for v in observers},
            states={v.name: o.state() for v, o in observers.items()},
        )

    def check_graph(self, graph: Graph) -> None:
        """Raise `StatsError` unless every value `graph` calibrates has statistics of its shape."""
        wanted = observed_values(graph)
        missing = [v.name for v in wanted if v.name not in self.ranges]
        if missing:
            shown = ", ".join(f"%{n}" for n in missing[:10]) + (" ..." if len(missing) > 10 else "")
            raise StatsError(
                f"the calibration statistics lack {len(missing)} value(s) of graph '{graph.name}': {shown}; "
                "they were collected on another model or pipeline — calibrate this graph again"
            )
        for value in wanted:
            if self.shapes[value.name] != value.type.shape:
                raise StatsError(
                    f"the calibration statistics saw %{value.name} with shape "
                    f"{list(self.shapes[value.name])}, "
                    f"graph '{graph.name}' has {list(value.type.shape)}; calibrate with the same input shapes"
                )

    def save(self, path: str | Path) -> Path:
        """Write the statistics to `path` (an `.npz`) and return the path."""
        path = Path(path)
        names = list(self.ranges)
        meta = {
            "format": FORMAT, "version": VERSION, "observer": self.observer, "options": self.options,
            "samples": self.samples, "names": names,
            "ranges": [list(self.ranges[n]) for n in names], "shapes": [list(self.shapes[n]) for n in names],
        }  # fmt: skip
        arrays = {
            f"state.{i}.{key}": array
            for i, name in enumerate(names)
            for key, array in self.states[name].items()
        }
        with path.open("wb") as stream:
            np.savez_compressed(stream, meta=np.array(json.dumps(meta)), **arrays)  # type: ignore[arg-type]
        return path

    @classmethod
    def load(cls, path: str | Path) -> CalibrationStats:
        """Read statistics written by `save`."""
        path = Path(path)
        if not path.is_file():
            raise StatsError(f"calibration statistics {path}: no such file")
        try:
            with np.load(path, allow_pickle=False) as data:
                meta = json.loads(str(data["meta"]))
                arrays = {key: data[key] for key in data.files if key != "meta"}
        except (OSError, ValueError, KeyError, zipfile.BadZipFile) as exc:
            raise StatsError(f"calibration statistics {path}: not a statistics file ({exc})") from None
        if meta.get("format") != FORMAT or meta.get("version") != VERSION:
            raise StatsError(
                f"calibration statistics {path}: format {meta.get('format')} v{meta.get('version')}, "
                f"this HAI reads {FORMAT} v{VERSION}; calibrate again"
            )
        names = meta["names"]
        states: dict[str, dict[str, np.ndarray]] = {name: {} for name in names}
        for key, array in arrays.items():
            _, index, field = key.split(".", 2)
            states[names[int(index)]][field] = array
        return cls(
            observer=meta["observer"],
            options=meta["options"],
            samples=meta["samples"],
            ranges={n: (float(r[0]), float(r[1])) for n, r in zip(names, meta["ranges"])},
            shapes={n: tuple(s) for n, s in zip(names, meta["shapes"])},
            states=states,
        )
