"""A zoo entry (`ZooModel`: a pattern and a model) and the generated kind of model (`GeneratedModel`).

Rule: both kinds of model, a trained `real_models.RealModel` and a `GeneratedModel`, give `fetch()` ->
the `.onnx` path and `sample_inputs()` at the zoo's static shapes; a generated model's weights come
from its seed, so its file is rebuilt, never downloaded.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Callable, Mapping
from pathlib import Path

import numpy as np
import onnx

from hai_compiler.real_models import RealModel, cache_dir, sample_inputs


@dataclasses.dataclass(frozen=True)
class GeneratedModel:
    """An architecture from a generator function, with weights from `seed`."""

    name: str
    build: Callable[[int], onnx.ModelProto]
    input_shapes: Mapping[str, tuple[int, ...]]
    what: str
    input_kind: str | Mapping[str, str] = "image"
    seed: int = 0
    input_values: Mapping[str, np.ndarray] = dataclasses.field(default_factory=dict)  # none: all generated

    def sample_inputs(self, seed: int = 0) -> dict[str, np.ndarray]:
        return sample_inputs(self.input_shapes, self.input_kind, seed)

    def onnx_inputs(self, inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(inputs)

    def fetch(self) -> Path:
        """The generated `.onnx` under the cache directory (rewritten only when its bytes change)."""
        data = self.build(self.seed).SerializeToString()
        target = cache_dir() / "models" / "zoo" / f"{self.name}-s{self.seed}.onnx"
        if target.is_file() and target.read_bytes() == data:
            return target
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(f".{os.getpid()}.tmp")
        tmp.write_bytes(data)
        tmp.replace(target)  # atomic: parallel test processes may generate at once
        return target


@dataclasses.dataclass(frozen=True)
class ZooModel:
    """One zoo entry: the pattern it stands for, whether its weights are trained, and the model."""

    pattern: str
    model: RealModel | GeneratedModel

    @property
    def name(self) -> str:
        return self.model.name

    @property
    def trained(self) -> bool:
        return isinstance(self.model, RealModel)
