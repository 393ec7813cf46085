"""HAI IR ops, one module per op family; importing this package registers them all."""

from __future__ import annotations

import importlib

FAMILIES = (
    "elementwise",
    "activation",
    "reduce",
    "conv",
    "matmul",
    "attention",
    "normalization",
    "pooling",
    "rnn",
    "shape",
    "indexing",
    "generate",
    "image",
    "layout",
    "quantized",
    "control",
    "loop_span",
)

for _family in FAMILIES:
    importlib.import_module(f"ir.ops.{_family}")
