"""The `quantize` pass: give every layer the precision chosen for it (INT8, INT4 weight-only, FP16, FP32).

A *layer* is a Conv, a MatMul or a Gemm whose weight is a constant. Its
precision is its node's `precision` annotation (set by a mixed-precision
chooser, or by hand in a `.hir`), else the pass's `precision` option
(`mixed`: every layer must be annotated):

- `int8`: X -> QuantizeLinear (u8, asymmetric, from X's calibrated range in
  the graph metadata, ir/quantization.py `recorded_range`), W -> i8 symmetric
  per output channel (clipping searched: passes/weight_quantization.py), B ->
  i32 in accumulator scale; ConvInteger / MatMulInteger, then DequantizeLinear
  back to f32 for whatever follows. A value feeding several INT8 layers is
  quantized once. Fusion later folds the DequantizeLinear, the float epilogue
  and the next layer's QuantizeLinear into one kernel.
- `int4`: W -> i4 symmetric, one scale per `group-size` input channels; the
  layer reads DequantizeLinear(W) (never folded), activations stay float. A
  layer whose reduction axis is shorter than MIN_INT4_AXIS (a depthwise Conv)
  takes INT8 when its input was calibrated, else FP16 where the target has f16, else FP32
  (`effective_precision`).
- `fp16`: W stored f16, read through DequantizeLinear, where the target
  (`ctx.target.supported_precisions`, when the driver gives one) has f16;
  elsewhere the layer stays fp32 and the pass notes it.
- `bf16`: W stored bf16 (rounded to nearest even), read through
  DequantizeLinear, and X rounded to bf16 by a Cast pair (X -> Cast bf16 ->
  Cast f32, one pair per layer, so the `fuse` pass can hand it to the layer's
  kernel): the layer multiplies bf16 values and accumulates in f32. Conv
  (group 1, of BF16_MIN_CHANNELS input channels or more: a stem stays fp32),
  MatMul and plain Gemm (transB allowed) only, where the target
  has bf16 (`supports("bf16")`); elsewhere the layer stays fp32 and the pass notes it.
- `fp32`: untouched.

A Gemm is INT8-quantized when it is a plain `X @ W (+ bias)` (no transA, alpha
and beta 1, bias 1-D); otherwise it keeps FP32 and the pass notes it. An INT8
layer whose input was not calibrated is an error naming the value.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ir import Builder, DType, Graph, HaiError, Node, TensorType, Value
from ir.quantization import PRECISION_SOURCE_KEY, params_for_range, recorded_range
from passes.cleanup import drop_unused_constants
from passes.manager import Pass, PassContext
from passes.weight_quantization import QuantizedWeight, quantize_groupwise, quantize_per_channel

PRECISIONS = ("fp32", "bf16", "fp16", "int8", "int4")
MIXED = "mixed"
"""The pass option that takes every layer's precision from its annotation (a mixed-precision choice)."""
MIN_INT4_AXIS = 8
"""INT4 needs a reduction axis this long: shorter ones (depthwise, RGB input) would store a scale a weight."""
PRECISION_KEY = "precision"
STORED_SUFFIX = ".q"
"""A quantized layer's weight is stored as the constant `WEIGHT.q` (`stored_weight` finds it)."""
LAYER_OPS = ("Conv", "MatMul", "Gemm")
ACTIVATION_DTYPE = DType.U8


class QuantizationError(HaiError):
    """The graph cannot be quantized as asked (no calibrated range, unknown precision)."""


def layer_weight(node: Node) -> Value | None:
    """The constant weight operand of a layer node, or None when `node` is no layer."""
    if node.op not in LAYER_OPS or len(node.operands) < 2:
        return None
    weight = node.operands[1]
    if weight is None or not weight.is_constant or weight.type.dtype is not DType.F32:
        return None
    if node.op == "MatMul" and weight.type.rank != 2:
        return None
    return weight


def layers(graph: Graph) -> list[Node]:
    """Every layer of the graph, in node order."""
    return [node for node in graph.nodes if layer_weight(node) is not None]


def stored_weight(graph: Graph, weight: str) -> Value | None:
    """The constant that holds the layer weight named `weight` (before this pass) in `graph` after it:
    `WEIGHT.q` when the layer was quantized, the weight itself when it kept fp32; None when neither."""
    return graph.constants.get(weight + STORED_SUFFIX) or graph.constants.get(weight)


