"""The short picture of a graph that `hai ir --summary` and `hai demo` print.

`summarize` collects the facts (op counts, constants and their bytes, inputs
and outputs with types); `render_summary` prints them as rich tables.
"""

from __future__ import annotations

import collections
import dataclasses

from rich.console import Console
from rich.table import Table

from ir import Graph, TensorType


@dataclasses.dataclass
class GraphSummary:
    """Op counts, constant count and bytes, and the typed inputs and outputs of a graph."""

    name: str
    op_counts: dict[str, int]
    constant_count: int
    constant_bytes: int
    inputs: list[tuple[str, TensorType]]
    outputs: list[tuple[str, TensorType]]

    @property
    def node_count(self) -> int:
        return sum(self.op_counts.values())


def summarize(graph: Graph) -> GraphSummary:
    counts = collections.Counter(node.op for node in graph.nodes)
    return GraphSummary(
        name=graph.name,
        op_counts=dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))),
        constant_count=len(graph.constants),
        constant_bytes=sum(v.type.nbytes for v in graph.constants.values()),
        inputs=[(v.name, v.type) for v in graph.inputs],
        outputs=[(v.name, v.type) for v in graph.outputs],
    )


def render_summary(graph: Graph, console: Console) -> None:
    summary = summarize(graph)
    console.print(f"graph '{summary.name}': {summary.node_count} nodes", markup=False)
    ops = Table()
    ops.add_column("op")
    ops.add_column("count", justify="right")
    for op, count in summary.op_counts.items():
        ops.add_row(op, str(count))
    console.print(ops)
    constants = f"constants: {summary.constant_count} ({format_bytes(summary.constant_bytes)})"
    console.print(constants, markup=False)
    io = Table()
    for column in ("kind", "name", "type"):
        io.add_column(column)
    for kind, values in (("input", summary.inputs), ("output", summary.outputs)):
        for name, value_type in values:
            io.add_row(kind, name, str(value_type))
    console.print(io)


def format_bytes(count: int) -> str:
    """A byte count for people: `812 B`, `95.3 KiB`, `4.5 MiB`."""
    size = float(count)
    for unit in ("B", "KiB", "MiB"):
        if size < 1024:
            return f"{size:.4g} {unit}" if unit != "B" else f"{count} B"
        size /= 1024
    return f"{size:.4g} GiB"
