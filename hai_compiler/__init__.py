"""HAI compiler driver: CLI, Python API (`compile`), ONNX frontend, pipelines."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

__all__ = ["DynamicQuantizer", "QuantizedModel", "compile"]


def __getattr__(name: str) -> Any:
    """`DynamicQuantizer` and `QuantizedModel`, imported on first use (keeps `import hai_compiler` light)."""
    if name in ("DynamicQuantizer", "QuantizedModel"):
        from hai_compiler.quantize import quantizer

        return getattr(quantizer, name)
    raise AttributeError(f"module 'hai_compiler' has no attribute {name!r}")


def compile(  # noqa: A001  (the API the design names: hai_compiler.compile)
    model: Any,
    target: str = "x86",
    *,
    input_shapes: Mapping[str, Sequence[int]] | None = None,
    output: str | Path | None = None,
    **options: Any,
) -> Path:
    """Compile `model` (.onnx/.hir path, onnx.ModelProto, ir.Graph or a `DynamicQuantizer`'s
    QuantizedModel) for `target` into an artifact.

    Mirrors `hai compile`: `cpu=`, `hardware_profile=`, `passes=`, `dump_ir=`, `verify_each=`,
    `entry=` (auto|on|off) are the other options. `output` defaults to the model file's name with
    `.hai`. Returns the artifact's path.
    """
    from hai_compiler.compiler import CompileOptionError, CompileOptions, compile_model

    if output is None:
        if not isinstance(model, str | Path):
            raise CompileOptionError("give output=... (the artifact directory) when the model is not a file")
        output = Path(model).with_suffix(".hai").name
    compile_options = CompileOptions.from_keywords(target, input_shapes, options)
    graph = getattr(model, "graph", None)  # a QuantizedModel compiles as its quantized graph
    return compile_model(model if graph is None else graph, output, compile_options).path
