"""Activation clipping-range search per layer: the input range that makes each INT8 layer's output closest
to fp32.

Rule: an observer picks a range from a tensor's values alone. Here, for the
input of every layer (Conv/MatMul/Gemm with a constant weight), candidate
ranges — the observer's, the samples' min/max, and two-sided quantiles at
1e-5, 1e-4 and 1e-3 — are each tried: the input is quantized to u8 with the
candidate and dequantized, the weight to i8 per channel as passes/quantize.py
does, and the layer's float reference computes the output. The candidate with
the least squared error against the fp32 output, summed over the samples and
over every layer reading that input, replaces the observer's range. Ties keep
the earlier candidate. Per-layer error is only a proxy: whether the refined
ranges serve the whole model better is judged by range_selection.py.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np

from ir import DType, Graph, Node, QuantParams
from ir.ops.registry import get_schema
from ir.quantization import dequantize, params_for_range, quantize
from passes.quantize import ACTIVATION_DTYPE, integer_weight, layers
from passes.weight_quantization import quantize_per_channel

QUANTILES = (1e-5, 1e-4, 1e-3)


def fake_quantized(x: np.ndarray, lo: float, hi: float) -> np.ndarray:
    """`x` through u8 quantization with range [lo, hi] and back."""
    scale, zero_point = params_for_range(lo, hi, ACTIVATION_DTYPE, symmetric=False)
    params = QuantParams((scale,), (zero_point,))
    return dequantize(quantize(x.astype(np.float32), params, ACTIVATION_DTYPE), params)


def layer_output(node: Node, x: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """The layer's float output for input `x` and weight `weight` (in the node's own weight layout)."""
    args = [x, weight, *(o.constant_array() if o is not None else None for o in node.operands[2:])]
    types = [o.type if o is not None else None for o in node.operands]
    return get_schema(node.op).evaluate(args, node.attrs, types)[0]


def dequantized_weight(node: Node) -> np.ndarray:
    """The weight as INT8 per-channel quantization leaves it, in the node's own layout."""
    matrix, axis = integer_weight(node)
    restored = quantize_per_channel(matrix, axis).dequantized()
    if node.op == "Gemm" and node.attrs.get("transB", 0):
        return np.ascontiguousarray(restored.T)
    return restored


Range = tuple[float, float]


def candidates(values: Sequence[np.ndarray], observed: Range | None) -> list[Range]:
    """Ranges to try for an input seen as `values`: the observer's first, then min/max, then quantiles."""
    flat = np.concatenate([v.ravel() for v in values]).astype(np.float64)
    ranges = [observed] if observed is not None else []
    ranges.append((float(flat.min()), float(flat.max())))
    for q in QUANTILES:
        lo, hi = np.quantile(flat, [q, 1 - q])
        ranges.append((float(lo), float(hi)))
    return ranges


def refine_ranges(
    graph: Graph, ranges: Mapping[str, Range], recorded: Sequence[Mapping[str, np.ndarray]]
) -> dict[str, Range]:
    """`ranges` with every layer input's range replaced by the best candidate on the samples whose
    fp32 values (graph inputs and node results by name) are `recorded` (IncrementalEvaluator.cached)."""
    readers: dict[str, list[Node]] = {}
    for node in layers(graph):
        x = node.operands[0]
        if x is not None and x.type.dtype is DType.F32:
            readers.setdefault(x.name, []).append(node)
    chosen = dict(ranges)
    for name, nodes in readers.items():
        values = [sample[name] for sample in recorded]
        weights = {node: dequantized_weight(node) for node in nodes}
        best, best_error = None, np.inf
        for lo, hi in candidates(values, ranges.get(name)):
            error = 0.0
            for sample, x in zip(recorded, values):
                xq = fake_quantized(x, lo, hi)
                for node in nodes:
                    reference = sample[node.results[0].name]
                    error += float(((layer_output(node, xq, weights[node]) - reference) ** 2).sum())
            if error < best_error:
                best, best_error = (lo, hi), error
        assert best is not None
        chosen[name] = best
    return chosen
