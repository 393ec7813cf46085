"""The `fold-batchnorm` pass: fold inference-mode BatchNormalization into weights or into Mul+Add.

BatchNormalization(X, scale, B, mean, var){epsilon} is an affine map per channel
(axis 1): y = X * s + t with s = scale / sqrt(var + epsilon), t = B - mean * s.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import numpy as np

from ir import Builder, Graph, Node, Value
from ir.fusion import record_folded
from passes.cleanup import drop_unused_constants
from passes.manager import Pass, PassContext


@dataclasses.dataclass(frozen=True)
class Affine:
    """The per-channel scale `s` and shift `t` (float64, one entry per channel) of a BatchNormalization."""

    s: np.ndarray
    t: np.ndarray


def batchnorm_affine(bn: Node) -> Affine | None:
    """The affine map of a single-result BatchNormalization whose parameters are constants."""
    if len(bn.results) != 1 or len(bn.operands) != 5:
        return None
    params = bn.operands[1:]
    if any(p is None or not p.is_constant for p in params):
        return None
    scale, bias, mean, var = (np.asarray(p.constant_array(), dtype=np.float64) for p in params)  # type: ignore[union-attr]
    s = scale / np.sqrt(var + float(bn.attrs.get("epsilon", 1e-5)))
    return Affine(s.reshape(-1), (bias - mean * s).reshape(-1))


def sole_reader(value: Value | None, reader: Node) -> Node | None:
    """The producer of `value` when `reader` is its only reader and it is no graph output."""
    if value is None or value.producer is None or value.is_graph_output:
        return None
    return value.producer if value.users() == [reader] and len(value.uses()) == 1 else None


def _constant(graph: Graph, base: str, array: np.ndarray, like: Value) -> Value:
    return graph.add_constant(base, np.ascontiguousarray(array.astype(like.type.dtype.numpy)))


def _optional_constant(value: Value | None) -> bool:
    return value is None or value.is_constant


def _conv_weights(conv: Node, weights: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Scale Conv weights [M, C/group, k...] per output channel M."""
    return weights * s.reshape((-1,) + (1,) * (weights.ndim - 1))


def _conv_transpose_weights(conv: Node, weights: np.ndarray, s: np.ndarray) -> np.ndarray:
    """Scale ConvTranspose weights [C, M/group, k...]: output channel g * M/group + j sits at [group g, j]."""
    group = int(conv.attrs.get("group", 1))
    per_group, kernel = weights.shape[1], weights.shape[2:]
    grouped = weights.reshape((group, -1, per_group) + kernel)
    return (grouped * s.reshape((group, 1, per_group) + (1,) * len(kernel))).reshape(weights.shape)


CONV_WEIGHT_SCALERS: dict[str, Callable[[Node, np.ndarray, np.ndarray], np.ndarray]] = {
    "Conv": _conv_weights,
    "ConvTranspose": _conv_transpose_weights,
}


def fold_into_conv(graph: Graph, conv: Node, bn: Node, f: Affine) -> Value | None:
    """Conv or ConvTranspose(X, W, B?) → BN  ⇒  the same op with W scaled per output channel, B * s + t."""
    scaler = CONV_WEIGHT_SCALERS.get(conv.op)
    if scaler is None or len(conv.operands) < 2:
        return None
    x, w, b = (list(conv.operands) + [None])[:3]
    if w is None or not w.is_constant or not _optional_constant(b):
        return None
    new_w = scaler(conv, w.constant_array().astype(np.float64), f.s)
    old_b = b.constant_array().astype(np.float64) if b is not None else 0.0
    builder = Builder(graph, insert_before=bn)
    wc = _constant(graph, w.name + ".bn", new_w, w)
    bc = _constant(graph, bn.results[0].name + ".bias", old_b * f.s + f.t, w)
    return builder.op(conv.op, [x, wc, bc], conv.attrs, name=conv.name)[0]


def fold_into_gemm(graph: Graph, gemm: Node, bn: Node, f: Affine) -> Value | None:
    """Gemm(A, B, C?){alpha, beta} → BN  ⇒  Gemm(A, B scaled per column, beta*C*s + t){beta=1}."""
    if gemm.op != "Gemm" or len(gemm.operands) < 2:
        return None
    a, b, c = (list(gemm.operands) + [None])[:3]
    if b is None or not b.is_constant or not _optional_constant(c):
        return None
    weights = b.constant_array().astype(np.float64)
    new_b = weights * (f.s[:, None] if gemm.attrs.get("transB", 0) else f.s[None, :])
    beta = float(gemm.attrs.get("beta", 1.0))
    old_c = beta * c.constant_array().astype(np.float64) if c is not None else 0.0
    new_c = np.asarray(old_c * f.s + f.t)
    attrs = dict(gemm.attrs, beta=1.0)
    builder = Builder(graph, insert_before=bn)
    bc = _constant(graph, b.name + ".bn", new_b, b)
    cc = _constant(graph, bn.results[0].name + ".bias", new_c, b)
    return builder.op("Gemm", [a, bc, cc], attrs, name=gemm.name)[0]


def _row_bias(value: Value | None, channels: int) -> np.ndarray | None:
    """A constant bias that broadcasts along the rows of an [N, channels] matrix, as [channels]."""
    if value is None or not value.is_constant:
        return None
    bias = value.constant_array()
    if bias.ndim > 2 or (bias.ndim == 2 and bias.shape[0] != 1) or bias.size not in (1, channels):
        return None
    return np.broadcast_to(bias.reshape(-1).astype(np.float64), (channels,))