@dataclasses.dataclass(frozen=True)
class Quantize(Pass):
    """Quantize every Conv/MatMul/Gemm layer to its `precision` annotation or the default precision."""

    name = "quantize"
    precision: str = dataclasses.field(
        default="int8", metadata={"help": "precision of layers without a `precision` annotation"}
    )
    group_size: int = dataclasses.field(
        default=32, metadata={"help": "INT4: input channels sharing one weight scale"}
    )

    def __post_init__(self) -> None:
        if self.precision not in (*PRECISIONS, MIXED):
            raise ValueError(
                f"precision must be one of {', '.join((*PRECISIONS, MIXED))}, got {self.precision!r}"
            )
        if self.group_size < 1:
            raise ValueError(f"group-size must be >= 1, got {self.group_size}")

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        quantized_inputs: dict[Value, Value] = {}
        for node in layers(graph):
            precision = str(node.annotations.get(PRECISION_KEY, self.precision))
            if precision == MIXED:
                raise QuantizationError(
                    f"{node.label()}: precision=mixed needs a `precision` annotation on every layer "
                    "(hai quantize --precision mixed chooses them)"
                )
            if precision not in PRECISIONS:
                raise QuantizationError(
                    f"{node.label()}: precision {precision!r} is not one of {', '.join(PRECISIONS)}"
                )
            effective = effective_precision(graph, node, precision, ctx.target.supports("f16"))
            done = self._rewrite(graph, node, effective, quantized_inputs, ctx)
            ctx.count(self.name, done)
        return graph

    def _rewrite(
        self, graph: Graph, node: Node, precision: str, quantized_inputs: dict[Value, Value], ctx: PassContext
    ) -> str:
        if precision == "fp16" and not ctx.target.supports("f16"):
            ctx.note(self.name, f"{node.label()}: the target has no f16 support; the layer stays fp32")
            return "fp32"
        if precision == "bf16":
            return self._bf16(graph, node, ctx)
        if precision == "int8":
            if node.op == "Gemm" and not plain_gemm(node):
                ctx.note(self.name, f"{node.label()}: a Gemm with transA/alpha/beta/2-D bias stays fp32")
                return "fp32"
            quantize_int8(graph, node, quantized_inputs)
        elif precision in ("int4", "fp16"):
            stored = weight_only(node, precision, self.group_size)
            read_through_dequantize(graph, node, stored)
            node.annotations[PRECISION_KEY] = precision
            node.annotations[PRECISION_SOURCE_KEY] = "hai"
        return precision

    def _bf16(self, graph: Graph, node: Node, ctx: PassContext) -> str:
        if not ctx.target.supports("bf16"):
            ctx.note(self.name, f"{node.label()}: the target has no bf16 support; the layer stays fp32")
            return "fp32"
        read_through_dequantize(graph, node, bf16_weight(node))
        round_activation(graph, node)
        node.annotations[PRECISION_KEY] = "bf16"
        node.annotations[PRECISION_SOURCE_KEY] = "hai"
        return "bf16"


def effective_precision(graph: Graph, node: Node, precision: str, f16: bool = True) -> str:
    """`precision`, or for INT4 on a layer whose reduction axis is shorter than MIN_INT4_AXIS the next
    better precision that fits: INT8 when its input has a calibrated range, else FP16 where the target
    has f16 kernels (`f16`), else FP32; FP32 for bf16 on a layer the bf16 GEMM does not compute
    (`bf16_layer`)."""
    if precision == "bf16" and not bf16_layer(node):
        return "fp32"
    if precision != "int4":
        return precision
    weight = layer_weight(node)
    assert weight is not None
    if weight.type.shape[reduction_axis(node)] >= MIN_INT4_AXIS:
        return precision
    x = node.operands[0]
    if x is not None and recorded_range(graph.metadata, x.name) is not None:
        return "int8"
    return "fp16" if f16 else "fp32"


