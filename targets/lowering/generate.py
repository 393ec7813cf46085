"""Templates of the generate family: ConstantOfShape and Range, kernels with no operands.

Rule: these nodes are normally folded to constants at import; when one stays,
its kernel writes the result from attributes alone. ConstantOfShape's fill is
converted at compile time exactly as the reference converts it; Range computes
start + i * delta in int64 (integer dtypes, wrapping like numpy's astype) or
float64 (float dtypes), then converts.
"""

from __future__ import annotations

from collections.abc import Sequence

from tvm import te, tirx

from ir.dtypes import DType
from ir.graph import Node
from targets.lowering.kernel import LoweredKernel
from targets.lowering.movement import KernelBuilder, encode, literal, rounded
from targets.lowering.registry import lowering
from targets.target import TargetDescription


@lowering("ConstantOfShape")
def lower_constant_of_shape(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    k = KernelBuilder(node, target, epilogue)
    fill = literal(node.attrs["value"], node.attrs["dtype"])
    out = te.compute(node.results[0].type.shape, lambda *i: fill, name="out")
    return k.finish([out], contiguous=True)


@lowering("Range")
def lower_range(
    node: Node, target: TargetDescription, epilogue: Sequence[Node], layout: str
) -> LoweredKernel:
    k = KernelBuilder(node, target, epilogue)
    dtype: DType = node.attrs["dtype"]
    start, delta = node.attrs["start"], node.attrs["delta"]

    def value(i):
        if dtype.is_integer:
            wide = tirx.const(int(start), "int64") + tirx.Cast("int64", i) * tirx.const(int(delta), "int64")
            return encode(wide, dtype)
        wide = tirx.const(start, "float64") + rounded(tirx.Cast("float64", i) * tirx.const(delta, "float64"))
        return encode(wide, dtype)

    out = te.compute(node.results[0].type.shape, value, name="out")
    return k.finish([out], contiguous=True)
