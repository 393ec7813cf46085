"""Cleanup shared by rewriting passes: drop the constants a rewrite left unused.

Rule: only the given candidates are touched, and only when nothing reads them
(no node, no graph output); a full sweep is `eliminate-dead-code`'s job.
"""

from __future__ import annotations

from collections.abc import Iterable

from ir import Graph, Value


def drop_unused_constants(graph: Graph, candidates: Iterable[Value | None]) -> int:
    """Remove each candidate constant that is no longer used; returns how many went."""
    removed = 0
    for value in dict.fromkeys(v for v in candidates if v is not None):
        if value.is_constant and value.graph is graph and not value.uses() and not value.is_graph_output:
            graph.remove_constant(value)
            removed += 1
    return removed
