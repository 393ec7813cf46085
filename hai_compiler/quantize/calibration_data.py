"""Calibration data: an `.npz`, a directory of `.npz` files or an iterable of feed dicts, as checked feeds.

Rule: everything is checked against the graph's inputs before calibration
starts — names, shapes, dtypes, at least one sample — so a long run never fails
halfway; each problem is a `CalibrationDataError` naming the file and input and
saying what to change. An `.npz` array of input `x` (static shape [B, ...])
holds its samples either stacked on a new leading axis, (S, B, ...), or
concatenated along the batch axis, (S*B, ...): the rank tells which. Files are
checked from their array headers and read lazily, one at a time. Floats may
come as any float dtype and integers as any integer dtype (cast to the model's);
other kinds are an error. `subsample` is deterministic: with a seed, a seeded
random subset kept in the set's order; without, the first samples.
"""

from __future__ import annotations

import zipfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from itertools import islice
from pathlib import Path
from typing import Any, Union

import numpy as np

from ir import DType, Graph, HaiError, TensorType

Feed = dict[str, np.ndarray]
CalibrationSource = Union[str, Path, "CalibrationData", Iterable[Mapping[str, Any]]]


class CalibrationDataError(HaiError):
    """Calibration data that does not fit the model: names, shapes, dtypes, no samples, missing files."""


def graph_input_types(graph: Graph | Mapping[str, TensorType]) -> dict[str, TensorType]:
    """The model's inputs by name, in order (from a graph or a name -> type mapping)."""
    if isinstance(graph, Graph):
        return {v.name: v.type for v in graph.inputs}
    return dict(graph)


def check_names(where: str, given: Iterable[str], inputs: Mapping[str, TensorType]) -> None:
    given_set, expected = set(given), list(inputs)
    missing = [n for n in expected if n not in given_set]
    unknown = sorted(given_set - set(expected))
    if missing or unknown:
        parts = [f"missing {missing}"] if missing else []
        parts += [f"unknown {unknown}"] if unknown else []
        raise CalibrationDataError(
            f"{where}: the arrays are named {sorted(given_set)} but the model's inputs are {expected} "
            f"({'; '.join(parts)}); name each array after the model input it feeds"
        )


def check_dtype(where: str, name: str, given: np.dtype, want: DType) -> None:
    if given == want.numpy:
        return
    float_ok = given.kind == "f" and want.is_float
    integer_ok = given.kind in "iu" and want.is_integer
    if not (float_ok or integer_ok):
        kind = "float" if want.is_float else "boolean" if want == DType.BOOL else "integer"
        raise CalibrationDataError(
            f"{where}: input '{name}' is {given}, the model expects {want}: give {kind} data for '{name}'"
        )


def batch_layout(where: str, name: str, shape: tuple[int, ...], want: tuple[int, ...]) -> tuple[int, int]:
    """(samples, rows per sample) of an array for input shape `want`; rows 0 means stacked on a new axis."""
    if len(shape) == len(want) + 1 and shape[1:] == want:
        return shape[0], 0
    if want and len(shape) == len(want) and shape[1:] == want[1:] and want[0] > 0 and shape[0] % want[0] == 0:
        return shape[0] // want[0], want[0]
    stacked = f"(S, {', '.join(map(str, want))})"
    concatenated = f"(S*{want[0]}, {', '.join(map(str, want[1:]))})" if want else None
    raise CalibrationDataError(
        f"{where}: input '{name}' has shape {list(shape)}, which does not fit the model's input shape "
        f"{list(want)}; give samples stacked on a new leading axis {stacked}"
        + (f" or concatenated along the batch axis {concatenated}" if concatenated else "")
    )


def take_sample(array: np.ndarray, index: int, rows: int) -> np.ndarray:
    return array[index] if rows == 0 else array[index * rows : (index + 1) * rows]


def npz_headers(path: Path) -> dict[str, tuple[tuple[int, ...], np.dtype]]:
    """Shape and dtype of every array in an `.npz`, read from the array headers (no data is read)."""
    headers = {}
    readers = {(1, 0): np.lib.format.read_array_header_1_0, (2, 0): np.lib.format.read_array_header_2_0}
    try:
        with zipfile.ZipFile(path) as archive:
            for member in archive.namelist():
                name = member.removesuffix(".npy")
                with archive.open(member) as stream:
                    version = np.lib.format.read_magic(stream)
                    if version in readers:
                        shape, _, dtype = readers[version](stream)
                    else:
                        array = np.load(path, allow_pickle=False)[name]
                        shape, dtype = array.shape, array.dtype
                headers[name] = (tuple(int(d) for d in shape), np.dtype(dtype))
    except (OSError, ValueError, zipfile.BadZipFile) as exc:
        raise CalibrationDataError(f"{path}: not a readable .npz file ({exc})") from None
    return headers


class NpzSamples:
    """The samples of one `.npz` file (checked from its headers; arrays read on iteration)."""

    def __init__(self, path: Path, inputs: Mapping[str, TensorType]) -> None:
        self.path, self.inputs = path, inputs
        headers = npz_headers(path)
        check_names(str(path), headers, inputs)
        layouts = {}
        for name, want in inputs.items():
            shape, dtype = headers[name]
            check_dtype(str(path), name, dtype, want.dtype)
            layouts[name] = batch_layout(str(path), name, shape, want.shape)
        counts = {name: samples for name, (samples, _) in layouts.items()}
        if len(set(counts.values())) > 1:
            raise CalibrationDataError(
                f"{path}: the inputs hold different numbers of samples {counts}; give every input "
                "the same number of samples"
            )
        self.count = next(iter(counts.values()), 0)
        self.rows = {name: rows for name, (_, rows) in layouts.items()}

    def feeds(self, indices: np.ndarray) -> Iterator[Feed]:
        if not len(indices):
            return
        with np.load(self.path, allow_pickle=False) as data:
            arrays = {name: data[name] for name in self.inputs}
        for i in indices:
            yield {
                name: take_sample(arrays[name], int(i), self.rows[name]).astype(want.dtype.numpy, copy=False)
                for name, want in self.inputs.items()
            }

    def sample_name(self, index: int) -> str:
        return f"{self.path} sample {index}"


