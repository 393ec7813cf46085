"""Elementwise ops as TE expressions: standalone broadcast kernels, and epilogues fused into producers.

Rule: every supported unary/binary op is written once, as a function of TE
expressions (`UNARY`, `BINARY`). An `Epilogue` chains such ops after an anchor
(GEMM, conv): `apply(value, index)` rewrites the anchor's accumulator value at
the output's logical (IR-layout) index, reading extra operands (bias, residual)
with numpy broadcasting; size-1 constants become literals. Standalone
elementwise kernels use the same machinery with no anchor: one flat loop,
vectorised by the target's lanes, parallel when large.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tvm import te

from ir.graph import Node, Value
from targets.lowering import KernelArg, LoweredKernel, LoweringError, kernel_name, lowering
from targets.target import TargetDescription

Expr = Any
PARALLEL_MIN_ELEMENTS = 1 << 15  # below this a parallel launch costs more than it saves

UNARY: dict[str, Callable[[Expr, Mapping[str, Any]], Expr]] = {
    "Relu": lambda x, a: te.max(x, _c(0, x)),
    "Sigmoid": lambda x, a: te.sigmoid(x),
    "Tanh": lambda x, a: te.tanh(x),
    "Exp": lambda x, a: te.exp(x),
    "Log": lambda x, a: te.log(x),
    "Sqrt": lambda x, a: te.sqrt(x),
    "Abs": lambda x, a: te.abs(x),
    "Neg": lambda x, a: -x,
    "Reciprocal": lambda x, a: _c(1, x) / x,
    "Erf": lambda x, a: te.erf(x),
    "Identity": lambda x, a: x,
    "LeakyRelu": lambda x, a: te.if_then_else(x < _c(0, x), x * _c(a["alpha"], x), x),
    "HardSigmoid": lambda x, a: _hard_sigmoid(x, a["alpha"], a["beta"]),
    "HardSwish": lambda x, a: x * _hard_sigmoid(x, 1 / 6, 0.5),
    "Swish": lambda x, a: x * te.sigmoid(x * _c(a.get("alpha", 1.0), x)),
    "Clip": lambda x, a: _clip(x, a.get("min"), a.get("max")),
    "Gelu": lambda x, a: _gelu(x, a.get("approximate", "none")),
}

BINARY: dict[str, Callable[[Expr, Expr], Expr]] = {
    "Add": lambda a, b: a + b,
    "Sub": lambda a, b: a - b,
    "Mul": lambda a, b: a * b,
    "Div": lambda a, b: a / b,
    "Max": lambda a, b: te.max(a, b),
    "Min": lambda a, b: te.min(a, b),
}


def dtype_of(expr: Expr) -> str:
    """An expression's dtype name (TVM 0.27 calls it `ty`; a tensor element knows its tensor's dtype)."""
    return str(expr.ty) if hasattr(expr, "ty") else str(expr.dtype)


def _c(value: float, like: Expr) -> Expr:
    return te.const(value, dtype_of(like))


def _hard_sigmoid(x: Expr, alpha: float, beta: float) -> Expr:
    return te.max(_c(0, x), te.min(_c(1, x), x * _c(alpha, x) + _c(beta, x)))


def _clip(x: Expr, low: float | None, high: float | None) -> Expr:
    if low is not None:
        x = te.max(x, _c(low, x))
    if high is not None:
        x = te.min(x, _c(high, x))
    return x


def _gelu(x: Expr, approximate: str) -> Expr:
    if approximate == "tanh":
        inner = _c(math.sqrt(2 / math.pi), x) * (x + _c(0.044715, x) * x * x * x)
        return _c(0.5, x) * x * (_c(1, x) + te.tanh(inner))
    return _c(0.5, x) * x * (_c(1, x) + te.erf(x * _c(1 / math.sqrt(2), x)))


def fusable(node: Node) -> bool:
    """Whether `node` can be an epilogue step (one float result, an op written above)."""
    return node.op in UNARY or (node.op in BINARY and len(node.operands) == 2)


def broadcast_index(shape: Sequence[int], index: Sequence[Expr]) -> list[Expr]:
    """numpy broadcasting: `shape` aligned right against `index`; size-1 dims read element 0."""
    tail = list(index)[len(index) - len(shape) :] if shape else []
    return [0 if dim == 1 else i for dim, i in zip(shape, tail, strict=True)]


@dataclass
class Operand:
    """An extra epilogue operand: a TE placeholder (runtime input or weight) or a scalar literal."""

    value: Value
    tensor: Any = None
    scalar: float | None = None
    channels_last: bool = False  # a 4-D operand of an NHWC kernel: stored (N, H, W, C)

    def read(self, index: Sequence[Expr], dtype: str) -> Expr:
        """The operand at the output's logical (NCHW) index, broadcast."""
        if self.tensor is None:
            return te.const(self.scalar, dtype)
        if self.channels_last:
            index = (index[0], index[2], index[3], index[1])
        return self.tensor[tuple(broadcast_index(self.tensor.shape, index))]


