"""Elementwise kernels: standalone broadcast kernels of any pointwise op, and epilogues fused into producers.

Rule: every pointwise op's element is written once, in targets/lowering/pointwise.py
(`UNARY`, `BINARY`, `VARIADIC`, Where, Cast: all elementwise and activation ops,
every IR dtype). An `Epilogue` applies such ops after an anchor (GEMM,
conv): `apply(value, index)` rewrites the anchor's accumulator value at the
output's logical (IR-layout) index. Each step reads values of the group
(the anchor's result, an earlier step's: SiLU's Mul reads both the anchor's
result and the Sigmoid's) and extra operands (bias, residual) with numpy
broadcasting; size-1 constants become literals. Standalone
elementwise kernels use the same machinery with the head node's operands all
read from buffers: rows of the trailing dims vectorised by the target's lanes
under one outer loop, parallel when large (targets/lowering/broadcast_rows.py;
a flat loop when no row holds one vector; NHWC with whole channel vectors:
positions outside, channels vectorised). In an "NHWC" kernel (rank-4 result) the output and every rank-4
run-time operand are stored channels-last; constants and lower-rank operands
are stored in their own logical order (a (C, 1, 1) bias broadcasts as in
numpy), so their bytes never depend on the kernel's layout. bf16 buffers are
viewed as uint16 (their bits), i4 as uint8: a KernelArg's dtype is the
kernel's view, `storage_dtype`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from tvm import te

from ir.graph import Node, Value
from targets.lowering.broadcast_rows import row_dims, row_extent, schedule_rows
from targets.lowering.generic import row_lanes
from targets.lowering.kernel import KernelArg, LoweredKernel, LoweringError, kernel_name, snapshot
from targets.lowering.pointwise import (
    BINARY,
    POINTWISE_OPS,
    UNARY,
    VARIADIC,
    Expr,
    dtype_of,
    node_expr,
    storage_dtype,
    vectorizable,
)
from targets.lowering.quantized import QUANT_OPS, LiteralTables, Tables, is_quant_step, quant_expr, quant_key
from targets.lowering.registry import lowering
from targets.schedules import schedules_of
from targets.target import TargetDescription

__all__ = ["BINARY", "UNARY", "VARIADIC", "Epilogue", "Operand", "dtype_of", "epilogue_args", "fusable"]

PARALLEL_MIN_ELEMENTS = 1 << 15  # below this a parallel launch costs more than it saves


def fusable(node: Node) -> bool:
    """Whether `node` can be an epilogue step: a pointwise op whose operands and result share one dtype,
    or a quantize step (targets/lowering/quantized.py) of a run-time value."""
    if is_quant_step(node):
        return True
    if node.op not in POINTWISE_OPS or len(node.results) != 1:
        return False
    dtype = node.results[0].type.dtype
    return all(v is not None and v.type.dtype is dtype for v in node.operands)


def broadcast_index(shape: Sequence[int], index: Sequence[Expr]) -> list[Expr]:
    """numpy broadcasting: `shape` aligned right against `index`; size-1 dims read element 0."""
    tail = list(index)[len(index) - len(shape) :] if shape else []
    return [0 if dim == 1 else i for dim, i in zip(shape, tail, strict=True)]


@dataclass
class Operand:
    """An extra operand: a TE placeholder (runtime input or weight) or a scalar literal."""

    value: Value
    tensor: Any = None
    scalar: float | int | bool | None = None
    channels_last: bool = False  # a 4-D run-time operand of an NHWC kernel: stored (N, H, W, C)
    slot: int | None = None  # which distinct value of its kernel it is (first-read order), see operand_of

    def read(self, index: Sequence[Expr], dtype: str | None = None) -> Expr:
        """The operand at the output's logical (NCHW) index, broadcast, in its storage dtype."""
        if self.tensor is None:
            return te.const(self.scalar, dtype or storage_dtype(self.value.type.dtype))
        if self.channels_last:
            index = (index[0], index[2], index[3], index[1])
        return self.tensor[tuple(broadcast_index(self.tensor.shape, index))]


Operands = dict[str, Operand]  # by IR value name: one placeholder per value, however often it is read


