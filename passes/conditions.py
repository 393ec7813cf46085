"""Named graph conditions that passes declare in `requires` and `ensures`.

Rule: a condition is a name and a check `graph -> problem or None`; the
manager runs a pass's `requires` before it and its `ensures` after it, and a
problem becomes a `PassFailedError` naming the pass. Checks are linear in the
graph size. Imports only `ir`.
"""

from __future__ import annotations

from collections.abc import Callable

from ir import ElidedConstant, Graph, HaiError, Node
from ir.builder import infer_types
from ir.placement import check_placement, is_placed


def types_inferred(graph: Graph) -> str | None:
    """Every node result's dtype and shape is what its op's inference gives."""
    for node in graph.nodes:
        operand_types = [o.type if o else None for o in node.operands]
        inferred = infer_types(node.op, operand_types, node.attrs, node.label(), node.regions)
        for result, want in zip(node.results, inferred, strict=False):
            if not result.type.same_tensor(want):
                return f"%{result.name} of {node.label()} is {result.type}, inference gives {want}"
    return None


def constants_loaded(graph: Graph) -> str | None:
    """No constant's data is elided (the `.hir` was read with its weights file)."""
    elided = [v.name for v in graph.constants.values() if isinstance(v.const, ElidedConstant)]
    if elided:
        shown = ", ".join(f"%{n}" for n in elided[:5]) + (" ..." if len(elided) > 5 else "")
        return f"{len(elided)} constants have no data ({shown}); pass the .hir's weights file"
    return None


def no_dead_code(graph: Graph) -> str | None:
    """Every node has a used result, and every constant is used or a graph output."""
    for node in graph.nodes:
        if not any(r.uses() or r.is_graph_output for r in node.results):
            return f"{node.label()} has no used result"
    for value in graph.constants.values():
        if not value.uses() and not value.is_graph_output:
            return f"constant %{value.name} is unused"
    return None


def placed(graph: Graph) -> str | None:
    """Every graph input and node result is on a device, values crossing devices through Transfers."""
    if not is_placed(graph) and (graph.inputs or len(graph.nodes)):
        return "no value has a device: run the partition pass"
    try:
        check_placement(graph)
    except HaiError as exc:
        return str(exc)
    return None


def no_control_flow(graph: Graph) -> str | None:
    """No node owns regions: a static plan holds an If only as guarded steps and a Loop only as a span
    of steps the runtime repeats (`predicate-control-flow`, which `hai compile` runs first)."""
    for node in graph.nodes:
        if node.regions:
            return control_flow_problem(node)
    return None


def control_flow_problem(node: Node) -> str:
    """Why a control-flow node cannot be planned, naming it and the pass that makes it plannable."""
    ident = node.name or node.results[0].name
    if node.op == "If":
        return f"If '{ident}' is left: run predicate-control-flow before this pass (hai compile does)"
    if node.op == "Loop":
        return (
            f"Loop '{ident}' is left: run predicate-control-flow before this pass (hai compile does; "
            "it makes the Loop a span of steps the runtime repeats)"
        )
    return (
        f"Scan '{ident}': unrolled copies would exceed flatten-control-flow's max-nodes; a static plan "
        "runs no Scan: raise flatten-control-flow{max-nodes=...}, or export the model with it unrolled"
    )


CONDITIONS: dict[str, Callable[[Graph], str | None]] = {
    "types-inferred": types_inferred,
    "constants-loaded": constants_loaded,
    "no-dead-code": no_dead_code,
    "no-control-flow": no_control_flow,
    "placed": placed,
}


def check_condition(graph: Graph, name: str) -> str | None:
    """The problem that breaks condition `name` on `graph`, or None when it holds."""
    try:
        check = CONDITIONS[name]
    except KeyError:
        raise HaiError(f"unknown pass condition '{name}' (known: {', '.join(sorted(CONDITIONS))})") from None
    return check(graph)
