"""HAI IR: the graph IR, its op registry, verifier, text format and reference interpreter.

Imports nothing of ours outside `ir/` and no TVM (DESIGN.md's layering).
"""

from __future__ import annotations

import ir.ops  # noqa: F401  (registers every op family)
from ir.builder import Builder
from ir.dtypes import DType
from ir.errors import HaiError, IRError, VerificationError
from ir.graph import ElidedConstant, Graph, Node, Value
from ir.interpreter import Interpreter, run_graph
from ir.types import QuantParams, TensorType
from ir.verifier import verify

__all__ = [
    "Builder", "DType", "ElidedConstant", "Graph", "HaiError", "IRError", "Interpreter",
    "Node", "QuantParams", "TensorType", "Value", "VerificationError", "run_graph", "verify",
]
