"""ONNX converters: matmul family (filled in next)."""
