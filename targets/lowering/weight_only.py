"""Weights stored compressed (INT4 group-wise, FP16) and dequantised inside the layer's kernel.

Rule: an anchor template (dense conv, depthwise conv, packed GEMM, and the
general conv / matmul templates) asks `weight_source` for the f32 weight it
indexes, in its own packed layout (`layout`, a pure numpy reshape / transpose /
zero-padding of the IR-shaped weight that keeps the reduction axis as one dim,
`reduce_dim`, of the packed shape, or drops it when its length is 1). When the
anchor's weight operand comes from a DequantizeLinear fused as its weight
prologue (ir/fusion.py), the kernel reads the stored constant instead:

- i4: the values laid out by `layout`, two per byte along `reduce_dim` (element
  2k in the low nibble, 2k+1 in the high one, an odd tail padded with 0), as a
  uint8 weight, plus the group scales: the float32 array of the weight's shape
  with the reduction axis holding the groups (ir/quantization.py's order),
  laid out by the same `layout` (a second weight argument, `part` "scales").
  Decoded: float32(nibble, sign-extended) * scale[group], exactly
  ir/quantization.py's `dequantize` with zero point 0;
- f16: the values laid out by `layout` as float16, decoded by conversion.

The decode is a TE stage in the packed layout the existing schedule already
reads: computed into a scratch buffer by its own parallel, vectorised loop
before the anchor's (`inline=False`: weights reused across many output rows or
positions), or inlined into the accumulator so each weight is decoded where it
is used (`inline=True`: M = 1 matmuls and 1x1-spatial convs, where the weight
stream dominates). Without a prologue the weight is the f32 constant laid out
by `layout`, as before. Imports ir and targets.lowering only (targets never import passes,
so the prologue annotation ir/fusion.py writes is read here by its key).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from tvm import te, tirx

from ir.dtypes import DType
from ir.graph import Node, Value
from ir.quantization import group_count
from targets.lowering.kernel import KernelArg, LoweringError

Layout = Callable[[np.ndarray], np.ndarray]
GROUP_KEY, PROLOGUE_KEY = "fusion_group", "weight_prologue_of"  # ir/fusion.py's annotations
WEIGHT_OPERAND = 1
SCALES = "scales"
INLINE_MAX_REUSE = 4
"""Decode at the point of use when each weight element is used by at most this many output rows."""


def identity_layout(array: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(array)


def fused_weight_prologue(anchor: Node, operand: int = WEIGHT_OPERAND) -> Node | None:
    """The DequantizeLinear producing `anchor`'s weight operand (or operand `operand`: a recurrent
    node's W or R) when the `fuse` pass made it a weight prologue of the anchor's group
    (ir/fusion.py), else None."""
    weight = anchor.operands[operand] if len(anchor.operands) > operand else None
    producer = weight.producer if weight is not None else None
    label = anchor.name or anchor.results[0].name
    if producer is None or producer.annotations.get(PROLOGUE_KEY) != label:
        return None
    group = anchor.annotations.get(GROUP_KEY)
    return producer if group is not None and producer.annotations.get(GROUP_KEY) == group else None


def stored_weight(node: Node) -> Value | None:
    """The constant a fused weight prologue dequantises for `node` (i4 or f16), else None."""
    prologue = fused_weight_prologue(node)
    if prologue is None:
        return None
    stored = prologue.operands[0]
    assert stored is not None and stored.is_constant
    if stored.type.dtype not in (DType.I4, DType.F16):
        raise LoweringError(f"node {node.name!r}: a stored {stored.type.dtype.value} weight is not decoded")
    return stored


def has_packable_weight(node: Node) -> bool:
    """Whether `node`'s weight is known at compile time: a constant, or a stored weight it decodes."""
    weight = node.operands[WEIGHT_OPERAND] if len(node.operands) > WEIGHT_OPERAND else None
    return weight is not None and (weight.is_constant or stored_weight(node) is not None)


def decode_at_use(reuse: int, vector_along_panel: bool = True) -> bool:
    """Whether to decode each weight where the accumulator reads it (see the module rule)."""
    return vector_along_panel and reuse <= INLINE_MAX_REUSE


