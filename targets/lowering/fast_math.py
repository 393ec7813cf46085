"""exp, tanh and sigmoid as TIR expressions LLVM keeps in vector registers (no libm call per lane).

Rule: `tirx.tanh` and `tirx.exp` reach LLVM as `llvm.exp` / libm calls that it
splits into one scalar `expf` call per lane, so a vectorised loop of them runs
at scalar speed. Here, in float32, only multiplies, adds, divides, min/max,
floor and integer shifts:
- exp: Cephes' `expf` (x clamped to ±88.376; x = n ln2 + r with ln2 split in
  two parts; a degree-7 polynomial of r; 2^n built in the exponent bits);
- tanh: Eigen's rational approximation (a degree-13 odd numerator over a
  degree-6 even denominator, for |x| below 7.9053; ±1 beyond, where float32
  tanh is ±1; x itself below 4e-4, where tanh(x) rounds to x);
- sigmoid: 1 / (1 + exp(-x)), as numpy computes it, so that 1 - sigmoid stays
  exact near 1 (GRU's 1 - z).
Measured against numpy's float64 functions (tests/targets/test_fast_math.py).
Other dtypes get the exact `tirx` functions.
"""

from __future__ import annotations

from typing import Any

from targets.lowering.pointwise import dtype_of

Expr = Any

FORM = "tanh-rational-13-6"
"""Names these forms in a kernel's workload (another form is another kernel)."""
CLAMP = 7.90531110763549805
"""|x| beyond which float32 tanh is ±1 (Eigen's bound)."""
TINY = 0.0004
"""|x| below which tanh(x) rounds to x in float32."""
NUMERATOR = (
    4.89352455891786e-03,
    6.37261928875436e-04,
    1.48572235717979e-05,
    5.12229709037114e-08,
    -8.60467152213735e-11,
    2.00018790482477e-13,
    -2.76076847742355e-16,
)
"""alpha_1, alpha_3, ..., alpha_13: the odd numerator's coefficients (Eigen's `ptanh_float`)."""
DENOMINATOR = (4.89352518554385e-03, 2.26843463243900e-03, 1.18534705686654e-04, 1.19825839466702e-06)
"""beta_0, beta_2, beta_4, beta_6: the even denominator's coefficients."""
EXP_BOUND = 88.3762626647949
"""|x| beyond which float32 exp over- or underflows (Cephes' bound, below 2^127.5)."""
LN2_HIGH, LN2_LOW = 0.693359375, -2.12194440e-4
"""ln 2 in two parts: the first exact in few bits, so n * LN2_HIGH is exact."""
EXP_POLY = (
    5.0000001201e-1,
    1.6666665459e-1,
    4.1665795894e-2,
    8.3334519073e-3,
    1.3981999507e-3,
    1.9875691500e-4,
)
"""Coefficients of r^2 .. r^7 of Cephes' expf polynomial (1 + r + sum c_i r^(i+2))."""


def _horner(x2: Expr, coefficients: tuple[float, ...], dtype: str) -> Expr:
    from tvm import tirx

    value = tirx.const(coefficients[-1], dtype)
    for c in reversed(coefficients[:-1]):
        value = value * x2 + tirx.const(c, dtype)
    return value


def exp(x: Expr) -> Expr:
    """e^x: Cephes' form for float32 (module rule), `tirx.exp` otherwise."""
    from tvm import tirx

    dtype = dtype_of(x)
    if dtype != "float32":
        return tirx.exp(x)
    bound = tirx.const(EXP_BOUND, dtype)
    x = tirx.max(tirx.min(x, bound), -bound)
    n = tirx.floor(x * tirx.const(1.4426950408889634, dtype) + tirx.const(0.5, dtype))
    r = x - n * tirx.const(LN2_HIGH, dtype) - n * tirx.const(LN2_LOW, dtype)
    poly = _horner(r, EXP_POLY, dtype) * r * r + r + tirx.const(1.0, dtype)
    scale = tirx.reinterpret(dtype, (n.astype("int32") + tirx.const(127, "int32")) << tirx.const(23, "int32"))
    return poly * scale


def tanh(x: Expr) -> Expr:
    """tanh(x): the rational form for float32 (module rule), `tirx.tanh` otherwise."""
    from tvm import tirx

    dtype = dtype_of(x)
    if dtype != "float32":
        return tirx.tanh(x)
    bound = tirx.const(CLAMP, dtype)
    clamped = tirx.max(tirx.min(x, bound), -bound)
    x2 = clamped * clamped
    ratio = clamped * _horner(x2, NUMERATOR, dtype) / _horner(x2, DENOMINATOR, dtype)
    one = tirx.const(1.0, dtype)
    saturated = tirx.Select(x > tirx.const(0.0, dtype), one, -one)
    small = tirx.Select(tirx.abs(x) < tirx.const(TINY, dtype), x, ratio)
    return tirx.Select(tirx.abs(x) >= bound, saturated, small)


def sigmoid(x: Expr) -> Expr:
    """1 / (1 + exp(-x))."""
    from tvm import tirx

    one = tirx.const(1.0, dtype_of(x))
    return one / (one + exp(-x))