@dataclass
class Epilogue:
    """Elementwise nodes applied, in order, to an anchor's result; `operands` are their extra inputs."""

    nodes: tuple[Node, ...] = ()
    reads: list[dict[int, int]] = field(default_factory=list)
    """Per node: operand index → the group value it reads (0 the anchor's result, j node j-1's)."""
    operands: list[dict[int, Operand]] = field(default_factory=list)
    tables: Tables = field(default_factory=LiteralTables)  # where quantize steps read per-channel constants

    @classmethod
    def build(
        cls,
        anchor_result: Value,
        nodes: Sequence[Node],
        shape: Sequence[int] | None = None,
        layout: str = "NCHW",
        known: Operands | None = None,
    ) -> Epilogue:
        """The chain of `nodes` after `anchor_result`; every step must keep `shape` (default: the anchor's).

        With `layout` "NHWC", 4-D run-time extra operands (a residual) are channels-last like the
        kernel's output; constants keep their logical order.
        `known` shares operands (by value) with the caller, so a value read twice is one argument.
        """
        epi = cls(tuple(nodes))
        shape = tuple(anchor_result.type.shape if shape is None else shape)
        known = {} if known is None else known
        inside = {anchor_result.name: 0}
        for node in nodes:
            if not fusable(node):
                raise LoweringError(f"node {node.name!r} ({node.op}) cannot be fused as an epilogue")
            reads = {
                i: inside[v.name] for i, v in enumerate(node.operands) if v is not None and v.name in inside
            }
            if not reads:
                raise LoweringError(
                    f"epilogue node {node.name!r} reads neither %{anchor_result.name} nor an earlier step"
                )
            if node.results[0].type.shape != shape:
                raise LoweringError(f"epilogue node {node.name!r} changes the shape; it cannot be fused")
            epi.reads.append(reads)
            epi.operands.append(
                {
                    i: operand_of(v, f"{node.name or node.op}_{i}", layout == "NHWC", known)
                    for i, v in enumerate(node.operands)
                    if i not in reads and v is not None
                }
            )
            inside[node.results[0].name] = len(inside)
        return epi

    @property
    def result(self) -> Value | None:
        return self.nodes[-1].results[0] if self.nodes else None

    def placeholders(self) -> list[Operand]:
        return [op for extras in self.operands for op in extras.values() if op.tensor is not None]

    def apply(self, value: Expr, index: Sequence[Expr]) -> Expr:
        values = [value]
        for node, reads, extras in zip(self.nodes, self.reads, self.operands, strict=True):
            args = [
                values[reads[i]] if i in reads else extras[i].read(index) for i in range(len(node.operands))
            ]
            values.append(step_expr(node, args, index, self.tables))
        return values[-1]

    def describe(self) -> list[Any]:
        """The epilogue's part of a workload key: ops, attrs, what each step reads of the group (the
        operand index of a chain step reading only the previous value), extra operand shapes and kinds."""
        return [
            [n.op, dict(sorted(n.attrs.items())), _reads_key(reads, step)]
            + [{str(i): operand_key(o) for i, o in extras.items()}]
            + ([quant_key(n)] if n.op in QUANT_OPS else [])
            for step, (n, reads, extras) in enumerate(zip(self.nodes, self.reads, self.operands, strict=True))
        ]

    def flops(self, elements: int) -> int:
        return elements * len(self.nodes)


def _reads_key(reads: dict[int, int], step: int) -> int | dict[str, int]:
    """A chain step (one operand reading the previous value) keys as that operand's index, as before
    epilogues could read earlier values; any other step as {operand: group value}."""
    ((operand, value),) = reads.items() if len(reads) == 1 else ((-1, -1),)
    return operand if value == step else {str(i): v for i, v in reads.items()}


def step_expr(node: Node, reads: Sequence[Expr], index: Sequence[Expr], tables: Tables) -> Expr:
    """One pointwise or quantize step's element at the output's logical `index`."""
    return quant_expr(node, reads[0], index, tables) if node.op in QUANT_OPS else node_expr(node, reads)


