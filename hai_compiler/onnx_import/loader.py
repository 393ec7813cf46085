"""Reading `.onnx` files: clear errors for missing, truncated, foreign or invalid files; external data.

A file that is not a valid ONNX protobuf is reported with its path and what
went wrong, never with a protobuf traceback. External data must be regular
files inside the model's directory (onnx's own rule: no absolute paths, no
`..`, no symlinks). `check_onnx` runs the ONNX checker, as onnxruntime does
(SSA names, non-negative dims, data sizes that match); the importer calls it
once it knows every op is one HAI imports.
"""

from __future__ import annotations

import os
from pathlib import Path

import onnx
from google.protobuf.message import DecodeError

from ir import HaiError


class ModelFileError(HaiError):
    """The model file is missing, unreadable or not a valid ONNX model."""


def load_model(path: str | os.PathLike[str]) -> onnx.ModelProto:
    """Load an ONNX model with its external data (looked up beside the file)."""
    path = Path(path)
    if not path.is_file():
        raise ModelFileError(f"{path}: no such model file")
    data = path.read_bytes()
    if not data:
        raise ModelFileError(f"{path}: the file is empty")
    model = onnx.ModelProto()
    try:
        model.ParseFromString(data)
    except (DecodeError, RuntimeError, ValueError) as exc:
        raise ModelFileError(f"{path}: not a valid ONNX model (truncated or corrupt?): {exc}") from None
    if not model.HasField("graph") or not model.opset_import:
        raise ModelFileError(f"{path}: not an ONNX model (no graph or no opset import)")
    try:
        onnx.external_data_helper.load_external_data_for_model(model, str(path.parent))
    except (OSError, ValueError, onnx.checker.ValidationError) as exc:
        raise ModelFileError(f"{path}: external data cannot be read: {exc}") from None
    return model


CHECKED_BYTES = 2**31 - 2**20
"""A model proto larger than this (protobuf's 2 GiB limit, less slack) is checked from its file instead."""


def check_onnx(model: onnx.ModelProto, path: Path | None = None) -> None:
    """Raise `ModelFileError` when the ONNX checker refuses `model` (its message names the node or tensor).

    What onnxruntime runs though the checker wants more is checked as a copy with it filled in:
    a main-graph input without a shape (the checker infers no shapes, so any shape does), an output
    without a complete type (only its name matters), a `value_info` without one (a hint, dropped),
    a node of an op deprecated at the model's opset (GroupNormalization-18, Upsample-10: checked
    as an opaque node of another domain).
    """
    where = f"{path}: " if path is not None else ""
    try:
        if path is not None and model.ByteSize() > CHECKED_BYTES:
            onnx.checker.check_model(str(path))
        else:
            onnx.checker.check_model(_checkable(model))
    except onnx.checker.ValidationError as exc:
        reason = str(exc).strip().splitlines()[0]
        raise ModelFileError(f"{where}not a valid ONNX model: {reason}") from None
    except UnicodeDecodeError as exc:  # the checker's message quotes a name that is not UTF-8 text
        reason = exc.object.decode("utf-8", "replace").strip().splitlines()[0]
        raise ModelFileError(f"{where}not a valid ONNX model (a name is not UTF-8 text): {reason}") from None


def _checkable(model: onnx.ModelProto) -> onnx.ModelProto:
    graph = model.graph
    inputs = [vi for vi in graph.input if _tensor(vi) and not vi.type.tensor_type.HasField("shape")]
    outputs = [vi for vi in graph.output if not _complete(vi)]
    hints = [vi for vi in graph.value_info if not _complete(vi)]
    deprecated = [i for i, node in enumerate(graph.node) if _deprecated(node, model)]
    if not inputs and not outputs and not hints and not deprecated:
        return model
    copy = onnx.ModelProto()
    copy.CopyFrom(model)
    for i in deprecated:  # still names and wiring checked; the converter checks its attributes
        copy.graph.node[i].domain = OPAQUE_DOMAIN
    if deprecated:
        copy.opset_import.add(domain=OPAQUE_DOMAIN, version=1)
    for vi in copy.graph.input:
        if _tensor(vi):
            vi.type.tensor_type.shape.SetInParent()
    for vi in copy.graph.output:
        if not _complete(vi):  # only its name matters to the model
            vi.type.CopyFrom(onnx.helper.make_tensor_type_proto(onnx.TensorProto.FLOAT, []))
    kept = [vi for vi in copy.graph.value_info if _complete(vi)]
    del copy.graph.value_info[:]
    copy.graph.value_info.extend(kept)
    return copy


OPAQUE_DOMAIN = "hai.checked.deprecated"
"""The domain a deprecated op is moved to for the checker, which skips domains it does not know."""


def _deprecated(node: onnx.NodeProto, model: onnx.ModelProto) -> bool:
    if node.domain not in ("", "ai.onnx"):
        return False
    version = next((e.version for e in model.opset_import if e.domain in ("", "ai.onnx")), 0)
    try:
        return bool(onnx.defs.get_schema(node.op_type, version, "").deprecated)
    except onnx.defs.SchemaError:
        return False


def _tensor(vi: onnx.ValueInfoProto) -> bool:
    return vi.type.HasField("tensor_type")


def _complete(vi: onnx.ValueInfoProto) -> bool:
    """A value info the checker takes: a typed value, a tensor's element type and shape given."""
    if not vi.HasField("type"):
        return False
    if not _tensor(vi):
        return True
    tensor = vi.type.tensor_type
    return tensor.elem_type != onnx.TensorProto.UNDEFINED and tensor.HasField("shape")