@dataclasses.dataclass
class WeightSource:
    """The f32 weight a template indexes (`tensor`, in its packed layout), the kernel parameters behind
    it (`params`: placeholder and KernelArg pairs), and how to pack and schedule them."""

    tensor: Any
    params: list[tuple[Any, KernelArg]]
    pack: Callable[[Mapping[str, np.ndarray]], dict[str, np.ndarray]]
    stored: DType | None = None
    inline: bool = False
    notes: dict[str, Any] = dataclasses.field(default_factory=dict)

    def describe(self) -> dict[str, Any] | None:
        """What the workload key must add (None for an f32 weight: its kernels keep their names)."""
        if self.stored is None:
            return None
        return {"stored": self.stored.value, "inline": self.inline, **self.notes}

    def pack_all(self, arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        """`pack` for this weight, the kernel's other weights as they are (the general templates)."""
        return {**{k: np.ascontiguousarray(v) for k, v in arrays.items()}, **self.pack(arrays)}

    def add_to(self, workload: dict[str, Any]) -> dict[str, Any]:
        described = self.describe()
        if described is not None:
            workload["weight"] = described
        return workload

    def schedule(self, sch: Any, lanes: int) -> None:
        """Inline the decode stage, or give it a flat parallel, vectorised loop of its own."""
        if self.stored is None:
            return
        name = self.tensor.op.name
        if self.inline:
            sch.compute_inline(sch.get_sblock(name))
            return
        from targets.lowering.generic import schedule_injective

        schedule_injective(sch, name, lanes, math.prod(int(d) for d in self.tensor.shape))


def weight_source(
    node: Node,
    packed_shape: Sequence[int],
    layout: Layout,
    reduce_dim: int | None,
    name: str,
    inline: bool = False,
) -> WeightSource:
    """The weight of `node` (operand 1) as the template's packed f32 tensor `name` (module rule)."""
    shape = tuple(int(d) for d in packed_shape)
    stored = stored_weight(node)
    if stored is None:
        weight = node.operands[WEIGHT_OPERAND]
        assert weight is not None
        if not weight.is_constant:
            raise LoweringError(f"node {node.name!r}: the weight must be a constant to be packed")
        tensor = te.placeholder(shape, "float32", name=name)

        def pack_f32(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
            return {weight.name: layout(np.asarray(arrays[weight.name], np.float32))}

        return WeightSource(tensor, [(tensor, KernelArg(weight.name, "weight", shape, "float32"))], pack_f32)
    if stored.type.dtype is DType.F16:
        return _f16_source(stored, shape, layout, name, inline)
    return _i4_source(node, stored, shape, layout, reduce_dim, name, inline)


def _f16_source(
    stored: Value, shape: tuple[int, ...], layout: Layout, name: str, inline: bool
) -> WeightSource:
    half = te.placeholder(shape, "float16", name=f"{name}_f16")
    tensor = te.compute(shape, lambda *i: half[i].astype("float32"), name=name)

    def pack(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        return {stored.name: layout(np.asarray(arrays[stored.name], np.float16))}

    arg = KernelArg(stored.name, "weight", shape, "float16")
    return WeightSource(tensor, [(half, arg)], pack, DType.F16, inline)


def _i4_source(
    node: Node,
    stored: Value,
    shape: tuple[int, ...],
    layout: Layout,
    reduce_dim: int | None,
    name: str,
    inline: bool,
) -> WeightSource:
    quant = stored.type.quant
    assert quant is not None and quant.axis is not None and quant.group_size is not None
    if any(quant.zero_point):
        raise LoweringError(f"node {node.name!r}: INT4 weights must be symmetric (zero points 0)")
    ir_shape = stored.type.shape
    group_size, groups = quant.group_size, group_count(ir_shape[quant.axis], quant.group_size)
    scale_ir_shape = tuple(groups if d == quant.axis else n for d, n in enumerate(ir_shape))
    if reduce_dim is None and groups != 1:
        raise LoweringError(f"node {node.name!r}: the template's weight layout drops a grouped axis")
    scale_shape = layout(np.zeros(scale_ir_shape, np.float32)).shape
    pair = reduce_dim if reduce_dim is not None else 0
    byte_shape = tuple(-(-n // 2) if d == pair else n for d, n in enumerate(shape))
    codes = te.placeholder(byte_shape, "uint8", name=f"{name}_i4")
    scales = te.placeholder(scale_shape, "float32", name=f"{name}_scales")

    def decode(*i: Any) -> Any:
        k = i[pair]
        byte = codes[tuple(k // 2 if d == pair else x for d, x in enumerate(i))]
        # The nibble moved to the top of an int32, then shifted back arithmetically (sign-extended):
        # 32-bit shifts, since x86 has no byte shifts.
        up = tirx.Select(k % 2 == 0, te.const(28, "int32"), te.const(24, "int32"))
        value = ((byte.astype("int32") << up) >> te.const(28, "int32")).astype("float32")
        group = tuple(x // group_size if d == reduce_dim else x for d, x in enumerate(i))
        return value * scales[group]

    tensor = te.compute(shape, decode, name=name)

    def pack(arrays: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
        values = layout(np.asarray(arrays[stored.name]).astype(np.int8))
        scale_values = np.asarray(quant.scale, np.float32).reshape(scale_ir_shape)
        return {stored.name: two_per_byte(values, pair), f"{stored.name}:{SCALES}": layout(scale_values)}

    params = [
        (codes, KernelArg(stored.name, "weight", byte_shape, "uint8")),
        (scales, KernelArg(stored.name, "weight", tuple(int(d) for d in scale_shape), "float32", SCALES)),
    ]
    notes = {"group_size": group_size, "pair_dim": pair}
    return WeightSource(tensor, params, pack, DType.I4, inline, notes)


def two_per_byte(values: np.ndarray, axis: int) -> np.ndarray:
    """int values in [-8, 7] packed two per byte along `axis`: element 2k low nibble, 2k+1 high."""
    moved = np.moveaxis(values.astype(np.uint8) & 0xF, axis, -1)
    if moved.shape[-1] % 2:
        moved = np.concatenate([moved, np.zeros((*moved.shape[:-1], 1), np.uint8)], axis=-1)
    packed = moved[..., 0::2] | (moved[..., 1::2] << 4)
    return np.ascontiguousarray(np.moveaxis(packed.astype(np.uint8), -1, axis))


def weight_params(node: Node, name: str) -> tuple[WeightSource, list[Any]] | None:
    """For the general templates, which read weights in the IR's layout: the stored weight's source
    and its `generic.Param`s, the decoded one first (`make_kernel` inlines it), or None without one."""
    from targets.lowering.generic import Param

    stored = stored_weight(node)
    if stored is None:
        return None
    axis = stored.type.quant.axis if stored.type.quant is not None else None
    source = weight_source(node, stored.type.shape, identity_layout, axis, name, inline=True)
    (first, first_arg), *rest = source.params
    return source, [Param(source.tensor, first_arg, first), *(Param(t, a) for t, a in rest)]
