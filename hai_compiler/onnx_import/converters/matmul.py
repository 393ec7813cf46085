"""ONNX converters: matmul family (MatMul, Gemm), every opset from 7 on.

Rule: both map one-to-one onto the IR ops of the same name: MatMul has no
attributes, and Gemm's alpha, beta, transA and transB mean the same in every
opset from 7 (where `broadcast` was dropped); opset 11 only made C optional.
Gemm's converter still checks the attributes, so a stray one names the node.
"""

from __future__ import annotations

from hai_compiler.onnx_import.converter import ConversionContext, converter
from ir import Value

GEMM_ATTRS = ("alpha", "beta", "transA", "transB")


@converter("Gemm")
def gemm(ctx: ConversionContext) -> list[Value]:
    unknown = sorted(set(ctx.attrs) - set(GEMM_ATTRS))
    if unknown:
        raise ctx.fail(f"attributes {unknown} are not part of Gemm (opset 7+)")
    return ctx.emit("Gemm", ctx.inputs, ctx.attrs)
