"""How much work a node is: its floating-point operations and the bytes its kernel moves.

Rule: an estimate from types alone, for cost models (the `partition` pass's roofline), never for
correctness. A multiply-add counts 2 FLOPs: a Conv/ConvTranspose is 2 x output elements x
input channels per group x kernel taps; a MatMul/Gemm/MatMulInteger/ConvInteger the same with the
reduced axis; a recurrent LSTM/GRU/RNN 2 x sequence x batch x gates x hidden x (inputs + hidden);
a FusedAttention its two products, 2 x batch x M x N x (D + E) for Q (.., M, D), V (.., N, E).
Every other op counts one FLOP per element it reads or writes, whichever is more (pointwise ops,
reductions, data movement). A view (no kernel) is no work. Bytes are the operands' and results'.
Imports `ir` only.
"""

from __future__ import annotations

import math

from ir.aliasing import is_view
from ir.graph import Node

_CONVS = ("Conv", "ConvTranspose", "ConvInteger", "QLinearConv")
_MATMULS = ("MatMul", "Gemm", "MatMulInteger", "QLinearMatMul")
_GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def node_flops(node: Node) -> int:
    """FLOPs of one run of `node` (see the module rule)."""
    if is_view(node):
        return 0
    if node.op in _CONVS or node.op in _MATMULS or node.op in _GATES:
        return 2 * _macs(node)
    if node.op == "FusedAttention":
        q, v = node.operands[0], node.operands[2]
        assert q is not None and v is not None
        return 2 * q.type.size // q.type.shape[-1] * v.type.shape[-2] * (q.type.shape[-1] + v.type.shape[-1])
    elements = [v.type.size for v in (*node.operands, *node.results) if v is not None]
    return max(elements, default=0)


def node_bytes(node: Node) -> int:
    """Bytes `node`'s kernel reads and writes (0 for a view)."""
    if is_view(node):
        return 0
    return sum(v.type.nbytes for v in (*node.operands, *node.results) if v is not None)


def _macs(node: Node) -> int:
    x, w = node.operands[0], node.operands[1] if len(node.operands) > 1 else None
    out = node.results[0].type
    if x is None or w is None:
        return out.size
    if node.op in _GATES:  # X (seq, batch, inputs), W (dirs, gates * hidden, inputs), R (dirs, ., hidden)
        dirs, gates_hidden, inputs = w.type.shape
        seq, batch = x.type.shape[0], x.type.shape[1]
        hidden = gates_hidden // _GATES[node.op]
        return dirs * seq * batch * gates_hidden * (inputs + hidden)
    if node.op in _CONVS:
        operand = node.operands[3] if node.op == "QLinearConv" else w
        assert operand is not None
        shape = operand.type.shape  # (M, C/group, k...); ConvTranspose's (C, M/group, k...)
        if node.op == "ConvTranspose":
            return x.type.size * shape[1] * math.prod(shape[2:])
        return out.size * shape[1] * math.prod(shape[2:])
    a = x.type
    if node.op == "Gemm" and node.attrs.get("transA"):
        return out.size * a.shape[-2]
    return out.size * (a.shape[-1] if a.rank else 1)
