"""exp, tanh, sigmoid and erf as expressions LLVM vectorises. TVM lowers `te.exp` to `llvm.exp`, `te.tanh`
to a formula of it and `te.erf` to libm's erff, which LLVM's x86 codegen calls once per lane; each
call clobbers every vector register, so a Sigmoid or SiLU epilogue fused into a conv tile cost more
than running it as its own kernel. Other dtypes than f32 keep TVM's.

exp, rule: Cephes' expf. exp(x) = 2^n * e^r with
n = floor(x * log2(e) + 1/2) and r = x - n * ln 2 (ln 2 split in two for
Cody-Waite accuracy), e^r by its degree-7 minimax polynomial on |r| <= ln2/2,
and 2^n from exponent bits (in two halves, so n = 128 and -126 fit). Within
2 ulp of the exact value over the normal range (1.4 measured, relative
8.5e-8; tests/targets/test_vector_math.py). Outside it the IEEE limits hold:
x > 88.72 gives inf, x < -87.33 gives 0 (the denormals libm returns down to
-103.97 are flushed: they are under 1.2e-38), NaN stays NaN.

tanh, rule: Eigen's odd rational minimax p(x)/q(x) of degrees 13/6 (the one
onnxruntime's MLAS uses) below |x| = 7.9053, exactly +-1 from there on (where f32 tanh rounds
to +-1); odd, and x itself where |x| < 0.0004 (x^3/3 is under half an ulp there),
so small x keep their relative accuracy. Within 6 ulp (5.1 measured near
|x| = 6, relative 3e-7). NaN stays NaN.

sigmoid, rule: 1 / (1 + exp(-x)) with the exp above, as numpy computes it, so 1 - sigmoid stays
exact near 1 (GRU's 1 - z) and it saturates to exactly 1 (x > 17) and 0.

erf, rule: onnxruntime MLAS's split. For |x| <= 0.921875, x * (1 + p(x^2));
above, sign(x) * (1 - exp(-t)) with t = a + a * q(a), a = min(|x|, 3.925)
(erf rounds to +-1 beyond), p and q MLAS's minimax polynomials and exp the
one above. Within 4 ulp (1.01 measured, relative 1e-7). NaN stays NaN.

Targets with fast math builtins of their own (OpenCL: `exp`, `tanh`, `erf` run on the device's special
function units, within the OpenCL spec's 3/5/16 ulp) take TVM's forms instead: `lower_node` sets
`native_forms` from the target's `ScheduleTable.native_math` while it lowers. The polynomial forms
would only bloat such kernels (each fused activation inlines its whole expression per accumulator).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

from tvm import te, tirx

Expr = Any

FORM = "cephes-exp.eigen-tanh-13-6.mlas-erf"
"""Names these forms in a kernel's workload (another form is another kernel)."""

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
TANH_LIMIT, TANH_SMALL = 7.90531110763549805, 0.0004
TANH_NUMERATOR = (-2.76076847742355e-16, 2.00018790482477e-13, -8.60467152213735e-11, 5.12229709037114e-08,
                  1.48572235717979e-05, 6.37261928875436e-04, 4.89352455891786e-03)  # fmt: skip
ERF_SPLIT, ERF_LIMIT = 0.921875, 3.925
ERF_SMALL = (-5.99104969e-4, 4.99339588e-3, -2.67667342e-2, 1.12818025e-1, -3.76124859e-1, 1.28379151e-1)
ERF_BIG = (1.72948930e-5, -3.83208680e-4, 3.88393435e-3, -2.42545605e-2, 1.06777847e-1, 6.34846687e-1,
           1.28717512e-1)  # fmt: skip
TANH_DENOMINATOR = (1.19825839466702e-06, 1.18534705686654e-04, 2.26843463243900e-03, 4.89352518554385e-03)


_NATIVE: ContextVar[bool] = ContextVar("native_math", default=False)


