"""ONNX converters: conv family (filled in next)."""