@dataclass
class Epilogue:
    """Elementwise nodes applied, in order, to an anchor's result; `operands` are their extra inputs."""

    nodes: tuple[Node, ...] = ()
    chain: list[int] = field(default_factory=list)  # which operand of each node is the running value
    operands: list[dict[int, Operand]] = field(default_factory=list)

    @classmethod
    def build(
        cls,
        anchor_result: Value,
        nodes: Sequence[Node],
        shape: Sequence[int] | None = None,
        layout: str = "NCHW",
    ) -> Epilogue:
        """The chain of `nodes` after `anchor_result`; every step must keep `shape` (default: the anchor's).

        With `layout` "NHWC", 4-D extra operands (a residual) are channels-last like the kernel's output.
        """
        epi = cls(tuple(nodes))
        shape = tuple(anchor_result.type.shape if shape is None else shape)
        current = anchor_result
        for node in nodes:
            if not fusable(node):
                raise LoweringError(f"node {node.name!r} ({node.op}) cannot be fused as an epilogue")
            positions = [i for i, v in enumerate(node.operands) if v is current]
            if len(positions) != 1:
                raise LoweringError(f"epilogue node {node.name!r} must read %{current.name} exactly once")
            if node.results[0].type.shape != shape:
                raise LoweringError(f"epilogue node {node.name!r} changes the shape; it cannot be fused")
            epi.chain.append(positions[0])
            extras = {}
            for i, v in enumerate(node.operands):
                if i != positions[0] and v is not None:
                    extras[i] = _operand(v, f"{node.name or node.op}_{i}", layout == "NHWC")
            epi.operands.append(extras)
            current = node.results[0]
        return epi

    @property
    def result(self) -> Value | None:
        return self.nodes[-1].results[0] if self.nodes else None

    def placeholders(self) -> list[Operand]:
        return [op for extras in self.operands for op in extras.values() if op.tensor is not None]

    def apply(self, value: Expr, index: Sequence[Expr]) -> Expr:
        for node, chain, extras in zip(self.nodes, self.chain, self.operands, strict=True):
            if node.op in UNARY:
                value = UNARY[node.op](value, node.attrs)
                continue
            other = next(iter(extras.values())).read(index, dtype_of(value))
            a, b = (value, other) if chain == 0 else (other, value)
            value = BINARY[node.op](a, b)
        return value

    def describe(self) -> list[Any]:
        """The epilogue's part of a workload key: ops, attrs, extra operand shapes and kinds."""
        return [
            [n.op, dict(sorted(n.attrs.items())), c, {str(i): _operand_key(o) for i, o in extras.items()}]
            for n, c, extras in zip(self.nodes, self.chain, self.operands, strict=True)
        ]

    def flops(self, elements: int) -> int:
        return elements * len(self.nodes)


