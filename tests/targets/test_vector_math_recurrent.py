"""targets/lowering/vector_math.py as the recurrent kernels use it: float32 exp, tanh and sigmoid against
numpy's float64 functions, and in vector registers (the compiled loop calls no libm function, as
`tirx.exp`'s lanes do). tests/targets/test_vector_math.py checks the limits and erf."""

from __future__ import annotations

import re

import numpy as np
import pytest

from targets.lowering import vector_math
from targets.registry import resolve_target
from targets.x86 import tvm_target_json

N = 1 << 14
LANES = 16
FUNCTIONS = {"exp": vector_math.exp, "tanh": vector_math.tanh, "sigmoid": vector_math.sigmoid}


@pytest.fixture(scope="module")
def compiled() -> tuple[object, str]:
    """One vectorised kernel per function (x -> f(x)), compiled for this host: (library, assembly)."""
    import tvm
    import tvm.s_tir as s_tir
    from tvm import te

    x = te.placeholder((N,), "float32", name="x")

    def stage(name: str) -> te.Tensor:
        return te.compute((N,), lambda i: FUNCTIONS[name](x[i]), name=name)

    outs = [stage(name) for name in FUNCTIONS]
    sch = s_tir.Schedule(te.create_prim_func([x, *outs]))
    for name in FUNCTIONS:
        (loop,) = sch.get_loops(sch.get_sblock(name))
        sch.vectorize(sch.split(loop, [None, LANES])[1])
    lib = tvm.compile(sch.mod, target=tvm.target.Target(tvm_target_json(resolve_target("x86"))))
    return lib, str(lib.mod.inspect_source("asm"))


def run(lib: object, x: np.ndarray) -> dict[str, np.ndarray]:
    import tvm

    outs = [tvm.runtime.tensor(np.zeros(N, np.float32)) for _ in FUNCTIONS]
    lib["main"](tvm.runtime.tensor(x), *outs)  # type: ignore[index]
    return {name: out.numpy() for name, out in zip(FUNCTIONS, outs, strict=True)}


def test_no_libm_call_per_lane(compiled: tuple[object, str]) -> None:
    _, asm = compiled
    assert not re.findall(r"call\w*\s+\S*(expf|tanhf)", asm)


def test_tanh_and_sigmoid_within_a_few_ulp(compiled: tuple[object, str]) -> None:
    x = np.concatenate([np.linspace(-20, 20, N - 512), np.linspace(-1e-3, 1e-3, 512)]).astype(np.float32)
    got, wide = run(compiled[0], x), x.astype(np.float64)
    tanh = np.tanh(wide)
    assert np.abs(got["tanh"] - tanh).max() <= 3e-7
    assert (np.abs(got["tanh"] - tanh) / np.maximum(np.abs(tanh), 1e-30)).max() <= 3e-7  # tiny x too
    assert np.abs(got["sigmoid"] - 1 / (1 + np.exp(-wide))).max() <= 1.5e-7
    assert got["tanh"][x > 8].min() == 1.0 and got["sigmoid"][x > 17].min() == 1.0  # saturate exactly


def test_exp_relative_error(compiled: tuple[object, str]) -> None:
    x = np.linspace(-87, 88, N).astype(np.float32)
    want = np.exp(x.astype(np.float64))
    assert (np.abs(run(compiled[0], x)["exp"] - want) / want).max() <= 2e-7
