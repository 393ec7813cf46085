"""MatMulInteger for an i8mm cpu (neoverse-v1) takes `usmmla`'s 2-row step: under `qemu-aarch64 -cpu max`
its int32 accumulators, and the bytes of a fused requantisation (per-channel tables packed 8 bytes
deep), equal the IR interpreter's exactly, for shapes the step's 2 x 16 x 8 shape pads (K not a
multiple of 8, N not of 16, i8 activations shifted into u8); the disassembly of each shows `usmmla`."""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pytest

from hai_compiler.arm64_env import Arm64Env
from hai_compiler.compiler import CompileOptions, compile_model
from ir import run_graph
from ir.builder import Builder
from ir.dtypes import DType
from ir.graph import Graph
from ir.types import QuantParams, TensorType
from runtime.artifact import kernel_library_file

sys.path.insert(0, str(Path(__file__).resolve().parent))
from qemu_models import instruction_counts, run_under_qemu  # noqa: E402

CASES = {  # x shape (rows = all but the last dim, K the last), N, activation dtype and zero point
    "rows6_k20_n40_u8": ((2, 3, 20), 40, DType.U8, 7),
    "rows4_k64_n32_i8": ((4, 64), 32, DType.I8, -3),
    "rows8_k9_n16_u8": ((8, 9), 16, DType.U8, 0),
}
OUTPUTS = ("accumulator", "requantised")


def matmul_integer_graph(case: str, output: str) -> tuple[Graph, dict[str, np.ndarray]]:
    """f32 x, QuantizeLinear, MatMulInteger (per-channel w, bias)[, DequantizeLinear, QuantizeLinear]."""
    x_shape, n, dtype, zero = CASES[case]
    k = x_shape[-1]
    rng = np.random.default_rng(len(case))
    graph = Graph(f"{case}_{output}")
    builder = Builder(graph)
    x = graph.add_input("x", TensorType(DType.F32, x_shape))
    (xq,) = builder.op(
        "QuantizeLinear", [x], {"dtype": dtype, "scale": [0.02], "zero_point": [zero]}, name="xq"
    )
    w = graph.add_constant("w", rng.integers(-127, 128, (k, n)).astype(np.int8))
    scales = tuple(float(s) for s in rng.uniform(0.005, 0.02, n))
    w.type = TensorType(DType.I8, (k, n), quant=QuantParams(scales, (0,) * n, 1))
    bias = graph.add_constant("b", rng.integers(-5000, 5000, n).astype(np.int32))
    (result,) = builder.op("MatMulInteger", [xq, w, bias], {}, name="anchor")
    if output == "requantised":
        (dq,) = builder.op("DequantizeLinear", [result], {"dtype": DType.F32}, name="dq")
        attrs = {"dtype": DType.U8, "scale": [0.03], "zero_point": [3]}
        (result,) = builder.op("QuantizeLinear", [dq], attrs, name="requant")
    graph.set_outputs([result])
    return graph, {"x": (rng.standard_normal(x_shape) * 2).astype(np.float32)}


@pytest.fixture(scope="module")
def runs(arm64_env: Arm64Env, cross_gcc: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """(case, output) -> (artifact, its outputs under qemu, the interpreter's)."""
    folder = tmp_path_factory.mktemp("matmul_integer")
    options = CompileOptions(target="arm64", cpu="neoverse-v1")
    built = {}
    for case in CASES:
        for output in OUTPUTS:
            graph, feeds = matmul_integer_graph(case, output)
            expected = run_graph(graph, feeds)
            built[case, output] = (
                compile_model(graph, folder / f"{case}_{output}.hai", options).path,
                feeds,
                expected,
            )
    emulated = run_under_qemu(arm64_env, "max", [(a, f) for a, f, _ in built.values()], folder)
    return {key: (a, got, want) for (key, (a, _, want)), got in zip(built.items(), emulated, strict=True)}


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("case", CASES)
def test_usmmla_matmul_integer_is_bit_exact(runs: dict, case: str, output: str) -> None:
    artifact, got, want = runs[case, output]
    assert list(got) == list(want)
    for name, expected in want.items():
        assert got[name].dtype == expected.dtype
        np.testing.assert_array_equal(got[name], expected)
    counts = instruction_counts(artifact / kernel_library_file("cpu"), r"\busmmla\s+v")
    assert any(s.startswith("hai_matmulint_") for s in counts), counts
