"""ONNX converters: activation family (filled in next)."""
