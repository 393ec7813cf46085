"""The `fold-qdq` pass: fold the QDQ form of an imported quantized model onto HAI's integer ops.

A QDQ model (onnxruntime `quantize_static(..., quant_format=QDQ)`) imports as
float ops between QuantizeLinear/DequantizeLinear pairs. Rule, in node order:

- *Layers.* A Conv, MatMul or Gemm whose activation is DequantizeLinear(a_q),
  a_q an 8-bit run-time value quantized per tensor, and whose weight is
  DequantizeLinear(W_q), W_q an 8-bit constant quantized per tensor or per
  output channel (Conv W axis 0, MatMul W (K, N) axis 1, Gemm B axis 1, or 0
  with transB), becomes HAI's INT8 form (passes/quantize.py):
  ConvInteger/MatMulInteger(a_q, W_i8 [, B_i32]) -> int32 accumulator ->
  DequantizeLinear -> f32, so that `fuse` folds that DequantizeLinear, the
  float epilogue and the next QuantizeLinear into one requantizing kernel.
  W_i8 is `W_q - zero_point` (the IR's symmetric i8 weight) when every value
  fits i8; a Gemm with transB reads the transposed constant. The bias is
  DequantizeLinear of an i32 constant whose scales are a_scale * w_scale (its
  integers are kept), or a float constant, quantized to i32 in accumulator
  scale as onnxruntime quantizes it (float32 steps, `onnxruntime_bias`).
  Only a plain Gemm `X @ B (+ bias)` folds (no transA, alpha = beta = 1, 1-D
  bias). A layer that matches the pattern but cannot fold (a 16-bit activation, a weight that does not fit i8
  after re-centring, a bias at another scale, a run-time weight) is left
  alone and the pass notes why; so is everything that does not match (it
  stays float, as imported).
- *Exact integer ops.* DequantizeLinear -> MaxPool -> QuantizeLinear with the
  same dtype and parameters becomes the pool on the integers (a max commutes
  with a positive affine map; the IR's MaxPool keeps a per-tensor quantized
  operand's parameters). AveragePool, GlobalMaxPool and Relu stay float
  between their quantize steps.
- *No-op pairs.* QuantizeLinear(DequantizeLinear(x)) with x's own dtype and
  parameters is x.
- *onnxruntime's fused forms* (passes/qlinear_forms.py). A layer's
  DequantizeLinear -> QuantizeLinear is one requantization of the int32
  accumulator, and QuantizeLinear(Add(DequantizeLinear, DequantizeLinear)),
  8-bit per tensor, computes as onnxruntime's QLinearAdd does, so imported
  models round as onnxruntime's fused kernels do.
- *Quantized constants.* A DequantizeLinear of an integer constant that no
  layer reads as its weight, nor an LSTM/GRU/RNN as an 8-bit W or R its
  kernel reads stored (a BatchNormalization's scale, an unfolded bias)
  becomes its f32 value, computed by the IR's rule: it is exact, and no kernel
  reads stored integers outside a layer.

Every ConvInteger/MatMulInteger made here carries `precision = "int8"` and
`precision_source = "imported"` (the precision came with the model).
Imports only `ir` and this package.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ir import Builder, DType, Graph, Node, TensorType, Value
from ir.fusion import RECURRENT_OPS, record_folded
from ir.quantization import PRECISION_SOURCE_KEY, dequantize, expand
from ir.types import QuantParams
from passes.cleanup import drop_unused_constants
from passes.fuse import recurrent_prologue
from passes.manager import Pass, PassContext
from passes.qlinear_forms import fold_quantized_add, fold_requantize
from passes.quantize import LAYER_OPS, copy_annotations
from passes.weight_quantization import QuantizedWeight

IMPORTED = "imported"
EIGHT_BIT = (DType.U8, DType.I8)
EXACT_POOLS = ("MaxPool",)
BIAS_SCALE_RTOL = 1e-5
"""A bias whose scales are a_scale * w_scale within this relative error keeps its integers."""


class NotFoldable(Exception):
    """Why a layer that has the QDQ pattern stays float (becomes a pass note)."""


@dataclasses.dataclass(frozen=True)
class FoldQdq(Pass):
    """Fold QuantizeLinear/DequantizeLinear around layers and pools into integer ops (see module rule)."""

    name = "fold-qdq"

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        for node in list(graph.nodes):
            if node.graph is not graph:
                continue
            if node.op in LAYER_OPS:
                self._fold_layer(graph, node, ctx)
            elif node.op in EXACT_POOLS and fold_exact_pool(graph, node):
                ctx.count(self.name, f"integer-{node.op}")
            elif node.op == "QuantizeLinear" and fold_noop_pair(graph, node):
                ctx.count(self.name, "no-op-pair")
            elif node.op == "QuantizeLinear" and fold_requantize(graph, node):
                ctx.count(self.name, "requantize")
            elif node.op == "QuantizeLinear" and fold_quantized_add(graph, node):
                ctx.count(self.name, "onnxruntime-add")
        ctx.count(self.name, "constant-dequantized", materialize_constants(graph))
        return graph

    def _fold_layer(self, graph: Graph, node: Node, ctx: PassContext) -> None:
        a_q, w_q = dequantized_operand(node, 0), dequantized_operand(node, 1)
        if a_q is None or w_q is None or a_q.is_constant:
            return
        try:
            if not is_eight_bit(a_q, per_tensor=True):
                raise NotFoldable(f"its activation %{a_q.name} {a_q.type} is not 8-bit per tensor")
            fold_layer(graph, node, a_q, w_q)
        except NotFoldable as reason:
            ctx.note(self.name, f"{node.label()}: stays float: {reason}")
            return
        ctx.count(self.name, f"integer-{node.op}")


# -- matching --------------------------------------------------------------------------------------------


def dequantized_operand(node: Node, index: int) -> Value | None:
    """The quantized value that operand `index` of `node` dequantizes to f32, or None."""
    value = node.operands[index] if index < len(node.operands) else None
    producer = value.producer if value is not None else None
    if producer is None or producer.op != "DequantizeLinear" or producer.attrs["dtype"] is not DType.F32:
        return None
    source = producer.operands[0]
    return source if source is not None and source.type.quant is not None else None


def is_eight_bit(value: Value, *, per_tensor: bool) -> bool:
    quant = value.type.quant
    assert quant is not None
    return (
        value.type.dtype in EIGHT_BIT and quant.group_size is None and (quant.axis is None or not per_tensor)
    )


# -- layers ----------------------------------------------------------------------------------------------


def fold_layer(graph: Graph, node: Node, a_q: Value, w_q: Value) -> None:
    """Rewrite `node` into ConvInteger/MatMulInteger -> DequantizeLinear; NotFoldable says why not."""
    check_plain(node)
    weight = integer_weight(node, w_q)
    bias = integer_layer_bias(graph, node, a_q, weight)
    w_value = graph.add_constant(
        w_q.name + ".i8", weight.values, TensorType(DType.I8, weight.values.shape, quant=weight.params)
    )
    builder = Builder(graph, insert_before=node)
    op = "ConvInteger" if node.op == "Conv" else "MatMulInteger"
    attrs = dict(node.attrs) if node.op == "Conv" else {}
    original = node.results[0]
    (acc,) = builder.op(
        op, [a_q, w_value, bias], attrs, name=node.name, result_names=[original.name + ".acc"]
    )
    (real,) = builder.op("DequantizeLinear", [acc], name=acc.name + ".dq")
    layer = acc.producer
    assert layer is not None
    copy_annotations(node, layer)
    layer.annotations[PRECISION_SOURCE_KEY] = IMPORTED
    dequantizers = [v.producer for v in node.operands if v is not None and v.producer is not None]
    record_folded(layer, [node, *dequantizers])
    name = original.name
    graph.replace_value(original, real)
    operands = list(node.operands)
    graph.remove_node(node)
    if real.name != name:  # the layer's output keeps its name
        graph.rename(real, name)
    remove_unused_dequantizers(graph, operands)


def check_plain(node: Node) -> None:
    if node.op != "Gemm":
        return
    attrs = node.attrs
    if attrs.get("transA", 0) or attrs.get("alpha", 1.0) != 1.0 or attrs.get("beta", 1.0) != 1.0:
        raise NotFoldable("a Gemm with transA, alpha or beta other than 1 has no integer form")


def weight_channel_axis(node: Node, w_q: Value) -> int:
    """W's output-channel axis as stored: Conv 0, MatMul 1, Gemm 0 with transB else 1."""
    if node.op == "Conv":
        return 0
    if w_q.type.rank != 2:
        raise NotFoldable(f"weight %{w_q.name} {w_q.type} is not a 2-D matrix")
    return 0 if node.op == "Gemm" and node.attrs.get("transB", 0) else 1