class FeedSamples:
    """Samples given as feed dicts from Python, each checked and cast when it is read in."""

    def __init__(self, feeds: Iterable[Any], inputs: Mapping[str, TensorType], limit: int | None) -> None:
        self.samples: list[Feed] = [
            self.checked(i, feed, inputs) for i, feed in enumerate(islice(feeds, limit))
        ]
        self.count = len(self.samples)

    @staticmethod
    def checked(index: int, feed: Any, inputs: Mapping[str, TensorType]) -> Feed:
        where = f"calibration sample {index}"
        if not isinstance(feed, Mapping):
            raise CalibrationDataError(
                f"{where} is a {type(feed).__name__}; give each sample as a dict {{input name: array}}"
            )
        check_names(where, feed, inputs)
        checked = {}
        for name, want in inputs.items():
            array = np.asarray(feed[name])
            if tuple(array.shape) != want.shape:
                raise CalibrationDataError(
                    f"{where}: input '{name}' has shape {list(array.shape)}, the model expects "
                    f"{list(want.shape)}; give one sample of exactly that shape per dict"
                )
            check_dtype(where, name, array.dtype, want.dtype)
            checked[name] = array.astype(want.dtype.numpy, copy=False)
        return checked

    def feeds(self, indices: np.ndarray) -> Iterator[Feed]:
        return (self.samples[int(i)] for i in indices)

    @staticmethod
    def sample_name(index: int) -> str:
        return f"sample {index}"


Chunk = NpzSamples | FeedSamples


class CalibrationData:
    """A checked, re-iterable calibration set: `len()` samples, each a feed dict in model input order."""

    def __init__(
        self, inputs: Mapping[str, TensorType], chunks: Sequence[Chunk], selected: np.ndarray | None = None
    ) -> None:
        self.inputs = dict(inputs)
        self.chunks = list(chunks)
        total = sum(chunk.count for chunk in self.chunks)
        self.selected = np.arange(total) if selected is None else np.asarray(selected, np.int64)
        if len(self.selected) == 0:
            raise CalibrationDataError(
                "the calibration set is empty; give at least one sample for inputs " + str(list(self.inputs))
            )

    def __len__(self) -> int:
        return len(self.selected)

    def __iter__(self) -> Iterator[Feed]:
        return (feed for _, feed in self.named())

    def named(self) -> Iterator[tuple[str, Feed]]:
        """The samples with where each comes from (`cal.npz sample 3`, or `sample 3` of feed dicts)."""
        start = 0
        for chunk in self.chunks:
            local = self.selected[(self.selected >= start) & (self.selected < start + chunk.count)] - start
            yield from zip((chunk.sample_name(int(i)) for i in local), chunk.feeds(local))
            start += chunk.count

    def subsample(self, max_samples: int | None, seed: int | None = 0) -> CalibrationData:
        """At most `max_samples` samples: a subset drawn with `seed` (kept in order), or the first ones."""
        if max_samples is None or max_samples >= len(self):
            return self
        check_max_samples(max_samples)
        if seed is None:
            chosen = self.selected[:max_samples]
        else:
            rng = np.random.default_rng(seed)
            chosen = self.selected[np.sort(rng.choice(len(self), size=max_samples, replace=False))]
        return CalibrationData(self.inputs, self.chunks, chosen)


def check_max_samples(max_samples: int | None) -> None:
    if max_samples is not None and (not isinstance(max_samples, int) or max_samples < 1):
        raise CalibrationDataError(f"max_samples={max_samples!r}: give a positive whole number of samples")


def npz_files(path: Path) -> list[Path]:
    if not path.exists():
        raise CalibrationDataError(f"calibration data {path}: no such file or directory")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix == ".npz" and p.is_file())
        if not files:
            raise CalibrationDataError(f"calibration data {path}: the directory holds no .npz files")
        return files
    if path.suffix != ".npz":
        raise CalibrationDataError(
            f"calibration data {path}: expected an .npz file (arrays named after the model inputs) "
            "or a directory of them"
        )
    return [path]


def load_calibration_data(
    source: CalibrationSource,
    model_inputs: Graph | Mapping[str, TensorType],
    *,
    max_samples: int | None = None,
    seed: int | None = 0,
) -> CalibrationData:
    """Checked calibration data for a model's inputs from an .npz path, a directory or feed dicts."""
    inputs = graph_input_types(model_inputs)
    check_max_samples(max_samples)
    if isinstance(source, CalibrationData):
        if {n: t.shape for n, t in source.inputs.items()} != {n: t.shape for n, t in inputs.items()}:
            raise CalibrationDataError(
                f"the calibration data was made for inputs {source.inputs}, the model has {inputs}"
            )
        data = source
    elif isinstance(source, str | Path):
        data = CalibrationData(inputs, [NpzSamples(path, inputs) for path in npz_files(Path(source))])
    elif isinstance(source, Mapping) or not isinstance(source, Iterable):
        raise CalibrationDataError(
            f"calibration data of type {type(source).__name__}: give an .npz path, a directory of .npz "
            "files or an iterable of feed dicts {input name: array}"
        )
    else:
        limit = max_samples if seed is None else None  # without a seed only the first ones are kept
        data = CalibrationData(inputs, [FeedSamples(source, inputs, limit)])
    return data.subsample(max_samples, seed)
