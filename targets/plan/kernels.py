"""Which kernels a planned graph needs, and lowering them: `FusionGroup`, `kernel_groups`, `lower_groups`.

Rule: kernels run in the graph's node order, one per group. A view
(ir/aliasing.py) gets no kernel: its result is its operand's bytes. A node
the `fuse` pass put in a fusion group (ir/fusion.py) is lowered with the
group's anchor (`targets.lowering.lower_node(anchor, epilogue=...)`); every other
node is a group of its own. Lowering never stops at the first failure: every
node that cannot be lowered is collected, and one `UnsupportedOpsError` lists
each op without an x86 lowering (with its nodes) and each node a template refused.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ir import Graph, HaiError
from ir.fusion import FusionGroup, kernels

SHOWN_NODES = 3  # node names listed per unsupported op


class UnsupportedOpsError(HaiError):
    """Nodes of the model that no target template lowers; the message lists every one."""


def kernel_groups(graph: Graph) -> list[FusionGroup]:
    """The graph's kernels in execution order: views skipped, fusion groups (ir/fusion.py) whole."""
    return kernels(graph)


def layout_of(group: FusionGroup) -> str:
    """The activation layout of the group's kernel: how its anchor's result is stored
    (`TensorType.layout`, which the `layout` pass sets; NCHW, the IR's order, without one)."""
    return group.anchor.results[0].type.layout or "NCHW"


def lower_groups(
    groups: Sequence[FusionGroup], target: object, on_lowered: Callable[[FusionGroup], None] | None = None
) -> list[object]:
    """The LoweredKernel of every group, in order; an UnsupportedOpsError lists all that fail."""
    from targets.lowering.dispatch import lower_node, supported_ops
    from targets.lowering.kernel import LoweringError

    supported = set(supported_ops())
    missing: dict[str, list[str]] = {}
    refused: list[str] = []
    kernels = []
    for group in groups:
        unlowerable = [n for n in group.nodes if n.op not in supported and n is group.anchor]
        if unlowerable:
            missing.setdefault(group.anchor.op, []).append(group.anchor.name or group.anchor.results[0].name)
            continue
        try:
            kernel = lower_node(group.anchor, target, group.epilogue, layout=layout_of(group))  # type: ignore[arg-type]
            kernel.sources = group.sources  # with what earlier passes folded in (e.g. BatchNormalization)
            kernels.append(kernel)
        except LoweringError as exc:
            refused.append(str(exc))
            continue
        if on_lowered is not None:
            on_lowered(group)
    if missing or refused:
        raise UnsupportedOpsError(unsupported_message(missing, refused, getattr(target, "name", "?")))
    check_kernel_names(kernels)
    return kernels


class KernelNameClashError(HaiError):
    """Two different kernels got the same workload name (a template's workload misses a fact)."""


def check_kernel_names(kernels: Sequence[Any]) -> None:
    """Kernels sharing a name must take the same arguments, since the library keeps one per name."""
    seen: dict[str, Any] = {}
    for kernel in kernels:
        signature = [(a.role, tuple(a.shape), a.dtype) for a in kernel.args]
        first = seen.setdefault(kernel.name, kernel)
        if [(a.role, tuple(a.shape), a.dtype) for a in first.args] != signature:
            raise KernelNameClashError(
                f"kernels for {', '.join(first.sources)} and for {', '.join(kernel.sources)} are both named "
                f"{kernel.name} but take different arguments; the template's workload must tell them apart"
            )


def unsupported_message(missing: dict[str, list[str]], refused: list[str], target: str) -> str:
    lines = []
    if missing:
        count = sum(len(v) for v in missing.values())
        lines.append(f"{count} node(s) use ops with no {target} lowering yet: {', '.join(sorted(missing))}")
        for op, names in sorted(missing.items()):
            shown = ", ".join(repr(n) for n in names[:SHOWN_NODES])
            more = f" and {len(names) - SHOWN_NODES} more" if len(names) > SHOWN_NODES else ""
            lines.append(f"  {op}: {len(names)} node(s): {shown}{more}")
    if refused:
        lines.append(f"{len(refused)} node(s) the {target} templates refused:")
        lines += [f"  {reason}" for reason in refused]
    return "cannot compile the model:\n" + "\n".join(lines)
