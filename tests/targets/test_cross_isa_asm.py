"""Kernels cross-compiled for CPUs this machine need not be (`--cpu sapphirerapids`, `--cpu znver5`), checked
in their assembly: TVM compiles for any x86 cpu, nothing runs. An f32 GEMM uses 512-bit FMAs, an int8 GEMM
`vpdpbusd` (AVX512-VNNI; AMX-INT8 `tdpbusd` tiles on sapphirerapids where it has rows enough), and an
f16 Softmax no native half arithmetic even where the cpu has AVX512-FP16, so its results (checked
bit-exact against the step-wise reference in test_lowering_regressions.py) are the same whatever CPU
compiled them. A control shows the detector finds native half arithmetic where LLVM emits it."""

from __future__ import annotations

import re
from functools import cache

import numpy as np
import pytest

from ir.builder import Builder
from ir.dtypes import DType
from ir.graph import Graph, Node
from ir.types import QuantParams, TensorType
from targets.lowering.dispatch import lower_node
from targets.registry import resolve_target
from targets.x86 import tvm_target_json

CPUS = ("sapphirerapids", "znver5")
HALF_ARITHMETIC = re.compile(
    r"\bv(?:add|sub|mul|div|max|min|sqrt|rcp|rsqrt|scalef|getexp|rndscale|f(?:n?m(?:add|sub)|maddsub|msubadd)\d*)[ps]h\b"
)
"""AVX512-FP16 arithmetic on half floats (`vaddph`, `vfmadd231sh`, ...); conversions (`vcvt*`) are not."""


def node_of(op: str, x: TensorType, constant: np.ndarray | None = None) -> Node:
    """A graph of one `op` node on input `x` (and a constant second operand, typed like `x` is quantized)."""
    graph = Graph(op.lower())
    operands = [graph.add_input("x", x)]
    if constant is not None:
        w = graph.add_constant("w", constant)
        if x.quant is not None:
            w.type = TensorType(DType.I8, constant.shape, quant=QuantParams((0.01,), (0,)))
        operands.append(w)
    attrs = {"axis": 1} if op == "Softmax" else {}
    result = Builder(graph).op(op, operands, attrs, name=op.lower())[0]
    assert result.producer is not None
    return result.producer


def asm_of(func: object, name: str, cpu: str) -> str:
    """x86 assembly of one TIR function compiled for `--cpu cpu`."""
    import tvm

    target = tvm.target.Target(tvm_target_json(resolve_target("x86", cpu=cpu)))
    lib = tvm.compile(tvm.IRModule({name: func.with_attr("global_symbol", name)}), target=target)  # type: ignore[attr-defined]
    return str(lib.mod.inspect_source("asm"))


RNG = np.random.default_rng(5)
KERNELS = {
    "gemm_f32": lambda: node_of(
        "MatMul", TensorType(DType.F32, (32, 64)), RNG.standard_normal((64, 64)).astype(np.float32)
    ),
    "gemm_int8": lambda: node_of(  # too few rows for AMX tiles
        "MatMulInteger",
        TensorType(DType.U8, (8, 64), quant=QuantParams((0.02,), (7,))),
        RNG.integers(-128, 128, (64, 64)).astype(np.int8),
    ),
    "gemm_int8_tiles": lambda: node_of(
        "MatMulInteger",
        TensorType(DType.U8, (64, 128), quant=QuantParams((0.02,), (7,))),
        RNG.integers(-128, 128, (128, 64)).astype(np.int8),
    ),
    "softmax_f16": lambda: node_of("Softmax", TensorType(DType.F16, (8, 64))),
}


@cache
def kernel_asm(kernel: str, cpu: str) -> str:
    lowered = lower_node(KERNELS[kernel](), resolve_target("x86", cpu=cpu))
    return asm_of(lowered.func, lowered.name, cpu)


@pytest.mark.parametrize("cpu", CPUS)
def test_f32_gemm_uses_512_bit_fma(cpu: str) -> None:
    assert re.search(r"\bvfmadd\d{3}ps\s[^\n]*%zmm", kernel_asm("gemm_f32", cpu))


@pytest.mark.parametrize("cpu", CPUS)
def test_int8_gemm_uses_vnni(cpu: str) -> None:
    assert re.search(r"\bvpdpbusd\s[^\n]*%zmm", kernel_asm("gemm_int8", cpu))


@pytest.mark.parametrize("cpu", CPUS)
def test_int8_gemm_of_many_rows_uses_amx_tiles_where_the_cpu_has_them(cpu: str) -> None:
    """sapphirerapids has AMX-INT8: `tdpbusd` after `ldtilecfg`; znver5 has none: `vpdpbusd`."""
    text = kernel_asm("gemm_int8_tiles", cpu)
    amx = cpu == "sapphirerapids"
    assert ("ldtilecfg" in text and re.search(r"\btdpbusd\s", text) is not None) is amx
    assert (re.search(r"\bvpdpbusd\s[^\n]*%zmm", text) is not None) is not amx


@pytest.mark.parametrize("cpu", CPUS)
def test_f16_softmax_has_no_native_half_arithmetic(cpu: str) -> None:
    text = kernel_asm("softmax_f16", cpu)
    assert "vcvtph2ps" in text  # f16 operands are widened to f32 ...
    assert HALF_ARITHMETIC.findall(text) == []  # ... and never computed on as halves


def test_the_detector_finds_native_half_arithmetic() -> None:
    """The same check on an f16 add written in f16: LLVM uses vaddph for sapphirerapids, not for znver5."""
    from tvm import te

    a, b = te.placeholder((64,), "float16", name="a"), te.placeholder((64,), "float16", name="b")
    add = te.create_prim_func([a, b, te.compute((64,), lambda i: a[i] + b[i], name="c")])
    assert HALF_ARITHMETIC.findall(asm_of(add, "add_f16", "sapphirerapids"))
    assert HALF_ARITHMETIC.findall(asm_of(add, "add_f16", "znver5")) == []
