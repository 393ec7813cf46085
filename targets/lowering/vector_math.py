"""exp as an expression LLVM vectorises. TVM lowers `te.exp` to `llvm.exp`, which LLVM's x86
codegen turns into one scalar libm `expf` call per lane; each call clobbers every vector register,
so a Sigmoid or SiLU epilogue fused into a conv tile cost more than running it as its own kernel.

Rule (f32; other dtypes keep `te.exp`): Cephes' expf. exp(x) = 2^n * e^r with
n = floor(x * log2(e) + 1/2) and r = x - n * ln 2 (ln 2 split in two for
Cody-Waite accuracy), e^r by its degree-7 minimax polynomial on |r| <= ln2/2,
and 2^n from exponent bits (in two halves, so n = 128 and -126 fit). Within
2 ulp of the exact value over the normal range (1.4 measured, relative
8.5e-8; tests/targets/test_vector_math.py). Outside it the IEEE limits hold:
x > 88.72 gives inf, x < -87.33 gives 0 (the denormals libm returns down to
-103.97 are flushed: they are under 1.2e-38), NaN stays NaN.
"""

from __future__ import annotations

import math
from typing import Any

from tvm import te, tirx

Expr = Any

LOG2E = 1.44269504088896341
LN2_HI, LN2_LO = 0.693359375, -2.12194440e-4
POLYNOMIAL = (
    1.9875691500e-4,
    1.3981999507e-3,
    8.3334519073e-3,
    4.1665795894e-2,
    1.6666665459e-1,
    5.0000001201e-1,
)
OVERFLOW, UNDERFLOW = math.log(3.4028234663852886e38), -87.33654475  # exp(UNDERFLOW) = 2^-126
MAGNITUDE, INFINITY_BITS = 0x7FFFFFFF, 0x7F800000


def _dtype(x: Expr) -> str:
    return str(x.ty) if hasattr(x, "ty") else str(x.dtype)


def exp(x: Expr) -> Expr:
    """e^x (module rule)."""
    if _dtype(x) != "float32":
        return te.exp(x)

    def c(value: float) -> Expr:
        return te.const(value, "float32")

    clamped = te.max(te.min(x, c(OVERFLOW)), c(UNDERFLOW))
    n = te.floor(clamped * c(LOG2E) + c(0.5))
    r = clamped - n * c(LN2_HI) - n * c(LN2_LO)
    poly = c(POLYNOMIAL[0])
    for coefficient in POLYNOMIAL[1:]:
        poly = poly * r + c(coefficient)
    e_r = poly * r * r + r + c(1.0)
    whole = n.astype("int32")
    half = whole >> te.const(1, "int32")  # 2^n as 2^half * 2^(n - half): both normal for n in [-126, 128]
    scaled = e_r * _power_of_two(half) * _power_of_two(whole - half)
    bits = tirx.reinterpret("int32", x) & te.const(MAGNITUDE, "int32")
    is_nan = bits > te.const(INFINITY_BITS, "int32")
    return tirx.Select(
        is_nan, x, tirx.Select(x > c(OVERFLOW), c(math.inf), tirx.Select(x < c(UNDERFLOW), c(0.0), scaled))
    )


def _power_of_two(k: Expr) -> Expr:
    """2^k for an int32 k in [-126, 127], from its exponent bits."""
    return tirx.reinterpret("float32", (k + te.const(127, "int32")) << te.const(23, "int32"))
