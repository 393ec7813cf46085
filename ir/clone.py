"""Copying a graph: `clone_graph(graph)` gives an independent graph with the same names and types.

Rule: nodes, values, attributes, annotations and metadata are copied; constant
data is shared, never copied (constants are immutable: rewrites add new
constants instead of writing into old ones). Passes may then rewrite the copy
without touching the original (e.g. trying one precision per layer).
"""

from __future__ import annotations

from ir.graph import Graph, Node, Value


def clone_graph(graph: Graph) -> Graph:
    """An independent copy of `graph`; constant arrays are shared."""
    copy = Graph(graph.name)
    copy.metadata = dict(graph.metadata)
    mapped: dict[Value, Value] = {}
    for value in graph.inputs:
        mapped[value] = copy.add_input(value.name, value.type)
    for value in graph.constants.values():
        assert value.const is not None  # a constant always holds data (or an elided reference)
        mapped[value] = copy.add_constant(value.name, value.const, value.type)
    for node in graph.nodes:
        operands = [mapped[o] if o is not None else None for o in node.operands]
        twin = Node(
            node.op,
            operands,
            node.attrs,
            [r.type for r in node.results],
            [r.name for r in node.results],
            node.name,
        )
        twin.annotations = dict(node.annotations)
        copy.insert_node(twin)
        mapped.update(zip(node.results, twin.results))
    copy.set_outputs(mapped[v] for v in graph.outputs)
    return copy