def integer_weight(node: Node, w_q: Value) -> QuantizedWeight:
    """W_q as the IR's symmetric i8 weight (per tensor or per output channel), as the integer op reads it."""
    if not w_q.is_constant:
        raise NotFoldable(f"its weight %{w_q.name} is computed at run time, not a constant")
    if not is_eight_bit(w_q, per_tensor=False):
        raise NotFoldable(f"its weight %{w_q.name} {w_q.type} is not 8-bit per tensor or per channel")
    quant = w_q.type.quant
    assert quant is not None
    axis = weight_channel_axis(node, w_q)
    if quant.axis not in (None, axis):
        raise NotFoldable(f"its weight %{w_q.name} is quantized along axis {quant.axis}, not {axis}")
    zero = expand(quant.zero_point, w_q.type.shape, quant, np.int64)
    centred = w_q.constant_array().astype(np.int64) - zero
    if centred.size and (centred.min() < -128 or centred.max() > 127):
        raise NotFoldable(
            f"its weight %{w_q.name} less its zero points spans [{centred.min()}, {centred.max()}], "
            "outside i8; HAI's integer weights are symmetric i8"
        )
    if node.op != "Conv" and axis == 0:  # Gemm transB: the integer op reads (K, N)
        centred = centred.T
    channels = len(quant.scale)
    out_axis = (0 if node.op == "Conv" else 1) if channels > 1 else None
    params = QuantParams(quant.scale, (0,) * channels, out_axis)
    return QuantizedWeight(np.ascontiguousarray(centred.astype(np.int8)), DType.I8, params)


