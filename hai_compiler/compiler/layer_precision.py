"""Per-layer precision for `hai compile --report`: what each layer runs at, and where that came from.

Rule: a layer is a kernel whose anchor is a Conv, ConvTranspose, MatMul, Gemm,
LSTM, GRU or RNN, or their integer forms ConvInteger and MatMulInteger. Its
precision is read from the kernel's nodes, never from names: `int8` for an
integer op (with its activation and weight dtypes, `u8 x i8`); `int4`,
`int8` or `fp16` *weight-only* when its weight is a DequantizeLinear of a
stored constant of that dtype (the prologue fused into the kernel), `bf16`
when that constant is bf16 (the kernel rounds its activations to bf16 too), or
`int8 (u8 x i8, dynamic)` when the kernel also quantizes its activations at
run time (an LSTM of onnxruntime's DynamicQuantizeLSTM,
targets/lowering/rnn_quantized.py); else
the dtype it computes in (`fp32`). Its source is the `precision_source`
annotation of the anchor or its weight prologue (ir/quantization.py
PRECISION_SOURCE_KEY): `imported` when the model came quantized, `hai` when
HAI's quantize pass chose it; a float layer without one runs at the model's
own precision (`model`).
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Sequence
from typing import Any

from ir import DType, Node, Value
from ir.ops.rnn import DYNAMIC_QUANTIZATION
from ir.quantization import PRECISION_SOURCE_KEY

LAYER_OPS = frozenset({"Conv", "ConvTranspose", "MatMul", "Gemm", "LSTM", "GRU", "RNN"})
INTEGER_OPS = frozenset({"ConvInteger", "MatMulInteger"})
PRECISION_OF = {DType.I4: "int4", DType.I8: "int8", DType.U8: "int8", DType.F16: "fp16",
                DType.BF16: "bf16", DType.F32: "fp32", DType.F64: "fp64"}  # fmt: skip


@dataclasses.dataclass(frozen=True)
class LayerPrecision:
    """One layer's kernel: the nodes it came from, its op, the precision it runs at and its source."""

    kernel: str
    nodes: str
    op: str
    precision: str
    source: str


def layer_precisions(groups: Sequence[Any], kernels: Sequence[Any]) -> list[LayerPrecision]:
    """The LayerPrecision of every layer kernel (module doc: the rule), in plan order."""
    rows = []
    for group, kernel in zip(groups, kernels, strict=False):
        anchor = group.anchor
        if anchor.op not in LAYER_OPS | INTEGER_OPS:
            continue
        precision, marked = precision_of(anchor, group.prologue)
        source = next((str(n.annotations[PRECISION_SOURCE_KEY]) for n in marked
                       if PRECISION_SOURCE_KEY in n.annotations), "model")  # fmt: skip
        rows.append(LayerPrecision(kernel.name, ", ".join(kernel.sources), anchor.op, precision, source))
    return rows


def precision_of(anchor: Node, prologue: Sequence[Node]) -> tuple[str, tuple[Node, ...]]:
    """(the precision a layer runs at, the nodes that may say where it came from)."""
    if anchor.op in INTEGER_OPS:
        x, w = anchor.operands[0], anchor.operands[1]
        assert x is not None and w is not None
        return f"int8 ({x.type.dtype.value} x {w.type.dtype.value})", (anchor,)
    weight = stored_weight(anchor, prologue)
    if weight is not None:
        name = PRECISION_OF.get(weight.type.dtype, weight.type.dtype.value)
        if weight.type.dtype is DType.BF16:
            return name, (*prologue, anchor)
        if anchor.attrs.get(DYNAMIC_QUANTIZATION) == "u8":
            return f"{name} (u8 x {weight.type.dtype.value}, dynamic)", (*prologue, anchor)
        return f"{name} weight-only", (*prologue, anchor)
    result = anchor.results[0].type.dtype
    return PRECISION_OF.get(result, result.value), (anchor,)


def stored_weight(anchor: Node, prologue: Sequence[Node]) -> Value | None:
    """The stored constant a layer's weight is dequantized from, when it is read that way."""
    for node in prologue:
        source = node.operands[0] if node.op == "DequantizeLinear" else None
        if source is not None and source.is_constant and node.results[0] in anchor.operands:
            return source
    return None


def summary(rows: Sequence[LayerPrecision]) -> str:
    """`12 layers: 10 int8 (u8 x i8) imported, 2 fp32 model`."""
    counts = Counter((row.precision, row.source) for row in rows)
    parts = [f"{n} {precision} {source}" for (precision, source), n in sorted(counts.items())]
    return f"{len(rows)} layers: {', '.join(parts)}" if rows else "no layers"
