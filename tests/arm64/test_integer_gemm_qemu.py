"""The integer GEMM for an i8mm cpu (neoverse-v1) under `qemu-aarch64 -cpu max`: MatMulInteger rows and
ConvInteger positions of stride-1 rows of even width take `usmmla`'s 2-row step, other convs `usdot`;
their int32 accumulators, and the bytes of a fused requantisation (per-channel tables packed with the
weights), equal the IR interpreter's exactly, for shapes the step pads (K, channels not a multiple of
8, N not of 16, i8 activations shifted into u8); the disassembly shows each kernel's instruction."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

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

MATMULS = {  # x shape (rows = all but the last dim, K the last), N, activation dtype and zero point
    "matmul_rows6_k20_n40_u8": ((2, 3, 20), 40, DType.U8, 7),
    "matmul_rows4_k64_n32_i8": ((4, 64), 32, DType.I8, -3),
    "matmul_rows8_k9_n16_u8": ((8, 9), 16, DType.U8, 0),
}
CONVS = {  # x shape, w shape, pads, stride, dilation, activation dtype and zero point
    "conv3x3_c5_pad1": ((1, 5, 9, 10), (16, 5, 3, 3), [1, 1, 1, 1], 1, 1, DType.U8, 7),
    "conv3x3_c12_dilated_i8": ((1, 12, 6, 8), (24, 12, 3, 3), [0, 0, 0, 0], 1, 2, DType.I8, -2),
    "conv1x1_batch2": ((2, 16, 7, 6), (20, 16, 1, 1), [0, 0, 0, 0], 1, 1, DType.U8, 3),
    "conv3x3_stride2": ((1, 8, 9, 9), (16, 8, 3, 3), [1, 1, 1, 1], 2, 1, DType.U8, 5),
}
STEP = {name: "usmmla" for name in [*MATMULS, *CONVS]} | {"conv3x3_stride2": "usdot"}
"""The instruction each case's kernel steps with: a stride-2 conv's neighbours are no 2-row region."""
OUTPUTS = ("accumulator", "requantised")


def integer_graph(case: str, output: str) -> tuple[Graph, dict[str, np.ndarray]]:
    """f32 x, QuantizeLinear, the integer anchor (per-channel w, bias)[, DequantizeLinear, QuantizeLinear]."""
    rng = np.random.default_rng(len(case))
    graph = Graph(f"{case}_{output}")
    builder = Builder(graph)

    def op(name: str, operands: list[Any], **attrs: Any) -> Any:
        return builder.op(name, operands, attrs, name=f"{name.lower()}_{len(graph.nodes)}")[0]

    def weight(shape: tuple[int, ...], axis: int) -> Any:
        w = graph.add_constant("w", rng.integers(-127, 128, shape).astype(np.int8))
        scales = tuple(float(s) for s in rng.uniform(0.005, 0.02, shape[axis]))
        w.type = TensorType(DType.I8, shape, quant=QuantParams(scales, (0,) * shape[axis], axis))
        return w

    w_shape: tuple[int, ...]
    attrs: dict[str, Any] = {}
    if case in MATMULS:
        x_shape, n, dtype, zero = MATMULS[case]
        anchor, w_shape, axis = "MatMulInteger", (x_shape[-1], n), 1
    else:
        x_shape, w_shape, pads, stride, dilation, dtype, zero = CONVS[case]
        anchor, n, axis = "ConvInteger", w_shape[0], 0
        attrs = {"pads": pads, "strides": [stride] * 2, "dilations": [dilation] * 2, "group": 1}
    x = graph.add_input("x", TensorType(DType.F32, x_shape))
    xq = op("QuantizeLinear", [x], dtype=dtype, scale=[0.02], zero_point=[zero])
    bias = graph.add_constant("b", rng.integers(-5000, 5000, n).astype(np.int32))
    result = op(anchor, [xq, weight(w_shape, axis), bias], **attrs)
    if output == "requantised":
        dq = op("DequantizeLinear", [result], dtype=DType.F32)
        result = op("QuantizeLinear", [dq], dtype=DType.U8, scale=[0.03], zero_point=[3])
    graph.set_outputs([result])
    return graph, {"x": (rng.standard_normal(x_shape) * 2).astype(np.float32)}


@pytest.fixture(scope="module")
def runs(arm64_env: Arm64Env, cross_gcc: str, tmp_path_factory: pytest.TempPathFactory) -> dict:
    """(case, output) -> (artifact, its outputs under qemu, the interpreter's)."""
    folder = tmp_path_factory.mktemp("integer_gemm")
    options = CompileOptions(target="arm64", cpu="neoverse-v1")
    built = {}
    for case in STEP:
        for output in OUTPUTS:
            graph, feeds = integer_graph(case, output)
            expected = run_graph(graph, feeds)
            artifact = compile_model(graph, folder / f"{case}_{output}.hai", options).path
            built[case, output] = (artifact, feeds, expected)
    emulated = run_under_qemu(arm64_env, "max", [(a, f) for a, f, _ in built.values()], folder)
    return {key: (a, got, want) for (key, (a, _, want)), got in zip(built.items(), emulated, strict=True)}


@pytest.mark.parametrize("output", OUTPUTS)
@pytest.mark.parametrize("case", STEP)
def test_i8mm_integer_gemm_is_bit_exact(runs: dict, case: str, output: str) -> None:
    artifact, got, want = runs[case, output]
    assert list(got) == list(want)
    for name, expected in want.items():
        assert got[name].dtype == expected.dtype
        np.testing.assert_array_equal(got[name], expected)
    used = instruction_counts(artifact / kernel_library_file("cpu"), r"\b(usmmla|usdot|sdot)\s+v")
    expected_step = instruction_counts(artifact / kernel_library_file("cpu"), rf"\b{STEP[case]}\s+v")
    assert used and used == expected_step, (STEP[case], used)
