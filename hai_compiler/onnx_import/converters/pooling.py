"""ONNX converters: pooling family (filled in next)."""
