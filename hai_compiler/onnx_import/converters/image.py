"""ONNX converters: image family (filled in next)."""