def integer_layer_bias(graph: Graph, node: Node, a_q: Value, weight: QuantizedWeight) -> Value | None:
    """The bias as int32 in accumulator scale: a dequantized i32 constant at that scale as it is, a float
    constant quantized as onnxruntime does (`onnxruntime_bias`); anything else is NotFoldable."""
    bias = node.operands[2] if node.op != "MatMul" and len(node.operands) > 2 else None
    if bias is None:
        return None
    channels = weight.values.shape[0 if node.op == "Conv" else 1]
    if bias.type.shape != (channels,):
        raise NotFoldable(f"its bias %{bias.name} {bias.type} is not one value per output channel")
    if bias.is_constant and bias.type.dtype.is_float:
        return onnxruntime_bias(graph, bias, a_q, weight)
    b_q = dequantized_operand(node, 2)
    if b_q is None or not b_q.is_constant or b_q.type.dtype is not DType.I32:
        raise NotFoldable(f"its bias %{bias.name} is neither a float constant nor a dequantized i32 constant")
    quant = b_q.type.quant
    assert quant is not None and a_q.type.quant is not None
    expected = a_q.type.quant.scale[0] * np.asarray(weight.params.scale, np.float64)
    scales = np.asarray(quant.scale, np.float64)
    if any(quant.zero_point) or not np.allclose(scales, expected, rtol=BIAS_SCALE_RTOL, atol=0.0):
        raise NotFoldable(f"its bias %{b_q.name} is not quantized at a_scale * w_scale with zero point 0")
    return graph.add_constant(b_q.name + ".acc", b_q.constant_array().astype(np.int32).reshape(-1))


def onnxruntime_bias(graph: Graph, bias: Value, a_q: Value, weight: QuantizedWeight) -> Value:
    """A float bias in accumulator scale as onnxruntime quantizes it (its BiasQuantization transformer):
    round_half_even(float32(bias) / float32(a_scale * w_scale)), every step in float32."""
    assert a_q.type.quant is not None
    scale = np.float32(a_q.type.quant.scale[0]) * np.asarray(weight.params.scale, np.float32)
    values = np.rint(bias.constant_array().astype(np.float32).reshape(-1) / scale).astype(np.float64)
    limit = 2**31 - 1
    return graph.add_constant(bias.name + ".q", np.clip(values, -limit, limit).astype(np.int32))


