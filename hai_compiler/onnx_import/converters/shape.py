"""ONNX converters: shape family (filled in next)."""
