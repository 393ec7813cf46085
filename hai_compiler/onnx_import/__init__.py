"""The ONNX frontend: load a model and normalise every opset onto HAI IR ops."""

from hai_compiler.onnx_import.converter import ConversionError, UnsupportedModelError
from hai_compiler.onnx_import.importer import import_onnx
from hai_compiler.onnx_import.loader import ModelFileError, load_model

__all__ = ["ConversionError", "ModelFileError", "UnsupportedModelError", "import_onnx", "load_model"]