def operand_of(value: Value, name: str, nhwc: bool = False, known: Operands | None = None) -> Operand:
    """The Operand reading `value` (a scalar literal for a size-1 constant), shared through `known`.

    Its `slot` numbers the distinct values of `known` in first-read order and is part of its
    `operand_key`: `Mul(x, x)` (one argument) and `Mul(x, y)` (two) are different workloads.
    """
    if known is not None and value.name in known:
        return known[value.name]
    if value.is_constant and value.type.size == 1:
        first = np.asarray(value.constant_array()).reshape(-1)[:1]
        op = Operand(value, scalar=first.view(storage_dtype(value.type.dtype)).item())
    else:
        channels_last = nhwc and value.type.rank == 4 and not value.is_constant
        shape = tuple(value.type.shape)
        if channels_last:
            shape = nhwc_shape(shape)
        tensor = te.placeholder(shape, storage_dtype(value.type.dtype), name=name)
        op = Operand(value, tensor=tensor, channels_last=channels_last)
    if known is not None:
        op.slot = len(known)
        known[value.name] = op
    return op


def operand_key(op: Operand) -> Any:
    """An operand's part of a workload key: its kind, shape, dtype, layout and slot (which argument)."""
    if op.tensor is None:
        return ["scalar", op.scalar, str(op.value.type.dtype)]
    kind = "const" if op.value.is_constant else "input"
    layout = "NHWC" if op.channels_last else "IR"
    return [kind, list(op.value.type.shape), str(op.value.type.dtype), layout, op.slot]


def operand_args(operands: Sequence[Operand]) -> tuple[list[Any], list[KernelArg]]:
    """Placeholders and KernelArgs of `operands` (each once): inputs first, then weights."""
    unique = list({id(o): o for o in operands if o.tensor is not None}.values())
    ops = sorted(unique, key=lambda o: o.value.is_constant)
    args = [
        KernelArg(
            o.value.name,
            "weight" if o.value.is_constant else "input",
            tuple(int(d) for d in o.tensor.shape),
            str(o.tensor.dtype),
        )
        for o in ops
    ]
    return [o.tensor for o in ops], args


def epilogue_args(epi: Epilogue) -> tuple[list[Any], list[KernelArg]]:
    """Placeholders and KernelArgs of the epilogue's extra operands: inputs first, then weights."""
    return operand_args(epi.placeholders())


def epilogue_signature(
    anchor: Sequence[tuple[Any, KernelArg]], chain: Epilogue, out: Any, out_arg: KernelArg
) -> tuple[list[Any], list[KernelArg]]:
    """Parameters and KernelArgs of an anchor kernel with `chain` fused in: the anchor's and the
    epilogue's operands grouped by role (inputs, then weights; stable), then the output."""
    extra, extra_args = epilogue_args(chain)
    pairs = sorted([*anchor, *zip(extra, extra_args)], key=lambda pair: pair[1].role != "input")
    return [t for t, _ in pairs] + [out], [a for _, a in pairs] + [out_arg]


def output_arg(value: Value) -> KernelArg:
    return KernelArg(value.name, "output", tuple(value.type.shape), storage_dtype(value.type.dtype))


def vector_lanes(target: TargetDescription, dtypes: Sequence[str]) -> int:
    """Lanes of one vector for the widest of `dtypes` (32-bit lanes at least: narrow types compute in f32)."""
    widest = max([4, *(np.dtype(d).itemsize for d in dtypes)])
    return schedules_of(target).vector(target, widest).lanes


def schedule_flat(sch: Any, block: Any, lanes: int, elements: int) -> None:
    """One flat loop over the block: split by `lanes` (vectorised), outer loop parallel when large."""
    loops = sch.get_loops(block)
    if not loops or elements == 0:  # a 0-d result (one element, no loop) or an empty one: nothing to schedule
        return
    fused = sch.fuse(*loops) if len(loops) > 1 else loops[0]
    if lanes > 1 and elements % lanes == 0 and elements >= lanes:
        outer, inner = sch.split(fused, [None, lanes])
        sch.vectorize(inner)
    else:
        outer = fused
    if elements >= PARALLEL_MIN_ELEMENTS:
        sch.parallel(outer)