def remove_unused_dequantizers(graph: Graph, values: list[Value | None]) -> None:
    """Remove the DequantizeLinear producers of `values` that nothing reads any more, and their constants."""
    for value in dict.fromkeys(v for v in values if v is not None):
        producer = value.producer
        if producer is None or producer.op != "DequantizeLinear" or producer.graph is not graph:
            continue
        if value.uses() or value.is_graph_output:
            continue
        operands = list(producer.operands)
        graph.remove_node(producer)
        drop_unused_constants(graph, operands)


# -- exact integer ops, no-op pairs, quantized constants -------------------------------------------------


def fold_exact_pool(graph: Graph, pool: Node) -> bool:
    """DequantizeLinear -> max pool -> QuantizeLinear of the same parameters: the pool on the integers."""
    x_q = dequantized_operand(pool, 0)
    if x_q is None or len(pool.results) != 1 or not is_eight_bit(x_q, per_tensor=True):
        return False
    quantizer = sole_user(pool.results[0])
    if quantizer is None or not same_quantization(quantizer, x_q):
        return False
    result = quantizer.results[0]
    builder = Builder(graph, insert_before=pool)
    (pooled,) = builder.op(
        pool.op, [x_q], dict(pool.attrs), name=pool.name, result_names=[result.name + ".pooled"]
    )
    record_folded(pooled.producer, [pool, quantizer])  # type: ignore[arg-type]
    graph.replace_value(result, pooled)
    graph.remove_node(quantizer)
    dequantized = pool.operands[0]
    graph.remove_node(pool)
    remove_unused_dequantizers(graph, [dequantized])
    if pooled.name != result.name and not graph.has_value(result.name):
        graph.rename(pooled, result.name)
    return True


def fold_noop_pair(graph: Graph, quantizer: Node) -> bool:
    """QuantizeLinear(DequantizeLinear(x)) with x's dtype and parameters: readers of it read x."""
    x_q = dequantized_operand(quantizer, 0)
    result = quantizer.results[0]
    if x_q is None or result.is_graph_output or not same_quantization(quantizer, x_q):
        return False
    dequantized = quantizer.operands[0]
    graph.replace_value(result, x_q)
    graph.remove_node(quantizer)
    remove_unused_dequantizers(graph, [dequantized])
    return True


def sole_user(value: Value) -> Node | None:
    uses = value.uses()
    return uses[0][0] if len(uses) == 1 and not value.is_graph_output else None


def same_quantization(quantizer: Node, x_q: Value) -> bool:
    """Whether `quantizer` is a QuantizeLinear to exactly x_q's dtype and parameters."""
    if quantizer.op != "QuantizeLinear" or quantizer.attrs["dtype"] is not x_q.type.dtype:
        return False
    result = quantizer.results[0].type.quant
    return result is not None and result == x_q.type.quant


def _reads_as_weight(user: Node, index: int) -> bool:
    """A layer's weight operand, or a recurrent node's W or R that its kernel reads stored (fuse's
    `recurrent_prologue`)."""
    if user.op in RECURRENT_OPS:
        return recurrent_prologue(user, index) is not None
    return user.op in LAYER_OPS and index == 1


def materialize_constants(graph: Graph) -> int:
    """Replace each DequantizeLinear of an integer constant that no layer reads as its weight by its f32
    value (the IR's rule, computed now); how many."""
    done = 0
    for node in list(graph.nodes):
        source = node.operands[0] if node.op == "DequantizeLinear" else None
        if source is None or not source.is_constant or source.type.quant is None:
            continue
        result = node.results[0]
        if (
            result.is_graph_output
            or result.type.dtype is not DType.F32
            or any(_reads_as_weight(user, index) for user, index in result.uses())
        ):
            continue
        real = dequantize(source.constant_array(), source.type.quant).astype(np.float32)
        constant = graph.add_constant(result.name + ".f32", np.ascontiguousarray(real))
        graph.replace_value(result, constant)
        graph.remove_node(node)
        drop_unused_constants(graph, [source])
        graph.rename(constant, result.name)
        done += 1
    return done