def plain_gemm(node: Node) -> bool:
    """A Gemm that is X @ W' + bias: no transA, alpha = beta = 1, a 1-D bias or none."""
    bias = node.operands[2] if len(node.operands) > 2 else None
    attrs = node.attrs
    return (
        not attrs.get("transA", 0)
        and attrs.get("alpha", 1.0) == 1.0
        and attrs.get("beta", 1.0) == 1.0
        and (bias is None or (bias.is_constant and bias.type.rank == 1))
    )


# -- weight-only -----------------------------------------------------------------------------------------


def weight_only(node: Node, precision: str, group_size: int) -> tuple[np.ndarray, TensorType]:
    """The stored weight of an INT4 or FP16 weight-only layer and its type."""
    weight = layer_weight(node)
    assert weight is not None
    array = weight.constant_array()
    if precision == "fp16":
        return array.astype(np.float16), TensorType(DType.F16, weight.type.shape)
    axis = reduction_axis(node)
    q = quantize_groupwise(array, axis, min(group_size, array.shape[axis]))
    return q.values, TensorType(q.dtype, weight.type.shape, quant=q.params)


def reduction_axis(node: Node) -> int:
    """The weight axis a layer sums over: Conv W (M, C, k...) 1, MatMul W (K, N) 0, Gemm B 1 if transB."""
    if node.op == "Conv":
        return 1
    if node.op == "Gemm" and node.attrs.get("transB", 0):
        return 1
    return 0


def read_through_dequantize(graph: Graph, node: Node, stored: tuple[np.ndarray, TensorType]) -> None:
    weight = node.operands[1]
    assert weight is not None
    array, type_ = stored
    constant = graph.add_constant(weight.name + STORED_SUFFIX, array, type_)
    (real,) = Builder(graph, insert_before=node).op("DequantizeLinear", [constant], name=weight.name + ".dq")
    node.set_operand(1, real)
    drop_unused_constants(graph, [weight])


# -- bf16 ------------------------------------------------------------------------------------------------


BF16_MIN_CHANNELS = 8
"""Input channels below which a Conv stays fp32 at bf16 (an image stem): its bf16 kernel widens each
window of a few channels into a bf16 row first, which costs more than the f32 direct conv, on AMX tiles
and on vdpbf16ps alike. Measured single-thread CPU time on a Sapphire Rapids core, NHWC: a 7 x 7 / 2
3 -> 64 conv at 224 x 224 1.5 ms in f32, 3.7 ms (vdpbf16ps) and 4.5 ms (AMX) in bf16; a 3 x 3 / 2
3 -> 32 one 0.34 ms against 0.68 and 0.76."""


def bf16_layer(node: Node) -> bool:
    """A layer the bf16 GEMM computes and that pays: a group-1 Conv of at least BF16_MIN_CHANNELS input
    channels, a MatMul, or a Gemm without transA whose alpha and beta are 1 and whose bias is 1-D
    (transB is fine)."""
    if node.op == "Conv":
        weight = node.operands[1]
        wide = weight is None or weight.type.rank < 2 or weight.type.shape[1] >= BF16_MIN_CHANNELS
        return int(node.attrs.get("group", 1)) == 1 and wide
    return node.op == "MatMul" or plain_gemm(node)


def bf16_weight(node: Node) -> tuple[np.ndarray, TensorType]:
    weight = layer_weight(node)
    assert weight is not None
    array = weight.constant_array().astype(DType.BF16.numpy)
    return array, TensorType(DType.BF16, weight.type.shape)


def round_activation(graph: Graph, node: Node) -> None:
    """Read the layer's input through Cast(bf16) -> Cast(f32): the value a bf16 multiply sees."""
    x = node.operands[0]
    assert x is not None
    builder = Builder(graph, insert_before=node)
    (half,) = builder.op("Cast", [x], {"to": DType.BF16}, name=f"{x.name}.bf16")
    (rounded,) = builder.op("Cast", [half], {"to": DType.F32}, name=f"{x.name}.bf16.f32")
    node.set_operand(0, rounded)


# -- INT8 ------------------------------------------------------------------------------------------------


