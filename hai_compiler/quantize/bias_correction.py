"""Bias correction: cancel the mean output shift that rounding a layer's weights causes.

Rule: a layer y = W x + b whose weight is stored as W + ΔW outputs on average
ΔW E[x] more than fp32 (Nagel et al., "Data-Free Quantization", 2019). With
E[x] the per-input-channel mean of the layer's fp32 input over the samples
(Conv: over batch and space, padding ignored; MatMul/Gemm: over every row),
the bias becomes b - ΔW E[x]: a float bias for weight-only layers (INT4/FP16),
the int32 accumulator bias less round(ΔW E[x] / (x_scale * w_scale)) for INT8
layers. A layer without a bias operand is left as it is. Layers are matched
between the fp32 and the quantized graph by node name.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ir import Graph, Node, TensorType
from ir.quantization import dequantize
from passes.cleanup import drop_unused_constants
from passes.quantize import integer_weight, layers


def input_channel_means(node: Node, samples: Sequence[Mapping[str, np.ndarray]]) -> np.ndarray:
    """E[x] per input channel of a layer over recorded fp32 samples (Conv axis 1, MatMul/Gemm last)."""
    x = node.operands[0]
    assert x is not None
    arrays = np.stack([sample[x.name] for sample in samples]).astype(np.float64)
    axis = 2 if node.op == "Conv" else arrays.ndim - 1  # the stacked samples add a leading axis
    return np.moveaxis(arrays, axis, -1).reshape(-1, arrays.shape[axis]).mean(axis=0)


def output_shift(node: Node, delta: np.ndarray, means: np.ndarray) -> np.ndarray:
    """ΔW E[x] per output channel; `delta` in integer_weight's layout (Conv (M, C/g, k...), else (K, N))."""
    if node.op != "Conv":
        return means @ delta
    group = int(node.attrs.get("group", 1))
    per_group = delta.shape[1]
    grouped_means = means.reshape(group, per_group)
    m_per_group = delta.shape[0] // group
    summed = delta.reshape(delta.shape[0], per_group, -1).sum(axis=2)  # over the kernel window
    return np.concatenate(
        [summed[g * m_per_group : (g + 1) * m_per_group] @ grouped_means[g] for g in range(group)]
    )


def stored_weight(node: Node) -> np.ndarray | None:
    """The float weight a quantized layer computes with (integer_weight's layout); None: not quantized."""
    weight = node.operands[1]
    if weight is None:
        return None
    if node.op in ("ConvInteger", "MatMulInteger") and weight.type.quant is not None:
        return dequantize(weight.constant_array(), weight.type.quant)
    producer = weight.producer
    if producer is None or producer.op != "DequantizeLinear" or not producer.operands[0]:
        return None
    source = producer.operands[0]
    if not source.is_constant:
        return None
    real = (
        dequantize(source.constant_array(), source.type.quant)
        if source.type.quant
        else source.constant_array()
    )
    real = real.astype(np.float32)
    return np.ascontiguousarray(real.T) if node.op == "Gemm" and node.attrs.get("transB", 0) else real


def correct_biases(fp32: Graph, quantized: Graph, samples: Sequence[Mapping[str, np.ndarray]]) -> int:
    """Correct every quantized layer's bias in `quantized` (module doc); returns how many were corrected.

    `samples` hold the fp32 graph's values by name (an IncrementalEvaluator's `cached`).
    """
    by_name = {node.name: node for node in quantized.nodes if node.name}
    corrected = 0
    for layer in layers(fp32):
        twin = by_name.get(layer.name)
        stored = stored_weight(twin) if twin is not None else None
        if twin is None or stored is None or len(twin.operands) < 3 or twin.operands[2] is None:
            continue
        reference, _ = integer_weight(layer)
        shift = output_shift(
            layer, stored.astype(np.float64) - reference, input_channel_means(layer, samples)
        )
        set_bias(quantized, twin, shift)
        corrected += 1
    return corrected


def set_bias(graph: Graph, node: Node, shift: np.ndarray) -> None:
    """Lower `node`'s bias by `shift` (float, per output channel), in the bias's own dtype and scale."""
    old = node.operands[2]
    assert old is not None and old.is_constant
    if node.op in ("ConvInteger", "MatMulInteger"):
        x, w = node.operands[0], node.operands[1]
        assert x is not None and w is not None and x.type.quant is not None and w.type.quant is not None
        scale = x.type.quant.scale[0] * np.asarray(w.type.quant.scale, np.float64)
        limit = 2**31 - 1
        shifted = old.constant_array().astype(np.int64) - np.rint(shift / scale).astype(np.int64)
        values = np.clip(shifted, -limit, limit).astype(np.int32)
    else:
        values = (old.constant_array().astype(np.float64).reshape(-1) - shift).astype(np.float32)
        values = values.reshape(old.type.shape)
    new = graph.add_constant(old.name + ".corrected", values, TensorType(old.type.dtype, old.type.shape))
    node.set_operand(2, new)
    drop_unused_constants(graph, [old])
