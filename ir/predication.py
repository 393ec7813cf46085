"""Predication: an `If` decided only at run time becomes guarded nodes a static plan can hold.

Rule: `predicate(graph)` replaces each `If` of the graph by copies of both its
branches, in order (then, else), each copy annotated with the guard it runs
under (`GUARD_KEY`: the condition's value name and the branch's truth, after
the guards of the If itself, so nested Ifs stack them), and one `Where(cond,
then, else)` per result, which runs under the If's own guards. A step whose
guards do not all hold may be skipped (the runtime reads each condition from
its bytes); skipped or not, the results are the same, since only the same
branch's nodes and the `Where` read a branch's values, and the `Where` picks
the branch that ran. So a guard that a later rewrite drops (a node rebuilt
without its annotations) costs time, never correctness, and the memory plan,
made as if every step runs, covers both branches. A condition must keep its
value name after this (the passes that run later, layout, fuse and
plan-memory, rename nothing).
"""

from __future__ import annotations

import json
from collections.abc import Callable

from ir.builder import Builder
from ir.clone import inline_region
from ir.graph import Graph, Node, Value

GUARD_KEY = "guard"
"""The annotation of a guarded node: a JSON list of `[condition value name, truth]` pairs."""

Guard = tuple[str, bool]


def guards_of(node: Node) -> list[Guard]:
    """The guards `node` runs under (empty: always)."""
    text = node.annotations.get(GUARD_KEY)
    if not isinstance(text, str):
        return []
    return [(str(name), bool(truth)) for name, truth in json.loads(text)]


def set_guards(node: Node, guards: list[Guard]) -> None:
    if guards:
        node.annotations[GUARD_KEY] = json.dumps([[name, truth] for name, truth in guards])


def predicate(graph: Graph) -> int:
    """Predicate every `If` of `graph` (those its copies bring up too); how many there were."""
    return rewrite_all(graph, "If", _predicate_if)


def rewrite_all(graph: Graph, op: str, rewrite: Callable[[Graph, Node], None]) -> int:
    """`rewrite` every `op` node of `graph` until none is left (a rewrite may bring up copies of
    nested ones); how many were rewritten."""
    count = 0
    while nodes := [node for node in graph.nodes if node.op == op]:
        for node in nodes:
            rewrite(graph, node)
            count += 1
    return count


def _predicate_if(graph: Graph, node: Node) -> None:
    cond = node.operands[0]
    assert cond is not None  # If's condition is required (its schema)
    outer = guards_of(node)
    builder = Builder(graph, insert_before=node)
    name = node.name or node.results[0].name
    if cond.type.shape != ():
        (cond,) = builder.op("Reshape", [cond], {"shape": []}, name=f"{name}/condition")
        set_guards(cond.producer, outer)  # type: ignore[arg-type]
    branches: list[list[Value]] = []
    for region, truth in zip(node.regions, (True, False), strict=True):
        anchor = graph.nodes.previous(node)
        outputs = inline_region(graph, node, region, [])
        for copy in graph.nodes.after(anchor):
            if copy is node:
                break
            set_guards(copy, outer + guards_of(copy) + [(cond.name, truth)])
        branches.append(outputs)
    selected = []
    for result, chosen, other in zip(node.results, *branches, strict=True):
        (where,) = builder.op("Where", [cond, chosen, other], name=f"{name}/select")
        set_guards(where.producer, outer)  # type: ignore[arg-type]
        selected.append((result, where))
    for result, where in selected:
        graph.replace_value(result, where)
    graph.remove_node(node)
