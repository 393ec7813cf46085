"""QDQ patterns that onnxruntime runs as one QLinear kernel, computed as that kernel computes them (fold-qdq).

An imported quantized model is matched against onnxruntime on the same model,
and onnxruntime fuses these patterns (of QDQ models, and of the com.microsoft
helpers' DequantizeLinear -> float op -> QuantizeLinear import) into kernels
whose float steps round differently from the IR's float ops. Two forms:

*Requantize.* QuantizeLinear(DequantizeLinear(acc)) of an int32 accumulator
whose DequantizeLinear nothing else reads becomes one QuantizeLinear of acc
(the IR's requantization: float32(acc) * (float32(acc_scale) / float32(y_scale)),
as QLinearConv / QLinearMatMul compute it) instead of two roundings.

*Add.* QuantizeLinear(Add(DequantizeLinear(a_q), DequantizeLinear(b_q))) with
a_q, b_q and the result 8-bit per tensor of one dtype (what onnxruntime runs as
one QLinearAdd: com.microsoft QLinearAdd in QOperator models, its fusion of
the DQ -> Add -> Q of QDQ models) computes, with the scales as float32 and
every step rounded to float32 as written:

    r_a = sa / sc,  r_b = sb / sc,  fixed = zc - fma(za, r_a, r_b * zb)
    t   = fma(a, r_a, fma(b, r_b, fixed))       a, b the stored integers
    q   = saturate(round_half_even(t))

The zero point is inside the rounding and the products are fused
multiply-adds (onnxruntime's x86 kernel as its compiler contracts it): on
ppocr_cls's 25 QLinearAdds (2.9M elements) this reproduces onnxruntime
exactly, where the IR's quantize rule (round, then add the zero point) is 1
LSB off on 0.3% of the elements (a .5 tie on an odd zero point, or a product
rounded apart). Where only `a` is one value along the output's innermost
non-unit axis (onnxruntime's broadcasting loop passes it as a scalar), the
roles of a and b swap. A constant operand's side is computed here, in numpy.

In the graph the fused multiply-adds are f64 Mul/Add (exact: an 8-bit
integer times a float32 and a float32 sum fit 53 bits) with a Cast to f32 at
each of onnxruntime's roundings, so contraction by a compiler cannot change
them; then Round, and a QuantizeLinear of (t - zc) * sc, which lands within
1e-4 of the integer and so only types the result with (sc, zc) and
saturates. Cost: the Casts keep these steps out of the layers' fused
epilogues (the `fuse` pass chains one dtype, except quantize steps), ~5
small kernels per Add: ppocr_cls runs ~0.3 ms (25%) slower than with the
IR's float Add. Imports only `ir`.
"""

from __future__ import annotations

import numpy as np

from ir import Builder, DType, Graph, Node, Value
from ir.types import QuantParams

EIGHT_BIT = (DType.U8, DType.I8)
F32 = np.float32


def fold_requantize(graph: Graph, quantizer: Node) -> bool:
    """Rewrite QuantizeLinear(DequantizeLinear(acc)) into one requantizing QuantizeLinear (*Requantize*)."""
    dequantized = quantizer.operands[0]
    acc = _dequantized(dequantized)
    if acc is None or dequantized is None or acc.type.dtype is not DType.I32 or acc.is_constant:
        return False
    if len(dequantized.uses()) != 1 or dequantized.is_graph_output:
        return False
    _replace_quantizer(graph, quantizer, Builder(graph, insert_before=quantizer), acc)
    graph.remove_node(dequantized.producer)  # type: ignore[arg-type]
    return True


def fold_quantized_add(graph: Graph, quantizer: Node) -> bool:
    """Rewrite QuantizeLinear(Add(DQ(a), DQ(b))) per the module rule (*Add*); whether it matched."""
    add = quantizer.operands[0].producer if quantizer.operands[0] is not None else None
    if add is None or add.op != "Add" or len(add.operands) != 2:
        return False
    out = quantizer.results[0].type
    a_q, b_q = (_dequantized(v) for v in add.operands)
    if out.quant is None or out.quant.axis is not None or out.dtype not in EIGHT_BIT:
        return False
    if not (_per_tensor(a_q, out.dtype) and _per_tensor(b_q, out.dtype)):
        return False
    assert a_q is not None and b_q is not None
    builder = Builder(graph, insert_before=quantizer)
    t = _onnxruntime_sum(builder, graph, a_q, b_q, out.quant, out.shape)
    _replace_quantizer(graph, quantizer, builder, _typed(builder, graph, t, out.quant))
    if not add.results[0].uses() and not add.results[0].is_graph_output:
        graph.remove_node(add)
    return True


