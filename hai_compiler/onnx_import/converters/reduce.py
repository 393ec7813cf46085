"""ONNX converters: reduce family (filled in next)."""
