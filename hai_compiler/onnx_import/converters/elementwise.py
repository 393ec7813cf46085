"""ONNX converters: elementwise family (filled in next)."""
