"""ONNX converters: rnn family (filled in next)."""