def schedule_channels(sch: Any, block: Any, lanes: int, elements: int) -> None:
    """NHWC (n, h, w, c) with whole channel vectors: the positions as one outer loop (parallel when
    large), the channels vectorised, so a per-channel (C, 1, 1) operand is one contiguous vector load
    (a flat loop's vector straddles positions: a gather of the channel operand)."""
    n, h, w, c = sch.get_loops(block)
    positions = sch.fuse(n, h, w)
    _, lane = sch.split(c, [None, lanes])
    sch.vectorize(lane)
    if elements >= PARALLEL_MIN_ELEMENTS:
        sch.parallel(positions)


def head_key(node: Node, operands: Mapping[int, Operand]) -> list[Any]:
    key = [node.op, dict(sorted(node.attrs.items())), {str(i): operand_key(o) for i, o in operands.items()}]
    return key + ([quant_key(node)] if node.op in QUANT_OPS else [])


@lowering(*POINTWISE_OPS, *QUANT_OPS)
def lower_elementwise(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    """A standalone pointwise node (and any elementwise nodes after it) as one broadcast kernel."""
    import tvm.s_tir as s_tir

    if any(v is None for v in node.operands) or len(node.results) != 1:
        raise LoweringError(f"node {node.name!r}: {node.op} needs all its operands and one result")
    if node.op in QUANT_OPS and not is_quant_step(node):
        raise LoweringError(
            f"node {node.name!r}: no {target.name} template for this {node.op} (group-wise or constant)"
        )
    result = node.results[0]
    nhwc = layout == "NHWC"
    if nhwc and result.type.rank != 4:
        raise LoweringError(f"node {node.name!r}: an NHWC {node.op} kernel needs a rank-4 result")
    known: Operands = {}
    head = {i: operand_of(v, f"in{i}", nhwc, known) for i, v in enumerate(node.operands)}  # type: ignore[arg-type]
    chain = Epilogue.build(result, epilogue, layout=layout, known=known)
    out_value = chain.result or result
    stored = nhwc_shape(out_value.type.shape) if nhwc else out_value.type.shape

    def element(*i: Expr) -> Expr:
        index = (i[0], i[3], i[1], i[2]) if nhwc else i  # the logical (NCHW) index of a stored element
        head_value = step_expr(node, [head[k].read(index) for k in range(len(head))], index, chain.tables)
        return chain.apply(head_value, index)

    out = te.compute(stored, element, name="out")
    tensors, in_args = operand_args(list(known.values()))
    vector = all(vectorizable(n) for n in (node, *chain.nodes))
    lanes = vector_lanes(target, [str(t.dtype) for t in (*tensors, out)]) if vector else 1
    channel_lanes = row_lanes(stored[-1], lanes) if nhwc and lanes > 1 else None
    workload = {
        "op": "elementwise",
        "head": head_key(node, head),
        "out": [list(out_value.type.shape), str(out_value.type.dtype)],
        "epilogue": chain.describe(),
        "lanes": lanes,
        **({"layout": layout, "channel_lanes": channel_lanes} if nhwc else {}),
    }
    name = kernel_name("ew", workload)
    compute = te.create_prim_func([*tensors, out])
    sch = s_tir.Schedule(snapshot(compute).with_attr("global_symbol", name))
    row = 0 if nhwc or lanes == 1 else row_dims(stored, [t.shape for t in tensors])
    if channel_lanes is not None:
        schedule_channels(sch, sch.get_sblock("out"), channel_lanes, out_value.type.size)
    elif row and row_extent(stored, row) >= lanes:  # see broadcast_rows.py
        schedule_rows(sch, sch.get_sblock("out"), lanes, row, out_value.type.size >= PARALLEL_MIN_ELEMENTS)
    else:
        schedule_flat(sch, sch.get_sblock("out"), lanes, out_value.type.size)
    return LoweredKernel(
        name,
        sch.mod["main"].with_attr("global_symbol", name),
        (*in_args, KernelArg(out_value.name, "output", stored, storage_dtype(out_value.type.dtype))),
        (1 + len(chain.nodes)) * out_value.type.size,
        (node.name, *(n.name for n in chain.nodes)),
        workload,
        layout=layout if nhwc else "any",
        compute=compute,
    )


def nhwc_shape(shape: Sequence[int]) -> tuple[int, ...]:
    """A logical (N, C, H, W) shape in channels-last storage order."""
    n, c, h, w = shape
    return (n, h, w, c)
