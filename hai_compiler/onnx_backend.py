"""`HaiBackend` and `HaiCompiledBackend`: the ONNX backend API over HAI.

`HaiBackend` imports into HAI IR and runs the reference interpreter;
`HaiCompiledBackend` compiles the same graph for this host into a temporary
artifact and runs it with the minimal runtime (`runtime.load`). This is how the
ONNX conformance suite (`onnx.backend.test.BackendTest`) runs through HAI. When
a case feeds a shape-deciding operand (Reshape's shape, ...) as a graph input,
or leaves input dimensions symbolic, the model is imported (and compiled) at
`run()` with those values known.
"""

from __future__ import annotations

import re
import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import onnx
from onnx.backend.base import Backend, BackendRep

from hai_compiler.onnx_import import import_onnx
from hai_compiler.onnx_import.converter import StaticOperandError, SymbolicShapeError
from ir import Graph, Interpreter


class HaiInterpreterRep(BackendRep):
    """A prepared model: its IR graph (or, if it needs input values, the model to import at run)."""

    def __init__(self, model: onnx.ModelProto) -> None:
        self.model = model
        initializers = {t.name for t in model.graph.initializer}
        self.input_names = [vi.name for vi in model.graph.input if vi.name not in initializers]
        self.graph: Graph | None
        try:
            self.graph = import_onnx(model)
        except (StaticOperandError, SymbolicShapeError):  # known only at run(), from the inputs
            self.graph = None

    def run(self, inputs: Any, **kwargs: Any) -> tuple[np.ndarray, ...]:
        feeds = self._feeds(inputs)
        graph = self.graph or self._import_with(feeds)
        return self._execute(graph, {v.name: feeds[v.name] for v in graph.inputs})

    def _execute(self, graph: Graph, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        return tuple(Interpreter(graph).run(feeds).values())

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


STATIC_OPERAND = re.compile(r"\(%([^)]+)\) must be known at compile time")


class HaiCompiledRep(HaiInterpreterRep):
    """A prepared model run through compile + runtime; a graph known at prepare compiles once."""

    def __init__(self, model: onnx.ModelProto) -> None:
        super().__init__(model)
        self._workdir = tempfile.TemporaryDirectory(prefix="hai-backend-")
        self._prepared: Any = None  # the loaded runtime Model of `self.graph`, once compiled
        self._count = 0

    def _execute(self, graph: Graph, feeds: dict[str, np.ndarray]) -> tuple[np.ndarray, ...]:
        import runtime
        from hai_compiler.compiler import CompileOptions, compile_model

        shapes = {v.name: v.type.shape for v in graph.inputs}
        loaded = self._prepared if graph is self.graph else None
        if loaded is None:
            self._count += 1
            out = Path(self._workdir.name) / f"model{self._count}.hai"
            loaded = runtime.load(compile_model(graph, out, CompileOptions()).path)
            if graph is self.graph:
                self._prepared = loaded
        arrays = {name: np.ascontiguousarray(feeds[name]) for name in shapes}
        arrays = {  # the suite feeds some 0-d inputs as [1]; the interpreter takes them, so does this
            k: a.reshape(shapes[k]) if a.shape != shapes[k] and a.size == int(np.prod(shapes[k])) else a
            for k, a in arrays.items()
        }
        return tuple(loaded.run(arrays).values())

    def _import_with(self, feeds: dict[str, np.ndarray]) -> Graph:
        """Import with only the inputs that decide shapes bound to their values, so the rest is compiled.

        Each StaticOperandError names the operand it needed; a graph input named there is bound and
        the import retried. An operand computed from inputs binds the integer inputs, then all.
        """
        shapes = {k: v.shape for k, v in feeds.items()}
        bound: dict[str, np.ndarray] = {}
        while True:
            try:
                return import_onnx(self.model, input_shapes=shapes, bind_inputs=bound or None)
            except StaticOperandError as exc:
                named = STATIC_OPERAND.search(str(exc))
                name = named.group(1) if named else None
                if name in feeds and name not in bound:
                    bound[name] = feeds[name]
                elif any(v.dtype.kind in "iub" and k not in bound for k, v in feeds.items()):
                    bound.update({k: v for k, v in feeds.items() if v.dtype.kind in "iub"})
                elif len(bound) < len(feeds):
                    bound = dict(feeds)
                else:
                    raise


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


class HaiCompiledBackend(HaiBackend):
    """ONNX backend that compiles for this host (x86) and runs the artifact with the minimal runtime."""

    @classmethod
    def prepare(cls, model: onnx.ModelProto, device: str = "CPU", **kwargs: Any) -> HaiCompiledRep:
        return HaiCompiledRep(model)
