"""targets/lowering/vector_math.py's exp against numpy's (float64) on every 4096th f32 of its normal
range and on its limits; built for LLVM's generic x86-64 or aarch64 cpu, vectorised by 16 lanes."""

from __future__ import annotations

import platform

import numpy as np
import tvm
import tvm.s_tir as s_tir
from tvm import te

from targets.lowering.vector_math import exp

LIMITS = np.array(
    [np.nan, np.inf, -np.inf, 0.0, -0.0, 1e-30, -1e-30, 88.72, 88.73, 100.0, -87.3, -87.4, -100.0], np.float32
)


def compiled_exp(size: int):  # type: ignore[no-untyped-def]
    x = te.placeholder((size,), "float32", name="x")
    y = te.compute((size,), lambda i: exp(x[i]), name="y")
    sch = s_tir.Schedule(te.create_prim_func([x, y]))
    (loop,) = sch.get_loops(sch.get_sblock("y"))
    sch.vectorize(sch.split(loop, [None, 16])[1])
    cpu = "generic" if platform.machine() in ("aarch64", "arm64") else "x86-64"
    return tvm.compile(sch.mod, target={"kind": "llvm", "mcpu": cpu})


def run(values: np.ndarray) -> np.ndarray:
    out = tvm.runtime.tensor(np.empty_like(values))
    compiled_exp(values.size)(tvm.runtime.tensor(values), out)
    return out.numpy()


def test_exp_is_within_two_ulp_over_the_normal_range() -> None:
    lo, hi = np.float32(-87.33).view(np.int32), np.float32(88.72).view(np.int32)
    negative = np.arange(np.float32(-0.0).view(np.int32), lo, 4096, dtype=np.int32).view(np.float32)
    positive = np.arange(0, hi, 4096, dtype=np.int32).view(np.float32)
    values = np.concatenate([negative, positive])
    values = values[: values.size - values.size % 16]
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
