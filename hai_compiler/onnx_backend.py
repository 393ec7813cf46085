"""`HaiBackend`: the ONNX backend API over HAI (import into HAI IR, run the reference interpreter).

This is how the ONNX conformance suite (`onnx.backend.test.BackendTest`) runs
through HAI. When a case feeds a shape-deciding operand (Reshape's shape, ...)
as a graph input, or leaves input dimensions symbolic, the model is imported
at `run()` with those values known.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep

from hai_compiler.onnx_import import import_onnx
from hai_compiler.onnx_import.converter import StaticOperandError
from ir import Graph, HaiError, Interpreter


class HaiInterpreterRep(BackendRep):
    """A prepared model: its IR graph (or, if it needs input values, the model to import at run)."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        initializers = {t.name for t in model.graph.initializer}
        self.input_names = [vi.name for vi in model.graph.input if vi.name not in initializers]
        self.graph: Graph | None
        try:
            self.graph = import_onnx(model)
        except StaticOperandError:
            self.graph = None
        except HaiError as exc:
            if "symbolic dimensions" not in str(exc):
                raise
            self.graph = None

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        feeds = self._feeds(inputs)
        graph = self.graph or self._import_with(feeds)
        outputs = Interpreter(graph).run({v.name: feeds[v.name] for v in graph.inputs})
        return tuple(outputs.values())

    def _feeds(self, inputs: Any) -> dict[str, np.ndarray]:
        if isinstance(inputs, dict):
            return {k: np.asarray(v) for k, v in inputs.items()}
        if not isinstance(inputs, (list, tuple)):
            inputs = [inputs]
        return {name: np.asarray(v) for name, v in zip(self.input_names, inputs)}

    def _import_with(self, feeds: dict[str, np.ndarray]) -> Graph:
        shapes = {k: v.shape for k, v in feeds.items()}
        try:
            return import_onnx(self.model, input_shapes=shapes)
        except StaticOperandError:
            return import_onnx(self.model, bind_inputs=feeds)


class HaiBackend(Backend):
    """ONNX backend that imports into HAI IR and interprets it."""

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> HaiInterpreterRep:
        return HaiInterpreterRep(model)

    @classmethod
    def run_model(
        cls, model: onnx.ModelProto, inputs: Sequence[np.ndarray], device: str = "CPU", **kwargs: Any
    ) -> tuple[np.ndarray, ...]:
        return cls.prepare(model, device).run(inputs)

    @classmethod
    def supports_device(cls, device: str) -> bool:
        return device == "CPU"
