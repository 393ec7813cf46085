"""Typed views of a model's memory: a slot of the arena, the weights or an input as the array it holds.

Rule: a view never copies; `typed_view` reads `shape` x `dtype` bytes from a uint8 base at a byte
offset (callers keep offsets aligned: manifest_checks), and a model's outputs are views of the arena
they live in (`output_views`), copied out only when a run returns them.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from runtime.artifact import Manifest, TensorBinding, numpy_dtype

Outputs = tuple[tuple[TensorBinding, np.ndarray], ...]
"""Each output's binding and its view of an arena."""


def typed_view(base: np.ndarray, offset: int, shape: Sequence[int], dtype: str) -> np.ndarray:
    """A view of `base` (uint8) at byte `offset` with `shape` and `dtype`."""
    np_dtype = numpy_dtype(dtype)
    nbytes = int(np.prod(shape, dtype=np.int64)) * np_dtype.itemsize
    return base[offset : offset + nbytes].view(np_dtype).reshape(tuple(shape))


def output_views(manifest: Manifest, arena: np.ndarray) -> Outputs:
    """Each output's binding and its view of `arena` (outputs live in the arena: validated)."""
    return tuple((b, typed_view(arena, b.offset or 0, b.shape, b.dtype)) for b in manifest.outputs)