def _replace_quantizer(graph: Graph, quantizer: Node, builder: Builder, operand: Value) -> None:
    """`quantizer` replaced by a QuantizeLinear of the same attributes and annotations reading `operand`;
    its result keeps the name."""
    result = quantizer.results[0]
    name = result.name
    (q,) = builder.op("QuantizeLinear", [operand], dict(quantizer.attrs), name=quantizer.name,
                      result_names=[name + ".ort"])  # fmt: skip
    q.producer.annotations.update(quantizer.annotations)  # type: ignore[union-attr]
    graph.replace_value(result, q)
    graph.remove_node(quantizer)
    if q.name != name and not graph.has_value(name):
        graph.rename(q, name)


def _per_tensor(value: Value | None, dtype: DType) -> bool:
    quant = value.type.quant if value is not None else None
    return value is not None and quant is not None and value.type.dtype is dtype and quant.axis is None


def _dequantized(value: Value | None) -> Value | None:
    producer = value.producer if value is not None else None
    if producer is None or producer.op != "DequantizeLinear" or producer.attrs["dtype"] is not DType.F32:
        return None
    source = producer.operands[0]
    return source if source is not None and source.type.quant is not None else None


def _params(value: Value) -> tuple[F32, int]:
    quant = value.type.quant
    assert quant is not None
    return F32(quant.scale[0]), int(quant.zero_point[0])


def _per_run(value: Value, shape: tuple[int, ...]) -> bool:
    """Whether `value` is one value along the output's innermost non-unit axis (a scalar per run)."""
    axes = [i for i, d in enumerate(shape) if d > 1]
    if not axes:
        return True
    inner = axes[-1] - len(shape)
    vshape = value.type.shape
    return len(vshape) < -inner or vshape[inner] == 1


def _onnxruntime_sum(builder: Builder, graph: Graph, a_q: Value, b_q: Value, out: QuantParams,
                     shape: tuple[int, ...]) -> Value:  # fmt: skip
    """t (f32) of the module rule."""
    (sa, za), (sb, zb), sc, zc = _params(a_q), _params(b_q), F32(out.scale[0]), int(out.zero_point[0])
    ra, rb = F32(sa / sc), F32(sb / sc)
    fixed = F32(F32(zc) - F32(_fma(F32(za), ra, F32(rb * F32(zb)))))
    if _per_run(a_q, shape) and not _per_run(b_q, shape):  # onnxruntime's scalar A: its product goes first
        a_q, b_q, ra, rb = b_q, a_q, rb, ra
    if b_q.is_constant:
        inner = _fma(b_q.constant_array().astype(F32), rb, fixed)
        inner_part = graph.add_constant(b_q.name + ".ort_inner", inner.astype(np.float64))
    else:
        inner_part = _round_f32(builder, _add(builder, graph, _mul(builder, graph, b_q, rb), fixed))
    if a_q.is_constant:
        product = graph.add_constant(a_q.name + ".ort_term", a_q.constant_array().astype(np.float64) * ra)
    else:
        product = _mul(builder, graph, a_q, ra)
    (t64,) = builder.op("Add", [product, inner_part])
    return builder.op("Cast", [t64], {"to": DType.F32})[0]


def _fma(x: np.ndarray | F32, y: F32, z: np.ndarray | F32) -> np.ndarray:
    """float32(x * y + z) rounded once (exact in float64 for these operands)."""
    return np.asarray(np.asarray(x, np.float64) * np.float64(y) + np.asarray(z, np.float64)).astype(F32)


def _mul(builder: Builder, graph: Graph, q: Value, ratio: F32) -> Value:
    """float64(stored integer of q) * ratio: exact."""
    (wide,) = builder.op("Cast", [q], {"to": DType.F64})
    ratio_value = graph.add_constant(q.name + ".ort_ratio", np.array(ratio, np.float64))
    return builder.op("Mul", [wide, ratio_value])[0]


def _add(builder: Builder, graph: Graph, x: Value, constant: F32) -> Value:
    fixed = graph.add_constant(x.name + ".ort_fixed", np.array(constant, np.float64))
    return builder.op("Add", [x, fixed])[0]


def _round_f32(builder: Builder, x: Value) -> Value:
    """An f64 value rounded to float32, as f64 again."""
    (narrow,) = builder.op("Cast", [x], {"to": DType.F32})
    return builder.op("Cast", [narrow], {"to": DType.F64})[0]


def _typed(builder: Builder, graph: Graph, t: Value, out: QuantParams) -> Value:
    """(round_half_even(t) - zc) * sc: what a QuantizeLinear of `out` turns back into the rounded t."""
    (rounded,) = builder.op("Round", [t])
    zero = graph.add_constant(t.name + ".zero_point", np.array(out.zero_point[0], F32))
    (centred,) = builder.op("Sub", [rounded, zero])
    return builder.op("Mul", [centred, graph.add_constant(t.name + ".scale", np.array(out.scale[0], F32))])[0]
