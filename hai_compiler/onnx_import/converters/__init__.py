"""ONNX → IR converters, one module per op family (mirrors `ir/ops/`); importing registers them."""

from __future__ import annotations

import importlib

for _family in (
    "elementwise", "activation", "reduce", "conv", "matmul", "normalization",
    "pooling", "rnn", "shape", "indexing", "generate", "image", "quantized",
    "microsoft_quantized", "matmul_nbits", "dynamic_quantized", "dynamic_quantized_lstm", "control",
):
    importlib.import_module(f"hai_compiler.onnx_import.converters.{_family}")
