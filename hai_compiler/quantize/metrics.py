"""How a quantized model is scored against its fp32 original: SQNR, top-1 agreement, accuracy, size.

Rules: scores are computed over a whole evaluation set at once (outputs stacked
on a leading axis), in float64. SQNR is 10·log10(Σref² / Σ(ref − q)²) dB, i.e.
−20·log10 of accuracy.relative_error (one definition of closeness, not two);
identical outputs give +inf. Agreement and accuracy compare arg-max classes
along the class axis (the last by default), so the same function gives
per-sample top-1 agreement on [N, C] logits and per-timestep agreement on
[N, T, C] sequences. Model size is the bytes of an ONNX model's weights:
initializers plus Constant-node tensors, subgraphs included; a graph's, its
constants' bytes with INT4 two values a byte (how the kernels store them).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from hai_compiler.accuracy import relative_error
from ir import DType, Graph, TensorType

_FOUR_BIT_TYPES = ("INT4", "UINT4", "FLOAT4E2M1")


def sqnr_db(actual: np.ndarray, reference: np.ndarray) -> float:
    """Signal-to-quantization-noise ratio of `actual` against `reference`, in dB (+inf when equal)."""
    error = relative_error(actual, reference)
    return math.inf if error == 0 else -20.0 * math.log10(error)


def top1_agreement(actual: np.ndarray, reference: np.ndarray, axis: int = -1) -> float:
    """Fraction of positions whose arg-max along `axis` matches the reference's."""
    a, r = np.asarray(actual), np.asarray(reference)
    if a.shape != r.shape:
        raise ValueError(f"shape {a.shape} differs from the reference's {r.shape}")
    return float((a.argmax(axis=axis) == r.argmax(axis=axis)).mean())


def accuracy(logits: np.ndarray, labels: np.ndarray, axis: int = -1) -> float:
    """Fraction of samples whose arg-max class along `axis` equals the label."""
    predicted = np.asarray(logits).argmax(axis=axis)
    truth = np.asarray(labels)
    if predicted.shape != truth.shape:
        raise ValueError(f"predictions of shape {predicted.shape} do not match labels of shape {truth.shape}")
    return float((predicted == truth).mean())


def ctc_greedy_decode(sequences: np.ndarray, vocabulary: Sequence[str]) -> list[str]:
    """Best-path CTC decoding of [N, T, C] scores: arg-max per step, merge repeats, drop class 0 (blank)."""
    texts = []
    for best in np.asarray(sequences).argmax(axis=-1):
        kept = [int(k) for i, k in enumerate(best) if k != 0 and (i == 0 or k != best[i - 1])]
        texts.append("".join(vocabulary[k] for k in kept))
    return texts


def text_accuracy(sequences: np.ndarray, texts: Sequence[str], vocabulary: Sequence[str]) -> float:
    """Fraction of lines whose greedy CTC decoding equals the text (spaces at the ends ignored)."""
    decoded = ctc_greedy_decode(sequences, vocabulary)
    return float(np.mean([d.strip() == t.strip() for d, t in zip(decoded, texts, strict=True)]))


def stored_bytes(t: TensorType) -> int:
    """Bytes of a constant of type `t` as stored: INT4 two values a byte, everything else its nbytes."""
    return math.ceil(t.size / 2) if t.dtype is DType.I4 else t.nbytes


def graph_weight_bytes(graph: Graph) -> int:
    """Bytes of the graph's constants as stored (`stored_bytes`)."""
    return sum(stored_bytes(value.type) for value in graph.constants.values())


def compression_percent(size_bytes: int, reference_bytes: int) -> float:
    """How much smaller than the reference, in percent (78 means 22% of its size remains)."""
    return 100.0 * (1.0 - size_bytes / reference_bytes)


def onnx_weight_bytes(model: Any) -> int:
    """Bytes of an ONNX model's weights (a ModelProto or a path): initializers and Constant-node values."""
    import onnx

    proto = model if isinstance(model, onnx.ModelProto) else onnx.load(str(Path(model)))
    return _graph_weight_bytes(proto.graph)


def _graph_weight_bytes(graph: Any) -> int:
    import onnx

    total = sum(_tensor_bytes(t) for t in graph.initializer)
    total += sum(_tensor_bytes(t.values) + _tensor_bytes(t.indices) for t in graph.sparse_initializer)
    for node in graph.node:
        for attribute in node.attribute:
            if node.op_type == "Constant":
                total += _constant_bytes(attribute)
            elif attribute.type == onnx.AttributeProto.GRAPH:
                total += _graph_weight_bytes(attribute.g)
            elif attribute.type == onnx.AttributeProto.GRAPHS:
                total += sum(_graph_weight_bytes(g) for g in attribute.graphs)
    return total


def _constant_bytes(attribute: Any) -> int:
    """A Constant node's value: a tensor, a sparse tensor, or float32 / int64 scalars and lists."""
    import onnx

    kind = onnx.AttributeProto
    if attribute.type == kind.TENSOR:
        return _tensor_bytes(attribute.t)
    if attribute.type == kind.SPARSE_TENSOR:
        return _tensor_bytes(attribute.sparse_tensor.values) + _tensor_bytes(attribute.sparse_tensor.indices)
    scalar = {kind.FLOAT: 4, kind.INT: 8}.get(attribute.type, 0)
    return scalar + 4 * len(attribute.floats) + 8 * len(attribute.ints)


def _tensor_bytes(tensor: Any) -> int:
    """Stored bytes of a TensorProto: 4-bit types packed two per byte, strings by their length."""
    import onnx

    count = math.prod(tensor.dims)
    if tensor.data_type == onnx.TensorProto.STRING:
        return sum(len(s) for s in tensor.string_data)
    if onnx.TensorProto.DataType.Name(tensor.data_type) in _FOUR_BIT_TYPES:
        return (count + 1) // 2
    return count * onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type).itemsize
