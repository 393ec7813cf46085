"""ONNX converters: normalization family (filled in next)."""
