"""The `fold-channel-affine` pass: fold per-channel constant Mul/Add/Sub/Div into the Conv, Gemm
or MatMul that feeds them.

Exporters often leave a scale-and-shift after a convolution (PP-OCR: Conv → Mul → Add with
[1, C, 1, 1] constants). Such a node is the affine map y = x * s + t along axis 1, exactly
what `fold-batchnorm` folds into weights, so it reuses that pass's fold rules.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ir import Graph, Node, Value
from passes.fold_batchnorm import Affine, fold_affine_into_producer
from passes.manager import Pass, PassContext

AFFINE_OPS = ("Mul", "Add", "Sub", "Div")


def channel_vector(constant: Value, result_shape: tuple[int, ...]) -> np.ndarray | None:
    """The constant as one value per channel (axis 1 of the result), if it varies along no other axis."""
    array = constant.constant_array()
    rank = len(result_shape)
    if rank < 2 or array.ndim > rank:
        return None
    shape = (1,) * (rank - array.ndim) + array.shape
    if any(dim != 1 for axis, dim in enumerate(shape) if axis != 1) or shape[1] not in (1, result_shape[1]):
        return None
    return np.broadcast_to(array.reshape(-1).astype(np.float64), (result_shape[1],))


def channel_affine(node: Node) -> tuple[Value, Affine] | None:
    """`node` as x * s + t of one operand x, when it is Mul/Add/Sub/Div by a per-channel constant."""
    if node.op not in AFFINE_OPS or len(node.operands) != 2:
        return None
    x, c = node.operands
    if node.op in ("Mul", "Add") and x is not None and x.is_constant:
        x, c = c, x  # commutative: the constant may come first
    result = node.results[0]
    if x is None or c is None or not c.is_constant or x.type.shape != result.type.shape:
        return None
    if not result.type.dtype.is_float:
        return None
    v = channel_vector(c, result.type.shape)
    if v is None:
        return None
    ones, zeros = np.ones_like(v), np.zeros_like(v)
    if node.op == "Div":
        return (x, Affine(1.0 / v, zeros)) if np.all(v != 0) else None
    return x, {"Mul": Affine(v, zeros), "Add": Affine(ones, v), "Sub": Affine(ones, -v)}[node.op]


def worth_folding(node: Node, x: Value) -> bool:
    """A shift after a bare MatMul would only become MatMul + Add again: fold scales only there."""
    return not (node.op in ("Add", "Sub") and x.producer is not None and x.producer.op == "MatMul")


@dataclasses.dataclass(frozen=True)
class FoldChannelAffine(Pass):
    """Fold a Mul, Add, Sub or Div whose other operand is a constant varying only along axis 1
    into the Conv, ConvTranspose, Gemm or MatMul(+Add) that feeds it (constant weights, no other
    reader): weights scale per output channel and the bias absorbs the shift. Chains fold one by one.
    """

    name = "fold-channel-affine"
    requires = ("constants-loaded",)

    def run(self, graph: Graph, ctx: PassContext) -> Graph:
        for node in graph.nodes:
            found = channel_affine(node)
            if found is None or not worth_folding(node, found[0]):
                continue
            folded_into = fold_affine_into_producer(graph, node, found[1], source=found[0])
            if folded_into is not None:
                ctx.count(self.name, f"{node.op.lower()}-into-{folded_into.lower()}")
        return graph
