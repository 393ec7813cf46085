"""Reading `.onnx` files: clear errors for missing, truncated or foreign files; external data.

A file that is not a valid ONNX protobuf is reported with its path and what
went wrong, never with a protobuf traceback.
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
    except (OSError, ValueError) as exc:
        raise ModelFileError(f"{path}: external data cannot be read: {exc}") from None
    return model
