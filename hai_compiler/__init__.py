"""HAI compiler driver: CLI, Python API, ONNX frontend, pipelines."""