def _operand(value: Value, name: str, nhwc: bool = False) -> Operand:
    if value.is_constant and value.type.size == 1:
        return Operand(value, scalar=float(np.asarray(value.constant_array()).reshape(-1)[0]))
    channels_last = nhwc and value.type.rank == 4
    shape = tuple(value.type.shape)
    if channels_last:
        shape = (shape[0], shape[2], shape[3], shape[1])
    tensor = te.placeholder(shape, value.type.dtype.numpy.name, name=name)
    return Operand(value, tensor=tensor, channels_last=channels_last)


def _operand_key(op: Operand) -> Any:
    if op.tensor is None:
        return ["scalar", op.scalar]
    kind = "const" if op.value.is_constant else "input"
    return [kind, list(op.value.type.shape), "NHWC" if op.channels_last else "IR"]


def epilogue_args(epi: Epilogue) -> tuple[list[Any], list[KernelArg]]:
    """Placeholders and KernelArgs of the epilogue's extra operands: inputs first, then weights."""
    ops = sorted(epi.placeholders(), key=lambda o: o.value.is_constant)
    args = [
        KernelArg(
            o.value.name,
            "weight" if o.value.is_constant else "input",
            tuple(int(d) for d in o.tensor.shape),
            o.value.type.dtype.numpy.name,
        )
        for o in ops
    ]
    return [o.tensor for o in ops], args


def schedule_flat(sch: Any, block: Any, lanes: int, elements: int) -> None:
    """One flat loop over the block: split by `lanes` (vectorised), outer loop parallel when large."""
    loops = sch.get_loops(block)
    fused = sch.fuse(*loops) if len(loops) > 1 else loops[0]
    if elements % lanes == 0 and elements >= lanes:
        outer, inner = sch.split(fused, [None, lanes])
        sch.vectorize(inner)
    else:
        outer = fused
    if elements >= PARALLEL_MIN_ELEMENTS:
        sch.parallel(outer)


@lowering(*UNARY, *BINARY)
def lower_elementwise(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    """A standalone elementwise node (and any elementwise nodes after it) as one broadcast kernel."""
    import tvm.s_tir as s_tir

    result = node.results[0]
    if not result.type.dtype.is_float:
        raise LoweringError(f"node {node.name!r}: elementwise templates are float only, got {result.type}")
    head = node.operands[0]
    if head is None:
        raise LoweringError(f"node {node.name!r}: first operand is absent")
    chain = Epilogue.build(head, (node, *epilogue), shape=result.type.shape)
    assert chain.result is not None
    x = te.placeholder(head.type.shape, head.type.dtype.numpy.name, name="x")
    out_type = chain.result.type
    out = te.compute(
        out_type.shape, lambda *i: chain.apply(x[tuple(broadcast_index(x.shape, i))], i), name="out"
    )
    extra, extra_args = epilogue_args(chain)
    order = [x, *extra, out]
    workload = {
        "op": "elementwise",
        "x": list(head.type.shape),
        "dtype": str(out_type.dtype),
        "epilogue": chain.describe(),
        "lanes": target.vector_lanes_f32,
    }
    name = kernel_name("ew", workload)
    sch = s_tir.Schedule(te.create_prim_func(order).with_attr("global_symbol", name))
    schedule_flat(sch, sch.get_sblock("out"), target.vector_lanes_f32, out_type.size)
    args = (
        KernelArg(
            head.name,
            "weight" if head.is_constant else "input",
            tuple(head.type.shape),
            head.type.dtype.numpy.name,
        ),
        *extra_args,
        KernelArg(chain.result.name, "output", tuple(out_type.shape), out_type.dtype.numpy.name),
    )
    return LoweredKernel(
        name,
        sch.mod["main"].with_attr("global_symbol", name),
        args,
        chain.flops(out_type.size),
        tuple(n.name for n in chain.nodes),
        workload,
        layout="any",
    )
