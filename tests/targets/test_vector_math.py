"""targets/lowering/vector_math.py's exp, tanh and erf against float64 references: exp on every
4096th f32 of its normal range and on its limits, tanh and erf on every 4096th f32 up to 9 and 5;
built for LLVM's generic x86-64 or aarch64 cpu, vectorised by 16 lanes."""

from __future__ import annotations

import math
import platform

import numpy as np
import tvm
import tvm.s_tir as s_tir
from tvm import te

from targets.lowering.vector_math import erf, exp, tanh

LIMITS = np.array(
    [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30, -1e-30, 88.72, 88.73, 100.0, -87.3, -87.4, -100.0], np.float32
)


def compiled(fn, size: int):  # type: ignore[no-untyped-def]
    x = te.placeholder((size,), "float32", name="x")
    y = te.compute((size,), lambda i: fn(x[i]), name="y")
    sch = s_tir.Schedule(te.create_prim_func([x, y]))
    (loop,) = sch.get_loops(sch.get_sblock("y"))
    sch.vectorize(sch.split(loop, [None, 16])[1])
    cpu = "generic" if platform.machine() in ("aarch64", "arm64") else "x86-64"
    return tvm.compile(sch.mod, target={"kind": "llvm", "mcpu": cpu})


def run(values: np.ndarray, fn=exp) -> np.ndarray:  # type: ignore[no-untyped-def]
    out = tvm.runtime.tensor(np.empty_like(values))
    compiled(fn, values.size)(tvm.runtime.tensor(values), out)
    return out.numpy()


def every_4096th(top: float) -> np.ndarray:
    """Every 4096th f32 in (-top, top), a whole number of 16-lane vectors."""
    bits = np.arange(0, np.float32(top).view(np.int32), 4096, dtype=np.int32)
    values = np.concatenate([bits.view(np.float32), -bits.view(np.float32)])
    return values[: values.size - values.size % 16]


def test_exp_is_within_two_ulp_over_the_normal_range() -> None:
    values = every_4096th(87.33)
    want = np.exp(values.astype(np.float64))
    ulp = np.spacing(want.astype(np.float32)).astype(np.float64)
    assert (np.abs(run(values) - want) / ulp).max() <= 2.0


def test_exp_limits_follow_ieee() -> None:
    """inf above 88.72, 0 below -87.33 (libm's denormals, all under 1.2e-38, flushed), NaN stays NaN."""
    got = run(np.resize(LIMITS, 16))[: LIMITS.size]
    with np.errstate(over="ignore"):
        want = np.exp(LIMITS)
    want[want < np.finfo(np.float32).tiny] = 0.0
    np.testing.assert_allclose(got, want, rtol=2e-7)


def test_tanh_is_within_six_ulp_and_odd() -> None:
    """5.1 ulp measured, near |x| = 6 where tanh is 1 - 2e-5 (relative 3e-7)."""
    values = np.concatenate(
        [every_4096th(9.0), np.resize(np.array([np.nan, np.inf, -np.inf, 20.0], np.float32), 16)]
    )
    got = run(values, tanh)
    want = np.tanh(values.astype(np.float64))
    finite = np.isfinite(values)
    ulp = np.spacing(want[finite].astype(np.float32)).astype(np.float64)
    assert (np.abs(got[finite] - want[finite]) / ulp).max() <= 6.0
    np.testing.assert_array_equal(got[~finite], np.tanh(values[~finite]))
    np.testing.assert_array_equal(run(-values[finite], tanh), -got[finite])


def test_erf_is_within_four_ulp_and_odd() -> None:
    """1.01 ulp measured, against Python's math.erf."""
    values = np.concatenate(
        [every_4096th(5.0), np.resize(np.array([np.nan, np.inf, -np.inf, 20.0], np.float32), 16)]
    )
    got = run(values, erf)
    finite = np.isfinite(values)
    want = np.array([math.erf(v) for v in values[finite].astype(np.float64)])
    ulp = np.spacing(want.astype(np.float32)).astype(np.float64)
    assert (np.abs(got[finite] - want) / ulp).max() <= 4.0
    np.testing.assert_array_equal(got[~finite], [np.nan, 1.0, -1.0] * 4)
    np.testing.assert_array_equal(run(-values[finite], erf), -got[finite])
