"""Op family: activations, pointwise functions of one float (or signed) operand.

Rule: the result has the operand's dtype and shape (PRelu's slope broadcasts
onto X, never the other way); attribute defaults are ONNX's.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from ir.dtypes import DType
from ir.errors import IRError
from ir.ops.common import broadcast_shapes, like, same_dtype
from ir.ops.pointwise import check_dtype, erf, evaluate, required, unary
from ir.ops.registry import Attr, AttrKind, define_op
from ir.types import TensorType


def _alpha(default: float) -> dict[str, Attr]:
    return {"alpha": Attr(AttrKind.FLOAT, default)}


def _elu(x: np.ndarray, alpha: float) -> np.ndarray:
    return np.where(x > 0, x, alpha * np.expm1(x))


def _selu(x: np.ndarray, alpha: float, gamma: float) -> np.ndarray:
    return gamma * _elu(x, alpha)


def _celu(x: np.ndarray, alpha: float) -> np.ndarray:
    return np.maximum(x, 0) + np.minimum(0, alpha * np.expm1(x / alpha))


def _softplus(x: np.ndarray) -> np.ndarray:
    return np.logaddexp(np.zeros_like(x), x)


def _gelu(x: np.ndarray, approximate: str) -> np.ndarray:
    if approximate == "tanh":
        return 0.5 * x * (1 + np.tanh(math.sqrt(2 / math.pi) * (x + 0.044715 * x**3)))
    exact = x.astype(np.float64)
    return 0.5 * exact * (1 + erf(exact / math.sqrt(2)))


def _check_gelu(attrs: Mapping[str, Any]) -> None:
    if attrs["approximate"] not in ("none", "tanh"):
        raise IRError(f"attribute approximate must be 'none' or 'tanh', got '{attrs['approximate']}'")


def _sigmoid(x: np.ndarray) -> np.ndarray:
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


def _hard_sigmoid(x: np.ndarray, alpha: float, beta: float) -> np.ndarray:
    return np.clip(alpha * x + beta, 0, 1)


unary("Relu", lambda x: np.maximum(x, 0), "max(X, 0).", family="activation", accepts="signed")
unary(
    "LeakyRelu",
    lambda x, alpha: np.where(x < 0, x * alpha, x),
    "X, or alpha * X where X < 0.",
    family="activation",
    attrs=_alpha(0.01),
)
unary("Sigmoid", _sigmoid, "1 / (1 + exp(-X)).", family="activation")
unary(
    "HardSigmoid",
    _hard_sigmoid,
    "max(0, min(1, alpha * X + beta)).",
    family="activation",
    attrs={"alpha": Attr(AttrKind.FLOAT, 0.2), "beta": Attr(AttrKind.FLOAT, 0.5)},
)
unary(
    "HardSwish",
    lambda x: x * _hard_sigmoid(x, 1 / 6, 0.5),
    "X * HardSigmoid(X, 1/6, 0.5).",
    family="activation",
)
unary("Tanh", np.tanh, "Hyperbolic tangent.", family="activation")
unary(
    "Gelu",
    _gelu,
    "X * Phi(X); approximate='tanh' uses the tanh formula.",
    family="activation",
    attrs={"approximate": Attr(AttrKind.STR, "none")},
    check=_check_gelu,
)
unary("Elu", _elu, "X, or alpha * (exp(X) - 1) where X <= 0.", family="activation", attrs=_alpha(1.0))
unary(
    "Selu",
    _selu,
    "gamma * Elu(X, alpha).",
    family="activation",
    attrs={
        "alpha": Attr(AttrKind.FLOAT, 1.67326319217681884765625),
        "gamma": Attr(AttrKind.FLOAT, 1.05070102214813232421875),
    },
)
unary("Softplus", _softplus, "log(1 + exp(X)).", family="activation")
unary("Softsign", lambda x: x / (1 + np.abs(x)), "X / (1 + |X|).", family="activation")
unary(
    "Celu", _celu, "max(0, X) + min(0, alpha * (exp(X / alpha) - 1)).", family="activation", attrs=_alpha(1.0)
)
unary(
    "ThresholdedRelu",
    lambda x, alpha: np.where(x > alpha, x, 0),
    "X where X > alpha, else 0.",
    family="activation",
    attrs=_alpha(1.0),
)
unary(
    "Swish",
    lambda x, alpha: x * _sigmoid(alpha * x),
    "X * Sigmoid(alpha * X).",
    family="activation",
    attrs=_alpha(1.0),
)
unary("Mish", lambda x: x * np.tanh(_softplus(x)), "X * tanh(Softplus(X)).", family="activation")


def _prelu_infer(types: Sequence[TensorType | None], attrs: Mapping[str, Any]) -> list[TensorType]:
    x, slope = types
    assert x is not None and slope is not None
    check_dtype(x, "signed", "operand X")
    same_dtype([x, slope], "operands X and slope")
    if broadcast_shapes(x.shape, slope.shape) != x.shape:
        raise IRError(f"slope shape {list(slope.shape)} does not broadcast onto X shape {list(x.shape)}")
    return [like(x)]


def _prelu(args: Sequence[np.ndarray | None], attrs: Mapping[str, Any]) -> list[np.ndarray]:
    x, slope = required(args)
    return [evaluate(lambda v, s: np.where(v < 0, v * s, v), [x, slope], {}, DType.from_numpy(x.dtype))]


define_op(
    "PRelu",
    family="activation",
    operands=["X", "slope"],
    infer=_prelu_infer,
    compute=_prelu,
    doc="X, or slope * X where X < 0 (slope broadcasts onto X).",
    pointwise=True,
    epilogue=True,
)
