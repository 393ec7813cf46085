"""Copying graphs: `clone_graph(graph)` gives an independent graph with the same names and types;
`inline_region(graph, node, region, args)` copies a region's nodes into the graph around it.

Rule: nodes, values, attributes, annotations, regions and metadata are copied; constant
data is shared, never copied (constants are immutable: rewrites add new
constants instead of writing into old ones). Passes may then rewrite the copy
without touching the original (e.g. trying one precision per layer). A copied
region reads the copies of the values it captured when they were copied too,
else the same outer values. Inlined values keep their names where the graph has
none of them, else they get a suffix.
"""

from __future__ import annotations

from collections.abc import Sequence

from ir.graph import Graph, Node, Value


def clone_graph(graph: Graph) -> Graph:
    """An independent copy of `graph`; constant arrays are shared."""
    copy = Graph(graph.name)
    copy.metadata = dict(graph.metadata)
    mapped: dict[Value, Value] = {}
    for value in graph.inputs:
        mapped[value] = copy.add_input(value.name, value.type)
    _copy_body(graph, copy, mapped, before=None)
    copy.set_outputs(mapped[v] for v in graph.outputs)
    return copy


def inline_region(graph: Graph, node: Node, region: Graph, args: Sequence[Value]) -> list[Value]:
    """Copy `region`'s constants and nodes into `graph` before `node`, its inputs reading `args`;
    the copies of its outputs (the node itself stays)."""
    mapped: dict[Value, Value] = dict(zip(region.inputs, args, strict=True))
    _copy_body(region, graph, mapped, before=node)
    return [mapped.get(v, v) for v in region.outputs]


def _copy_body(source: Graph, target: Graph, mapped: dict[Value, Value], before: Node | None) -> None:
    """Copy `source`'s constants and nodes into `target` (nodes before `before`), extending `mapped`."""
    for value in source.constants.values():
        assert value.const is not None  # a constant always holds data (or an elided reference)
        mapped[value] = target.add_constant(value.name, value.const, value.type)
    for node in source.nodes:
        operands = [mapped.get(o, o) if o is not None else None for o in node.operands]
        twin = Node(
            node.op,
            operands,
            node.attrs,
            [r.type for r in node.results],
            [target.unique_name(r.name) for r in node.results],
            node.name,
        )
        twin.annotations = dict(node.annotations)
        target.insert_node(twin, before=before)
        twin.set_regions([_copy_region(region, twin, mapped) for region in node.regions])
        mapped.update(zip(node.results, twin.results))


def _copy_region(region: Graph, owner: Node, mapped: dict[Value, Value]) -> Graph:
    copy = Graph(region.name)
    copy.parent = owner  # before its values are named: names are unique in the graphs around it
    for value in region.inputs:
        mapped[value] = copy.add_input(copy.unique_name(value.name), value.type)
    _copy_body(region, copy, mapped, before=None)
    copy.set_outputs(mapped[v] for v in region.outputs)
    return copy