@contextmanager
def native_forms(native: bool) -> Iterator[None]:
    """While inside, exp/tanh/erf (and sigmoid's exp) are TVM's own forms when `native` (module rule)."""
    token = _NATIVE.set(native)
    try:
        yield
    finally:
        _NATIVE.reset(token)


def _polynomial(x: Expr) -> bool:
    """Whether x takes this module's f32 forms (else TVM's)."""
    return _dtype(x) == "float32" and not _NATIVE.get()


def _dtype(x: Expr) -> str:
    return str(x.ty) if hasattr(x, "ty") else str(x.dtype)


def exp(x: Expr) -> Expr:
    """e^x (module rule)."""
    if not _polynomial(x):
        return te.exp(x)

    clamped = te.max(te.min(x, _f32(OVERFLOW)), _f32(UNDERFLOW))
    n = te.floor(clamped * _f32(LOG2E) + _f32(0.5))
    r = clamped - n * _f32(LN2_HI) - n * _f32(LN2_LO)
    e_r = _horner(POLYNOMIAL, r) * r * r + r + _f32(1.0)
    whole = n.astype("int32")
    half = whole >> te.const(1, "int32")  # 2^n as 2^half * 2^(n - half): both normal for n in [-126, 128]
    scaled = e_r * _power_of_two(half) * _power_of_two(whole - half)
    return tirx.Select(
        _is_nan(x),
        x,
        tirx.Select(x > _f32(OVERFLOW), _f32(math.inf), tirx.Select(x < _f32(UNDERFLOW), _f32(0.0), scaled)),
    )


def _power_of_two(k: Expr) -> Expr:
    """2^k for an int32 k in [-126, 127], from its exponent bits."""
    return tirx.reinterpret("float32", (k + te.const(127, "int32")) << te.const(23, "int32"))


def tanh(x: Expr) -> Expr:
    """tanh(x) (module rule)."""
    if not _polynomial(x):
        return te.tanh(x)
    clamped = te.max(te.min(x, _f32(TANH_LIMIT)), _f32(-TANH_LIMIT))
    square = clamped * clamped
    rational = clamped * _horner(TANH_NUMERATOR, square) / _horner(TANH_DENOMINATOR, square)
    small = te.abs(x) < _f32(TANH_SMALL)  # tanh(x) rounds to x; denormal x would lose digits in p/q
    saturated = tirx.Select(x > _f32(0.0), _f32(1.0), _f32(-1.0))  # p/q stops 2 ulp short of it
    within = tirx.Select(te.abs(x) >= _f32(TANH_LIMIT), saturated, rational)
    return tirx.Select(_is_nan(x) | small, x, within)


def sigmoid(x: Expr) -> Expr:
    """1 / (1 + e^-x) (module rule)."""
    one = te.const(1.0, _dtype(x))
    return one / (one + exp(-x))


def erf(x: Expr) -> Expr:
    """erf(x) (module rule)."""
    if not _polynomial(x):
        return te.erf(x)
    near = x + x * _horner(ERF_SMALL, x * x)
    a = te.min(te.abs(x), _f32(ERF_LIMIT))
    far = _f32(1.0) - exp(-(a + a * _horner(ERF_BIG, a)))
    signed = tirx.Select(x < _f32(0.0), -far, far)
    return tirx.Select(_is_nan(x), x, tirx.Select(te.abs(x) > _f32(ERF_SPLIT), signed, near))


def _horner(coefficients: tuple[float, ...], x: Expr) -> Expr:
    """The polynomial of `coefficients` (highest power first) at x."""
    value = _f32(coefficients[0])
    for coefficient in coefficients[1:]:
        value = value * x + _f32(coefficient)
    return value


def _f32(value: float) -> Expr:
    return te.const(value, "float32")


def _is_nan(x: Expr) -> Expr:
    """isnan(x) as an integer bit test, which vectorises."""
    return tirx.reinterpret("int32", x) & te.const(MAGNITUDE, "int32") > te.const(INFINITY_BITS, "int32")
