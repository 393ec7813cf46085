"""Op family: activations (one float operand, same shape out)."""

from __future__ import annotations

import numpy as np

from ir.ops.common import same_as_first
from ir.ops.registry import define_op

define_op(
    "Relu",
    family="activation",
    operands=["X"],
    infer=same_as_first,
    compute=lambda args, attrs: [np.maximum(args[0], 0).astype(args[0].dtype)],
    doc="max(X, 0).",
)
