"""Lowering one node: `lower_node(node, target, epilogue=..., layout=...)` and `supported_ops()`.

Rule: `lower_node` turns one anchor node (Conv, Gemm, MatMul, an elementwise op,
...) and the elementwise nodes fused after it into one `LoweredKernel`
(kernel.py) by the template registered for its op (registry.py). `layout` says
how activations are laid out: "NCHW" (the IR's) unless the caller asked for
"NHWC", which needs a layout pass around the kernel. The target's `native_math` picks the forms of
exp/tanh/erf while it lowers (vector_math.native_forms). Importing this module
imports every template family (and TVM): it is the top of the lowering, which
nothing in it imports back.
"""

from __future__ import annotations

from collections.abc import Sequence

from ir.graph import Node
from targets.lowering import (  # noqa: F401  (importing a family registers its templates)
    attention,
    conv,
    conv_transpose,
    elementwise,
    generate,
    image,
    indexing,
    integer_tiles,
    matmul,
    normalization,
    pooling,
    reduce,
    rnn,
    shape,
    vector_math,
)
from targets.lowering.kernel import MAX_KERNEL_ELEMENTS, LoweredKernel, LoweringError
from targets.lowering.registry import LOOP_NEST_OPS, LOWERINGS
from targets.schedules import schedules_of
from targets.target import TargetDescription


def supported_ops(target: TargetDescription | None = None) -> list[str]:
    """The ops with a template; for `target`, those it has a kernel for (none of `LOOP_NEST_OPS` where
    its schedule table takes no loop nests)."""
    if target is None or schedules_of(target).loop_nests:
        return sorted(LOWERINGS)
    return sorted(set(LOWERINGS) - LOOP_NEST_OPS)


def lower_node(
    node: Node, target: TargetDescription, epilogue: Sequence[Node] = (), layout: str = "NCHW"
) -> LoweredKernel:
    """Lower `node` with the elementwise `epilogue` nodes (each reads the previous result) fused in."""
    fn = LOWERINGS.get(node.op)
    if fn is None:
        raise LoweringError(f"node {node.name or node.op!r}: no {target.name} template for op {node.op}")
    if layout not in ("NCHW", "NHWC"):
        raise LoweringError(f"node {node.name!r}: unknown activation layout {layout!r}")
    _check_extents(node, epilogue)
    with vector_math.native_forms(schedules_of(target).native_math):
        return fn(node, target, tuple(epilogue), layout)


def _check_extents(node: Node, epilogue: Sequence[Node]) -> None:
    for each in (node, *epilogue):
        for value in (*each.operands, *each.results):
            if value is not None and value.type.size > MAX_KERNEL_ELEMENTS:
                raise LoweringError(
                    f"node {each.name or each.op!r} ({each.op}): %{value.name} {value.type} holds "
                    f"{value.type.size} elements; a kernel buffer holds at most 2^31 - 1 (int32 indices)"
                )