def fold_into_matmul(graph: Graph, node: Node, bn: Node, f: Affine) -> Value | None:
    """MatMul(A, W) [+ b] → BN on an [N, M] result  ⇒  MatMul(A, W * s) + (b * s + t)."""
    matmul, bias = node, np.zeros_like(f.t)
    if node.op == "Add":
        operands = list(node.operands)
        for i in (0, 1):
            producer = sole_reader(operands[i], node)
            row = _row_bias(operands[1 - i], len(f.s))
            if producer is not None and producer.op == "MatMul" and row is not None:
                matmul, bias = producer, row
                break
        else:
            return None
    if matmul.op != "MatMul" or matmul.results[0].type.rank != 2:
        return None
    a, w = matmul.operands
    if w is None or not w.is_constant or w.type.rank != 2:
        return None
    builder = Builder(graph, insert_before=bn)
    wc = _constant(graph, w.name + ".bn", w.constant_array().astype(np.float64) * f.s[None, :], w)
    bc = _constant(graph, bn.results[0].name + ".bias", bias * f.s + f.t, w)
    product = builder.op("MatMul", [a, wc], matmul.attrs, name=matmul.name)[0]
    return builder.op("Add", [product, bc], name=node.name if node.op == "Add" else "")[0]


def as_mul_add(graph: Graph, bn: Node, f: Affine) -> Value:
    """A standalone BN ⇒ Mul(X, s) + t, with s and t shaped [C, 1, ...] to broadcast along axis 1."""
    x = bn.operands[0]
    assert x is not None
    shape = (-1,) + (1,) * max(x.type.rank - 2, 0)
    builder = Builder(graph, insert_before=bn)
    sc = _constant(graph, bn.results[0].name + ".scale", f.s.reshape(shape), x)
    tc = _constant(graph, bn.results[0].name + ".shift", f.t.reshape(shape), x)
    scaled = builder.op("Mul", [x, sc], name=bn.name + ".mul" if bn.name else "")[0]
    return builder.op("Add", [scaled, tc], name=bn.name)[0]


FOLD_RULES: tuple[Callable[[Graph, Node, Node, Affine], Value | None], ...] = (
    fold_into_conv,
    fold_into_gemm,
    fold_into_matmul,
)
"""Each rule folds a BN into the node that feeds it, or returns None when the pattern does not fit."""


@dataclasses.dataclass(frozen=True)
class FoldBatchNorm(Pass):
    """Fold a BatchNormalization with constant parameters into the Conv, ConvTranspose, Gemm or
    MatMul(+Add) that feeds it (constant weights and bias, no other reader): weights scale per
    output channel and the bias becomes B * s + t, added when missing. A BatchNormalization that
    follows nothing foldable becomes Mul + Add with constant operands.
    """

    name = "fold-batchnorm"
    requires = ("constants-loaded",)

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        for bn in graph.nodes:
            affine = batchnorm_affine(bn) if bn.op == "BatchNormalization" else None
            if affine is None or bn.operands[0] is None or not bn.operands[0].type.dtype.is_float:
                continue
            self._rewrite(graph, bn, affine, ctx)
        return graph

    def _rewrite(self, graph: Graph, bn: Node, affine: Affine, ctx: PassContext) -> None:
        folded_into = fold_affine_into_producer(graph, bn, affine)
        if folded_into is not None:
            ctx.count(self.name, f"folded-into-{folded_into.lower()}")
            return
        replace_node(graph, bn, as_mul_add(graph, bn, affine), [bn])
        ctx.count(self.name, "to-mul-add")


def fold_affine_into_producer(
    graph: Graph, node: Node, affine: Affine, source: Value | None = None
) -> str | None:
    """Fold `node` (a per-channel affine map of `source`, default its operand 0) into `source`'s producer.

    Returns the op folded into, or None (graph unchanged) when no rule fits.
    """
    producer = sole_reader(source or node.operands[0], node)
    if producer is None:
        return None
    for rule in FOLD_RULES:
        new = rule(graph, producer, node, affine)
        if new is not None:
            replace_node(graph, node, new, [node, *_chain(producer)])
            return producer.op
    return None


def replace_node(graph: Graph, node: Node, new: Value, removed: list[Node]) -> None:
    """`new` takes over `node`'s result and name; the `removed` nodes and their orphaned constants go."""
    result = node.results[0]
    name = result.name
    if new.producer is not None:
        record_folded(new.producer, removed[::-1])  # producers first: provenance in dataflow order
    graph.replace_value(result, new)
    dropped = [o for gone in removed for o in gone.operands]
    for gone in removed:
        graph.remove_node(gone)
    drop_unused_constants(graph, dropped)
    if not graph.has_value(name):
        graph.rename(new, name)


def _chain(producer: Node) -> list[Node]:
    """The producer and, for MatMul+Add, the MatMul feeding the Add (removed after the fold)."""
    if producer.op != "Add":
        return [producer]
    feeders = [o.producer for o in producer.operands if o is not None and o.producer is not None]
    return [producer] + [n for n in feeders if n.op == "MatMul" and n.results[0].users() == [producer]]