def quantize_int8(graph: Graph, node: Node, quantized_inputs: dict[Value, Value]) -> None:
    """Replace the layer by QuantizeLinear(X) -> ConvInteger/MatMulInteger -> DequantizeLinear."""
    x, weight = node.operands[0], node.operands[1]
    assert x is not None and weight is not None
    builder = Builder(graph, insert_before=node)
    xq = quantized_inputs.get(x)
    if xq is None:
        xq = quantized_inputs[x] = quantize_activation(graph, builder, x, node)
    matrix, channel_axis = integer_weight(node)
    w = quantize_per_channel(matrix, channel_axis, min_scale=bias_safe_scale(node, xq))
    w_value = graph.add_constant(
        weight.name + STORED_SUFFIX, w.values, TensorType(w.dtype, matrix.shape, quant=w.params)
    )
    bias = integer_bias(graph, node, xq, w)
    op = "ConvInteger" if node.op == "Conv" else "MatMulInteger"
    attrs = dict(node.attrs) if node.op == "Conv" else {}
    (acc,) = builder.op(
        op, [xq, w_value, bias], attrs, name=node.name, result_names=[node.results[0].name + ".acc"]
    )
    (real,) = builder.op("DequantizeLinear", [acc], name=acc.name + ".dq")
    copy_annotations(node, acc.producer)
    original = node.results[0]
    name = original.name
    graph.replace_value(original, real)
    operands = list(node.operands)
    graph.remove_node(node)
    if real.name != name:  # the layer's output keeps its name (and its calibrated range)
        graph.rename(real, name)
    drop_unused_constants(graph, operands)


def copy_annotations(source: Node, target: Node | None) -> None:
    assert target is not None
    target.annotations.update({k: v for k, v in source.annotations.items() if k != PRECISION_KEY})
    target.annotations[PRECISION_KEY] = "int8"
    target.annotations[PRECISION_SOURCE_KEY] = "hai"


def quantize_activation(graph: Graph, builder: Builder, x: Value, node: Node) -> Value:
    """QuantizeLinear of `x` to u8 over its calibrated range."""
    observed = recorded_range(graph.metadata, x.name)
    if observed is None:
        raise QuantizationError(
            f"{node.label()}: its input %{x.name} has no calibrated range; calibrate the model on "
            f"representative inputs first (hai quantize --calibration-data ...)"
        )
    scale, zero_point = params_for_range(*observed, ACTIVATION_DTYPE, symmetric=False)
    attrs = {"dtype": ACTIVATION_DTYPE, "scale": (scale,), "zero_point": (zero_point,)}
    (q,) = builder.op("QuantizeLinear", [x], attrs, name=x.name + ".q")
    return q


def integer_weight(node: Node) -> tuple[np.ndarray, int]:
    """The float weight as the integer op wants it and its output-channel axis: Conv (M, C, k...) axis 0,
    MatMul/Gemm (K, N) axis 1."""
    weight = node.operands[1]
    assert weight is not None
    array = weight.constant_array().astype(np.float32)
    if node.op == "Conv":
        return array, 0
    if node.op == "Gemm" and node.attrs.get("transB", 0):
        array = np.ascontiguousarray(array.T)
    return array, 1


BIAS_HEADROOM = 2**24
"""A bias in accumulator scale stays within ±2^24, leaving the rest of int32 to the products."""


def layer_bias(node: Node) -> Value | None:
    return node.operands[2] if len(node.operands) > 2 and node.op != "MatMul" else None


def bias_safe_scale(node: Node, xq: Value) -> np.ndarray | float:
    """The smallest weight scale per output channel that keeps the bias within BIAS_HEADROOM."""
    bias = layer_bias(node)
    if bias is None:
        return 0.0
    assert xq.type.quant is not None
    return np.abs(bias.constant_array().astype(np.float64).reshape(-1)) / (
        xq.type.quant.scale[0] * BIAS_HEADROOM
    )


def integer_bias(graph: Graph, node: Node, xq: Value, w: QuantizedWeight) -> Value | None:
    """The layer's float bias as int32 in accumulator scale (x_scale * w_scale), or None."""
    bias = layer_bias(node)
    if bias is None:
        return None
    assert xq.type.quant is not None and bias.is_constant
    scale = xq.type.quant.scale[0] * np.asarray(w.params.scale, np.float64)
    values = np.rint(bias.constant_array().astype(np.float64).reshape(-1) / scale)
    limit = 2**31 - 1
    return graph.add_constant(bias.name + ".q", np.clip(values, -limit, limit).astype(np.int32))
